"""Trap-and-emulate MMIO: a guest-page fault inside an emulated device's window is decoded (htinst, or the
instruction read back with hlvx when htinst is zero: Priv 9.4.4 and 9.2.x) and performed by the device's
emulator; the guest then continues after the instruction.

The device is the one the VM registered for that address (core/emul.py): its virtual interrupt controller
(arch/riscv/irqc.py), the statistics page (core/stats.py). The access is decoded here, once, and the device model
sees only offset, width, direction and value (an LW or SW goes to the region's word handlers, which take and give
the value in registers: core/vm.py EmulMem). An access a device cannot do is the guest's mistake: it gets an
access fault (trap.py), the VM runs on."""

from compiler.prelude import (
    HTINST,
    HTVAL,
    STVAL,
    Array,
    Final,
    Ptr,
    addr_of,
    csr_read,
    extern,
    i64,
    inline,
    noinline,
    u32,
    u64,
)
from hypervisor.arch.riscv.mmio_decode import (
    INSN_LW,
    INSN_SW,
    INSN_WORD_MASK,
    TINST_LW,
    TINST_SW,
    TINST_WORD_MASK,
    mmio_store_bits,
    mmio_transform_insn,
    tinst_insn_len,
    tinst_is_store,
    tinst_load_value,
    tinst_ok,
    tinst_rd,
    tinst_width,
)
from hypervisor.board import MMIO_DECODE_FETCH
from hypervisor.core.emul import EMUL_DONE, EMUL_FAULT, EMUL_KEPT, EMUL_NONE, emul_find
from hypervisor.core.vm import REGS_LOAD_KEPT, REGS_SAVE_KEPT, EmulMem, Vcpu, vcpu_vm

# The guest's kept registers: gp, tp, s1, s2..s11, which runtime/trap.S neither saves on entry nor reloads on its
# short way back (the calling convention keeps s1..s11 through the hypervisor's calls; it never uses gp and tp).
# A load into one leaves its value to trap.S, which saves them, writes it over rd and reloads all 31
# (REGS_LOAD_KEPT); a store from one is performed once they are saved (Vcpu.kept_saved: else EMUL_KEPT, and
# trap.S saves them and takes the trap again).
REGS_KEPT: Final = (u64(1) << 3) | (u64(1) << 4) | (u64(1) << 9) | (u64(0x3FF) << 18)


@extern("hyp_guest_fetch_insn")
def guest_fetch_insn(gva: u64) -> u64:
    """runtime/trap.S: the instruction at gva read as the hart fetches it (hlvx.wu at a 4-byte-aligned address,
    else hlvx.hu once or twice), ~0 instead of a fault in the hypervisor. Only its low 16 bits count when its
    bits 1:0 are not 11 (a 16-bit instruction: at an aligned address the halfword after it comes along)."""
    ...


@inline
def mmio_emulate(v: Ptr[Vcpu]) -> u64:
    """Emulate the guest's trapped load or store (a load or store guest-page fault: scause 21 or 23) if one of
    the VM's emulated regions covers its guest-physical address, htval << 2 | stval[1:0] (Priv 9.4.4; core/emul.py):
    EMUL_DONE, the guest goes on after the instruction (or takes it again: mmio_emulate_insn); EMUL_FAULT, the
    region is there but cannot do this access (an instruction the decoder does not know, an AMO, or a width or
    alignment the device refuses); EMUL_NONE, no region is there, or the hart gave no address (htval 0: the
    address is then below every region, EMUL_BASE_MIN); EMUL_KEPT, not performed: a store from a kept register
    runtime/trap.S has not saved yet (REGS_KEPT, mmio_kept). scause, stval and htval are left as the trap set them.

    The way is kept short (`just bench-trap` measures it): inlined into trap.py hyp_guest_mmio, one frame from
    runtime/trap.S to the device; LW and SW (and their compressed forms), the accesses of 32-bit device
    registers, take no general decode; the handler is their one call, with only v live across it. The access
    stays one word, the transformed instruction (mmio_decode.py). Without htinst (or in a build that decodes by
    fetch: board MMIO_DECODE_FETCH) the instruction is read back from the guest (mmio_emulate_insn)."""
    if MMIO_DECODE_FETCH != 0:
        # read first, so that only v lives across the call (an access outside every region reads it for nothing);
        # a read that faulted changed htval and stval too: the guest takes its instruction again (mmio_emulate_insn)
        insn = guest_fetch_insn(v.sepc)
        if insn == ~u64(0):
            return EMUL_DONE
        gpa = (csr_read(HTVAL) << 2) | (csr_read(STVAL) & 3)
        e = emul_find(vcpu_vm(v), gpa)
        if e.addr() == 0:
            return EMUL_NONE
        v.mmio_exits += 1
        return mmio_emulate_insn(v, e, gpa - e.base, insn)
    gpa = (csr_read(HTVAL) << 2) | (csr_read(STVAL) & 3)
    e = emul_find(vcpu_vm(v), gpa)
    if e.addr() == 0:
        return EMUL_NONE
    v.mmio_exits += 1
    t = csr_read(HTINST)
    if t == 0:
        # no transformed instruction (Priv 9.4.4): read the guest's own
        return mmio_emulate_fetched(v, e, gpa - e.base)
    if t & TINST_WORD_MASK == TINST_LW:
        return mmio_perform_load(v, e, gpa - e.base, t, True)
    if t & TINST_WORD_MASK == TINST_SW:
        return mmio_perform_store(v, e, gpa - e.base, t, True)
    return mmio_emulate_transformed(v, e, gpa - e.base, t)


@inline
def mmio_emulate_insn(v: Ptr[Vcpu], e: Ptr[EmulMem], offset: u64, insn: u64) -> u64:
    """mmio_emulate's access from the instruction read back from the guest (guest_fetch_insn). A 32-bit LW or
    SW is its own transformed instruction as far as mmio_perform_load and mmio_perform_store read it (opcode
    and funct3, rd or rs2, bit 1 set: INSN_LW, INSN_SW), so it takes no transform; anything else goes through
    mmio_transform_insn. A read that faulted (~0: another vCPU unmapped the page meanwhile) performs nothing and
    leaves sepc: the guest takes the instruction again, and its own fetch then faults as the hart decides."""
    if insn & INSN_WORD_MASK == INSN_LW:
        return mmio_perform_load(v, e, offset, insn, True)
    if insn & INSN_WORD_MASK == INSN_SW:
        return mmio_perform_store(v, e, offset, insn, True)
    return mmio_emulate_raw(v, e, offset, insn)


@noinline
def mmio_emulate_raw(v: Ptr[Vcpu], e: Ptr[EmulMem], offset: u64, insn: u64) -> u64:
    """mmio_emulate_insn off its common case (out of line): a read that faulted, or an instruction to transform."""
    if insn == ~u64(0):
        return EMUL_DONE
    return mmio_emulate_transformed(v, e, offset, mmio_transform_insn(insn))


@noinline
def mmio_emulate_fetched(v: Ptr[Vcpu], e: Ptr[EmulMem], offset: u64) -> u64:
    """mmio_emulate's access when the hart gave no htinst: the instruction read back from the guest (out of
    line: with htinst the hot path makes no such call)."""
    v.mmio_fetched += 1
    done = mmio_emulate_insn(v, e, offset, guest_fetch_insn(v.sepc))
    if done == EMUL_KEPT:
        v.mmio_fetched -= 1  # counted when the trap is taken again
    return done


@noinline
def mmio_emulate_transformed(v: Ptr[Vcpu], e: Ptr[EmulMem], offset: u64, t: u64) -> u64:
    """mmio_emulate's general case, any load or store the decoder knows (out of line): `t` a transformed
    instruction, 0 (refused) when the instruction read back was none."""
    if not tinst_ok(t):
        return EMUL_FAULT
    if tinst_is_store(t):
        return mmio_perform_store(v, e, offset, t, False)
    return mmio_perform_load(v, e, offset, t, False)


@noinline
def mmio_kept(v: Ptr[Vcpu]) -> None:
    """mmio_emulate answered EMUL_KEPT: runtime/trap.S is to save the kept registers and take the trap again,
    which counts it then (Priv 9.4.4: scause, stval, htval and htinst are unchanged until the guest runs)."""
    v.mmio_exits -= 1
    v.regs_written = u32(REGS_SAVE_KEPT)


@inline
def mmio_perform_load(v: Ptr[Vcpu], e: Ptr[EmulMem], offset: u64, t: u64, word: bool) -> u64:
    """The decoded load `t` (a transformed instruction: mmio_decode.py) at `offset` in region `e`: the device's
    handler reads, the value goes to rd, sepc moves past the instruction. `word` (a constant at each call): `t`
    is an LW (TINST_LW or INSN_LW), 4 bytes sign-extended from bit 31 (Unprivileged 2.6), which the region's
    read32 gives in a register (EmulMem), so nothing of its width is decoded. Only v lives across the handler:
    the access waits in v.mmio_access, which the compiler must read again after the call (the handler has v),
    so nothing derived from it is kept in a callee-saved register (each costs a save and a restore). A kept
    register's value waits in v.mmio_value: runtime/trap.S saves the kept registers first, then writes it over
    rd (REGS_LOAD_KEPT)."""
    v.mmio_access = t
    if word:
        loaded = e.read32(v, e.addr(), offset)  # sign-extended already, or EMUL_WORD_FAULT
        if u64(i64(loaded << 32) >> 32) != loaded:
            return EMUL_FAULT
    else:
        value = Array[u64, 1]()
        if e.handler(v, offset, tinst_width(t), False, addr_of(value[0])) != EMUL_DONE:
            return EMUL_FAULT
        loaded = tinst_load_value(v.mmio_access, value[0])
    t = v.mmio_access
    reg = tinst_rd(t)
    if (u64(1) << reg) & (REGS_KEPT | 1) == 0:
        v.regs[reg] = loaded
    elif reg != 0:  # x0 stays 0
        v.mmio_value = loaded
        v.regs_written = u32(REGS_LOAD_KEPT)
    v.sepc += tinst_insn_len(t)
    return EMUL_DONE


@inline
def mmio_perform_store(v: Ptr[Vcpu], e: Ptr[EmulMem], offset: u64, t: u64, word: bool) -> u64:
    """The decoded store `t` at `offset` in region `e`: the low `width` bytes of rs2 to the device's handler,
    sepc past the instruction. `word` (a constant at each call): `t` is an SW (TINST_SW or INSN_SW), 4 bytes,
    to the region's write32 (EmulMem).
    A kept register's value is there only once runtime/trap.S has saved them (EMUL_KEPT until then)."""
    reg = (t >> 20) & 0x1F
    if (u64(1) << reg) & REGS_KEPT != 0 and v.kept_saved == 0:
        return EMUL_KEPT
    v.mmio_access = t
    if word:
        done = e.write32(v, e.addr(), offset, v.regs[reg])
    else:
        width = tinst_width(t)
        value = Array[u64, 1]()
        value[0] = mmio_store_bits(width, v.regs[reg])
        done = e.handler(v, offset, width, True, addr_of(value[0]))
    if done != EMUL_DONE:
        return EMUL_FAULT
    v.sepc += tinst_insn_len(v.mmio_access)
    return EMUL_DONE
