"""`just bench-boot`'s -icount boots perturb the kernel's command line (bench/boot.py icount_perturbed): under the
hypervisor that is a rewritten copy of the MVM's device tree, which must still boot, and the MVM's Linux must see
the padded line. One boot, PLIC mode, without -icount (the rewrite is the same); the serial log of a failure is
saved as logs/test_bench_boot_pad.log."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyshyper_host.bench import boot, console
from tests.conftest import require_tool

pytestmark = [pytest.mark.qemu, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
LOG_DIR = ROOT / "logs"


def test_the_mvm_boots_with_its_padded_command_line(tmp_path, mvm_image_cache):
    require_tool("qemu-system-riscv64", "riscv64-unknown-elf-ld")
    from pyshyper_host.run.command import mvm_qemu_command

    out = tmp_path / "build"
    cmd = mvm_qemu_command(False, 2, "2G", mvm_image_cache, irq="plic", out=out, quiet=True)
    padded = boot.icount_perturbed(cmd, 4, tmp_path)
    assert padded != cmd and any("mvm-plic-pad4.dtb" in a for a in padded)
    try:
        r = console.boot_to_shell(padded, timeout=300, commands=["cat /proc/cmdline"])
    except console.BootError as e:
        LOG_DIR.mkdir(exist_ok=True)
        p = LOG_DIR / "test_bench_boot_pad.log"
        p.write_text(e.log)
        pytest.fail(f"the MVM does not boot with the padded device tree; serial log: {p}\n{e}")
    assert "console=ttyS0 earlycon=sbi rdinit=/init no4lvl pyshyper_pad=xxxx" in r.log
    assert r.poweroff_status == 0  # powered off cleanly
