"""The management VM's life cycle: `reboot` resets the machine and everything boots again; a bad access ends the VM."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pexpect
import pytest

from pyshyper_host.bench import console, stats
from tests.conftest import require_tool

pytestmark = [pytest.mark.qemu, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
LOG_DIR = ROOT / "logs"
TIMEOUT = 120.0


def _boot(cmd: list[str], name: str) -> console.Shell:
    try:
        shell, _, _ = console.start_shell(cmd, timeout=TIMEOUT)
    except console.BootError as e:
        p = LOG_DIR / f"test_mvm_lifecycle-{name.replace(' ', '-')}.log"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(e.log)
        pytest.fail(f"the MVM does not reach a shell that answers; serial log: {p}\n{e}")
    return shell


def test_mvm_reboot_restarts_the_machine(boot_out, mvm_image_cache):
    """`reboot` in the MVM resets the machine through SBI SRST: the hypervisor boots again, the MVM reaches its
    shell again, and a `poweroff` then ends QEMU cleanly (never a panic)."""
    require_tool("qemu-system-riscv64", "riscv64-unknown-elf-ld")
    from pyshyper_host.run.command import mvm_qemu_command

    cmd = mvm_qemu_command(False, 2, "1G", mvm_image_cache, irq="plic", out=boot_out("plic"), quiet=True)
    shell = _boot(cmd, "reboot test")
    try:
        shell.send("reboot")
        shell.expect(r"vm0 \(management VM\) resets the machine, type 0x1")
        shell.expect(r"PyShyper \d+\.\d+\.\d+: a Type-1 hypervisor")
        shell.wait_prompt()
        assert shell.poweroff() == 0
        assert "PANIC" not in shell.log and "unexpected trap in the hypervisor" not in shell.log
    except (pexpect.TIMEOUT, pexpect.EOF):
        shell.save_failure(LOG_DIR / "test_mvm_reboot.log")
        raise
    finally:
        shell.close()


def test_mvm_bad_access_kills_only_the_vm(boot_out, mvm_image_cache):
    """An MVM access outside its memory (busybox devmem on unmapped guest-physical 0x4000_0000) is reported and
    ends that VM, with both its vCPUs called off their harts; the hypervisor itself stays up and powers the
    machine off, with a failing exit status because the management VM was lost."""
    require_tool("qemu-system-riscv64", "riscv64-unknown-elf-ld")
    from pyshyper_host.run.command import mvm_qemu_command

    cmd = mvm_qemu_command(False, 2, "1G", mvm_image_cache, irq="plic", out=boot_out("plic"), quiet=True)
    shell = _boot(cmd, "bad-access boot")
    try:
        shell.send("devmem 0x40000000 32")
        shell.expect(r"pyshyper: vm0 load guest-page fault at guest-physical 0x40000000")
        shell.expect(r"pyshyper: vm0 killed: access outside its memory at pc 0x[0-9a-f]+")
        shell.expect(r"pyshyper: the management VM has ended \(crashed\): the machine powers off")
        shell.child.expect(pexpect.EOF, timeout=30)
        shell.child.close()
        assert shell.child.exitstatus == 1
        assert "PANIC" not in shell.log and "unexpected trap in the hypervisor" not in shell.log
    except (pexpect.TIMEOUT, pexpect.EOF):
        shell.save_failure(LOG_DIR / "test_mvm_bad_access.log")
        raise
    finally:
        shell.close()


@pytest.mark.parametrize("irq", ["plic", "aia"])
def test_mvm_boots_when_opensbi_cold_boots_on_hart_1(irq, boot_out, mvm_image_cache):
    """OpenSBI cold-boots on whichever hart wins its lottery: under QEMU nearly always hart 0, about one boot in
    fifty hart 1. The hypervisor then starts hart 0 through SBI HSM, and OpenSBI's start of a hart disables every
    source in that hart's PLIC contexts; the hypervisor used to route the MVM's interrupts before that, and the
    MVM's console went silent at its first interrupt-driven output (fixed by starting the other harts first).
    `pyshyper run --boot-hart 1` (OpenSBI's cold-boot-harts in QEMU's device tree) makes hart 1 win every time:
    the MVM's shell answers what is typed (UART receive interrupts), its UART line counts in /proc/interrupts,
    and `poweroff` ends QEMU with 0."""
    require_tool("qemu-system-riscv64", "riscv64-unknown-elf-ld")
    from pyshyper_host.run.command import mvm_qemu_command

    cmd = mvm_qemu_command(
        False, 2, "1G", mvm_image_cache, irq=irq, aia_guests=3, out=boot_out(irq), quiet=True, boot_hart=1
    )
    shell = _boot(cmd, f"boot hart 1 {irq}")
    try:
        assert re.search(r"Boot HART ID\s*: 1\s", shell.log), "OpenSBI did not cold-boot on hart 1"
        assert re.search(r"harts: +2 \(boot hart 1\)", shell.log), "the hypervisor's banner names another boot hart"
        out, status = shell.run("echo $((6 * 7)); cat /proc/interrupts")
        assert status == 0 and out.splitlines()[0] == "42", out
        uart = [ln for ln in out.splitlines() if ln.rstrip().endswith("ttyS0")]
        assert uart and sum(int(c) for c in uart[0].split(":", 1)[1].split()[:2]) > 0, out
        assert shell.poweroff() == 0
        assert "PANIC" not in shell.log and "unexpected trap in the hypervisor" not in shell.log
    except (pexpect.TIMEOUT, pexpect.EOF, AssertionError):
        shell.save_failure(LOG_DIR / f"test_mvm_boot_hart_1_{irq}.log")
        raise
    finally:
        shell.close()


# `just soak` sets 500; the default suite runs 100.
HOTPLUG_CYCLES = int(os.environ.get("PYSHYPER_HOTPLUG_CYCLES", "100"))


def _hyp_stack_high_water(shell: console.Shell) -> list[int]:
    """The stack high-water marks of harts 0 and 1 from the statistics page (hypervisor part at 0x810)."""
    base = stats.stats_base()
    out, status = shell.run(f"devmem {base + 0x810:#x} 64; devmem {base + 0x818:#x} 64")
    values = [int(x, 16) for x in re.findall(r"0x[0-9A-Fa-f]+", out)]
    assert status == 0 and len(values) == 2, out
    return values


@pytest.mark.parametrize("irq", ["plic", "aia"])
def test_mvm_cpu_hotplug_cycles(irq, boot_out, mvm_image_cache):
    """CPU hotplug in the MVM: each `echo 0 > .../cpu1/online` is an SBI HSM hart_stop of vCPU 1 and each
    `echo 1` a hart_start from vCPU 0. The hypervisor used to re-enter the vCPU from inside the trap handler, a
    stack frame deeper every cycle, until the stack ran into its neighbour's and the machine died (150 cycles
    were enough). Now the hypervisor's stack high-water mark on both harts is the same after HOTPLUG_CYCLES
    cycles as after the first, both CPUs are online, the shell answers and `poweroff` exits 0."""
    require_tool("qemu-system-riscv64", "riscv64-unknown-elf-ld")
    from pyshyper_host.run.command import mvm_qemu_command

    cmd = mvm_qemu_command(False, 2, "1G", mvm_image_cache, irq=irq, aia_guests=3, out=boot_out(irq), quiet=True)
    shell = _boot(cmd, f"hotplug {irq}")
    cycle = "echo 0 > /sys/devices/system/cpu/cpu1/online; echo 1 > /sys/devices/system/cpu/cpu1/online"
    try:
        out, status = shell.run(cycle)
        assert status == 0, out
        first = _hyp_stack_high_water(shell)
        t0 = time.monotonic()
        out, status = shell.run(
            f"i=0; while [ $i -lt {HOTPLUG_CYCLES} ]; do {cycle} || break; i=$((i+1)); done; echo cycles=$i",
            timeout=max(TIMEOUT, HOTPLUG_CYCLES * 3.0),
        )
        took = time.monotonic() - t0
        assert status == 0 and f"cycles={HOTPLUG_CYCLES}" in out, out
        assert _hyp_stack_high_water(shell) == first, "the hypervisor's stack grew with the hotplug cycles"
        out, status = shell.run("cat /sys/devices/system/cpu/online; echo $((6 * 7))")
        assert status == 0 and out.split() == ["0-1", "42"], out
        print(f"\n[{irq}] {HOTPLUG_CYCLES} hotplug cycles in {took:.1f} s, stack high-water {first} bytes")
        assert shell.poweroff() == 0
        assert "PANIC" not in shell.log and "unexpected trap in the hypervisor" not in shell.log
    except (pexpect.TIMEOUT, pexpect.EOF, AssertionError):
        shell.save_failure(LOG_DIR / f"test_mvm_hotplug_{irq}.log")
        raise
    finally:
        shell.close()


@pytest.mark.parametrize("irq", ["plic", "aia"])
def test_mvm_two_vcpus_faulting_at_once(irq, boot_out, mvm_image_cache):
    """Both MVM vCPUs make a bad access at the same moment (unmapped guest-physical 0x0300_0000 from each CPU).
    The VM's end is claimed once: one report, one `vm0 killed`, the other vCPU parks; and since the management VM
    is gone the machine powers off, with a failing status, within 10 s (it printed two kills and hung before)."""
    require_tool("qemu-system-riscv64", "riscv64-unknown-elf-ld")
    from pyshyper_host.run.command import mvm_qemu_command

    cmd = mvm_qemu_command(False, 2, "1G", mvm_image_cache, irq=irq, aia_guests=3, out=boot_out(irq), quiet=True)
    shell = _boot(cmd, f"double fault {irq}")
    try:
        shell.send("(taskset -c 0 devmem 0x3000000 &); taskset -c 1 devmem 0x3000000")
        shell.expect(r"pyshyper: vm0 killed: access outside its memory at pc 0x[0-9a-f]+")
        t0 = time.monotonic()
        shell.expect(r"pyshyper: the management VM has ended \(crashed\): the machine powers off", timeout=10)
        shell.child.expect(pexpect.EOF, timeout=10)
        took = time.monotonic() - t0
        shell.child.close()
        assert shell.child.exitstatus == 1
        text = shell.log
        assert len(re.findall(r"vm0 killed", text)) == 1, "the VM was ended twice"
        assert len(re.findall(r"guest-page fault at guest-physical 0x3000000", text)) == 1
        assert "unexpected trap in the hypervisor" not in text
        print(f"\n[{irq}] powered off {took:.1f} s after the kill")
    except (pexpect.TIMEOUT, pexpect.EOF, AssertionError):
        shell.save_failure(LOG_DIR / f"test_mvm_double_fault_{irq}.log")
        raise
    finally:
        shell.close()
