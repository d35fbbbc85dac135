"""Trap-and-emulate MMIO: a guest-page fault inside an emulated device's window is decoded (htinst, or the
instruction read back with hlvx.hu when htinst is zero: Priv 9.4.4 and 9.2.x) and performed by the device's
emulator; the guest then continues after the instruction.

The device is the one the VM registered for that address (core/emul.py): its virtual interrupt controller
(arch/riscv/irqc.py), the statistics page (core/stats.py). The access is decoded here, once, and the device model
sees only offset, width, direction and value. An access a device cannot do is the guest's mistake: it gets an
access fault (trap.py), the VM runs on."""

from compiler.prelude import HTINST, HTVAL, STVAL, Array, Final, Ptr, addr_of, csr_read, extern, noinline, u32, u64
from hypervisor.arch.riscv.mmio_decode import (
    ACC_REG_MASK,
    ACC_SIGN,
    ACC_STORE,
    acc_insn_len,
    acc_width,
    mmio_decode_htinst,
    mmio_decode_insn,
    mmio_insn_len,
    mmio_load_bits,
    mmio_store_bits,
)
from hypervisor.board import MMIO_DECODE_FETCH
from hypervisor.core.emul import EMUL_DONE, EMUL_FAULT, EMUL_NONE, emul_find
from hypervisor.core.vm import Vcpu, vcpu_vm

# The guest registers runtime/trap.S's short way back does not reload (it reloads those the calling convention
# lets hyp_guest_trap change): gp, tp, s1, s2..s11. A load into one of them sets Vcpu.regs_written.
REGS_NOT_RELOADED: Final = (u64(1) << 3) | (u64(1) << 4) | (u64(1) << 9) | (u64(0x3FF) << 18)


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


@noinline
def mmio_fetch_decode(v: Ptr[Vcpu]) -> u64:
    """The access without htinst, packed (mmio_decode.py), or 0: the instruction read back from the guest (out
    of line: the reads are calls, and with htinst the hot path makes none)."""
    v.mmio_fetched += 1
    return mmio_decode_insn(mmio_fetch(v))


@noinline
def mmio_emulate(v: Ptr[Vcpu]) -> u64:
    """Emulate the guest's trapped load or store (a load or store guest-page fault: scause 21 or 23) if one of
    the VM's emulated regions covers its guest-physical address, htval << 2 | stval[1:0] (Priv 9.4.4; core/emul.py):
    EMUL_DONE, the guest goes on after the instruction; EMUL_FAULT, the region is there but cannot do this
    access (an instruction the decoder does not know, an AMO, or a width or alignment the device refuses);
    EMUL_NONE, no region is there, or the hart gave no address (htval 0). scause, stval and htval are left as
    the trap set them (a guest read that faults restores them: runtime/trap.S)."""
    htval = csr_read(HTVAL)
    if htval == 0:
        return EMUL_NONE
    gpa = (htval << 2) | (csr_read(STVAL) & 3)
    e = emul_find(vcpu_vm(v), gpa)
    if e.addr() == 0:
        return EMUL_NONE
    v.mmio_exits += 1
    htinst = csr_read(HTINST) if MMIO_DECODE_FETCH == 0 else u64(0)
    # no transformed instruction (Priv 9.4.4): read the guest's own
    acc = mmio_decode_htinst(htinst) if htinst != 0 else mmio_fetch_decode(v)
    if acc == 0:
        return EMUL_FAULT
    reg = acc & ACC_REG_MASK
    width = acc_width(acc)
    store = acc & ACC_STORE != 0
    value = Array[u64, 1]()
    if store:
        value[0] = mmio_store_bits(width, v.regs[reg])
    if e.handler(v, gpa - e.base, width, store, addr_of(value[0])) != EMUL_DONE:
        return EMUL_FAULT
    if not store and reg != 0:
        v.regs[reg] = mmio_load_bits(width, acc & ACC_SIGN != 0, value[0])
        if (u64(1) << reg) & REGS_NOT_RELOADED != 0:
            v.regs_written = u32(1)  # trap.S reloads them all
    v.sepc += acc_insn_len(acc)
    return EMUL_DONE
