"""A vCPU on its hart (Priv 9.2, 9.6): entering it from the hypervisor, and parking its hart when it leaves.

runtime/trap.S `hyp_vcpu_enter` loads the guest's registers and srets into it; every trap from the guest starts
again at the top of the hart's stack (Vcpu.hyp_sp), so an entry never nests in an earlier one.
"""

from compiler.prelude import (
    HGATP,
    HGEIE,
    HIE,
    HSTATUS,
    HVIP,
    INSTRET,
    SIP,
    SSTATUS,
    TIME,
    VSATP,
    VSCAUSE,
    VSEPC,
    VSIE,
    VSISELECT,
    VSSCRATCH,
    VSSTATUS,
    VSTIMECMP,
    VSTVAL,
    VSTVEC,
    Ptr,
    addr_of,
    amoadd_d,
    amoadd_w,
    amoswap_d,
    amoswap_w,
    csr_clear,
    csr_read,
    csr_set,
    csr_write,
    extern,
    fence,
    fence_i,
    hfence_gvma_vmid,
    hfence_vvma,
    null,
    u32,
    u64,
)
from hypervisor.arch.riscv.encoding import (
    HIE_GUEST,
    HSTATUS_SPV,
    HSTATUS_SPVP,
    HSTATUS_VSXL,
    HSTATUS_VTW,
    MIP_SGEIP,
    MIP_SSIP,
    MIP_VSTIP,
    SSTATUS_SIE,
    SSTATUS_SPIE,
    SSTATUS_SPP,
)
from hypervisor.arch.riscv.fpu import fpu_enter, fpu_leave
from hypervisor.arch.riscv.irqc import irqc_vcpu_enter, irqc_vcpu_leave
from hypervisor.arch.riscv.stage2 import stage2_hgatp, stage2_vmids
from hypervisor.arch.riscv.vsbi import vcpu_fence_notify, vcpu_handle_messages, vcpu_wfi_traps
from hypervisor.core.hart import hart_has_guest_files, hart_has_sstc
from hypervisor.core.sched import (
    FENCE_ALL,
    FENCE_NONE,
    sched_fences,
    sched_rq,
    sched_timer_program,
    sched_waiting_files,
)
from hypervisor.core.vm import VCPU_STARTED, VM_RUNNING, Vcpu, vcpu_vm, vm_wake_mvm


@extern("hyp_vcpu_enter")
def vcpu_enter(v: Ptr[Vcpu]) -> None:
    """runtime/trap.S: load the vCPU's registers and sret into it; never returns."""
    ...


def vcpu_run(v: Ptr[Vcpu], shared: bool) -> None:
    """Enter a vCPU on this hart (Priv 9.2: hgatp, hstatus.SPV/SPVP, sstatus.SPP): with a fresh VS-level state
    after a reset, else with the state it left with (vcpu_leave). `shared`: other vCPUs are placed on the hart
    (core/sched.py), whose waiting ones' guest interrupt files must wake it. Returns only when the vCPU must not
    run after all: its VM is ending, or it was stopped, which is checked after `running` is published (vm_end
    stores the VM's state first, then waits for `running` to clear: one of the two sees the other)."""
    vm = vcpu_vm(v)
    amoswap_w(addr_of(v.running), u32(1))
    if vm.state != VM_RUNNING or amoadd_w(addr_of(vm.ending), u32(0)) != 0 or v.state != VCPU_STARTED:
        amoswap_w(addr_of(v.running), u32(0))
        return
    asked = amoadd_d(addr_of(v.fence_req), u64(0))
    csr_write(HGATP, stage2_hgatp(vm.stage2_root, vm.vmid))
    # Fences only when something may be stale for v (core/sched.py sched_fences): none when it follows a vCPU of
    # another VM, whose translations carry another VMID (Priv 9.3.2); the VS stage when another vCPU of its own
    # VM ran here since it last did; all of its VMID's when it enters afresh or a remote fence waits for it. (QEMU
    # flushes its whole TLB on every change of V, riscv_cpu_set_mode, so under QEMU none of this is visible: the
    # rule is the architecture's.)
    rq = sched_rq(v.hart)
    kind = sched_fences(v, vm.vmid, stage2_vmids(), asked != amoadd_d(addr_of(v.fence_done), u64(0)))
    if kind != FENCE_NONE:
        if kind == FENCE_ALL:
            hfence_gvma_vmid(vm.vmid)
        hfence_vvma()  # the current VMID's, now vm's (rs2 of hfence.vvma would be a guest ASID)
        fence_i()
        amoswap_d(addr_of(v.fence_done), asked)  # every remote fence asked of it until now is served
        vcpu_fence_notify(v)
    spp = SSTATUS_SPP  # a fresh vCPU starts in VS-mode; one that left resumes where it trapped from
    if v.fresh != 0:
        v.fresh = u32(0)
        csr_write(VSATP, u64(0))
        csr_clear(VSSTATUS, SSTATUS_SIE | SSTATUS_SPIE)  # a started hart has interrupts off (SBI 2.0 section 9.1)
        if hart_has_sstc():
            csr_write(VSTIMECMP, ~u64(0))  # no VS timer interrupt until the guest sets one (reset value is 0)
        csr_write(HVIP, u64(0))
    else:
        vcpu_restore(v)
        spp = v.s_spp
    csr_write(HIE, HIE_GUEST | (MIP_SGEIP if shared and hart_has_guest_files() else u64(0)))
    # What other harts asked of the vCPU since it was started, then its interrupt controller's part (its line,
    # its guest interrupt file).
    vcpu_handle_messages(v)
    if v.idle_due != 0:
        csr_set(SIP, MIP_SSIP)  # a KICK: its idle work once it has entered (trap.py irq_software)
    irqc_bits = irqc_vcpu_enter(v)
    if shared:
        csr_write(HGEIE, sched_waiting_files(v.hart, v))
        sched_timer_program(v.hart, v)
    # sret to the guest: hstatus.SPV = 1, SPVP and sstatus.SPP its privilege. On a shared hart WFI traps (VTW,
    # Priv 9.2.1) so a waiting vCPU gives the hart away; on its own hart it does not: the hart waits in the
    # guest's WFI, which any interrupt of the hart ends (Priv 3.3.3), with no exit and no TLB refill after it.
    # Whatever wants an idle partitioned vCPU kicks it (MSG_KICK). Except once its VM asks remote fences of it
    # (vsbi.py vcpu_wfi_traps): then it waits in the hypervisor, where a fence costs its requester no wait.
    # Built whole, not read-modified-written: nothing a former vCPU or the firmware left (HU, VTVM, VTSR, VSBE,
    # GVA, another VGEIN) carries over; only VSXL, which may be read-only, is kept.
    hstatus = (csr_read(HSTATUS) & HSTATUS_VSXL) | irqc_bits | (HSTATUS_VTW if shared or vcpu_wfi_traps(v) else u64(0))
    csr_write(HSTATUS, hstatus | HSTATUS_SPV | (HSTATUS_SPVP if spp != 0 else u64(0)))
    s = csr_read(SSTATUS) & ~(SSTATUS_SIE | SSTATUS_SPIE | SSTATUS_SPP)
    csr_write(SSTATUS, s | spp)
    # sstatus.FS and .VS must not be Off while V=1, or the guest's own FP and vector use traps (Priv 9.2.10,
    # 3.1.6.6), and the registers must be the vCPU's: a former vCPU's (another VM's) must not show through, as
    # Initial would claim. fpu_enter loads them (zeroed after a reset) unless the hart holds them already, and
    # leaves FS/VS Clean.
    fpu_enter(v)
    if rq.left.addr() != 0 and rq.left.addr() != v.addr():  # a switch from one vCPU to another: its cost
        rq.switch_count += 1
        rq.switch_instret += csr_read(INSTRET) - rq.left_instret
    rq.left = null(Vcpu)
    vcpu_enter(v)


def vcpu_restore(v: Ptr[Vcpu]) -> None:
    """v's VS-level CSRs as vcpu_leave saved them (Priv 9.2: the VS CSRs, hvip; Sstc vstimecmp; AIA vsiselect).
    Without Sstc a deadline that passed while it was away is its VS timer interrupt now (as sbi_timer_fired)."""
    csr_write(VSSTATUS, v.s_vsstatus)
    csr_write(VSIE, v.s_vsie)
    csr_write(VSTVEC, v.s_vstvec)
    csr_write(VSSCRATCH, v.s_vsscratch)
    csr_write(VSEPC, v.s_vsepc)
    csr_write(VSCAUSE, v.s_vscause)
    csr_write(VSTVAL, v.s_vstval)
    csr_write(VSATP, v.s_vsatp)
    hvip = v.s_hvip
    if hart_has_sstc():
        csr_write(VSTIMECMP, v.s_vstimecmp)
    elif v.timer_deadline <= csr_read(TIME):
        v.timer_deadline = ~u64(0)
        hvip |= MIP_VSTIP
    csr_write(HVIP, hvip)
    if hart_has_guest_files():
        csr_write(VSISELECT, v.s_vsiselect)


def vcpu_leave(v: Ptr[Vcpu]) -> None:
    """v leaves its hart (it waits, was preempted, was stopped, or its VM ended): its VS-level state is kept for
    its next entry (vcpu_restore), it translates nothing any more, and nothing of it may wake the hart (its VS
    interrupts in hie and hvip, its timer), or the hart's WFI would return at once, forever. hgatp is cleared
    before `running` is: whoever waits for `running` to clear (core/vm.py vm_call_off) may then free the VM's
    stage-2 tables (VM_REMOVE), which this hart no longer names."""
    rq = sched_rq(v.hart)
    rq.left_instret = csr_read(INSTRET)
    rq.left = v
    fpu_leave(v)  # its FP and vector registers, if it dirtied them (another vCPU may run here next)
    v.s_vsstatus = csr_read(VSSTATUS)
    v.s_vsie = csr_read(VSIE)
    v.s_vstvec = csr_read(VSTVEC)
    v.s_vsscratch = csr_read(VSSCRATCH)
    v.s_vsepc = csr_read(VSEPC)
    v.s_vscause = csr_read(VSCAUSE)
    v.s_vstval = csr_read(VSTVAL)
    v.s_vsatp = csr_read(VSATP)
    v.s_hvip = csr_read(HVIP)
    v.s_spp = csr_read(SSTATUS) & SSTATUS_SPP  # as its trap left it (Priv 9.6: sstatus.SPP, hstatus.SPVP)
    if hart_has_sstc():
        v.s_vstimecmp = csr_read(VSTIMECMP)
        csr_write(VSTIMECMP, ~u64(0))
    if hart_has_guest_files():
        v.s_vsiselect = csr_read(VSISELECT)
    csr_write(HGATP, u64(0))
    fence()
    amoswap_w(addr_of(v.running), u32(0))
    vcpu_fence_notify(v)  # a requester waiting for its fence has nothing more to wait for
    # A guest VM that ended by itself is reported once it is settled, every vCPU off its hart (core/gvm.py
    # gvm_settled): the kick at its end (core/vm.py vm_end_claimed) may have come before this vCPU left, so the
    # last to leave kicks again (a stale read of a VM slot removed meanwhile only costs a spurious kick).
    if amoadd_w(addr_of(vcpu_vm(v).event), u32(0)) != 0:
        vm_wake_mvm()
    csr_write(HIE, u64(0))
    csr_write(HVIP, u64(0))
    irqc_vcpu_leave()


def hart_wait_files(files: u64) -> None:
    """The hart sleeps with no vCPU on it: an MSI into one of these guest interrupt files (its waiting vCPUs')
    wakes it (hgeie and hie.SGEIE, Priv 9.2.4)."""
    if hart_has_guest_files():
        csr_write(HGEIE, files)
        csr_write(HIE, MIP_SGEIP if files != 0 else u64(0))


def vcpu_hart_init() -> None:
    """No VS-level interrupt until a vCPU runs here (vcpu_run enables them in hie, which also lets them wake a
    hart waiting in WFI)."""
    csr_write(HIE, u64(0))
    csr_write(HVIP, u64(0))
