"""Trap-and-emulate MMIO: a guest-page fault inside an emulated device's window is decoded (htinst, or the
instruction read back with hlvx.hu when htinst is zero: Priv 9.4.4 and 9.2.x) and performed by the device's
emulator; the guest then continues after the instruction."""

from compiler.prelude import HTINST, Array, Ptr, addr_of, csr_read, hlvx_hu, u64
from hypervisor.arch.riscv.mmio_decode import MmioAccess, mmio_decode, mmio_insn_len, mmio_load_value, mmio_store_value
from hypervisor.board import IRQ_MODE, IRQ_MODE_AIA, MVM_APLIC_BASE, MVM_APLIC_SIZE, MVM_PLIC_BASE, MVM_PLIC_SIZE
from hypervisor.core.vaplic import vaplic_access_ok, vaplic_read, vaplic_write
from hypervisor.core.virq import virq_guest_completed, virq_lock, virq_unlock, virq_update, virq_vplic
from hypervisor.core.vm import Vcpu, vcpu_vm
from hypervisor.core.vplic import vplic_access_ok, vplic_read, vplic_write


def mmio_fetch(v: Ptr[Vcpu]) -> u64:
    """The trapping instruction, read as the guest sees it (hlvx.hu: execute permission, VS translation)."""
    lo = hlvx_hu(v.sepc)
    if mmio_insn_len(lo) == 2:
        return lo
    return lo | (hlvx_hu(v.sepc + 2) << 16)


def mmio_decode_trap(v: Ptr[Vcpu], a: Ptr[MmioAccess]) -> bool:
    htinst = csr_read(HTINST)
    insn = u64(0)
    if htinst & 1 == 0:
        insn = mmio_fetch(v)
    return mmio_decode(htinst, insn, a)


def mmio_emulate(v: Ptr[Vcpu], gpa: u64) -> bool:
    """Emulate the access at gpa if an emulated device covers it; false: nothing there (the caller faults)."""
    vm = vcpu_vm(v)
    if vm.id != 0:
        return False
    if IRQ_MODE == IRQ_MODE_AIA:
        return mmio_emulate_aplic(v, gpa)
    if gpa < MVM_PLIC_BASE or gpa - MVM_PLIC_BASE >= MVM_PLIC_SIZE:
        return False
    acc = Array[MmioAccess, 1]()
    a = addr_of(acc[0])
    if not mmio_decode_trap(v, a):
        return False
    offset = gpa - MVM_PLIC_BASE
    if not vplic_access_ok(offset, a.width):
        return False
    virq_lock()
    if a.is_store:
        done = vplic_write(virq_vplic(), offset, a.width, mmio_store_value(a, v.regs[a.reg]))
        virq_unlock()
        if done != 0:
            virq_guest_completed(done)
    else:
        value = vplic_read(virq_vplic(), offset, a.width)
        virq_unlock()
        if a.reg != 0:
            v.regs[a.reg] = mmio_load_value(a, value)
    virq_update(vm, v)
    v.sepc += a.insn_len
    return True


def mmio_emulate_aplic(v: Ptr[Vcpu], gpa: u64) -> bool:
    if gpa < MVM_APLIC_BASE or gpa - MVM_APLIC_BASE >= MVM_APLIC_SIZE:
        return False
    acc = Array[MmioAccess, 1]()
    a = addr_of(acc[0])
    if not mmio_decode_trap(v, a):
        return False
    offset = gpa - MVM_APLIC_BASE
    if not vaplic_access_ok(offset, a.width):
        return False
    virq_lock()
    if a.is_store:
        vaplic_write(offset, mmio_store_value(a, v.regs[a.reg]))
    else:
        value = vaplic_read(offset)
        if a.reg != 0:
            v.regs[a.reg] = mmio_load_value(a, value)
    virq_unlock()
    v.sepc += a.insn_len
    return True
