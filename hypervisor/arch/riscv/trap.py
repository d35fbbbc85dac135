"""Trap handling: `runtime/trap.S` saves a guest's registers into its vCPU and calls one of three entries by
scause: `hyp_guest_ecall` (an SBI call), `hyp_guest_mmio` (a load or store guest-page fault: an emulated
register) and `hyp_guest_trap`, which dispatches the others through two tables (exceptions and interrupts);
then it resumes the vCPU.

A guest's own mistakes go to the guest, as the hardware would deliver them without a hypervisor: an access
fault (scause 1, 5, 7) and an access to an emulated device that cannot be emulated (a width or alignment the
device does not have, an AMO) reach the guest's trap handler as access faults. A guest that does something the
hypervisor cannot allow (an access outside its memory, an unexpected exception) ends; the hypervisor and the
other VMs run on (Priv 9.6 "Traps").
"""

from compiler.prelude import (
    HGEIE,
    HGEIP,
    HIP,
    HSTATUS,
    HTVAL,
    HVIP,
    SCAUSE,
    SIE,
    SIP,
    SSTATUS,
    STVAL,
    TIME,
    VSCAUSE,
    VSEPC,
    VSIE,
    VSSTATUS,
    VSTVAL,
    VSTVEC,
    Array,
    Callable,
    Final,
    Ptr,
    csr_clear,
    csr_read,
    csr_set,
    csr_write,
    cstr,
    export,
    extern,
    inline,
    noinline,
    null,
    static,
    u8,
    u32,
    u64,
    wfi,
)
from hypervisor.arch.riscv.encoding import (
    EXC_COUNT,
    EXC_ECALL_VS,
    EXC_ILLEGAL_INST,
    EXC_INST_ACCESS,
    EXC_INST_GUEST_PAGE_FAULT,
    EXC_LOAD_ACCESS,
    EXC_LOAD_GUEST_PAGE_FAULT,
    EXC_STORE_ACCESS,
    EXC_STORE_GUEST_PAGE_FAULT,
    EXC_VIRTUAL_INST,
    HIE_GUEST,
    HSTATUS_SPVP,
    HSTATUS_VTW,
    INSN_WFI,
    IRQ_S_EXT,
    IRQ_S_GEXT,
    IRQ_S_SOFT,
    IRQ_S_TIMER,
    MIP_SSIP,
    MIP_VSTIP,
    SCAUSE_INTERRUPT,
    SSTATUS_SIE,
    SSTATUS_SPIE,
    SSTATUS_SPP,
)
from hypervisor.arch.riscv.irqc import irqc_handle, irqc_vcpu_wait
from hypervisor.arch.riscv.mmio import guest_fetch_insn, mmio_emulate, mmio_kept
from hypervisor.arch.riscv.vsbi import (
    sbi_handle_ecall,
    sbi_timer_fired,
    vcpu_handle_messages,
    vcpu_idle_enter,
    vcpu_idle_leave,
    vcpu_wfi_traps,
    vsbi_init,
)
from hypervisor.core.console import console_dec, console_hex, console_lock, console_puts, console_unlock
from hypervisor.core.control import control_idle
from hypervisor.core.emul import EMUL_DONE, EMUL_FAULT, EMUL_KEPT, EMUL_NONE
from hypervisor.core.hart import hart_has_sstc
from hypervisor.core.log import LOG_ERROR, hart_halt, log_vm
from hypervisor.core.machine import machine_park, machine_resetting
from hypervisor.core.sched import sched_check, sched_rq, sched_shared
from hypervisor.core.shmem import shm_read_only
from hypervisor.core.stack import stack_check
from hypervisor.core.virtio_console import vcon_idle
from hypervisor.core.vm import (
    END_ACCESS,
    END_EXCEPTION,
    VCPU_STARTED,
    VM_CRASHED,
    VM_RUNNING,
    Vcpu,
    vcpu_vm,
    vm_claim_end,
    vm_end_claimed,
    vm_report,
)

IRQ_COUNT: Final = 16


def trap_kill(v: Ptr[Vcpu], report: Ptr[u8], value: u64, what: Ptr[u8]) -> None:
    """End v's VM for what it did: `report` and `value` say what happened, `what` why it ends. Only the hart
    that claims the VM's end reports it (two vCPUs faulting at once end it once); the other just leaves."""
    vm = vcpu_vm(v)
    if not vm_claim_end(vm):
        v.parking = u32(1)
        return
    # What `shyper vm list` shows of a crashed guest VM (mvm-tools/PROTOCOL.md, VM record)
    cause = csr_read(SCAUSE)
    guest_page_fault = (
        cause == EXC_INST_GUEST_PAGE_FAULT or cause == EXC_LOAD_GUEST_PAGE_FAULT or cause == EXC_STORE_GUEST_PAGE_FAULT
    )
    vm.reason = END_ACCESS if guest_page_fault else END_EXCEPTION
    vm.fault_scause = cause
    vm.fault_stval = csr_read(STVAL)
    vm.fault_sepc = v.sepc
    vm.fault_htval = csr_read(HTVAL)
    vm_report(vm, report, value)
    trap_report_killed(v, what)
    vm_end_claimed(vm, VM_CRASHED, v)


def trap_report_killed(v: Ptr[Vcpu], what: Ptr[u8]) -> None:
    vm = vcpu_vm(v)
    log_vm(
        LOG_ERROR,
        vm.dynamic,
        cstr(b"pyshyper: vm%d killed: %s at pc %x, stval %x\n"),
        vm.id,
        what.addr(),
        v.sepc,
        csr_read(STVAL),
    )


def trap_guest_page_fault(v: Ptr[Vcpu]) -> None:
    """Guest-page faults (scause 20, 21, 23): the guest-physical address is htval << 2 | stval[1:0]
    (Priv 9.4.4). Inside an emulated device the access is emulated (mmio.py), or given back to the guest as an
    access fault when the device cannot do it; anywhere else it is outside the VM's memory: the VM ends.
    runtime/trap.S takes loads and stores to hyp_guest_mmio, which does the same in its own frame; the exception
    table has this for an instruction guest-page fault."""
    if csr_read(SCAUSE) != EXC_INST_GUEST_PAGE_FAULT:
        v.traps -= 1  # hyp_guest_trap counted it; an access counts as hyp_guest_mmio's do (trap_mmio_undone)
        done = mmio_emulate(v)
        if done != EMUL_DONE:
            trap_mmio_undone(v, done)
        return
    trap_page_fault_other(v, EMUL_NONE)


@noinline
def trap_page_fault_other(v: Ptr[Vcpu], done: u64) -> None:
    """A guest-page fault that was not an emulated access (`done`: mmio_emulate's answer, EMUL_NONE when it
    was not asked)."""
    cause = csr_read(SCAUSE)
    htval = csr_read(HTVAL)
    gpa = (htval << 2) | (csr_read(STVAL) & 3)
    if htval == 0:
        # The hart may write zero instead of the address (Priv 9.4.4): nothing can be emulated without it, and
        # guest-physical 0..3 is never one of the VM's devices. The report says what is known, the guest address.
        trap_kill(
            v,
            cstr(b"guest-page fault, guest-physical address not given (htval 0), guest address "),
            csr_read(STVAL),
            cstr(b"access outside its memory"),
        )
        return
    if done == EMUL_FAULT:
        # What a device answers with a bus error: an access fault at the guest's own (virtual) address,
        # which stval still holds (Priv 9.4.4, 3.1.15).
        trap_inject_exception(
            v, EXC_LOAD_ACCESS if cause == EXC_LOAD_GUEST_PAGE_FAULT else EXC_STORE_ACCESS, csr_read(STVAL)
        )
        return
    if cause == EXC_STORE_GUEST_PAGE_FAULT and shm_read_only(vcpu_vm(v), gpa):
        # A store into shared memory the VM maps read-only (core/shmem.py): what a read-only memory answers.
        trap_inject_exception(v, EXC_STORE_ACCESS, csr_read(STVAL))
        return
    if cause == EXC_INST_GUEST_PAGE_FAULT:
        trap_kill(v, cstr(b"instruction guest-page fault at guest-physical "), gpa, cstr(b"access outside its memory"))
    elif cause == EXC_LOAD_GUEST_PAGE_FAULT:
        trap_kill(v, cstr(b"load guest-page fault at guest-physical "), gpa, cstr(b"access outside its memory"))
    else:
        trap_kill(v, cstr(b"store guest-page fault at guest-physical "), gpa, cstr(b"access outside its memory"))


def trap_access_fault(v: Ptr[Vcpu]) -> None:
    """scause 1, 5, 7 from the guest: its access passed stage 2 and failed in the physical memory system (PMP,
    or no device answered at a passthrough address). The guest's own mistake: its trap handler gets it, with
    the same cause and address (Priv 9.6: the trap the hart would have delivered had hedeleg delegated it)."""
    trap_inject_exception(v, csr_read(SCAUSE), csr_read(STVAL))


def trap_inject_exception(v: Ptr[Vcpu], cause: u64, tval: u64) -> None:
    """Deliver an exception to the guest's own handler, as the hardware would trap to VS-mode (Priv 9.6)."""
    vsstatus = csr_read(VSSTATUS)
    was_supervisor = (csr_read(HSTATUS) & HSTATUS_SPVP) != 0
    vsstatus &= ~(SSTATUS_SPP | SSTATUS_SPIE)
    if was_supervisor:
        vsstatus |= SSTATUS_SPP
    if vsstatus & SSTATUS_SIE != 0:
        vsstatus |= SSTATUS_SPIE
    vsstatus &= ~SSTATUS_SIE
    csr_write(VSSTATUS, vsstatus)
    csr_write(VSEPC, v.sepc)
    csr_write(VSCAUSE, cause)
    csr_write(VSTVAL, tval)
    v.sepc = csr_read(VSTVEC) & ~u64(3)
    # sret goes to VS-mode at the guest's handler: supervisor privilege
    csr_write(SSTATUS, csr_read(SSTATUS) | SSTATUS_SPP)


def trap_virtual_instruction(v: Ptr[Vcpu]) -> None:
    """scause 22: WFI traps here because hstatus.VTW is set; anything else is illegal for the guest."""
    insn = csr_read(STVAL)
    if insn == 0:  # stval may be 0 without Sstvala (Priv 9.6.3): read the instruction itself
        insn = guest_fetch_insn(v.sepc)
        if insn == ~u64(0):
            return  # the page went meanwhile: the guest takes the instruction again (its fetch faults then)
        if insn & 3 != 3:
            insn = insn & 0xFFFF  # a 16-bit instruction: what follows it is not its
    # A WFI from VU-mode is illegal whatever hstatus.VTW says (Priv 9.6.2): the guest kernel's business, below.
    if insn == INSN_WFI and (csr_read(HSTATUS) & HSTATUS_SPVP) != 0:
        v.sepc += 4
        v.wfi_exits += 1
        vcpu_idle_work(v)
        if sched_shared(v.hart):
            # A shared hart: the WFI completes at once if an interrupt the guest enabled is pending (Priv 3.3.3:
            # vsie's bits sit one below their hip bits); else the vCPU waits off its hart and the hart runs
            # another one (core/sched.py; whatever makes it pending unblocks it and wakes its hart).
            if csr_read(HIP) & HIE_GUEST & (csr_read(VSIE) << 1) == 0:
                v.blocked = u32(1)
                v.parking = u32(1)
            return
        # Its own hart: it was shared when the vCPU entered and is no longer, or its VM asks remote fences of it
        # (vsbi.py vcpu_wfi_traps). Only in the second case do its next WFIs trap (arch/riscv/vcpu.py vcpu_run).
        # An IPI that places another vCPU beside it comes after the run queue changed, and sets VTW again
        # (irq_software).
        if not vcpu_wfi_traps(v):
            csr_clear(HSTATUS, HSTATUS_VTW)
        # This one waits in the hypervisor for any interrupt. WFI wakes on one pending and enabled in sie or
        # hie, even with sstatus.SIE clear (Priv 3.3.3). The guest's own (VS-level) ones are enabled in hie, and
        # hip.VSEIP includes, in AIA mode, the guest interrupt file that hstatus.VGEIN selects (Priv 9.2.3, AIA
        # 6.3.1), so an MSI into the vCPU's IMSIC wakes the hart too. The guest's own are taken once it resumes;
        # the hypervisor's are taken here (trap_woken), not by a second trap right after the sret.
        irqc_vcpu_wait(v)
        vcpu_idle_enter(v)
        wfi()
        vcpu_idle_leave(v)
        trap_woken(v)
        return
    trap_inject_exception(v, EXC_ILLEGAL_INST, insn)


def trap_ecall(v: Ptr[Vcpu]) -> None:
    sbi_handle_ecall(v)


def trap_unexpected(v: Ptr[Vcpu]) -> None:
    trap_kill(v, cstr(b"unexpected exception, scause "), csr_read(SCAUSE), cstr(b"unexpected exception"))


def irq_timer(v: Ptr[Vcpu]) -> None:
    now = csr_read(TIME)
    if not sched_shared(v.hart):
        sbi_timer_fired(v, now)
        return
    # A shared hart's timer (core/sched.py sched_timer_program): v's own SBI deadline, a slice's end, a waiting
    # vCPU's deadline; sched_check decides and programs the next one.
    if not hart_has_sstc() and now >= v.timer_deadline:
        v.timer_deadline = ~u64(0)
        csr_set(HVIP, MIP_VSTIP)
    sched_check(v, now)


def vcpu_idle_work(v: Ptr[Vcpu]) -> None:
    """What waits for v's VM while it idles, done on v's hart: at a trapped WFI, and when it is kicked (MSG_KICK:
    a partitioned vCPU's WFI need not trap). The MVM's control server (a guest VM's event, frames the port could
    not take yet), then bytes for its console (the hypervisor's log, a GVM's output)."""
    v.idle_due = u32(0)
    if vcpu_vm(v).id == 0:
        control_idle()
    vcon_idle(v)


def irq_software(v: Ptr[Vcpu]) -> None:
    """An IPI from another hart: clear it, then read this vCPU's mailbox; on a shared hart, whether a vCPU it
    made runnable preempts v, else a kick's idle work."""
    csr_clear(SIP, MIP_SSIP)
    if machine_resetting():
        machine_park()  # another hart resets the machine: stop here, out of the guest (core/machine.py)
    vcpu_handle_messages(v)
    if sched_shared(v.hart):
        # The hart may have become shared since v entered it (the IPI that placed a vCPU beside v): from now on
        # v's WFI gives the hart away (Priv 9.2.1 hstatus.VTW). A kick's idle work waits for that WFI.
        csr_set(HSTATUS, HSTATUS_VTW)
        sched_check(v, csr_read(TIME))
    elif v.idle_due != 0:
        vcpu_idle_work(v)


def irq_guest_external(v: Ptr[Vcpu]) -> None:
    """SGEI (Priv 9.2.4): an MSI into the guest interrupt file of a vCPU waiting off this shared hart. Its files
    leave hgeie until it has run (the level would interrupt again); sched_check decides whether it preempts v."""
    rq = sched_rq(v.hart)
    rq.hgeie = csr_read(HGEIE) & ~csr_read(HGEIP)
    csr_write(HGEIE, rq.hgeie)
    sched_check(v, csr_read(TIME))


def irq_external(v: Ptr[Vcpu]) -> None:
    if not irqc_handle(v):
        irq_unexpected(v)


def irq_unexpected(v: Ptr[Vcpu]) -> None:
    cause = csr_read(SCAUSE) & ~SCAUSE_INTERRUPT
    csr_clear(SIE, u64(1) << cause)
    vm_report(vcpu_vm(v), cstr(b"unexpected interrupt masked: "), cause)


EXCEPTION_HANDLERS = static(Array[Callable[[Ptr[Vcpu]], None], EXC_COUNT])
INTERRUPT_HANDLERS = static(Array[Callable[[Ptr[Vcpu]], None], IRQ_COUNT])


def trap_init_tables() -> None:
    vsbi_init()
    for i in range(EXC_COUNT):
        EXCEPTION_HANDLERS[i] = trap_unexpected
    for i in range(IRQ_COUNT):
        INTERRUPT_HANDLERS[i] = irq_unexpected
    EXCEPTION_HANDLERS[EXC_INST_ACCESS] = trap_access_fault
    EXCEPTION_HANDLERS[EXC_LOAD_ACCESS] = trap_access_fault
    EXCEPTION_HANDLERS[EXC_STORE_ACCESS] = trap_access_fault
    EXCEPTION_HANDLERS[EXC_ECALL_VS] = trap_ecall
    EXCEPTION_HANDLERS[EXC_INST_GUEST_PAGE_FAULT] = trap_guest_page_fault
    EXCEPTION_HANDLERS[EXC_LOAD_GUEST_PAGE_FAULT] = trap_guest_page_fault
    EXCEPTION_HANDLERS[EXC_STORE_GUEST_PAGE_FAULT] = trap_guest_page_fault
    EXCEPTION_HANDLERS[EXC_VIRTUAL_INST] = trap_virtual_instruction
    INTERRUPT_HANDLERS[IRQ_S_TIMER] = irq_timer
    INTERRUPT_HANDLERS[IRQ_S_SOFT] = irq_software
    INTERRUPT_HANDLERS[IRQ_S_EXT] = irq_external
    INTERRUPT_HANDLERS[IRQ_S_GEXT] = irq_guest_external


def trap_woken(v: Ptr[Vcpu]) -> None:
    """The hypervisor's own interrupt that ended a WFI it waited in for v's guest, if one did: handled as the
    trap it would be once the guest resumed (and counted as one), the highest first (Priv 3.1.9: SEI, SSI, STI).
    One only: if another is pending too, the guest's resumption takes it. (On its own hart, SGEI is not enabled:
    irqc_vcpu_wait.)"""
    pending = csr_read(SIP) & csr_read(SIE)
    if pending == 0:
        return
    code = u64(IRQ_S_TIMER)
    if pending & (u64(1) << IRQ_S_EXT) != 0:
        code = u64(IRQ_S_EXT)
    elif pending & (u64(1) << IRQ_S_SOFT) != 0:
        code = u64(IRQ_S_SOFT)
    elif pending & (u64(1) << IRQ_S_TIMER) == 0:
        return
    v.traps += 1
    v.irqs += 1
    INTERRUPT_HANDLERS[code](v)


@noinline
def trap_other(v: Ptr[Vcpu], cause: u64) -> None:
    """The causes off the two hot paths: interrupts and the exceptions of the tables. Each timer tick and each
    WFI comes here, so the stack guard (core/stack.py) is checked here: the hot paths (an SBI call, an emulated
    register) have a fixed, shallow depth."""
    if cause & SCAUSE_INTERRUPT != 0:
        code = cause & ~SCAUSE_INTERRUPT
        v.irqs += 1
        if code < IRQ_COUNT:
            INTERRUPT_HANDLERS[code](v)
    elif cause < EXC_COUNT:
        EXCEPTION_HANDLERS[cause](v)
    else:
        trap_unexpected(v)
    stack_check(v.hart, v.hyp_sp)


@inline
def trap_resume(v: Ptr[Vcpu]) -> Ptr[Vcpu]:
    """The end of every trap: the vCPU to resume, or null when it leaves the hart (stopped, rebooted, its VM
    ended): runtime/trap.S then unwinds the stack and calls hart_wait."""
    if v.parking != 0 or v.state != VCPU_STARTED or vcpu_vm(v).state != VM_RUNNING:
        v.parking = u32(0)
        return null(Vcpu)
    return v


# runtime/trap.S calls one of three entries by scause, so that each hot cause has its own frame: the registers
# its path keeps live are saved in its prologue only, and no compare of another cause comes before it.


@export("hyp_guest_ecall")
def hyp_guest_ecall(v: Ptr[Vcpu]) -> Ptr[Vcpu]:
    """scause 10, an SBI call from VS-mode (the hot cause of a Linux guest without Sstc or IMSIC)."""
    v.traps += 1
    sbi_handle_ecall(v)
    return trap_resume(v)


@export("hyp_guest_mmio")
def hyp_guest_mmio(v: Ptr[Vcpu]) -> Ptr[Vcpu]:
    """scause 21 or 23, a load or store guest-page fault: an emulated device's register (mmio.py), the hot case,
    or an access outside the VM's memory (trap_page_fault_other). A performed access is counted in mmio_exits
    only (vcpu_traps). Its end tests `parking` alone: a device that ends its own VM on this hart sets it
    (vm_end, as an HSM stop does), and an end made on another hart reaches this one by IPI (vm_call_off), which
    the hart takes as soon as the guest runs again, through hyp_guest_trap's full test."""
    done = mmio_emulate(v)
    if done != EMUL_DONE:
        trap_mmio_undone(v, done)
        return trap_resume(v)
    if v.parking != 0:
        v.parking = u32(0)
        return null(Vcpu)
    return v


@noinline
def trap_mmio_undone(v: Ptr[Vcpu], done: u64) -> None:
    """An access mmio_emulate did not perform (out of line, so that a performed one goes straight back):
    EMUL_KEPT, trap.S saves the kept registers and calls hyp_guest_mmio again; else the access is the guest's
    mistake or outside its memory (trap_page_fault_other), counted as a trap unless a region answered it."""
    if done == EMUL_KEPT:
        mmio_kept(v)
        return
    if done == EMUL_NONE:
        v.traps += 1
    trap_page_fault_other(v, done)


@export("hyp_guest_trap")
def hyp_guest_trap(v: Ptr[Vcpu]) -> Ptr[Vcpu]:
    """Every other cause: interrupts and the exceptions of the tables."""
    v.traps += 1
    trap_other(v, csr_read(SCAUSE))
    return trap_resume(v)


@extern("pyshyper_line_file")
def line_file(pc: u64) -> u64:
    """The source file of the code at pc, from the line table `pyshyper build` embeds
    (qemu/pyshyper_host/build/symtab.py): the address of its name, or 0."""
    ...


@extern("pyshyper_line_number")
def line_number(pc: u64) -> u64:
    """The source line of the code at pc (the same table), or 0."""
    ...


@export("hyp_hs_fault")
def hyp_hs_fault(scause: u64, sepc: u64, stval: u64, name: u64, offset: u64) -> None:
    """A trap taken in the hypervisor itself: report it with the function (runtime/trap.S looked up the name)
    and the Python file and line of sepc, and stop this hart."""
    console_lock()
    console_puts(cstr(b"pyshyper: unexpected trap in the hypervisor: scause "))
    console_hex(scause)
    console_puts(cstr(b" sepc "))
    console_hex(sepc)
    console_puts(cstr(b" stval "))
    console_hex(stval)
    if name != 0:
        console_puts(cstr(b" in "))
        console_puts(Ptr[u8](name))
        console_puts(cstr(b"+"))
        console_hex(offset)
    file = line_file(sepc)
    if file != 0:
        console_puts(cstr(b" at "))
        console_puts(Ptr[u8](file))
        console_puts(cstr(b":"))
        console_dec(line_number(sepc))
    console_puts(cstr(b"\npyshyper: this hart stops\n"))
    console_unlock()
    hart_halt()
