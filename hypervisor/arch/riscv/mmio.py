"""Trap-and-emulate MMIO: a guest-page fault inside an emulated device's window is decoded (htinst, or the
instruction read back with hlvx.hu when htinst is zero: Priv 9.4.4 and 9.2.x) and performed by the device's
emulator; the guest then continues after the instruction.

The emulator is chosen by the build's interrupt mode (a compile-time constant): the virtual PLIC, or the
virtual APLIC in AIA mode (whose IMSIC pages are mapped, never emulated), for the management VM; the
statistics page for every VM. An access a device cannot do is the guest's mistake: it gets an access fault
(trap.py), the VM runs on."""

from compiler.prelude import HTINST, TIME, Final, Ptr, addr_of, csr_read, extern, u64
from hypervisor.arch.riscv.mmio_decode import MmioAccess, mmio_decode, mmio_insn_len, mmio_load_value, mmio_store_value
from hypervisor.board import (
    IRQ_MODE,
    IRQ_MODE_AIA,
    MAX_HARTS,
    MMIO_DECODE_FETCH,
    MVM_APLIC_BASE,
    MVM_APLIC_SIZE,
    MVM_PLIC_BASE,
    MVM_PLIC_SIZE,
    MVM_STATS_BASE,
    MVM_STATS_SIZE,
)
from hypervisor.core.frame_alloc import frame_alloc_free_pages, frame_alloc_total_pages
from hypervisor.core.stack import stack_high_water, stack_top
from hypervisor.core.vaplic import vaplic_access_ok, vaplic_read, vaplic_write
from hypervisor.core.virq import virq_apply, virq_guest_completed, virq_lines_locked, virq_lock, virq_unlock, virq_vplic
from hypervisor.core.vm import Vcpu, vcpu_vm, vm_vcpu
from hypervisor.core.vplic import vplic_access_ok, vplic_read, vplic_write


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


# The two emulators' ops. A write returns a passthrough source the guest completed (virtual PLIC), else 0.
def plic_ok(offset: u64, width: u64) -> bool:
    return vplic_access_ok(offset, width)


def plic_read(offset: u64, width: u64) -> u64:
    return vplic_read(virq_vplic(), offset, width)


def plic_write(offset: u64, width: u64, value: u64) -> u64:
    return vplic_write(virq_vplic(), offset, width, value)


def aplic_write(offset: u64, width: u64, value: u64) -> u64:
    vaplic_write(offset, value)
    return u64(0)


def aplic_read(offset: u64, width: u64) -> u64:
    return vaplic_read(offset)


STATS_STRIDE: Final = u64(0x20)  # per vCPU: exits, WFI exits, SBI calls, the time CSR
STATS_HYP: Final = u64(0x800)  # the hypervisor's own: free pages, total pages, then each hart's stack high-water
STATS_HYP_STACKS: Final = u64(0x810)

# What mmio_emulate did with an access
MMIO_NONE: Final = u64(0)  # no emulated device there: outside the VM's memory
MMIO_DONE: Final = u64(1)  # emulated; the guest goes on after the instruction
MMIO_FAULT: Final = u64(2)  # a device is there but cannot do this access (width, alignment, AMO): an access fault


def stats_read(v: Ptr[Vcpu], offset: u64) -> u64:
    """The statistics page (mvm.toml "stats"), as each VM sees it: u64 counters of its vCPU offset / 0x20, then
    from STATS_HYP the hypervisor's free and total pages and each hart's stack high-water mark in bytes."""
    if offset >= STATS_HYP_STACKS:
        hart = (offset - STATS_HYP_STACKS) // 8
        return stack_high_water(stack_top(hart)) if hart < MAX_HARTS else u64(0)
    if offset >= STATS_HYP:
        return frame_alloc_free_pages() if offset == STATS_HYP else frame_alloc_total_pages()
    vm = vcpu_vm(v)
    i = offset // STATS_STRIDE
    if i >= vm.vcpus:
        return u64(0)
    t = vm_vcpu(vm, i)
    field = (offset % STATS_STRIDE) // 8
    if field == 0:
        return t.traps
    if field == 1:
        return t.wfi_exits
    if field == 2:
        return t.sbi_calls
    return csr_read(TIME)


def mmio_emulate_stats(v: Ptr[Vcpu], a: Ptr[MmioAccess], offset: u64) -> u64:
    if offset % a.width != 0:
        return MMIO_FAULT
    if not a.is_store and a.reg != 0:  # stores are ignored: the page is read-only
        value = stats_read(v, offset - offset % 8) >> ((offset % 8) * 8)
        v.regs[a.reg] = mmio_load_value(a, value)
    v.sepc += a.insn_len
    return MMIO_DONE


def mmio_emulate(v: Ptr[Vcpu], gpa: u64) -> u64:
    """Emulate the access at gpa if an emulated device covers it: MMIO_DONE, MMIO_FAULT when the device is
    there but the access cannot be emulated (an access the instruction decoder does not know, an AMO, a width
    or alignment the device does not have), MMIO_NONE when no device is there."""
    vm = vcpu_vm(v)
    acc = MmioAccess()
    a = addr_of(acc)
    if gpa >= MVM_STATS_BASE and gpa - MVM_STATS_BASE < MVM_STATS_SIZE:
        if not mmio_decode_trap(v, a):
            return MMIO_FAULT
        return mmio_emulate_stats(v, a, gpa - MVM_STATS_BASE)
    if vm.id != 0:
        return MMIO_NONE
    base = MVM_APLIC_BASE if IRQ_MODE == IRQ_MODE_AIA else MVM_PLIC_BASE
    size = MVM_APLIC_SIZE if IRQ_MODE == IRQ_MODE_AIA else MVM_PLIC_SIZE
    if gpa < base or gpa - base >= size:
        return MMIO_NONE
    if not mmio_decode_trap(v, a):
        return MMIO_FAULT
    offset = gpa - base
    ok = vaplic_access_ok(offset, a.width) if IRQ_MODE == IRQ_MODE_AIA else plic_ok(offset, a.width)
    if not ok:
        return MMIO_FAULT
    done = u64(0)
    virq_lock()
    if a.is_store:
        value = mmio_store_value(a, v.regs[a.reg])
        done = aplic_write(offset, a.width, value) if IRQ_MODE == IRQ_MODE_AIA else plic_write(offset, a.width, value)
    else:
        value = aplic_read(offset, a.width) if IRQ_MODE == IRQ_MODE_AIA else plic_read(offset, a.width)
        if a.reg != 0:
            v.regs[a.reg] = mmio_load_value(a, value)
    line = virq_lines_locked(v) if IRQ_MODE != IRQ_MODE_AIA else False  # PLIC mode: in the same section
    virq_unlock()
    if done != 0:
        virq_guest_completed(done)
    if IRQ_MODE != IRQ_MODE_AIA:
        virq_apply(line)
    v.sepc += a.insn_len
    return MMIO_DONE
