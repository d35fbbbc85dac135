"""The idle loop: what a hart does while no vCPU runs on it (after boot, and whenever its vCPU leaves it).

It enters the vCPU the scheduler picks (core/sched.py), powers the machine off when every VM has ended, and
otherwise sleeps in WFI until an IPI, an interrupt or a waiting vCPU's timer. runtime/trap.S calls it (as
hyp_hart_idle) with the hart's stack unwound to its top, main.py at the end of a hart's boot; it never returns.
"""

from compiler.prelude import Array, addr_of, amoswap_w, cstr, export, null, static, u32, u64, wfi
from hypervisor.arch.riscv.hart import hart_ipi_clear, hart_time
from hypervisor.arch.riscv.vcpu import hart_wait_files, vcpu_leave, vcpu_run
from hypervisor.board import MAX_HARTS
from hypervisor.core.log import LOG_INFO, log0
from hypervisor.core.machine import machine_park, machine_power_off, machine_resetting
from hypervisor.core.sched import (
    sched_pick,
    sched_rq,
    sched_shared,
    sched_switch_to,
    sched_timer_program,
    sched_waiting_files,
)
from hypervisor.core.stack import stack_check, stack_top
from hypervisor.core.vm import Vcpu, machine_report, vm_all_ended, vm_any_failed

power_off_claim = static(Array[u32, 1])


@export("hyp_hart_idle")
def hart_wait(hartid: u64) -> None:
    """Nothing runs on this hart now: the vCPU it ran (if any) leaves it; run the next one the scheduler picks
    (core/sched.py: the only one placed here once HSM starts it, or the best runnable of several); power the
    machine off when every VM has ended (one hart, the first to claim it, does that); otherwise sleep until an IPI,
    an interrupt or the earliest timer of its waiting vCPUs. Called with a fresh stack (runtime/trap.S unwinds to
    the stack's top first, main.py at the end of boot); never returns."""
    if hartid >= MAX_HARTS:
        while True:
            wfi()
    rq = sched_rq(hartid)
    if rq.current.addr() != 0:
        vcpu_leave(rq.current)
    while True:
        stack_check(hartid, stack_top(hartid))
        hart_ipi_clear()  # before looking: an IPI from now on wakes the WFI below
        if machine_resetting():
            machine_park()  # another hart resets the machine (core/machine.py)
        shared = sched_shared(hartid)
        now = hart_time()
        v = sched_pick(hartid, now)
        if v.addr() != 0:
            if shared:
                sched_switch_to(hartid, v, now)
            else:
                rq.current = v
            vcpu_run(v, shared)  # returns only when v may not run after all
            rq.current = null(Vcpu)
            continue
        rq.current = null(Vcpu)
        if vm_all_ended() and amoswap_w(addr_of(power_off_claim[0]), u32(1)) == 0:
            # A VM the hypervisor killed was reported when it ended and does not fail the machine (unless it was
            # the management VM); a VM that powered itself off reporting a failure does.
            log0(LOG_INFO, cstr(b"pyshyper: all VMs have ended, powering off\n"))
            machine_report()
            machine_power_off(vm_any_failed())
        # The waiting vCPUs' wake-ups: their timers, their guest interrupt files (AIA)
        sched_timer_program(hartid, null(Vcpu))
        hart_wait_files(sched_waiting_files(hartid, null(Vcpu)))
        wfi()
