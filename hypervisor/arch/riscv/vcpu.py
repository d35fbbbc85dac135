"""A vCPU on its hart (Priv 9.2, 9.6): entering it from the hypervisor, and parking its hart when it leaves.

runtime/trap.S `hyp_vcpu_enter` loads the guest's registers and srets into it; every trap from the guest starts
again at the top of the hart's stack (Vcpu.hyp_sp), so an entry never nests in an earlier one.
"""

from compiler.prelude import (
    HGATP,
    HIE,
    HSTATUS,
    HVIP,
    SSTATUS,
    VSATP,
    VSSTATUS,
    VSTIMECMP,
    Ptr,
    addr_of,
    amoadd_d,
    amoadd_w,
    amoswap_d,
    amoswap_w,
    csr_clear,
    csr_read,
    csr_write,
    extern,
    fence,
    fence_i,
    hfence_gvma_vmid,
    hfence_vvma,
    u32,
    u64,
)
from hypervisor.arch.riscv.encoding import (
    HIE_GUEST,
    HSTATUS_SPV,
    HSTATUS_SPVP,
    HSTATUS_VSXL,
    HSTATUS_VTW,
    SSTATUS_SIE,
    SSTATUS_SPIE,
    SSTATUS_SPP,
)
from hypervisor.arch.riscv.fpu import fpu_enter
from hypervisor.arch.riscv.irqc import irqc_vcpu_enter, irqc_vcpu_leave
from hypervisor.arch.riscv.sbi_call import sbi_set_timer
from hypervisor.arch.riscv.stage2 import stage2_hgatp
from hypervisor.arch.riscv.vsbi import vcpu_handle_messages
from hypervisor.core.hart import hart_has_sstc
from hypervisor.core.vm import VCPU_STARTED, VM_RUNNING, Vcpu, vcpu_vm


@extern("hyp_vcpu_enter")
def vcpu_enter(v: Ptr[Vcpu]) -> None:
    """runtime/trap.S: load the vCPU's registers and sret into it; never returns."""
    ...


def vcpu_run(v: Ptr[Vcpu]) -> None:
    """Enter a vCPU on this hart (Priv 9.2: hgatp, hstatus.SPV/SPVP, sstatus.SPP). Returns only when the vCPU
    must not run after all: its VM is ending, or it was stopped, which is checked after `running` is published
    (vm_end stores the VM's state first, then waits for `running` to clear: one of the two sees the other)."""
    vm = vcpu_vm(v)
    amoswap_w(addr_of(v.running), u32(1))
    if vm.state != VM_RUNNING or amoadd_w(addr_of(vm.ending), u32(0)) != 0 or v.state != VCPU_STARTED:
        amoswap_w(addr_of(v.running), u32(0))
        return
    asked = amoadd_d(addr_of(v.fence_req), u64(0))
    csr_write(HGATP, stage2_hgatp(vm.stage2_root, vm.vmid))
    hfence_gvma_vmid(vm.vmid)
    hfence_vvma()  # the current VMID's, now vm's (rs2 of hfence.vvma would be a guest ASID)
    fence_i()
    amoswap_d(addr_of(v.fence_done), asked)  # every remote fence asked of it until now is served
    csr_write(VSATP, u64(0))
    csr_clear(VSSTATUS, SSTATUS_SIE | SSTATUS_SPIE)  # a started hart has interrupts off (SBI 2.0 section 9.1)
    if hart_has_sstc():
        csr_write(VSTIMECMP, ~u64(0))  # no VS timer interrupt until the guest sets one (reset value is 0)
    csr_write(HVIP, u64(0))
    csr_write(HIE, HIE_GUEST)
    # What other harts asked of the vCPU since it was started, then its interrupt controller's part (its line,
    # its guest interrupt file).
    vcpu_handle_messages(v)
    irqc_bits = irqc_vcpu_enter(v)
    # sret to VS-mode: hstatus.SPV = 1, SPVP = 1; WFI traps (VTW) so a waiting guest does not hold the hart.
    # Built whole, not read-modified-written: nothing a former vCPU or the firmware left (HU, VTVM, VTSR, VSBE,
    # GVA, another VGEIN) carries over; only VSXL, which may be read-only, is kept.
    hstatus = (csr_read(HSTATUS) & HSTATUS_VSXL) | irqc_bits
    csr_write(HSTATUS, hstatus | HSTATUS_SPV | HSTATUS_SPVP | HSTATUS_VTW)
    s = csr_read(SSTATUS) & ~(SSTATUS_SIE | SSTATUS_SPIE)
    csr_write(SSTATUS, s | SSTATUS_SPP)
    # sstatus.FS and .VS must not be Off while V=1, or the guest's own FP and vector use traps (Priv 9.2.10,
    # 3.1.6.6), and the registers must be the vCPU's: a former vCPU's (another VM's) must not show through, as
    # Initial would claim. fpu_enter loads them (zeroed after a reset) unless the hart holds them already, and
    # leaves FS/VS Clean.
    fpu_enter(v)
    vcpu_enter(v)


def hart_park(v: Ptr[Vcpu]) -> None:
    """v leaves its hart (stopped, or its VM ended): it translates nothing any more, and nothing of it may wake
    the hart (its VS interrupts in hie and hvip, its timer), or the hart's WFI would return at once, forever.
    hgatp is cleared before `running` is: whoever waits for `running` to clear (core/vm.py vm_call_off) may then
    free the VM's stage-2 tables (VM_REMOVE), which this hart no longer names."""
    csr_write(HGATP, u64(0))
    fence()
    amoswap_w(addr_of(v.running), u32(0))
    csr_write(HIE, u64(0))
    csr_write(HVIP, u64(0))
    irqc_vcpu_leave()
    if not hart_has_sstc():
        v.timer_deadline = ~u64(0)
        sbi_set_timer(~u64(0))


def vcpu_hart_init() -> None:
    """No VS-level interrupt until a vCPU runs here (vcpu_run enables them in hie, which also lets them wake a
    hart waiting in WFI)."""
    csr_write(HIE, u64(0))
    csr_write(HVIP, u64(0))
