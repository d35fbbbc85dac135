"""Decoding of a trapped guest load or store, for MMIO emulation (a guest-page fault on an emulated device).

The access is decoded from `htinst` when the hart gives a transformed instruction (RISC-V Privileged spec 1.12,
section 8.6.3 / 18.6.3 "Transformed Instruction or Pseudoinstruction for mtinst or htinst"), otherwise from the
trapping instruction itself, which the caller reads from guest memory at `sepc` with `hlvx.hu` (one halfword, then a
second one when `mmio_insn_len` of the first says 4).

Supported: LB LH LW LD LBU LHU LWU SB SH SW SD (RV64I, Unprivileged spec chapter 2 and 5) and C.LW C.LD C.SW C.SD
C.LWSP C.LDSP C.SWSP C.SDSP (RV64C, Unprivileged spec chapter 16). Everything else (floating-point loads and
stores, AMOs, LR/SC, vector, reserved encodings, the htinst pseudoinstructions) is refused with `False`: the caller
then injects an access fault into the guest.
"""

from compiler.prelude import Final, Ptr, i64, inline, struct, u64

OPCODE_LOAD: Final = u64(0x03)  # LB LH LW LD LBU LHU LWU (funct3 0..6)
OPCODE_STORE: Final = u64(0x23)  # SB SH SW SD (funct3 0..3)

INSN_LEN_16: Final = u64(2)
INSN_LEN_32: Final = u64(4)


@struct
class MmioAccess:
    width: u64  # bytes: 1, 2, 4 or 8
    reg: u64  # the guest register: rd of a load, rs2 of a store (0..31)
    insn_len: u64  # 2 (compressed) or 4: how far to advance sepc after emulation
    is_store: bool
    sign_extend: bool  # a load whose value is sign-extended to XLEN (LB LH LW, C.LW, C.LWSP)


def mmio_insn_len(first_half: u64) -> u64:
    """The length of an instruction from its first halfword: 4 when bits 1:0 are 11 (Unprivileged spec 1.5,
    "Base Instruction-Length Encoding"), otherwise 2. Longer (48-bit and up) encodings also report 4 here;
    `mmio_decode` refuses them."""
    if first_half & 3 == 3:
        return INSN_LEN_32
    return INSN_LEN_16


# The access is kept in one word, in the form of a transformed instruction (Priv spec 18.6.3): the 32-bit
# LOAD or STORE with its opcode (bits 6:0), funct3 (14:12: the width and, for a load, the extension), rd (11:7)
# or rs2 (24:20); bit 1 is clear when the guest's instruction was compressed (2 bytes long). htinst gives it as
# is; an instruction read back from the guest is transformed into it (`mmio_transform_insn`), so both decode
# the same way and the trap path keeps one register across the device's handler. 0 is refused.
TINST_STORE: Final = u64(0x20)  # opcode bit 5: STORE (0x23) rather than LOAD (0x03)
TINST_LONG: Final = u64(2)  # bit 1: the trapping instruction was 32 bits long


# LW and SW and their compressed forms (C.LW, C.LWSP, C.SW, C.SWSP) as a transformed instruction: opcode LOAD or
# STORE with bit 1 either way, bit 0 set, funct3 2 (rd or rs2, and the address offset in rs1's place, any). Every
# register of the interrupt controllers and of virtio-mmio is 32 bits wide, so these are the accesses emulated
# devices see most: mmio.py takes them without the general decode (`tinst_ok` accepts them too).
TINST_WORD_MASK: Final = u64(0x707D)
TINST_LW: Final = u64(0x2001)
TINST_SW: Final = u64(0x2021)

# The 32-bit LW and SW as the guest's own instruction (Unprivileged 2.6: opcode LOAD 0x03 or STORE 0x23, funct3 2):
# read back from the guest, each is its own transformed instruction as far as the word paths of mmio.py read it
# (bits 6:0, 14:12, rd in 11:7 or rs2 in 24:20; the immediate and rs1 they do not read).
INSN_WORD_MASK: Final = u64(0x707F)
INSN_LW: Final = u64(0x2003)
INSN_SW: Final = u64(0x2023)


@inline
def tinst_ok(t: u64) -> bool:
    """Whether a transformed instruction is an integer load or store this decoder knows: bit 0 clear is a
    pseudoinstruction (a fault of the implicit VS-stage page-table access) or a custom value, not an access
    of the instruction; LOAD funct3 7 is reserved (LDU on RV128); STORE funct3 4..7 are not RV64's."""
    opcode = (t | TINST_LONG) & 0x7F
    funct3 = (t >> 12) & 7
    return (opcode == OPCODE_LOAD and funct3 != 7) or (opcode == OPCODE_STORE and funct3 <= 3)


@inline
def tinst_width(t: u64) -> u64:
    """Bytes accessed: 1 << funct3[1:0] (B H W D), read from a table of nibbles (4 * funct3[1:0] is bits 13:12
    shifted up by two) so that the trap path keeps no shift count across the device's handler."""
    return (u64(0x8421) >> ((t >> 10) & 0xC)) & 0xF


@inline
def tinst_load_value(t: u64, raw: u64) -> u64:
    """The value a load of transformed instruction `t` writes to its register from the device's `raw` value:
    its low bytes, sign-extended for LB LH LW (funct3 bit 2 clear), zero-extended for LBU LHU LWU. The bits
    above the access (64 - 8 * width: 56, 48, 32, 0 by funct3[1:0], a table of bytes) are shifted out and back
    in; LD shifts by 0."""
    unused = (u64(0x00203038) >> ((t >> 9) & 0x18)) & 0xFF
    if t & (u64(1) << 14) == 0:
        return u64(i64(raw << unused) >> unused)
    return (raw << unused) >> unused


@inline
def tinst_is_store(t: u64) -> bool:
    return t & TINST_STORE != 0


@inline
def tinst_reg(t: u64) -> u64:
    """The guest register: rs2 of a store, rd of a load."""
    if t & TINST_STORE != 0:
        return (t >> 20) & 0x1F
    return tinst_rd(t)


@inline
def tinst_rd(t: u64) -> u64:
    """A load's rd (bits 11:7): tinst_reg when `t` is known to be a load."""
    return (t >> 7) & 0x1F


@inline
def tinst_sign_extend(t: u64) -> bool:
    """LB LH LW (funct3 0..2) sign-extend; LD (3) needs no extension on RV64; LBU LHU LWU (4..6) zero-extend."""
    return t & TINST_STORE == 0 and (t >> 12) & 7 < 3


@inline
def tinst_insn_len(t: u64) -> u64:
    """How far sepc moves past the emulated instruction: 4, or 2 for a compressed one."""
    return INSN_LEN_16 + (t & TINST_LONG)


@inline
def tinst_load(funct3: u64, rd: u64, long: u64) -> u64:
    return (OPCODE_LOAD & ~TINST_LONG) | long | (funct3 << 12) | (rd << 7)


@inline
def tinst_store(funct3: u64, rs2: u64, long: u64) -> u64:
    return (OPCODE_STORE & ~TINST_LONG) | long | (funct3 << 12) | (rs2 << 20)


def mmio_transform_16(insn: u64) -> u64:
    """A compressed load or store (Unprivileged spec 16.3 "Load and Store Instructions") as its transformed
    32-bit equivalent with bit 1 clear, or 0 if it is neither: quadrant in bits 1:0, funct3 in bits 15:13. CL/CS
    forms name x8..x15 with 3-bit fields (rd' bits 4:2, rs2' bits 4:2); the stack-pointer forms name any register
    (rd bits 11:7, rs2 bits 6:2)."""
    quadrant = insn & 3
    funct3 = (insn >> 13) & 7
    if quadrant == 0:
        reg_c = ((insn >> 2) & 7) + 8
        if funct3 == 2 or funct3 == 3:  # C.LW: lw rd', offset(rs1'); C.LD (RV64)
            return tinst_load(funct3, reg_c, u64(0))
        if funct3 == 6 or funct3 == 7:  # C.SW: sw rs2', offset(rs1'); C.SD (RV64)
            return tinst_store(funct3 - 4, reg_c, u64(0))
        return 0  # C.ADDI4SPN, C.FLD, C.FSD, reserved
    if quadrant == 2:
        rd = (insn >> 7) & 0x1F
        if funct3 == 2 or funct3 == 3:  # C.LWSP, C.LDSP (RV64): rd = x0 is reserved
            if rd == 0:
                return 0
            return tinst_load(funct3, rd, u64(0))
        if funct3 == 6 or funct3 == 7:  # C.SWSP, C.SDSP (RV64)
            return tinst_store(funct3 - 4, (insn >> 2) & 0x1F, u64(0))
        return 0  # C.SLLI, C.FLDSP, C.JR/C.MV/C.ADD..., C.FSDSP
    return 0  # quadrant 1 has no loads or stores


def mmio_transform_insn(insn: u64) -> u64:
    """The instruction read at sepc (16 bits, or 32 when its bits 1:0 are 11) as the transformed instruction
    htinst would have given (Priv spec 18.6.3), or 0 when it is no load or store this decoder knows."""
    if insn & 3 != 3:
        return mmio_transform_16(insn & 0xFFFF)
    if insn & 0x1C == 0x1C:
        return 0  # 48-bit and longer encodings (bits 4:2 = 111)
    t = insn & 0xFFFFFFFF
    if not tinst_ok(t):
        return 0
    if t & TINST_STORE != 0:
        return tinst_store((t >> 12) & 7, (t >> 20) & 0x1F, TINST_LONG)
    return tinst_load((t >> 12) & 7, (t >> 7) & 0x1F, TINST_LONG)


def mmio_decode(htinst: u64, insn: u64, out: Ptr[MmioAccess]) -> bool:
    """Decode the access of a guest load/store that trapped; fills `out` and gives True, or gives False when
    it is not an emulatable integer load or store (`out` is then unspecified).

    `htinst` non-zero: the transformed instruction; zero: `insn` is the instruction read at sepc
    (`mmio_transform_insn`)."""
    t = htinst & 0xFFFFFFFF if htinst != 0 else mmio_transform_insn(insn)
    if not tinst_ok(t):
        return False
    out.is_store = tinst_is_store(t)
    out.width = tinst_width(t)
    out.sign_extend = tinst_sign_extend(t)
    out.reg = tinst_reg(t)
    out.insn_len = tinst_insn_len(t)
    return True


@inline
def mmio_load_bits(width: u64, sign_extend: bool, raw: u64) -> u64:
    """The low `width` bytes of `raw`, sign-extended to 64 bits when asked, zero-extended otherwise."""
    if width >= 8:
        return raw
    unused = 64 - width * 8  # the bits above the access: shifted out, then back in as zeros or copies of its top
    if sign_extend:
        return u64(i64(raw << unused) >> unused)
    return (raw << unused) >> unused


@inline
def mmio_store_bits(width: u64, reg_value: u64) -> u64:
    """The low `width` bytes of a store's source register."""
    if width >= 8:
        return reg_value
    return reg_value & ((u64(1) << (width * 8)) - 1)


def mmio_load_value(acc: Ptr[MmioAccess], raw: u64) -> u64:
    """The value a load writes to its register: the low `width` bytes of the device's `raw` value,
    sign-extended to 64 bits for LB LH LW (and their compressed forms), zero-extended otherwise."""
    return mmio_load_bits(acc.width, acc.sign_extend, raw)


def mmio_store_value(acc: Ptr[MmioAccess], reg_value: u64) -> u64:
    """The value a store writes to the device: the low `width` bytes of its source register."""
    return mmio_store_bits(acc.width, reg_value)
