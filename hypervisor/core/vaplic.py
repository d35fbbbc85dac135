"""The management VM's APLIC in AIA mode (RISC-V AIA spec 1.0, chapter 4): an emulated S-level domain in MSI
delivery mode. The guest's programming of a passthrough source is mirrored into the physical S-level APLIC,
with each target rewritten from (guest hart = vCPU, guest index 0) to (the vCPU's physical hart, the guest
interrupt file VGEIN): the device's MSI then lands in the vCPU's guest interrupt file with no hypervisor exit.

A source no physical device owns may be wired to a device the hypervisor emulates (`vaplic_set_line`): the
domain keeps its rectified input and pending bit, and forwards it as the APLIC would (4.9.3): the MSI is written
into the target vCPU's guest interrupt file, from whichever hart raised the line.

Each guest VM has a domain of its own (by VM index), with no physical source: only its emulated devices' lines
(its console), forwarded into the guest interrupt files its vCPUs own on their harts.
"""

from compiler.prelude import Array, Final, Mmio, Ptr, addr_of, i64, inline, noinline, static, struct, u32, u64
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
from hypervisor.board import IMSIC_HART_STRIDE, IMSIC_PAGE_SIZE, IMSIC_S_BASE, MVM_HARTS, MVM_NUM_VCPUS
from hypervisor.core.emul import EMUL_DONE, EMUL_FAULT, emul_read32_by, emul_write32_by
from hypervisor.core.spinlock import Spinlock, spin_lock, spin_unlock
from hypervisor.core.vm import VM_MAX, Vcpu, Vm, vcpu_vm, vm_get, vm_vcpu

VGEIN_MVM: Final = u64(1)  # the guest interrupt file the management VM's vCPUs use on their harts


@struct
class Vaplic:
    domaincfg: u32
    sourcecfg: Array[u32, APLIC_SOURCES]
    target: Array[u32, APLIC_SOURCES]
    enabled: Array[u32, APLIC_WORDS]
    owned: Array[u32, APLIC_WORDS]
    wired: Array[u32, APLIC_WORDS]  # sources wired to a device the hypervisor emulates (vaplic_wire)
    line: Array[u32, APLIC_WORDS]  # emulated sources: the device's line (high: asserted)
    pending: Array[u32, APLIC_WORDS]  # emulated sources: pending bits (4.7)
    vm: u64  # the VM's index (0: the MVM)


vaplic_main = static(Vaplic)
vaplic_spin = static(Spinlock)  # the vCPUs' accesses and emulated devices' lines, from any hart
# Guest VMs' domains and their locks, by VM index (1 .. VM_MAX - 1; entry 0 unused: the MVM's is above).
vaplic_gvm = static(Array[Vaplic, VM_MAX])
vaplic_gvm_spin = static(Array[Spinlock, VM_MAX])
SM_EDGE1: Final = u32(4)  # 4.5.2 source modes
SM_EDGE0: Final = u32(5)
SM_LEVEL1: Final = u32(6)
SM_LEVEL0: Final = u32(7)
IMSIC_SETEIPNUM_LE: Final = u64(0)  # AIA 3.5: an interrupt file's seteipnum_le register


def vaplic_of(vm: Ptr[Vm]) -> Ptr[Vaplic]:
    if vm.index == 0:
        return addr_of(vaplic_main)
    return addr_of(vaplic_gvm[vm.index])


def vaplic_spin_of(vm: Ptr[Vm]) -> Ptr[Spinlock]:
    if vm.index == 0:
        return addr_of(vaplic_spin)
    return addr_of(vaplic_gvm_spin[vm.index])


def vaplic_reset(vm: Ptr[Vm], fresh: bool) -> None:
    """vm's domain at reset (4.5: domaincfg, sourcecfg, target, ie and ip zero); which sources a physical device
    owns (the MVM's) is kept, and which are wired to emulated devices unless the domain is `fresh` (a new VM in
    the slot, whose devices wire their lines next)."""
    p = vaplic_of(vm)
    spin_lock(vaplic_spin_of(vm))
    p.domaincfg = 0
    if fresh:
        for w in range(APLIC_WORDS):
            p.wired[w] = 0
    for src in range(APLIC_SOURCES):
        p.sourcecfg[src] = 0
        p.target[src] = 0
        if vaplic_is_owned(p, u64(src)):
            # the physical register follows (inactive), so that it always holds the virtual one, as
            # vaplic_store_changes counts on
            aplic_write(APLIC_SOURCECFG + 4 * (u64(src) - 1), u32(0))
    for w in range(APLIC_WORDS):
        p.enabled[w] = 0
        p.line[w] = 0
        p.pending[w] = 0
    p.vm = vm.index
    spin_unlock(vaplic_spin_of(vm))


def vaplic_msi_file(p: Ptr[Vaplic], vcpu: u64) -> u64:
    """The guest interrupt file (its address) of the domain's vCPU `vcpu` on its hart, or 0 for no such vCPU."""
    if p.vm == 0:
        if vcpu >= MVM_NUM_VCPUS:
            return u64(0)
        return IMSIC_S_BASE + MVM_HARTS[vcpu] * IMSIC_HART_STRIDE + VGEIN_MVM * IMSIC_PAGE_SIZE
    vm = vm_get(p.vm)
    if vcpu >= vm.vcpus:
        return u64(0)
    t = vm_vcpu(vm, vcpu)
    if t.vgein == 0:
        return u64(0)
    return IMSIC_S_BASE + t.hart * IMSIC_HART_STRIDE + t.vgein * IMSIC_PAGE_SIZE


def vaplic_bit_test(bitmap: Ptr[u32], src: u64) -> bool:
    return (bitmap[src // 32] >> u32(src % 32)) & 1 != 0


def vaplic_bit_set(bitmap: Ptr[u32], src: u64, on: bool) -> None:
    bit = u32(1) << u32(src % 32)
    if on:
        bitmap[src // 32] = bitmap[src // 32] | bit
    else:
        bitmap[src // 32] = bitmap[src // 32] & ~bit


def vaplic_wire(vm: Ptr[Vm], src: u64) -> None:
    """Source `src` of vm's domain is the line of a device the hypervisor emulates (no physical device owns it)."""
    p = vaplic_of(vm)
    if src > 0 and src < APLIC_SOURCES and not vaplic_is_owned(p, src):
        vaplic_bit_set(addr_of(p.wired[0]), src, True)


def vaplic_rectified(p: Ptr[Vaplic], src: u64) -> bool:
    """An emulated source's rectified input (4.5.2): its line, inverted for the active-low modes; low when the
    source is inactive or detached, or wired to nothing."""
    if not vaplic_bit_test(addr_of(p.wired[0]), src):
        return False
    sm = p.sourcecfg[src]
    high = vaplic_bit_test(addr_of(p.line[0]), src)
    if sm == SM_EDGE1 or sm == SM_LEVEL1:
        return high
    if sm == SM_EDGE0 or sm == SM_LEVEL0:
        return not high
    return False


def vaplic_forward_locked(p: Ptr[Vaplic], src: u64) -> None:
    """An emulated source pending, enabled, in an enabled domain goes out as an MSI (4.9.3): its pending bit is
    cleared and its target's EIID written into the target vCPU's guest interrupt file."""
    if not vaplic_bit_test(addr_of(p.pending[0]), src) or not vaplic_bit_test(addr_of(p.enabled[0]), src):
        return
    if p.domaincfg & DOMAINCFG_IE == 0 or p.sourcecfg[src] == 0:
        return
    vaplic_bit_set(addr_of(p.pending[0]), src, False)
    target = p.target[src]
    file = vaplic_msi_file(p, u64(target >> TARGET_HART_SHIFT))
    eiid = target & TARGET_EIID_MASK
    if file == 0 or eiid == 0:
        return  # no such hart or identity 0: the MSI goes nowhere
    Mmio[u32](file + IMSIC_SETEIPNUM_LE).write(eiid)


def vaplic_set_line(vm: Ptr[Vm], src: u64, high: bool) -> None:
    """An emulated device's line on `src` of vm's domain (a source no physical device owns), from any hart: a
    rising rectified input makes the source pending (4.7, edge and level alike in MSI delivery mode), then it is
    forwarded."""
    p = vaplic_of(vm)
    if src == 0 or src >= APLIC_SOURCES or not vaplic_bit_test(addr_of(p.wired[0]), src):
        return
    spin_lock(vaplic_spin_of(vm))
    before = vaplic_rectified(p, src)
    vaplic_bit_set(addr_of(p.line[0]), src, high)
    if vaplic_rectified(p, src) and not before:
        vaplic_bit_set(addr_of(p.pending[0]), src, True)
    vaplic_forward_locked(p, src)
    spin_unlock(vaplic_spin_of(vm))


def vaplic_setipnum_emulated(p: Ptr[Vaplic], src: u64) -> None:
    """setipnum on an emulated source (4.5.11, 4.7): an edge source becomes pending; a level source only while
    its rectified input is high (Linux's end of a level interrupt writes it: 4.9.2)."""
    if src == 0 or src >= APLIC_SOURCES or p.sourcecfg[src] == 0 or not vaplic_bit_test(addr_of(p.wired[0]), src):
        return
    sm = p.sourcecfg[src]
    if (sm == SM_LEVEL1 or sm == SM_LEVEL0) and not vaplic_rectified(p, src):
        return
    vaplic_bit_set(addr_of(p.pending[0]), src, True)
    vaplic_forward_locked(p, src)


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
    elif on and vaplic_bit_test(addr_of(p.wired[0]), src):
        vaplic_forward_locked(p, src)


def vaplic_access_ok(offset: u64, width: u64) -> bool:
    return width == 4 and offset % 4 == 0 and offset < APLIC_SIZE_MSI


def vaplic_read(offset: u64) -> u64:
    """A register of the MVM's domain."""
    return vaplic_read_in(addr_of(vaplic_main), offset)


@inline
def vaplic_read_word(p: Ptr[Vaplic], offset: u64) -> u64:
    """A register kept in one word of the domain (domaincfg, sourcecfg, target, setie), or 0 for every other
    offset (those vaplic_read_in combines, msiaddrcfg, genmsi, reserved)."""
    if offset == APLIC_DOMAINCFG:
        return u64(p.domaincfg | DOMAINCFG_RO1)
    if offset >= APLIC_SOURCECFG and offset < APLIC_SOURCECFG + 4 * (APLIC_SOURCES - 1):
        return u64(p.sourcecfg[(offset - APLIC_SOURCECFG) // 4 + 1])
    if offset >= APLIC_TARGET and offset < APLIC_TARGET + 4 * (APLIC_SOURCES - 1):
        return u64(p.target[(offset - APLIC_TARGET) // 4 + 1])
    if offset >= APLIC_SETIE and offset < APLIC_SETIE + 4 * APLIC_WORDS:
        return u64(p.enabled[(offset - APLIC_SETIE) // 4])
    return u64(0)


def vaplic_read_in(p: Ptr[Vaplic], offset: u64) -> u64:
    if vaplic_read_combines(offset):
        return vaplic_read_combined(p, offset)
    return vaplic_read_word(p, offset)


def vaplic_read_combined(p: Ptr[Vaplic], offset: u64) -> u64:
    """setip and in_clrip: what the physical APLIC holds for the owned sources with the virtual state of the
    others."""
    if offset >= APLIC_SETIP and offset < APLIC_SETIP + 4 * APLIC_WORDS:
        w = (offset - APLIC_SETIP) // 4
        return u64((aplic_read(offset) & p.owned[w]) | (p.pending[w] & p.wired[w]))
    if offset >= APLIC_CLRIP and offset < APLIC_CLRIP + 4 * APLIC_WORDS:  # in_clrip: the rectified inputs
        w = (offset - APLIC_CLRIP) // 4
        rect = u32(0)
        for b in range(32):
            src = w * 32 + u64(b)
            if src > 0 and src < APLIC_SOURCES and vaplic_rectified(p, src):
                rect = rect | (u32(1) << u32(b))
        return u64((aplic_read(offset) & p.owned[w]) | rect)
    return u64(0)  # msiaddrcfg (root domain only), genmsi, reserved


def vaplic_write(offset: u64, value: u64) -> None:
    """A register of the MVM's domain."""
    vaplic_write_in(addr_of(vaplic_main), offset, value)


@inline
def vaplic_sourcecfg_value(v: u32) -> u32:
    """What a guest's write of v leaves in a sourcecfg register (4.5.2): D is never granted, so the register
    is SM alone; a reserved mode makes the source inactive (never passed to the physical APLIC)."""
    sm = v & SOURCECFG_SM
    if sm == SM_RESERVED_2 or sm == SM_RESERVED_3:
        return u32(0)
    return sm


@inline
def vaplic_store_changes(p: Ptr[Vaplic], offset: u64, value: u64) -> bool:
    """Whether a store may change the domain: not a store to a sourcecfg register of the value it already holds
    (legalized as vaplic_write_in does), which writes nothing, virtual or physical, so vaplic_write32 takes no
    lock for it. An owned source's physical sourcecfg always holds the virtual one (vaplic_write_in writes both
    under the lock), so the physical APLIC misses nothing. Read lock-free, one whole word: a store another hart
    makes meanwhile comes before or after this one. (A target is not taken this way: its physical register is
    written only while the source is active, so the same virtual value does not say the physical one is set.)"""
    if offset >= APLIC_SOURCECFG and offset < APLIC_SOURCECFG + 4 * (APLIC_SOURCES - 1):
        return vaplic_sourcecfg_value(u32(value)) != p.sourcecfg[(offset - APLIC_SOURCECFG) // 4 + 1]
    return True


def vaplic_write_in(p: Ptr[Vaplic], offset: u64, value: u64) -> None:
    v = u32(value)
    if offset >= APLIC_SOURCECFG and offset < APLIC_SOURCECFG + 4 * (APLIC_SOURCES - 1):
        src = (offset - APLIC_SOURCECFG) // 4 + 1
        p.sourcecfg[src] = vaplic_sourcecfg_value(v)
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
    else:
        vaplic_write_other(p, offset, v)


@noinline
def vaplic_write_other(p: Ptr[Vaplic], offset: u64, v: u32) -> None:
    """vaplic_write_in for the registers that change several sources' state (domaincfg, enables, pending
    numbers): out of line, so that a sourcecfg or target store does not pay for their loops' registers."""
    if offset == APLIC_DOMAINCFG:
        p.domaincfg = v & (DOMAINCFG_IE | DOMAINCFG_DM)
        for src in range(1, APLIC_SOURCES):
            if vaplic_bit_test(addr_of(p.wired[0]), u64(src)):
                vaplic_forward_locked(p, u64(src))
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
        elif offset == APLIC_CLRIPNUM:
            if v > 0 and u64(v) < APLIC_SOURCES and vaplic_bit_test(addr_of(p.wired[0]), u64(v)):
                vaplic_bit_set(addr_of(p.pending[0]), u64(v), False)
        else:
            vaplic_setipnum_emulated(p, u64(v))
    elif offset == APLIC_SETIPNUM_BE:
        swapped = ((v & u32(0xFF)) << 24) | ((v & u32(0xFF00)) << 8) | ((v >> 8) & u32(0xFF00)) | (v >> 24)
        if vaplic_is_owned(p, u64(swapped)):
            aplic_write(APLIC_SETIPNUM_LE, swapped)
        else:
            vaplic_setipnum_emulated(p, u64(swapped))
    # genmsi, msiaddrcfg and reserved offsets: ignored


def vaplic_emul(v: Ptr[Vcpu], offset: u64, width: u64, store: bool, value: Ptr[u64]) -> u64:
    """The VM's APLIC window (core/emul.py handler): 32-bit accesses only (AIA 4.5)."""
    if not vaplic_access_ok(offset, width):
        return EMUL_FAULT
    vm = vcpu_vm(v)
    if not store and not vaplic_read_combines(offset):
        # A register kept in one aligned 32-bit word, read whole without the lock: a store another hart makes
        # meanwhile comes before or after it, as two accesses to a real APLIC are ordered.
        value[0] = vaplic_read_word(Ptr[Vaplic](vm.irqc_regs), offset)  # vaplic_of(vm), in one load
        return EMUL_DONE
    if store and not vaplic_store_changes(Ptr[Vaplic](vm.irqc_regs), offset, value[0]):
        return EMUL_DONE
    return vaplic_emul_locked(vm, offset, store, value)


def vaplic_read32(v: Ptr[Vcpu], region: u64, offset: u64) -> u64:
    """An LW of the VM's APLIC window (EmulMem.read32): the register sign-extended, or EMUL_WORD_FAULT. A
    register kept in one word is read as vaplic_emul reads it, without the lock and without a call; the rest
    goes through vaplic_emul."""
    if offset % 4 == 0 and offset < APLIC_SIZE_MSI and not vaplic_read_combines(offset):
        return u64(i64(vaplic_read_word(Ptr[Vaplic](vcpu_vm(v).irqc_regs), offset) << 32) >> 32)
    return vaplic_read32_other(v, offset)


def vaplic_write32(v: Ptr[Vcpu], region: u64, offset: u64, value: u64) -> u64:
    """An SW of the VM's APLIC window (EmulMem.write32), the register in value's low 32 bits: a store that
    changes nothing (vaplic_store_changes) is done without the lock; the rest goes through vaplic_emul."""
    if offset % 4 == 0 and offset < APLIC_SIZE_MSI:
        if not vaplic_store_changes(Ptr[Vaplic](vcpu_vm(v).irqc_regs), offset, value):
            return EMUL_DONE
    return vaplic_write32_other(v, offset, value)


@noinline
def vaplic_read32_other(v: Ptr[Vcpu], offset: u64) -> u64:
    """vaplic_read32 off its common case."""
    return emul_read32_by(vaplic_emul, v, offset)


@noinline
def vaplic_write32_other(v: Ptr[Vcpu], offset: u64, value: u64) -> u64:
    """vaplic_write32 off its common case."""
    return emul_write32_by(vaplic_emul, v, offset, value)


@noinline
def vaplic_emul_locked(vm: Ptr[Vm], offset: u64, store: bool, value: Ptr[u64]) -> u64:
    """vaplic_emul for a store or a read that combines fields: under the domain's lock (out of line, so that the
    lock-free read above keeps a small frame)."""
    spin_lock(vaplic_spin_of(vm))
    if store:
        vaplic_write_in(vaplic_of(vm), offset, value[0])
    else:
        value[0] = vaplic_read_in(vaplic_of(vm), offset)
    spin_unlock(vaplic_spin_of(vm))
    return EMUL_DONE


@inline
def vaplic_read_combines(offset: u64) -> bool:
    """Whether a read of `offset` combines several fields of the domain (setip, in_clrip: what the physical
    APLIC holds for the owned sources with the virtual state of the others), so must see them under the lock."""
    return (offset >= APLIC_SETIP and offset < APLIC_SETIP + 4 * APLIC_WORDS) or (
        offset >= APLIC_CLRIP and offset < APLIC_CLRIP + 4 * APLIC_WORDS
    )
