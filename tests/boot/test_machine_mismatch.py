"""An image booted on a machine it was not built for stops at once, before any VM, with one line naming the build
the machine needs, and QEMU exits non-zero (hypervisor/core/machine.py): a --irq plic image on an AIA machine
(`-M virt,aia=aplic-imsic,aia-guests=3`), a --irq aia image on a PLIC machine and on an AIA machine with other
guest files per hart (GEILEN, from hgeie), each with the MVM's images loaded as `pyshyper run` loads them (the
trap it replaces was in mvm_create)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from boards import make_config
from qemu.build import build
from qemu.run import RunOptions, mvm_images, qemu_command
from tests.conftest import require_tool

pytestmark = pytest.mark.qemu

ROOT = Path(__file__).resolve().parents[2]
LOG_DIR = ROOT / "logs"
STOP_SECONDS = 20  # the check runs right after the banner: a second or two even on a loaded host

CASES = {
    "plic-image-on-aia-machine": (
        ("plic", None),
        ("aia", 3),
        "pyshyper: this machine has an AIA (APLIC+IMSIC, 3 guest files per hart); this image was built for"
        " --irq plic: rebuild with pyshyper build --irq aia --aia-guests 3",
    ),
    "aia-image-on-plic-machine": (
        ("aia", 3),
        ("plic", None),
        "pyshyper: this machine has a PLIC; this image was built for --irq aia --aia-guests 3:"
        " rebuild with pyshyper build --irq plic",
    ),
    "aia-guests-3-image-on-aia-guests-2-machine": (
        ("aia", 3),
        ("aia", 2),
        "pyshyper: this machine has an AIA (APLIC+IMSIC, 2 guest files per hart); this image was built for"
        " --irq aia --aia-guests 3: rebuild with pyshyper build --irq aia --aia-guests 2",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_image_for_another_interrupt_controller_stops_at_once(case, tmp_path, mvm_image_cache, request):
    require_tool("qemu-system-riscv64", "riscv64-unknown-elf-ld")
    (image_irq, image_guests), (machine_irq, machine_guests), line = CASES[case]
    image = make_config("qemu-virt", image_irq, image_guests)
    machine = make_config("qemu-virt", machine_irq, machine_guests)
    out = tmp_path / "out"
    build(image, out, guests=[], quiet=True, image_cache=mvm_image_cache)
    # The machine's -M, this image, and the MVM's images for it (kernel, initramfs, the image's MVM device tree).
    mvm = mvm_images(image, out, mvm_image_cache)
    b = machine.board
    cmd = qemu_command(RunOptions(machine, out / "pyshyper.elf", 2, b.default_mem, b.qemu_cpu, mvm=mvm))
    t0 = time.monotonic()
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired as e:
        log = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        LOG_DIR.mkdir(exist_ok=True)
        (LOG_DIR / f"{request.node.name}.log").write_text(log)
        pytest.fail(f"QEMU still ran after {STOP_SECONDS} s; serial log:\n{log[-3000:]}")
    seconds = time.monotonic() - t0
    text = run.stdout.replace("\r\n", "\n")
    lines = [s for s in text.splitlines() if s.startswith("pyshyper:")]
    if lines != [line] or run.returncode == 0:
        LOG_DIR.mkdir(exist_ok=True)
        (LOG_DIR / f"{request.node.name}.log").write_text(text + run.stderr)
    assert lines == [line], text[-3000:]
    assert run.returncode != 0, f"QEMU exited 0 after: {lines}"
    assert "vm0" not in text
    print(f"{case}: stopped in {seconds:.1f} s, exit {run.returncode}")
