"""Trap-and-emulate MMIO: a guest-page fault inside an emulated device's window is decoded (htinst, or the
instruction read back with hlvx.hu when htinst is zero: Priv 9.4.4 and 9.2.x) and performed by the device's
emulator; the guest then continues after the instruction.

The device is the one the VM registered for that address (core/emul.py): its virtual interrupt controller
(arch/riscv/irqc.py), the statistics page (core/stats.py). The access is decoded here, once, and the device model
sees only offset, width, direction and value. An access a device cannot do is the guest's mistake: it gets an
access fault (trap.py), the VM runs on."""

from compiler.prelude import HTINST, Array, Ptr, addr_of, csr_read, extern, u32, u64
from hypervisor.arch.riscv.mmio_decode import MmioAccess, mmio_decode, mmio_insn_len, mmio_load_value, mmio_store_value
from hypervisor.board import MMIO_DECODE_FETCH
from hypervisor.core.emul import EMUL_DONE, EMUL_FAULT, EMUL_NONE, emul_find
from hypervisor.core.vm import Vcpu, vcpu_vm


@extern("hyp_guest_hlvx_hu")
def guest_hlvx_hu(gva: u64) -> u64:
    """runtime/trap.S: hlvx.hu that returns ~0 instead of faulting in the hypervisor."""
    ...


def mmio_fetch(v: Ptr[Vcpu]) -> u64:
    """The trapping instruction, read as the guest sees it (hlvx.hu: execute permission, VS translation);
    0 (an illegal encoding, which does not decode) when the guest's page is gone."""
    lo = guest_hlvx_hu(v.sepc)
    if lo == ~u64(0):
        return u64(0)
    if mmio_insn_len(lo) == 2:
        return lo
    hi = guest_hlvx_hu(v.sepc + 2)
    if hi == ~u64(0):
        return u64(0)
    return lo | (hi << 16)


def mmio_decode_trap(v: Ptr[Vcpu], a: Ptr[MmioAccess]) -> bool:
    v.mmio_exits += 1
    htinst = csr_read(HTINST) if MMIO_DECODE_FETCH == 0 else u64(0)
    insn = u64(0)
    if htinst & 1 == 0:  # no transformed instruction (Priv 9.4.4): read the guest's own
        insn = mmio_fetch(v)
        v.mmio_fetched += 1
    return mmio_decode(htinst, insn, a)


def mmio_emulate(v: Ptr[Vcpu], gpa: u64) -> u64:
    """Emulate the access at gpa if one of the VM's emulated regions covers it (core/emul.py): EMUL_DONE, the
    guest goes on after the instruction; EMUL_FAULT, the region is there but cannot do this access (an
    instruction the decoder does not know, an AMO, or a width or alignment the device refuses); EMUL_NONE, no
    region is there."""
    e = emul_find(vcpu_vm(v), gpa)
    if e.addr() == 0:
        return EMUL_NONE
    acc = MmioAccess()
    a = addr_of(acc)
    if not mmio_decode_trap(v, a):
        return EMUL_FAULT
    value = Array[u64, 1]()
    if a.is_store:
        value[0] = mmio_store_value(a, v.regs[a.reg])
    if e.handler(v, gpa - e.base, a.width, a.is_store, addr_of(value[0])) != EMUL_DONE:
        return EMUL_FAULT
    if not a.is_store and a.reg != 0:
        v.regs[a.reg] = mmio_load_value(a, value[0])
        v.regs_written = u32(1)  # any register: trap.S reloads them all
    v.sepc += a.insn_len
    return EMUL_DONE
