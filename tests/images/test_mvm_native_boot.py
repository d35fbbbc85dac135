"""Build the guest images (cached) and boot the MVM kernel and initramfs natively under QEMU (no hypervisor):
the shell prompt, python3, /proc/interrupts, the images disk at /var/lib/shyper and a clean power-off (exit
status 0). The serial log goes to
logs/ on failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyshyper_host.bench import console
from pyshyper_host.images import cpio
from pyshyper_host.images import initramfs as images
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
LOGS = ROOT / "logs"

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.slow,
    pytest.mark.usefixtures("qemu_installed"),
]


@pytest.fixture
def qemu_installed() -> None:
    require_tool("qemu-system-riscv64")


@pytest.fixture(scope="module")
def cache(mvm_image_cache: Path) -> Path:
    return mvm_image_cache


def _boot(cmd: list[str], name: str, commands: list[str]) -> console.BootResult:
    try:
        r = console.boot_to_shell(cmd, timeout=300, commands=commands)
    except console.BootError as e:
        LOGS.mkdir(exist_ok=True)
        (LOGS / f"{name}.log").write_text(e.log)
        pytest.fail(f"serial log: {LOGS / (name + '.log')}\n{e}")
    return r


def test_cache_outputs_match_manifest(cache: Path):
    import json

    manifest = json.loads((cache / "manifest.json").read_text())
    versions = {k: v["version"] for k, v in manifest["packages"].items()}
    assert images.manifest_up_to_date(manifest, versions, manifest["recipe"], cache) is None
    assert any(k.startswith("linux-image-6.12.") for k in versions)
    images.check_image_header((cache / "Image").read_bytes()[:64])
    files = cpio.read_cpio((cache / "mvm-initramfs.cpio").read_bytes())
    for path in (
        "init",
        "usr/bin/busybox",
        "usr/bin/python3",
        "usr/lib/python3.13/os.py",
        "dev/console",
        "etc/inittab",
    ):
        assert path in files, path
    assert not any(p.endswith(".ko.xz") for p in files)
    assert any(p.endswith("/virtio_mmio.ko") for p in files)
    assert any(p.endswith("/ext4.ko") for p in files) and any(p.endswith("/crc32c_generic.ko") for p in files)
    # every output is in the manifest, the GVM's initramfs and the images disk too
    assert sorted(manifest["outputs"]) == sorted(images.OUTPUTS)
    gvm = cpio.read_cpio((cache / "gvm-initramfs.cpio").read_bytes())
    assert "init" in gvm and "usr/bin/busybox" in gvm and "usr/bin/python3" not in gvm
    assert (cache / "mvm-disk.img").stat().st_size > (cache / "Image").stat().st_size
    # mvm-tools: installed when the repository has the shyper command
    has_tools = (images.MVM_TOOLS / "shyper" / "__main__.py").is_file()
    assert ("usr/bin/shyper" in files) == has_tools
    assert ("usr/lib/shyper/fdt/__init__.py" in files) == has_tools


def test_second_run_does_nothing(cache: Path, capsys):
    assert images.main(["--cache", str(cache)]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_native_boot_shell_python_poweroff(cache: Path):
    name = "mvm-native-boot"
    cmd = images.native_qemu_command(cache, smp=2)
    checks = [
        "python3 -c 'print(6*7)' > /tmp/py.out",
        "cat /proc/interrupts > /tmp/irq.out",
        "grep -c ^processor /proc/cpuinfo > /tmp/cpus.out",
        "lsmod > /tmp/lsmod.out",
        "{ grep ' /var/lib/shyper ' /proc/mounts; ls /var/lib/shyper; } > /tmp/disk.out",
        'for f in py irq cpus lsmod disk; do echo "== $f"; cat /tmp/$f.out; done',
    ]
    r = _boot(cmd, name, checks)
    log = r.log

    def fail(msg: str) -> None:
        LOGS.mkdir(exist_ok=True)
        (LOGS / f"{name}.log").write_text(log)
        pytest.fail(f"{msg} (serial log: {LOGS / (name + '.log')})")

    section = log.split("== py", 1)[-1]
    if "\n42\r" not in section.split("== irq", 1)[0]:
        fail("python3 -c 'print(6*7)' did not print 42")
    if "ttyS0" not in section.split("== cpus", 1)[0]:
        fail("/proc/interrupts has no ttyS0 line")
    if "\n2\r" not in section.split("== cpus", 1)[1].split("== lsmod", 1)[0]:
        fail("the MVM does not see 2 harts")
    for mod in ("virtio_mmio", "virtio_blk", "virtio_net", "vmw_vsock_virtio_transport", "ext4"):
        if mod not in section.split("== lsmod", 1)[1].split("== disk", 1)[0]:
            fail(f"module {mod} not loaded")
    disk = section.split("== disk", 1)[1]
    if "/dev/vda /var/lib/shyper ext4 rw" not in disk or "gvm-initramfs.cpio" not in disk:
        fail("the images disk is not mounted at /var/lib/shyper with the GVM's files")
    if r.shell_ticks is None:
        fail("no /run/pyshyper-shell-time (rdtime) in the MVM")
    if r.poweroff_status != 0:
        fail(f"poweroff ended QEMU with status {r.poweroff_status}")
