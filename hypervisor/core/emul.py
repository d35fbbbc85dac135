"""Each VM's emulated MMIO regions (Bao's `emul_mem` and `vm_emul_get_mem`): a device model registers the
guest-physical window it answers for in a VM (`emul_add`), and a guest-page fault inside that window is decoded
once (arch/riscv/mmio.py) and handed to that model. An address no region of the VM covers is outside its memory.

The table is written while the VM is made, before any of its vCPUs runs, and only read afterwards. Entries past
`emuls` are empty (size 0: core/vm.py `vm_emul_clear`), so the trap path probes the first one without the count.
"""

from compiler.prelude import Array, Callable, Final, Ptr, addr_of, i64, inline, null, u64
from hypervisor.core.vm import EMUL_MAX, EmulMem, Vcpu, Vm

# mmio_emulate's answers; EMUL_DONE is 0, so that the hot path's test of it is a branch on zero
EMUL_DONE: Final = u64(0)  # performed: the guest goes on after the instruction
EMUL_NONE: Final = u64(1)  # no region of the VM there: the access is outside its memory
EMUL_FAULT: Final = u64(2)  # the device cannot do this access (width, alignment): an access fault for the guest
EMUL_KEPT: Final = u64(3)  # not performed yet: it names a kept register runtime/trap.S has not saved (mmio.py)

# No region starts below this: a hart that gives no guest-physical address (htval 0, Priv 9.4.4) makes the trap
# path's address stval[1:0], which then falls in no region without a test of its own (arch/riscv/mmio.py).
EMUL_BASE_MIN: Final = u64(4)


# EmulMem.read32's answer when the device refuses the access: bit 32 set above a clear bit 31, so no 32-bit
# value sign-extended (the test is one sign extension and a compare)
EMUL_WORD_FAULT: Final = u64(1) << 32


def emul_read32_by(handler: Callable[[Ptr[Vcpu], u64, u64, bool, Ptr[u64]], u64], v: Ptr[Vcpu], offset: u64) -> u64:
    """An LW through a region's `handler` (width 4), answered as EmulMem.read32 answers."""
    value = Array[u64, 1]()
    if handler(v, offset, u64(4), False, addr_of(value[0])) != EMUL_DONE:
        return EMUL_WORD_FAULT
    return u64(i64(value[0] << 32) >> 32)


def emul_write32_by(
    handler: Callable[[Ptr[Vcpu], u64, u64, bool, Ptr[u64]], u64], v: Ptr[Vcpu], offset: u64, value: u64
) -> u64:
    """An SW through a region's `handler` (width 4, the value's low 32 bits), answered as EmulMem.write32 does."""
    word = Array[u64, 1]()
    word[0] = value & 0xFFFF_FFFF
    return handler(v, offset, u64(4), True, addr_of(word[0]))


def emul_read32(v: Ptr[Vcpu], region: u64, offset: u64) -> u64:
    """EmulMem.read32 of a device without its own: its handler."""
    return emul_read32_by(Ptr[EmulMem](region).handler, v, offset)


def emul_write32(v: Ptr[Vcpu], region: u64, offset: u64, value: u64) -> u64:
    """EmulMem.write32 of a device without its own: its handler."""
    return emul_write32_by(Ptr[EmulMem](region).handler, v, offset, value)


def emul_add(vm: Ptr[Vm], base: u64, size: u64, handler: Callable[[Ptr[Vcpu], u64, u64, bool, Ptr[u64]], u64]) -> bool:
    """Register [base, base + size) of vm's guest-physical space with `handler` (and emul_read32, emul_write32
    for its words): emul_add_words."""
    return emul_add_words(vm, base, size, handler, emul_read32, emul_write32)


def emul_add_words(
    vm: Ptr[Vm],
    base: u64,
    size: u64,
    handler: Callable[[Ptr[Vcpu], u64, u64, bool, Ptr[u64]], u64],
    read32: Callable[[Ptr[Vcpu], u64, u64], u64],
    write32: Callable[[Ptr[Vcpu], u64, u64, u64], u64],
) -> bool:
    """Register [base, base + size) of vm's guest-physical space with `handler`, and `read32` and `write32` for
    its LW and SW (EmulMem); false if the table is full, the window is empty, wraps, starts below EMUL_BASE_MIN,
    or overlaps one already there."""
    if vm.emuls >= EMUL_MAX or size == 0 or base + size < base or base < EMUL_BASE_MIN:
        return False
    for i in range(vm.emuls):
        e = addr_of(vm.emul[i])
        if base < e.base + e.size and e.base < base + size:
            return False
    e = addr_of(vm.emul[vm.emuls])
    e.base = base
    e.size = size
    e.handler = handler
    e.read32 = read32
    e.write32 = write32
    vm.emuls += 1
    return True


@inline
def emul_find(vm: Ptr[Vm], gpa: u64) -> Ptr[EmulMem]:
    """The region of vm that covers gpa, or null. The first region (the interrupt controller's, registered first)
    is probed before the count is read: an unused entry is empty (vm_emul_clear). Regions do not wrap
    (emul_add), so one unsigned compare tests both ends."""
    e = addr_of(vm.emul[0])
    if gpa - e.base < e.size:
        return e
    for i in range(u64(1), vm.emuls):
        e = addr_of(vm.emul[i])
        if gpa - e.base < e.size:
            return e
    return null(EmulMem)
