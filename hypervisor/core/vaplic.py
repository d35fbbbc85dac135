"""The management VM's APLIC in AIA mode (RISC-V AIA spec 1.0, chapter 4): an emulated S-level domain in MSI
delivery mode. The guest's programming of a passthrough source is mirrored into the physical S-level APLIC,
with each target rewritten from (guest hart = vCPU, guest index 0) to (the vCPU's physical hart, the guest
interrupt file VGEIN): the device's MSI then lands in the vCPU's guest interrupt file with no hypervisor exit.
"""

from compiler.prelude import Array, Final, Mmio, Ptr, addr_of, static, struct, u32, u64
from hypervisor.board import APLIC_S_BASE, MVM_HARTS, MVM_NUM_VCPUS

APLIC_SOURCES: Final = 96
APLIC_WORDS: Final = 3
APLIC_DOMAINCFG: Final = u64(0x0000)
APLIC_SOURCECFG: Final = u64(0x0004)  # 4.5.2: sourcecfg[i] at 0x0004 + 4 * (i - 1)
APLIC_MSIADDRCFG: Final = u64(0x1BC0)  # 4.5.3-4.5.4: m/s msiaddrcfg(h): root domain only
APLIC_SETIP: Final = u64(0x1C00)
APLIC_SETIPNUM: Final = u64(0x1CDC)
APLIC_CLRIP: Final = u64(0x1D00)
APLIC_CLRIPNUM: Final = u64(0x1DDC)
APLIC_SETIE: Final = u64(0x1E00)
APLIC_SETIENUM: Final = u64(0x1EDC)
APLIC_CLRIE: Final = u64(0x1F00)
APLIC_CLRIENUM: Final = u64(0x1FDC)
APLIC_SETIPNUM_LE: Final = u64(0x2000)  # 4.5.11: Linux's level re-trigger after each handled interrupt (4.9.2)
APLIC_SETIPNUM_BE: Final = u64(0x2004)
APLIC_GENMSI: Final = u64(0x3000)
APLIC_TARGET: Final = u64(0x3004)  # 4.5.16: target[i] at 0x3004 + 4 * (i - 1)
APLIC_SIZE_EMULATED: Final = u64(0x4000)  # no IDC (direct mode) registers in MSI mode

DOMAINCFG_RO1: Final = u32(0x80000000)  # 4.5.1: bit 31 reads as 1
DOMAINCFG_IE: Final = u32(1) << 8
DOMAINCFG_DM: Final = u32(1) << 2  # MSI delivery mode
SOURCECFG_D: Final = u32(1) << 10  # delegate: never granted to the guest
SOURCECFG_SM: Final = u32(7)  # 4.5.2: source mode; 2 and 3 are reserved
SM_RESERVED_2: Final = u32(2)
SM_RESERVED_3: Final = u32(3)
TARGET_HART_SHIFT: Final = u32(18)
TARGET_GUEST_SHIFT: Final = u32(12)
TARGET_EIID_MASK: Final = u32(0x7FF)
VGEIN_MVM: Final = u64(1)  # the guest interrupt file the management VM's vCPUs use on their harts


@struct
class Vaplic:
    domaincfg: u32
    sourcecfg: Array[u32, APLIC_SOURCES]
    target: Array[u32, APLIC_SOURCES]
    enabled: Array[u32, APLIC_WORDS]
    owned: Array[u32, APLIC_WORDS]


vaplic_main = static(Vaplic)


def aplic_reg(offset: u64) -> Mmio[u32]:
    return Mmio[u32](APLIC_S_BASE + offset)


def vaplic_init_physical() -> None:
    """The physical S-level domain: enabled, MSI delivery (the guest's domaincfg is virtual)."""
    aplic_reg(APLIC_DOMAINCFG).write(DOMAINCFG_IE | DOMAINCFG_DM)


def vaplic_own(src: u64) -> None:
    p = addr_of(vaplic_main)
    p.owned[src // 32] = p.owned[src // 32] | (u32(1) << u32(src % 32))


def vaplic_is_owned(p: Ptr[Vaplic], src: u64) -> bool:
    return src > 0 and src < APLIC_SOURCES and (p.owned[src // 32] >> u32(src % 32)) & 1 != 0


def vaplic_physical_target(guest: u32) -> u32:
    vcpu = u64(guest >> TARGET_HART_SHIFT)
    if vcpu >= MVM_NUM_VCPUS:
        vcpu = u64(0)
    return (
        (u32(MVM_HARTS[vcpu]) << TARGET_HART_SHIFT)
        | (u32(VGEIN_MVM) << TARGET_GUEST_SHIFT)
        | (guest & TARGET_EIID_MASK)
    )


def vaplic_set_enabled(p: Ptr[Vaplic], src: u64, on: bool) -> None:
    if src == 0 or src >= APLIC_SOURCES:
        return
    bit = u32(1) << u32(src % 32)
    if on:
        p.enabled[src // 32] = p.enabled[src // 32] | bit
    else:
        p.enabled[src // 32] = p.enabled[src // 32] & ~bit
    if vaplic_is_owned(p, src):
        aplic_reg(APLIC_SETIENUM if on else APLIC_CLRIENUM).write(u32(src))


def vaplic_access_ok(offset: u64, width: u64) -> bool:
    return width == 4 and offset % 4 == 0 and offset < APLIC_SIZE_EMULATED


def vaplic_read(offset: u64) -> u64:
    p = addr_of(vaplic_main)
    if offset == APLIC_DOMAINCFG:
        return u64(p.domaincfg | DOMAINCFG_RO1)
    if offset >= APLIC_SOURCECFG and offset < APLIC_SOURCECFG + 4 * (APLIC_SOURCES - 1):
        return u64(p.sourcecfg[(offset - APLIC_SOURCECFG) // 4 + 1])
    if offset >= APLIC_TARGET and offset < APLIC_TARGET + 4 * (APLIC_SOURCES - 1):
        return u64(p.target[(offset - APLIC_TARGET) // 4 + 1])
    if offset >= APLIC_SETIE and offset < APLIC_SETIE + 4 * APLIC_WORDS:
        return u64(p.enabled[(offset - APLIC_SETIE) // 4])
    if offset >= APLIC_SETIP and offset < APLIC_SETIP + 4 * APLIC_WORDS:
        return u64(aplic_reg(offset).read() & p.owned[(offset - APLIC_SETIP) // 4])
    if offset >= APLIC_CLRIP and offset < APLIC_CLRIP + 4 * APLIC_WORDS:  # in_clrip: the rectified inputs
        return u64(aplic_reg(offset).read() & p.owned[(offset - APLIC_CLRIP) // 4])
    return u64(0)  # msiaddrcfg (root domain only), genmsi, reserved


def vaplic_write(offset: u64, value: u64) -> None:
    p = addr_of(vaplic_main)
    v = u32(value)
    if offset == APLIC_DOMAINCFG:
        p.domaincfg = v & (DOMAINCFG_IE | DOMAINCFG_DM)
    elif offset >= APLIC_SOURCECFG and offset < APLIC_SOURCECFG + 4 * (APLIC_SOURCES - 1):
        src = (offset - APLIC_SOURCECFG) // 4 + 1
        sm = v & SOURCECFG_SM  # D is never granted, so the register is SM alone
        if sm == SM_RESERVED_2 or sm == SM_RESERVED_3:
            sm = u32(0)  # a reserved mode makes the source inactive: never passed to the physical APLIC
        p.sourcecfg[src] = sm
        if vaplic_is_owned(p, src):
            aplic_reg(offset).write(p.sourcecfg[src])
            # An inactive source's target is read-only zero (4.5.16): a target the guest wrote before making the
            # source active never reached the physical APLIC, so it goes there now.
            if p.sourcecfg[src] != 0:
                aplic_reg(APLIC_TARGET + 4 * (src - 1)).write(vaplic_physical_target(p.target[src]))
    elif offset >= APLIC_TARGET and offset < APLIC_TARGET + 4 * (APLIC_SOURCES - 1):
        src = (offset - APLIC_TARGET) // 4 + 1
        p.target[src] = v
        if vaplic_is_owned(p, src):
            aplic_reg(offset).write(vaplic_physical_target(v))
    elif offset == APLIC_SETIENUM:
        vaplic_set_enabled(p, u64(v), True)
    elif offset == APLIC_CLRIENUM:
        vaplic_set_enabled(p, u64(v), False)
    elif offset >= APLIC_SETIE and offset < APLIC_SETIE + 4 * APLIC_WORDS:
        word = (offset - APLIC_SETIE) // 4
        for b in range(32):
            if (v >> u32(b)) & 1 != 0:
                vaplic_set_enabled(p, word * 32 + u64(b), True)
    elif offset >= APLIC_CLRIE and offset < APLIC_CLRIE + 4 * APLIC_WORDS:
        word = (offset - APLIC_CLRIE) // 4
        for b in range(32):
            if (v >> u32(b)) & 1 != 0:
                vaplic_set_enabled(p, word * 32 + u64(b), False)
    elif offset == APLIC_SETIPNUM or offset == APLIC_CLRIPNUM or offset == APLIC_SETIPNUM_LE:
        if vaplic_is_owned(p, u64(v)):
            aplic_reg(offset).write(v)
    elif offset == APLIC_SETIPNUM_BE:
        swapped = ((v & u32(0xFF)) << 24) | ((v & u32(0xFF00)) << 8) | ((v >> 8) & u32(0xFF00)) | (v >> 24)
        if vaplic_is_owned(p, u64(swapped)):
            aplic_reg(APLIC_SETIPNUM_LE).write(swapped)
    # genmsi, msiaddrcfg and reserved offsets: ignored
