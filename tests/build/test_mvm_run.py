"""The management VM's build and run side: the MVM part of the generated `hypervisor.board`, the device tree
`pyshyper build` writes (OUT/mvm-<irq>.dtb), the `pyshyper run --guest mvm` command line and
`pyshyper_host.run.command.mvm_qemu_command` (the boot benchmark's entry point)."""

from __future__ import annotations

import ast
from pathlib import Path

import fdt
import pytest

from boards import BoardError, make_config
from boards.constants import render_hypervisor_module
from boards.mvm import load_mvm, mvm_constants
from pyshyper_host.build.pipeline import BuildError, PrebuiltObject, build, mvm_dtb_path, stale_reason, write_mvm_dtb
from pyshyper_host.cli import make_parser
from pyshyper_host.run.command import (
    ICOUNT,
    RunOptions,
    mvm_images,
    mvm_qemu_command,
    mvm_run_options,
    options_from_args,
    qemu_command,
)
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]

# What the hypervisor imports from hypervisor.board to build VM 0: these names must not change.
MVM_NAMES = (
    "MVM_NUM_VCPUS",
    "MVM_HARTS",
    "MVM_MEM_IPA",
    "MVM_MEM_HOST",
    "MVM_MEM_SIZE",
    "MVM_KERNEL_IPA",
    "MVM_INITRD_IPA",
    "MVM_DTB_IPA",
    "MVM_PT_COUNT",
    "MVM_PT_BASES",
    "MVM_PT_SIZES",
    "MVM_PT_IRQS",
    "MVM_PLIC_BASE",
    "MVM_PLIC_SIZE",
    "MVM_APLIC_BASE",
    "MVM_APLIC_SIZE",
    "MVM_IMSIC_BASE",
    "MVM_PLIC_NDEV",
)


def module_values(source: str) -> tuple[dict[str, int], dict[str, tuple[str, list[int]]]]:
    """Final scalars NAME -> value and static tables NAME -> (length expression, init values) of a module."""
    scalars: dict[str, int] = {}
    tables: dict[str, tuple[str, list[int]]] = {}
    for stmt in ast.parse(source).body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.value, ast.Call):
            scalars[stmt.target.id] = ast.literal_eval(stmt.value.args[0])
        elif isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call):
            call = stmt.value
            length = ast.unparse(call.args[0].slice.elts[1])
            init = next(k.value for k in call.keywords if k.arg == "init")
            tables[stmt.targets[0].id] = (length, list(ast.literal_eval(init)))
    return scalars, tables


@pytest.mark.parametrize("irq", ["plic", "aia"])
def test_generated_module_has_the_mvm(irq):
    cfg = make_config("qemu-virt", irq)
    scalars, tables = module_values(render_hypervisor_module(cfg))
    for name in MVM_NAMES:
        assert name in scalars or name in tables, name
    mvm = load_mvm("qemu-virt")
    for name, value, _ in mvm_constants(mvm):
        assert scalars[name] == value, name
    assert scalars["MVM_NUM_VCPUS"] == 2
    assert tables["MVM_HARTS"] == ("MVM_NUM_VCPUS", [0, 1])
    assert (scalars["MVM_MEM_IPA"], scalars["MVM_MEM_HOST"], scalars["MVM_MEM_SIZE"]) == (
        0xC000_0000,
        0xC000_0000,
        0x4000_0000,
    )
    assert (scalars["MVM_KERNEL_IPA"], scalars["MVM_INITRD_IPA"], scalars["MVM_DTB_IPA"]) == (
        0xC020_0000,
        0xC400_0000,
        0xCC00_0000,
    )
    # passthrough: UART (0x100 bytes, rounded up to a page), RTC, the eight virtio-mmio slots
    assert scalars["MVM_PT_COUNT"] == 10
    assert tables["MVM_PT_BASES"] == (
        "MVM_PT_COUNT",
        [0x1000_0000, 0x10_1000, *(0x1000_1000 + 0x1000 * i for i in range(8))],
    )
    assert tables["MVM_PT_SIZES"] == ("MVM_PT_COUNT", [0x1000] * 10)
    assert tables["MVM_PT_IRQS"] == ("MVM_PT_COUNT", [10, 11, 1, 2, 3, 4, 5, 6, 7, 8])
    # the vPLIC window is the physical PLIC's range; AIA: the S-level APLIC and the guest IMSIC pages
    b = cfg.board
    assert (scalars["MVM_PLIC_BASE"], scalars["MVM_PLIC_SIZE"]) == (b.plic.base, b.plic.size)
    assert scalars["MVM_PLIC_NDEV"] == 95
    assert (scalars["MVM_APLIC_BASE"], scalars["MVM_APLIC_SIZE"]) == (0xD00_0000, 0x8000)
    assert scalars["MVM_IMSIC_BASE"] == 0x2800_0000


@pytest.mark.parametrize("irq", ["plic", "aia"])
def test_generated_module_type_checks(tmp_path, irq):
    from compiler.driver import check

    path = tmp_path / "hypervisor" / "board.py"
    path.parent.mkdir()
    path.write_text(render_hypervisor_module(make_config("qemu-virt", irq)))
    assert check([path]) == []


@pytest.fixture
def image_cache(tmp_path) -> Path:
    """A stand-in image cache: an `Image` with a RISC-V Linux header (image_size 0x1E7_0000), an initramfs and an
    images disk."""
    cache = tmp_path / "cache"
    cache.mkdir()
    header = bytearray(64)
    header[16:24] = (0x1E7_0000).to_bytes(8, "little")
    header[48:56] = b"RISCV\0\0\0"
    header[56:60] = b"RSC\x05"
    (cache / "Image").write_bytes(bytes(header) + bytes(4096))
    (cache / "mvm-initramfs.cpio").write_bytes(b"070701" + bytes(0x3_0000 - 6))
    (cache / "mvm-disk.img").write_bytes(bytes(4096))
    return cache


def chosen(dtb: Path) -> dict[str, object]:
    node = fdt.parse_dtb(dtb.read_bytes()).get_node("/chosen")
    return {p.name: getattr(p, "data", None) for p in node.props}


def initrd_range(dtb: Path) -> tuple[int, int] | None:
    props = chosen(dtb)
    if "linux,initrd-start" not in props:
        return None
    start, end = props["linux,initrd-start"], props["linux,initrd-end"]
    return (start[0] << 32 | start[1], end[0] << 32 | end[1])


def fake_build(out: Path, obj: Path, irq: str = "plic", cache: Path | None = None, aia_guests: int | None = None):
    from pyshyper_host.build.pipeline import RUNTIME_DIR

    return build(
        make_config("qemu-virt", irq, aia_guests),
        out,
        prebuilt=PrebuiltObject(obj),
        runtime=[RUNTIME_DIR / "boot.S"],
        quiet=True,
        image_cache=cache,
    )


def test_build_writes_the_mvm_dtb_with_the_initrd(tmp_path, fake_hyp_object, image_cache):
    result = fake_build(tmp_path / "out", fake_hyp_object, cache=image_cache)
    assert result.mvm_dtb == tmp_path / "out" / "mvm-plic.dtb"
    assert initrd_range(result.mvm_dtb) == (0xC400_0000, 0xC400_0000 + 0x3_0000)
    tree = fdt.parse_dtb(result.mvm_dtb.read_bytes())
    assert tree.exist_node("/soc/interrupt-controller@c000000")


def test_build_writes_the_aia_dtb(tmp_path, fake_hyp_object, image_cache):
    result = fake_build(tmp_path / "out", fake_hyp_object, "aia", image_cache, 3)
    assert result.mvm_dtb == tmp_path / "out" / "mvm-aia.dtb"
    tree = fdt.parse_dtb(result.mvm_dtb.read_bytes())
    assert tree.exist_node("/soc/interrupt-controller@28000000")
    assert tree.exist_node("/soc/interrupt-controller@d000000")
    assert not tree.exist_node("/soc/interrupt-controller@c000000")


def test_build_without_images_says_so(tmp_path, fake_hyp_object, capsys):
    from pyshyper_host.build.pipeline import RUNTIME_DIR

    cfg = make_config("qemu-virt", "plic")
    out = tmp_path / "out"
    build(
        cfg,
        out,
        prebuilt=PrebuiltObject(fake_hyp_object),
        runtime=[RUNTIME_DIR / "boot.S"],
        image_cache=tmp_path / "empty",
    )
    assert "made WITHOUT an initrd range" in capsys.readouterr().out
    assert initrd_range(out / "mvm-plic.dtb") is None
    # the images appear: writing the device tree again gives it the initrd range
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "mvm-initramfs.cpio").write_bytes(bytes(0x2000))
    dtb = write_mvm_dtb(cfg, out, tmp_path / "empty")
    assert dtb.initrd_size == 0x2000 and initrd_range(dtb.path) == (0xC400_0000, 0xC400_2000)


def _dtb_isa(path: Path) -> str:
    return fdt.parse_dtb(path.read_bytes()).get_node("/cpus/cpu@0").get_property("riscv,isa").value


@pytest.mark.parametrize("irq", ["plic", "aia"])
def test_mvm_dtb_follows_the_qemu_cpu_model(tmp_path, irq):
    """`pyshyper run --cpu rv64,v=true,svnapot=true,sstc=false`: the MVM's riscv,isa is what QEMU reports for that
    model (no Sstc, so Linux takes the SBI timer), never the board's default; a model QEMU refuses is one clear
    error."""
    require_tool("qemu-system-riscv64")
    cfg = make_config("qemu-virt", irq, 3 if irq == "aia" else None)
    default = _dtb_isa(write_mvm_dtb(cfg, tmp_path / "a", tmp_path / "none").path)
    assert "_sstc" in default and "_zbc" in default
    lean_cpu = f"{cfg.board.qemu_cpu},sstc=false,zbc=false"
    lean = _dtb_isa(write_mvm_dtb(cfg, tmp_path / "b", tmp_path / "none", lean_cpu).path)
    assert "_sstc" not in lean and "_zbc" not in lean and lean.startswith("rv64imafdcv_")
    assert lean.replace("_", " ").split()[1:] == [
        e for e in default.replace("_", " ").split()[1:] if e not in ("sstc", "zbc")
    ]
    with pytest.raises(BuildError, match=r"QEMU does not take -cpu rv64,nosuchext=true: .*nosuchext"):
        write_mvm_dtb(cfg, tmp_path / "c", tmp_path / "none", "rv64,nosuchext=true")


def test_missing_dtb_makes_the_build_stale(tmp_path, fake_hyp_object, image_cache):
    result = fake_build(tmp_path / "out", fake_hyp_object, cache=image_cache)
    assert stale_reason(result.config, tmp_path / "out") is None
    result.mvm_dtb.unlink()
    assert "mvm-plic.dtb is missing" in stale_reason(result.config, tmp_path / "out")


def run_opts(*argv: str) -> RunOptions:
    return options_from_args(make_parser().parse_args(["run", *argv]))


def devices(cmd: list[str]) -> list[str]:
    return [cmd[i + 1] for i, a in enumerate(cmd) if a == "-device"]


@pytest.mark.parametrize("irq", ["plic", "aia"])
def test_guest_mvm_command_line(irq):
    o = run_opts("--guest", "mvm", "--irq", irq, "--out", "/tmp/o", "--cache", "/tmp/c")
    cmd = qemu_command(o)
    mvm = load_mvm("qemu-virt")
    assert devices(cmd) == [
        f"loader,file=/tmp/c/Image,addr={mvm.host_address(mvm.kernel_load_ipa):#x},force-raw=on",
        f"loader,file=/tmp/c/mvm-initramfs.cpio,addr={mvm.host_address(mvm.initrd_load_ipa):#x},force-raw=on",
        f"loader,file=/tmp/o/mvm-{irq}.dtb,addr={mvm.host_address(mvm.dtb_load_ipa):#x},force-raw=on",
        "virtio-blk-device,drive=shyper-images",
    ]
    assert cmd[cmd.index("-drive") + 1] == "file=/tmp/c/mvm-disk.img,if=none,format=raw,id=shyper-images,snapshot=on"
    assert cmd[cmd.index("-kernel") + 1] == "/tmp/o/pyshyper.elf"
    assert cmd[cmd.index("-m") + 1] == "2G" and cmd[cmd.index("-smp") + 1] == "4"
    machine = cmd[cmd.index("-M") + 1]
    assert machine == ("virt,aia=aplic-imsic,aia-guests=3" if irq == "aia" else "virt,aclint=on")


def test_guest_mvm_default_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("PYSHYPER_CACHE", str(tmp_path))
    assert (
        devices(qemu_command(run_opts("--out", "/tmp/o")))[0]
        == f"loader,file={tmp_path}/Image,addr=0xc0200000,force-raw=on"
    )


def test_guest_selftest_and_none_have_no_mvm():
    cmd = qemu_command(run_opts("--guest", "selftest", "--out", "/tmp/o"))
    assert devices(cmd) == ["loader,file=/tmp/o/guests/selftest.bin,addr=0x84000000,force-raw=on"]
    assert devices(qemu_command(run_opts("--guest", "none", "--out", "/tmp/o"))) == []


def test_mvm_qemu_command(tmp_path, fake_hyp_object, image_cache, monkeypatch):
    out = tmp_path / "out"
    fake_build(out, fake_hyp_object, cache=image_cache)
    (out / "mvm-plic.dtb").write_bytes(b"")  # written again, with the initrd range, by mvm_qemu_command
    # a concurrent source edit: no rebuild
    monkeypatch.setattr("pyshyper_host.run.command.stale_reason", lambda *a, **k: None)
    cmd = mvm_qemu_command(icount=False, smp=2, mem="1G", cache=image_cache, out=out, quiet=True)
    assert cmd[0] == "qemu-system-riscv64" and cmd[cmd.index("-kernel") + 1] == str(out / "pyshyper.elf")
    assert devices(cmd) == [
        f"loader,file={image_cache}/Image,addr=0xc0200000,force-raw=on",
        f"loader,file={image_cache}/mvm-initramfs.cpio,addr=0xc4000000,force-raw=on",
        f"loader,file={out}/mvm-plic.dtb,addr=0xcc000000,force-raw=on",
        "virtio-blk-device,drive=shyper-images",
    ]
    assert cmd[cmd.index("-drive") + 1].startswith(f"file={image_cache}/mvm-disk.img,")
    assert initrd_range(out / "mvm-plic.dtb") == (0xC400_0000, 0xC403_0000)
    assert "-icount" not in cmd
    # icount, and a benchmark's smaller -m / -smp raised to what the MVM's layout needs
    cmd = mvm_qemu_command(icount=True, smp=1, mem="512M", cache=image_cache, out=out, quiet=True)
    n = len(ICOUNT)
    assert cmd[-n:] == list(ICOUNT)
    assert ICOUNT == ("-icount", "shift=0,sleep=off", "-seed", "1", "-rtc", "base=2026-01-01T00:00:00,clock=vm")
    assert cmd[cmd.index("-m") + 1] == "2G" and cmd[cmd.index("-smp") + 1] == "2"


def test_mvm_qemu_command_aia(tmp_path, fake_hyp_object, image_cache, monkeypatch):
    out = tmp_path / "out"
    fake_build(out, fake_hyp_object, "aia", image_cache, 3)
    monkeypatch.setattr("pyshyper_host.run.command.stale_reason", lambda *a, **k: None)
    cmd = mvm_qemu_command(icount=False, smp=4, mem="1G", cache=image_cache, irq="aia", aia_guests=3, out=out)
    assert cmd[cmd.index("-M") + 1] == "virt,aia=aplic-imsic,aia-guests=3"
    assert devices(cmd)[2] == f"loader,file={out}/mvm-aia.dtb,addr=0xcc000000,force-raw=on"


def test_mvm_run_options_make_nothing(tmp_path):
    """The options and command of an MVM run are made without building or writing anything; the benchmark's
    smaller -m / -smp are raised to what the MVM's layout needs."""
    out, cache = tmp_path / "out", tmp_path / "cache"
    opts = mvm_run_options(True, 1, "512M", cache, "aia", 2, out=out, boot_hart=1)
    assert not out.exists() and not cache.exists()
    cmd = qemu_command(opts)
    assert cmd[cmd.index("-M") + 1] == "virt,aia=aplic-imsic,aia-guests=2"
    assert cmd[cmd.index("-m") + 1] == "2G" and cmd[cmd.index("-smp") + 1] == "2"
    assert cmd[cmd.index("-kernel") + 1] == str(out.resolve() / "pyshyper.elf")
    assert cmd[cmd.index("-dtb") + 1] == str(out.resolve() / "qemu-boot-hart1.dtb")
    assert devices(cmd)[0] == f"loader,file={cache.resolve()}/Image,addr=0xc0200000,force-raw=on"
    assert cmd[-len(ICOUNT) :] == list(ICOUNT)
    with pytest.raises(BoardError, match="--boot-hart must be a hart of the machine, 0..1, not 2"):
        mvm_run_options(False, 2, "1G", cache, out=out, boot_hart=2)


def test_bench_boot_finds_the_hypervisor_configuration(tmp_path, monkeypatch):
    from pyshyper_host.bench import boot

    made = []
    monkeypatch.setattr(boot, "mvm_qemu_command", lambda *a, **k: made.append((a, k)) or ["qemu"])
    cfg = boot.hypervisor_config(tmp_path, irq="aia", aia_guests=2, out=tmp_path / "out")
    assert cfg.name == "hypervisor, aia --aia-guests 2" and made == []  # nothing built until a command is made
    assert cfg.command(True, 2) == ["qemu"]
    assert made == [((True, 2, "2G", tmp_path, "aia", 2), {"out": tmp_path / "out", "quiet": True})]


def test_mvm_images_addresses_and_minimums():
    cfg = make_config("qemu-virt", "plic")
    m = mvm_images(cfg, Path("/o"), Path("/c"))
    assert (m.kernel_addr, m.initrd_addr, m.dtb_addr) == (0xC020_0000, 0xC400_0000, 0xCC00_0000)
    assert m.min_mem == 0x1_0000_0000 - 0x8000_0000 and m.min_smp == 2
    assert m.dtb == mvm_dtb_path(cfg, Path("/o"))
