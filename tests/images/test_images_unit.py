"""Unit tests for the pure helpers of the image builder (pyshyper_host.images: apt, cpio, initramfs): no network,
no QEMU."""

from __future__ import annotations

import io
import json
import lzma
from pathlib import Path

import pytest

from boards import load_board
from boards.mvm import load_mvm
from pyshyper_host.images import apt, cpio, initramfs

DEBIAN_SOURCES = """\
Types: deb
# a comment
URIs: http://mirror.example/debian/
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""

SOURCES_LIST = """\
# deb http://commented.example/debian bookworm main
deb http://security.example/debian-security bookworm-security main
deb [arch=amd64 signed-by=/x.gpg] http://plain.example/debian bookworm main contrib
"""


def test_uri_from_deb822_first_uris_line():
    assert apt.derive_archive_uri(DEBIAN_SOURCES, SOURCES_LIST) == "http://mirror.example/debian"


def test_uri_from_sources_list_skips_comments_security_and_options():
    assert apt.derive_archive_uri(None, SOURCES_LIST) == "http://plain.example/debian"
    assert apt.derive_archive_uri("", "deb http://a.example/debian trixie main\n") == "http://a.example/debian"


def test_uri_missing():
    assert apt.derive_archive_uri(None, None) is None
    assert apt.derive_archive_uri("Types: deb\n", "# nothing\n") is None


def test_sources_line_is_riscv64_trixie_signed():
    line = apt.sources_line("http://m.example/debian")
    assert line == (
        "deb [arch=riscv64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        "http://m.example/debian trixie main\n"
    )


def test_newest_kernel_by_numeric_version():
    names = [
        "linux-image-6.12.94+deb13-riscv64",
        "linux-image-6.12.107+deb13-riscv64",
        "linux-image-6.12.107+deb13-riscv64-dbg",
        "linux-image-6.12.9+deb13-riscv64",
        "linux-image-6.16.3+deb13-riscv64",
        "linux-image-riscv64",
    ]
    assert apt.newest_kernel(names) == "linux-image-6.12.107+deb13-riscv64"
    assert apt.newest_kernel(["linux-image-riscv64"]) is None


def test_parse_depends_alternatives_and_virtuals():
    text = """\
libpython3.13-stdlib
  Depends: libpython3.13-minimal
 |Depends: media-types
  Depends: <mime-support>
    mailcap
  Depends: libffi8
  Breaks: foo
  Recommends: bar
python3.13-minimal
  PreDepends: libc6
  Depends: zlib1g
"""
    deps = apt.parse_depends(text)
    assert deps["libpython3.13-stdlib"] == [["libpython3.13-minimal"], ["media-types", "<mime-support>"], ["libffi8"]]
    assert deps["python3.13-minimal"] == [["libc6"], ["zlib1g"]]
    assert apt.pick_alternative(["<virt>", "real"]) == "real"
    assert apt.pick_alternative(["<virt>"]) is None


def test_wanted_library_filter():
    assert apt.wanted_library("libc6")
    assert apt.wanted_library("zlib1g")
    assert not apt.wanted_library("tzdata")
    assert not apt.wanted_library("media-types")
    assert not apt.wanted_library("libdb5.3t64")


def test_parse_print_uris_and_package_of():
    text = (
        "'http://m.example/debian/pool/main/b/busybox/busybox-static_1%3a1.37.0-6+b9_riscv64.deb' "
        "busybox-static_1%3a1.37.0-6+b9_riscv64.deb 941532 SHA256:" + "ab" * 32 + "\n"
    )
    recs = apt.parse_print_uris(text)
    assert recs == [
        {
            "url": "http://m.example/debian/pool/main/b/busybox/busybox-static_1%3a1.37.0-6+b9_riscv64.deb",
            "filename": "busybox-static_1%3a1.37.0-6+b9_riscv64.deb",
            "size": 941532,
            "sha256": "ab" * 32,
        }
    ]
    assert apt.package_of(recs[0]["filename"]) == ("busybox-static", "1:1.37.0-6+b9")


def _outputs(tmp: Path) -> dict:
    out = {}
    for name, data in (("Image", b"kernel"), ("mvm-initramfs.cpio", b"cpio")):
        (tmp / name).write_bytes(data)
        out[name] = {"size": len(data), "sha256": apt.sha256_file(tmp / name)}
    return out


def test_manifest_up_to_date_and_reasons(tmp_path: Path):
    pkgs = {"busybox-static": "1:1.37.0-6+b9", "libc6": "2.41-12"}
    manifest = {"recipe": "r1", "packages": {k: {"version": v} for k, v in pkgs.items()}, "outputs": _outputs(tmp_path)}
    manifest = json.loads(json.dumps(manifest))  # as read back from manifest.json
    assert initramfs.manifest_up_to_date(manifest, pkgs, "r1", tmp_path) is None
    assert initramfs.manifest_up_to_date(None, pkgs, "r1", tmp_path) == "no manifest"
    assert initramfs.manifest_up_to_date(manifest, pkgs, "r2", tmp_path) == "build recipe changed"
    why = initramfs.manifest_up_to_date(manifest, {**pkgs, "libc6": "2.41-13"}, "r1", tmp_path)
    assert why is not None and "package versions changed" in why and "2.41-13" in why
    (tmp_path / "Image").write_bytes(b"KERNEL")  # same size, other content
    assert initramfs.manifest_up_to_date(manifest, pkgs, "r1", tmp_path) == "Image checksum differs"
    assert initramfs.manifest_up_to_date(manifest, pkgs, "r1", tmp_path, verify=False) is None
    (tmp_path / "mvm-initramfs.cpio").unlink()
    assert "missing" in initramfs.manifest_up_to_date(manifest, pkgs, "r1", tmp_path, verify=False)


def test_recipe_digest_changes_with_content(tmp_path: Path):
    a = tmp_path / "init"
    a.write_text("one")
    d1 = initramfs.recipe_digest([a])
    a.write_text("two")
    assert initramfs.recipe_digest([a]) != d1


def test_default_cache_honours_env(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("PYSHYPER_CACHE", str(tmp_path / "c"))
    assert initramfs.default_cache() == tmp_path / "c"
    monkeypatch.delenv("PYSHYPER_CACHE")
    assert initramfs.default_cache() == Path("~/.cache/pyshyper").expanduser()


def test_module_names_and_load_order():
    assert initramfs.module_name("vmw_vsock_virtio_transport.ko.xz") == "vmw_vsock_virtio_transport"
    assert initramfs.module_name("nf-nat.ko") == "nf_nat"
    deps = {
        "virtio_net": ["net_failover"],
        "net_failover": ["failover"],
        "failover": [],
        "vmw_vsock_virtio_transport": ["vmw_vsock_virtio_transport_common", "vsock"],
        "vmw_vsock_virtio_transport_common": ["vsock"],
        "vsock": [],
    }
    order = initramfs.module_load_order(["virtio_net", "vmw_vsock_virtio_transport"], deps)
    assert order == [
        "failover",
        "net_failover",
        "virtio_net",
        "vsock",
        "vmw_vsock_virtio_transport_common",
        "vmw_vsock_virtio_transport",
    ]
    with pytest.raises(ValueError, match="cycle"):
        initramfs.module_load_order(["a"], {"a": ["b"], "b": ["a"]})


def test_modinfo_depends_byte_scan():
    blob = b"junk\0license=GPL\0depends=net_failover,vsock\0vermagic=6.12\0"
    assert initramfs.modinfo_depends(blob) == ["net_failover", "vsock"]
    assert initramfs.modinfo_depends(b"\0depends=\0") == []
    # what the builder does with .ko.xz
    assert initramfs.modinfo_depends(lzma.decompress(lzma.compress(blob))) == ["net_failover", "vsock"]


def test_cpio_round_trip_and_layout():
    t = cpio.Tree()
    t.file("usr/bin/hello", b"hi\n", 0o755)
    t.link("bin", "usr/bin")
    t.add("dev/console", cpio.Entry("chr", 0o600, rdev=(5, 1)))
    buf = io.BytesIO()
    n = t.write_cpio(buf)
    data = buf.getvalue()
    assert n == len(data) and n % 512 == 0
    entries = cpio.read_cpio(data)
    assert list(entries) == ["bin", "dev", "dev/console", "usr", "usr/bin", "usr/bin/hello"]
    mode, body = entries["usr/bin/hello"]
    assert body == b"hi\n" and mode == 0o100755
    assert entries["bin"] == (0o120777, b"usr/bin")
    assert entries["dev/console"][0] == 0o020600
    assert entries["usr"][0] == 0o040755
    # every header is newc and 4-byte aligned
    assert data.startswith(b"070701")


def test_image_header_check():
    hdr = bytearray(64)
    hdr[0:2] = b"MZ"
    hdr[8:16] = (0x200000).to_bytes(8, "little")
    hdr[16:24] = (0x1E6B000).to_bytes(8, "little")
    hdr[48:56] = b"RISCV\0\0\0"
    hdr[56:60] = b"RSC\x05"
    assert initramfs.check_image_header(bytes(hdr)) == {"text_offset": 0x200000, "image_size": 0x1E6B000}
    with pytest.raises(RuntimeError):
        initramfs.check_image_header(b"\x7fELF" + bytes(60))


def test_stdlib_pruning():
    keep = initramfs._keep_payload
    assert keep("usr/lib/python3.13/os.py")
    assert keep("usr/lib/python3.13/lib-dynload/_ssl.cpython-313-riscv64-linux-gnu.so")
    assert not keep("usr/lib/python3.13/test/test_os.py")
    assert not keep("usr/lib/python3.13/tkinter")
    assert not keep("usr/lib/python3.13/json/__pycache__/x.pyc")
    assert not keep("usr/share/doc/libc6/copyright")
    assert not keep("usr/lib/riscv64-linux-gnu/gconv/UTF-16.so")
    assert keep("usr/lib/riscv64-linux-gnu/libc.so.6")


def test_native_command_uses_cache(tmp_path: Path):
    cmd = initramfs.native_qemu_command(tmp_path, smp=2)
    assert cmd[0] == "qemu-system-riscv64"
    assert cmd[cmd.index("-m") + 1] == "1G"  # the MVM's memory (mvm.toml), so the baseline's Linux sees the same
    assert initramfs.native_qemu_command(tmp_path, mem="512M")[cmd.index("-m") + 1] == "512M"
    # the board's CPU, as `pyshyper run` gives the hypervisor: native and hypervisor runs compare the same harts
    assert cmd[cmd.index("-cpu") + 1] == load_board("qemu-virt").qemu_cpu == "rv64,v=true,svnapot=true"
    assert initramfs.native_gvm_command(tmp_path)[cmd.index("-cpu") + 1] == load_board("qemu-virt").qemu_cpu
    assert cmd[cmd.index("-kernel") + 1] == str(tmp_path / "Image")
    assert cmd[cmd.index("-initrd") + 1] == str(tmp_path / "mvm-initramfs.cpio")
    # the MVM's own command line (mvm.toml), so the baseline boots the kernel as the MVM does (no4lvl: Sv39)
    assert cmd[cmd.index("-append") + 1] == load_mvm("qemu-virt").cmdline
    assert "console=ttyS0" in cmd[cmd.index("-append") + 1] and "no4lvl" in cmd[cmd.index("-append") + 1]
    assert (
        cmd[cmd.index("-drive") + 1]
        == f"file={tmp_path / 'mvm-disk.img'},if=none,format=raw,id=shyper-images,snapshot=on"
    )


def test_help_exits_zero(capsys):
    with pytest.raises(SystemExit) as e:
        initramfs.main(["--help"])
    assert e.value.code == 0
    assert "--cache" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------------------------
# The GVM initramfs, mvm-tools in the MVM, the images disk


def _fake_roots(tmp_path: Path) -> tuple[Path, Path, str]:
    """A busybox-static root and a kernel root with a virtio_mmio.ko.xz (its .modinfo says it depends on
    nothing) and an ext4 one depending on jbd2: what the builder reads from the extracted packages."""
    kver = "6.12.0+test-riscv64"
    bb = tmp_path / "busybox"
    (bb / "usr/bin").mkdir(parents=True)
    (bb / "usr/bin/busybox").write_bytes(b"\x7fELF busybox")
    kr = tmp_path / "kernel"
    mods = kr / "usr/lib/modules" / kver / "kernel"
    for rel, depends in (("drivers/virtio/virtio_mmio", ""), ("fs/ext4/ext4", "jbd2"), ("fs/jbd2/jbd2", "")):
        (mods / rel).parent.mkdir(parents=True, exist_ok=True)
        (mods / f"{rel}.ko.xz").write_bytes(lzma.compress(f"\0name={Path(rel).name}\0depends={depends}\0".encode()))
    return bb, kr, kver


def test_gvm_initramfs_layout(tmp_path: Path):
    bb, kr, kver = _fake_roots(tmp_path)
    out = tmp_path / "gvm-initramfs.cpio"
    info = initramfs.build_gvm_initramfs(bb, kr, kver, out)
    assert info["modules"] == ["virtio_mmio"]
    files = cpio.read_cpio(out.read_bytes())
    assert files["init"][0] == 0o100755 and files["init"][1] == (initramfs.GVM_DIR / "init").read_bytes()
    assert b"hvc0::respawn:" in files["etc/inittab"][1]
    assert b"PS1='\\h:\\w# '" in files["etc/profile"][1]
    assert files["usr/bin/busybox"][1] == b"\x7fELF busybox"
    assert files["etc/pyshyper/modules"][1] == f"{kver}/kernel/drivers/virtio/virtio_mmio.ko\n".encode()
    assert f"usr/lib/modules/{kver}/kernel/drivers/virtio/virtio_mmio.ko" in files
    assert not any("python" in p or "ext4" in p for p in files)  # small: busybox and its one module
    init = files["init"][1].decode()
    assert initramfs.GVM_READY_LINE in init and "/proc/device-tree/model" in init and "pyshyper," in init
    # fpvcheck: a static riscv64 Linux executable (ELF64, EM_RISCV 243, ET_EXEC), no interpreter
    mode, exe = files["usr/bin/fpvcheck"]
    assert mode == 0o100755 and exe[:4] == b"\x7fELF" and exe[4] == 2
    assert int.from_bytes(exe[16:18], "little") == 2 and int.from_bytes(exe[18:20], "little") == 243
    assert b"ld-linux" not in exe and b"fpvcheck: ok " in exe


def _fake_tools(tmp_path: Path, main: bool = True) -> Path:
    tools = tmp_path / "mvm-tools"
    (tools / "shyper" / "__pycache__").mkdir(parents=True)
    (tools / "examples").mkdir()
    (tools / "shyper" / "__init__.py").write_text("")
    if main:
        (tools / "shyper" / "__main__.py").write_text("print('shyper')\n")
    (tools / "shyper" / "__pycache__" / "cli.cpython-313.pyc").write_bytes(b"\0")
    (tools / "shyper" / "schema.json").write_text("{}")
    (tools / "examples" / "vm1.json").write_text('{"name": "vm1"}')
    (tools / "PROTOCOL.md").write_text("# protocol")
    return tools


def test_install_mvm_tools(tmp_path: Path):
    tools = _fake_tools(tmp_path)
    fdt_dir = tmp_path / "fdt"
    fdt_dir.mkdir()
    (fdt_dir / "__init__.py").write_text("# fdt")
    (fdt_dir / "items.py").write_text("# items")
    t = cpio.Tree()
    done = initramfs.install_mvm_tools(t, tools, fdt_dir)
    assert "/usr/bin/shyper" in done and "/root/vm1.json" in done
    files = {p: e for p, e in t.entries.items() if e.kind == "file"}
    assert sorted(files) == [
        "root/vm1.json",
        "usr/bin/shyper",
        "usr/lib/shyper/fdt/__init__.py",
        "usr/lib/shyper/fdt/items.py",
        "usr/lib/shyper/shyper-service",
        "usr/lib/shyper/shyper/__init__.py",
        "usr/lib/shyper/shyper/__main__.py",
        "usr/lib/shyper/shyper/schema.json",
    ]
    assert files["usr/bin/shyper"].data == b'#!/bin/sh\nPYTHONPATH=/usr/lib/shyper exec python3 -m shyper "$@"\n'
    assert files["usr/bin/shyper"].mode == 0o755
    assert b"shyper system daemon --log /var/log/shyper.log" in (initramfs.GUEST_DIR / "shyper-service").read_bytes()
    # no __main__.py: no command to install, nothing installed
    t = cpio.Tree()
    assert initramfs.install_mvm_tools(t, _fake_tools(tmp_path / "no-main", main=False), fdt_dir) == []
    assert t.entries == {}


def test_mvm_init_mounts_the_disk_and_starts_the_daemon():
    init = (initramfs.GUEST_DIR / "init").read_text()
    assert "findfs LABEL=shyper-images" in init and "/dev/vda" in init and "/var/lib/shyper" in init
    assert "no images disk" in init  # a clear line when it is missing, and no wait for it
    assert "[ -x /usr/bin/shyper ]" in init and "::respawn:/usr/lib/shyper/shyper-service" in init
    assert init.index("shyper-service") < init.index("exec /sbin/init")  # inittab is read by init, after


def test_recipe_covers_mvm_tools_and_fdt(tmp_path: Path):
    tools = _fake_tools(tmp_path)
    files = initramfs.recipe_files(tools)
    names = {str(p) for p in files}
    assert str(tools / "shyper" / "__main__.py") in names and str(tools / "examples" / "vm1.json") in names
    assert not any("__pycache__" in n for n in names)
    assert str(initramfs.GVM_DIR / "init") in names and str(initramfs.GUEST_DIR / "shyper-service") in names
    assert any(p.parent.name == "fdt" and p.name == "__init__.py" for p in files)
    d1 = initramfs.recipe_digest(files)
    (tools / "shyper" / "__main__.py").write_text("print('changed')\n")
    assert initramfs.recipe_digest(initramfs.recipe_files(tools)) != d1
    (tools / "examples" / "vm2.json").write_text("{}")
    assert len(initramfs.recipe_files(tools)) == len(files) + 1


def test_images_disk(tmp_path: Path):
    """mke2fs -d makes the disk without root: ext4, labelled shyper-images, the files in its root owned by root,
    and a clean fsck."""
    import shutil
    import subprocess

    from pyshyper_host.images import disk

    if shutil.which("debugfs") is None and not Path("/usr/sbin/debugfs").exists():
        from tests.conftest import missing_in_ci

        missing_in_ci("e2fsprogs (debugfs) is not installed")
    a, b = tmp_path / "Image", tmp_path / "gvm-initramfs.cpio"
    a.write_bytes(bytes(range(256)) * 4096)
    b.write_bytes(b"070701" + bytes(5000))
    out = tmp_path / "mvm-disk.img"
    size = disk.make_ext4({"Image": a, "gvm-initramfs.cpio": b}, out)
    assert size == out.stat().st_size and size >= disk.DISK_FREE + a.stat().st_size
    sbin = "/usr/sbin"

    def run(*cmd: str) -> str:
        return subprocess.run(
            cmd, capture_output=True, text=True, check=True, env={"PATH": f"{sbin}:/usr/bin:/bin"}
        ).stdout

    assert run("e2label", str(out)).strip() == disk.DISK_LABEL
    assert "has_journal" in run("dumpe2fs", "-h", str(out))
    subprocess.run(["e2fsck", "-fn", str(out)], check=True, capture_output=True, env={"PATH": f"{sbin}:/usr/bin:/bin"})
    dump = tmp_path / "back"
    run("debugfs", "-R", f"dump /Image {dump}", str(out))
    assert dump.read_bytes() == a.read_bytes()
    stat = run("debugfs", "-R", "stat /gvm-initramfs.cpio", str(out))
    assert "User:     0" in stat and "Group:     0" in stat


def test_native_gvm_command(tmp_path: Path):
    cmd = initramfs.native_gvm_command(tmp_path, name="vm1")
    assert cmd[cmd.index("-kernel") + 1] == str(tmp_path / "Image")
    assert cmd[cmd.index("-initrd") + 1] == str(tmp_path / "gvm-initramfs.cpio")
    assert cmd[cmd.index("-append") + 1] == "console=hvc0 rdinit=/init hostname=vm1"
    assert cmd[cmd.index("-m") + 1] == "128M"
    devices = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-device"]
    assert devices == ["virtio-serial-device", "virtconsole,chardev=hvc0"]
    assert cmd[cmd.index("-serial") + 1] == "none"
    assert initramfs.gvm_prompt("vm1") == "vm1:/# "
