"""When the firmware's device tree has no /chosen/rng-seed, the hypervisor says so in its boot log and the MVM boots
without one (its placeholder removed, never given bytes that are not fresh): QEMU's own tree without the property,
given with `-dtb` (QEMU re-randomizes only an rng-seed a tree has), and the MVM booted until Linux runs /init. The
other case, a seed given and crng ready at time 0, is tests/boot/test_mvm_boot.py::test_first_python3_and_entropy."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import fdt
import pytest

from tests.conftest import require_tool

pytestmark = [pytest.mark.qemu, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
LOG_DIR = ROOT / "logs"


def test_no_firmware_seed(tmp_path, boot_out, mvm_image_cache):
    require_tool("qemu-system-riscv64", "riscv64-unknown-elf-ld")
    import pexpect

    from pyshyper_host.build.qemu_machine import qemu_device_tree
    from pyshyper_host.run.command import QEMU, mvm_run_options, prepare_mvm_run, qemu_command

    opts = mvm_run_options(False, 2, "2G", mvm_image_cache, irq="plic", out=boot_out("plic"))
    prepare_mvm_run(opts, quiet=True)
    tree = fdt.parse_dtb(qemu_device_tree(QEMU, opts.config.qemu_machine, opts.cpu, opts.smp, opts.mem))
    chosen = tree.get_node("/chosen")
    assert chosen.get_property("rng-seed") is not None  # QEMU's own tree has one: the case this test takes away
    chosen.remove_property("rng-seed")
    dtb = tmp_path / "qemu-no-seed.dtb"
    dtb.write_bytes(tree.to_dtb(version=17))
    cmd = qemu_command(dataclasses.replace(opts, dtb=dtb))
    assert cmd[cmd.index("-dtb") + 1] == str(dtb)
    child = pexpect.spawn(cmd[0], cmd[1:], encoding="utf-8", codec_errors="replace")
    try:
        child.expect_exact("pyshyper: vm0: the firmware's device tree has no /chosen/rng-seed", timeout=120)
        child.expect_exact("Run /init as init process", timeout=120)  # the MVM boots on
    except (pexpect.TIMEOUT, pexpect.EOF):
        LOG_DIR.mkdir(exist_ok=True)
        (LOG_DIR / "test_no_firmware_seed.log").write_text(str(child.before))
        raise
    finally:
        child.terminate(force=True)
    assert "fresh bytes from the firmware" not in child.before
