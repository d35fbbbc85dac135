"""A guest VM's kernel and initramfs (Image, gvm-initramfs.cpio from `pyshyper images`) boot natively under QEMU,
without the hypervisor (`images.native_gvm_command`, the baseline of a GVM's boot): the console is a virtio-console
(/dev/hvc0), the VM takes its name from `hostname=` on the command line or from the device tree's /model
("pyshyper,NAME"), its prompt names it, its FP/vector checker (`fpvcheck 3`) passes on the board's CPU, `reboot`
boots it again and `poweroff` ends QEMU with status 0. This proves the image apart from the hypervisor. The serial
log goes to logs/ on failure."""

from __future__ import annotations

import re
from pathlib import Path

import fdt
import pytest

from pyshyper_host.bench import console
from pyshyper_host.images import initramfs as images
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
LOGS = ROOT / "logs"
TIMEOUT = 120

pytestmark = [pytest.mark.qemu, pytest.mark.slow]


def _start(cmd: list[str], name: str, log_name: str) -> console.Shell:
    try:
        sh, wall, _ = console.start_shell(
            cmd, timeout=TIMEOUT, ready_line=images.GVM_READY_LINE, prompt=images.gvm_prompt(name)
        )
    except console.BootError as e:
        LOGS.mkdir(exist_ok=True)
        (LOGS / f"{log_name}.log").write_text(e.log)
        pytest.fail(f"serial log: {LOGS / (log_name + '.log')}\n{e}")
    print(f"\n[{log_name}] native GVM shell after {wall:.2f} s")
    return sh


def test_gvm_native_boot_named_by_cmdline(mvm_image_cache: Path):
    require_tool("qemu-system-riscv64")
    sh = _start(images.native_gvm_command(mvm_image_cache, name="vm1"), "vm1", "gvm-native-boot")
    try:
        assert f"{images.GVM_READY_LINE}: vm1" in sh.log
        out, status = sh.run("hostname; tty; cat /proc/cmdline; lsmod; dmesg | grep 'crng init done'")
        assert status == 0, out
        lines = out.splitlines()
        assert lines[0] == "vm1" and lines[1] == "/dev/hvc0", out
        assert "console=hvc0" in lines[2] and "hostname=vm1" in lines[2], out
        assert re.search(r"^virtio_mmio\b", out, re.M), out
        assert re.search(r"^\[\s*0\.000000\] random: crng init done", out, re.M), out  # QEMU's rng-seed
        # reboot (SBI SRST): the kernel boots again to the same prompt
        sh.send("reboot")
        sh.expect(re.escape(images.GVM_READY_LINE), timeout=TIMEOUT)
        sh.wait_prompt(ready=False)
        assert sh.log.count(images.GVM_READY_LINE) == 2
        # the board's CPU has V: the FP/vector checker computes and checks for 3 seconds (gvm/fpvcheck.S); after
        # the reboot, since natively (QEMU 10, OpenSBI, Linux 6.12) a reboot after user-space vector use hangs
        out, status = sh.run("grep -m1 '^isa' /proc/cpuinfo; fpvcheck 3", timeout=60)
        assert status == 0 and re.search(r"^isa\s*: rv64imafdcv", out, re.M), out
        assert re.search(r"^fpvcheck: ok [1-9]\d* rounds$", out, re.M), out
        out, status = sh.run("fpvcheck")
        assert status == 2 and "usage: fpvcheck SECONDS" in out, out
        status = sh.poweroff(timeout=TIMEOUT)
        assert status == 0, f"poweroff ended QEMU with status {status}"
    except BaseException:
        sh.save_failure(LOGS / "gvm-native-boot.log")
        raise
    finally:
        sh.close()


def test_gvm_native_boot_named_by_device_tree(mvm_image_cache: Path, tmp_path: Path):
    """No hostname= on the command line: the name comes from the device tree's /model, as the shyper daemon writes
    it ("pyshyper,vm2"), here in QEMU's own tree given with -dtb."""
    require_tool("qemu-system-riscv64")
    from pyshyper_host.build.qemu_machine import qemu_device_tree

    tree = fdt.parse_dtb(qemu_device_tree(smp=1, mem="128M"))
    tree.root.set_property("model", "pyshyper,vm2")
    dtb = tmp_path / "vm2.dtb"
    dtb.write_bytes(tree.to_dtb(version=17))
    cmd = images.native_gvm_command(mvm_image_cache, name="", extra=["-dtb", str(dtb)])
    assert not any("hostname=" in a for a in cmd)
    # the whole boot as a benchmark takes it (console.boot_to_shell: to the prompt, commands, power-off)
    try:
        r = console.boot_to_shell(
            cmd,
            timeout=TIMEOUT,
            commands=["echo name=$(hostname)"],
            ready_line=images.GVM_READY_LINE,
            prompt=images.gvm_prompt("vm2"),
        )
    except console.BootError as e:
        LOGS.mkdir(exist_ok=True)
        (LOGS / "gvm-native-boot-dt.log").write_text(e.log)
        pytest.fail(f"serial log: {LOGS / 'gvm-native-boot-dt.log'}\n{e}")
    print(f"\n[gvm-native-boot-dt] native GVM shell after {r.wall_prompt:.2f} s")
    assert "\nname=vm2\r" in r.log, r.log
    assert r.shell_ticks is None  # a GVM has no rdtime
    assert r.poweroff_status == 0, r.log
