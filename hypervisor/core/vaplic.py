"""The management VM's APLIC in AIA mode (RISC-V AIA spec 1.0, chapter 4): an emulated S-level domain in MSI
delivery mode. The guest's programming of a passthrough source is mirrored into the physical S-level APLIC,
with each target rewritten from (guest hart = vCPU, guest index 0) to (the vCPU's physical hart, the guest
interrupt file VGEIN): the device's MSI then lands in the vCPU's guest interrupt file with no hypervisor exit.
"""

from compiler.prelude import Array, Final, Ptr, addr_of, static, struct, u32, u64
from hypervisor.arch.riscv.aplic import (
    APLIC_CLRIE,
    APLIC_CLRIENUM,
    APLIC_CLRIP,
    APLIC_CLRIPNUM,
    APLIC_DOMAINCFG,
    APLIC_SETIE,
    APLIC_SETIENUM,
    APLIC_SETIP,
    APLIC_SETIPNUM,
    APLIC_SETIPNUM_BE,
    APLIC_SETIPNUM_LE,
    APLIC_SIZE_MSI,
    APLIC_SOURCECFG,
    APLIC_SOURCES,
    APLIC_TARGET,
    APLIC_WORDS,
    DOMAINCFG_DM,
    DOMAINCFG_IE,
    DOMAINCFG_RO1,
    SM_RESERVED_2,
    SM_RESERVED_3,
    SOURCECFG_SM,
    TARGET_EIID_MASK,
    TARGET_GUEST_SHIFT,
    TARGET_HART_SHIFT,
    aplic_read,
    aplic_write,
)
from hypervisor.board import MVM_HARTS, MVM_NUM_VCPUS
from hypervisor.core.emul import EMUL_DONE, EMUL_FAULT
from hypervisor.core.vm import Vcpu

VGEIN_MVM: Final = u64(1)  # the guest interrupt file the management VM's vCPUs use on their harts


@struct
class Vaplic:
    domaincfg: u32
    sourcecfg: Array[u32, APLIC_SOURCES]
    target: Array[u32, APLIC_SOURCES]
    enabled: Array[u32, APLIC_WORDS]
    owned: Array[u32, APLIC_WORDS]


vaplic_main = static(Vaplic)


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
        aplic_write(APLIC_SETIENUM if on else APLIC_CLRIENUM, u32(src))


def vaplic_access_ok(offset: u64, width: u64) -> bool:
    return width == 4 and offset % 4 == 0 and offset < APLIC_SIZE_MSI


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
        return u64(aplic_read(offset) & p.owned[(offset - APLIC_SETIP) // 4])
    if offset >= APLIC_CLRIP and offset < APLIC_CLRIP + 4 * APLIC_WORDS:  # in_clrip: the rectified inputs
        return u64(aplic_read(offset) & p.owned[(offset - APLIC_CLRIP) // 4])
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
            aplic_write(offset, p.sourcecfg[src])
            # An inactive source's target is read-only zero (4.5.16): a target the guest wrote before making the
            # source active never reached the physical APLIC, so it goes there now.
            if p.sourcecfg[src] != 0:
                aplic_write(APLIC_TARGET + 4 * (src - 1), vaplic_physical_target(p.target[src]))
    elif offset >= APLIC_TARGET and offset < APLIC_TARGET + 4 * (APLIC_SOURCES - 1):
        src = (offset - APLIC_TARGET) // 4 + 1
        p.target[src] = v
        if vaplic_is_owned(p, src):
            aplic_write(offset, vaplic_physical_target(v))
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
            aplic_write(offset, v)
    elif offset == APLIC_SETIPNUM_BE:
        swapped = ((v & u32(0xFF)) << 24) | ((v & u32(0xFF00)) << 8) | ((v >> 8) & u32(0xFF00)) | (v >> 24)
        if vaplic_is_owned(p, u64(swapped)):
            aplic_write(APLIC_SETIPNUM_LE, swapped)
    # genmsi, msiaddrcfg and reserved offsets: ignored


def vaplic_emul(v: Ptr[Vcpu], offset: u64, width: u64, store: bool, value: Ptr[u64]) -> u64:
    """The VM's APLIC window (core/emul.py handler): 32-bit accesses only (AIA 4.5)."""
    if not vaplic_access_ok(offset, width):
        return EMUL_FAULT
    if store:
        vaplic_write(offset, value[0])
    else:
        value[0] = vaplic_read(offset)
    return EMUL_DONE
