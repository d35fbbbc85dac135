"""The idle loop: what a hart does while no vCPU runs on it (after boot, and whenever its vCPU leaves it).

It enters the hart's vCPU once SBI HSM has started it, powers the machine off when every VM has ended, and
otherwise sleeps in WFI until an IPI or interrupt. runtime/trap.S calls it (as hyp_hart_idle) with the hart's
stack unwound to its top, main.py at the end of a hart's boot; it never returns.
"""

from compiler.prelude import SIP, Array, addr_of, amoswap_w, csr_clear, cstr, export, static, u32, u64, wfi
from hypervisor.arch.riscv.encoding import MIP_SSIP
from hypervisor.arch.riscv.vcpu import hart_park, vcpu_run
from hypervisor.board import MAX_HARTS
from hypervisor.core.log import LOG_INFO, log0
from hypervisor.core.machine import machine_power_off
from hypervisor.core.stack import stack_check, stack_top
from hypervisor.core.vm import (
    HART_VCPU,
    VCPU_STARTED,
    VM_RUNNING,
    machine_report,
    vcpu_vm,
    vm_all_ended,
    vm_any_failed,
)

power_off_claim = static(Array[u32, 1])


@export("hyp_hart_idle")
def hart_wait(hartid: u64) -> None:
    """Nothing runs on this hart now: run its vCPU once HSM starts it; power the machine off when every VM has
    ended (one hart, the first to claim it, does that); otherwise sleep until an IPI or interrupt. Called with
    a fresh stack (runtime/trap.S unwinds to the stack's top first, main.py at the end of boot); never returns."""
    if hartid < MAX_HARTS and HART_VCPU[hartid].addr() != 0:
        hart_park(HART_VCPU[hartid])
    while True:
        stack_check(hartid, stack_top(hartid))
        if hartid < MAX_HARTS and HART_VCPU[hartid].addr() != 0:
            v = HART_VCPU[hartid]
            if v.state == VCPU_STARTED and vcpu_vm(v).state == VM_RUNNING:
                vcpu_run(v)
        if vm_all_ended() and amoswap_w(addr_of(power_off_claim[0]), u32(1)) == 0:
            # A VM the hypervisor killed was reported when it ended and does not fail the machine (unless it was
            # the management VM); a VM that powered itself off reporting a failure does.
            log0(LOG_INFO, cstr(b"pyshyper: all VMs have ended, powering off\n"))
            machine_report()
            machine_power_off(vm_any_failed())
        wfi()
        csr_clear(SIP, MIP_SSIP)
