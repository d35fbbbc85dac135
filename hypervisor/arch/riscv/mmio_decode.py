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


# The decoded access packed in one word (0: refused), as the trap path keeps it in one register across the
# device's handler: bits 4:0 the register, 11:8 the width in bytes, 12 a store, 13 sign extension, 18:16 the
# instruction's length. `mmio_decode` unpacks it into an MmioAccess.
ACC_REG_MASK: Final = u64(0x1F)
ACC_WIDTH_SHIFT: Final = u64(8)
ACC_STORE: Final = u64(1) << 12
ACC_SIGN: Final = u64(1) << 13
ACC_LEN_SHIFT: Final = u64(16)


@inline
def acc_pack(is_store: bool, width: u64, sign_extend: bool, reg: u64, insn_len: u64) -> u64:
    acc = reg | (width << ACC_WIDTH_SHIFT) | (insn_len << ACC_LEN_SHIFT)
    if is_store:
        acc |= ACC_STORE
    if sign_extend:
        acc |= ACC_SIGN
    return acc


@inline
def acc_width(acc: u64) -> u64:
    return (acc >> ACC_WIDTH_SHIFT) & 0xF


@inline
def acc_insn_len(acc: u64) -> u64:
    return acc >> ACC_LEN_SHIFT


@inline
def mmio_decode_32_word(insn: u64, insn_len: u64) -> u64:
    """A 32-bit LOAD or STORE (opcode bits 6:0, funct3 bits 14:12, rd 11:7, rs2 24:20), packed; 0 if it is
    neither. rs1 and the immediate are not needed: the faulting address comes from stval/htval."""
    opcode = insn & 0x7F
    funct3 = (insn >> 12) & 7
    if opcode == OPCODE_LOAD:
        if funct3 == 7:
            return 0  # reserved (would be LDU on RV128)
        # LB LH LW sign-extend; LD (funct3 3) needs no extension on RV64
        return acc_pack(False, u64(1) << (funct3 & 3), funct3 < 3, (insn >> 7) & 0x1F, insn_len)
    if opcode == OPCODE_STORE:
        if funct3 > 3:
            return 0
        return acc_pack(True, u64(1) << funct3, False, (insn >> 20) & 0x1F, insn_len)
    return 0


def mmio_decode_16_word(insn: u64) -> u64:
    """A compressed load or store (Unprivileged spec 16.3 "Load and Store Instructions"), packed; 0 if it is
    neither: quadrant in bits 1:0, funct3 in bits 15:13. CL/CS forms name x8..x15 with 3-bit fields (rd' bits
    4:2, rs2' bits 4:2); the stack-pointer forms name any register (rd bits 11:7, rs2 bits 6:2)."""
    quadrant = insn & 3
    funct3 = (insn >> 13) & 7
    if quadrant == 0:
        reg_c = ((insn >> 2) & 7) + 8
        if funct3 == 2:  # C.LW: lw rd', offset(rs1')
            return acc_pack(False, u64(4), True, reg_c, INSN_LEN_16)
        if funct3 == 3:  # C.LD (RV64)
            return acc_pack(False, u64(8), False, reg_c, INSN_LEN_16)
        if funct3 == 6:  # C.SW: sw rs2', offset(rs1')
            return acc_pack(True, u64(4), False, reg_c, INSN_LEN_16)
        if funct3 == 7:  # C.SD (RV64)
            return acc_pack(True, u64(8), False, reg_c, INSN_LEN_16)
        return 0  # C.ADDI4SPN, C.FLD, C.FSD, reserved
    if quadrant == 2:
        rd = (insn >> 7) & 0x1F
        rs2 = (insn >> 2) & 0x1F
        if funct3 == 2:  # C.LWSP: rd = x0 is reserved
            if rd == 0:
                return 0
            return acc_pack(False, u64(4), True, rd, INSN_LEN_16)
        if funct3 == 3:  # C.LDSP (RV64): rd = x0 is reserved
            if rd == 0:
                return 0
            return acc_pack(False, u64(8), False, rd, INSN_LEN_16)
        if funct3 == 6:  # C.SWSP
            return acc_pack(True, u64(4), False, rs2, INSN_LEN_16)
        if funct3 == 7:  # C.SDSP (RV64)
            return acc_pack(True, u64(8), False, rs2, INSN_LEN_16)
        return 0  # C.SLLI, C.FLDSP, C.JR/C.MV/C.ADD..., C.FSDSP
    return 0  # quadrant 1 has no loads or stores


@inline
def mmio_decode_htinst(htinst: u64) -> u64:
    """The access of a transformed instruction in htinst (non-zero; Priv spec 18.6.3), packed, or 0: bit 0 set
    is the standard 32-bit load/store with the immediate zeroed and rs1 replaced by the address offset, bit 1
    clear when the trapping instruction was compressed (its 32-bit equivalent is given). Bit 0 clear is a
    pseudoinstruction (a fault of the implicit VS-stage page-table access) or a custom value: not an access of
    the instruction."""
    if htinst & 1 == 0:
        return 0
    return mmio_decode_32_word((htinst & 0xFFFFFFFF) | 2, INSN_LEN_32 if htinst & 2 != 0 else INSN_LEN_16)


def mmio_decode_insn(insn: u64) -> u64:
    """The access of the instruction read at sepc (16 bits, or 32 when its bits 1:0 are 11), packed, or 0."""
    if insn & 3 != 3:
        return mmio_decode_16_word(insn & 0xFFFF)
    if insn & 0x1C == 0x1C:
        return 0  # 48-bit and longer encodings (bits 4:2 = 111)
    return mmio_decode_32_word(insn & 0xFFFFFFFF, INSN_LEN_32)


def mmio_decode(htinst: u64, insn: u64, out: Ptr[MmioAccess]) -> bool:
    """Decode the access of a guest load/store that trapped; fills `out` and gives True, or gives False when
    it is not an emulatable integer load or store (`out` is then unspecified).

    `htinst` non-zero: the transformed instruction (`mmio_decode_htinst`); zero: `insn` is the instruction read
    at sepc (`mmio_decode_insn`)."""
    acc = mmio_decode_htinst(htinst) if htinst != 0 else mmio_decode_insn(insn)
    if acc == 0:
        return False
    out.is_store = acc & ACC_STORE != 0
    out.width = acc_width(acc)
    out.sign_extend = acc & ACC_SIGN != 0
    out.reg = acc & ACC_REG_MASK
    out.insn_len = acc_insn_len(acc)
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
