"""Each VM's emulated MMIO regions (Bao's `emul_mem` and `vm_emul_get_mem`): a device model registers the
guest-physical window it answers for in a VM (`emul_add`), and a guest-page fault inside that window is decoded
once (arch/riscv/mmio.py) and handed to that model. An address no region of the VM covers is outside its memory.

The table is written while the VM is made, before any of its vCPUs runs, and only read afterwards.
"""

from compiler.prelude import Callable, Final, Ptr, addr_of, inline, null, u64
from hypervisor.core.vm import EMUL_MAX, EmulMem, Vcpu, Vm

# mmio_emulate's answers; EMUL_DONE is 0, so that the hot path's test of it is a branch on zero
EMUL_DONE: Final = u64(0)  # performed: the guest goes on after the instruction
EMUL_NONE: Final = u64(1)  # no region of the VM there: the access is outside its memory
EMUL_FAULT: Final = u64(2)  # the device cannot do this access (width, alignment): an access fault for the guest
EMUL_KEPT: Final = u64(3)  # not performed yet: it names a kept register runtime/trap.S has not saved (mmio.py)


def emul_add(vm: Ptr[Vm], base: u64, size: u64, handler: Callable[[Ptr[Vcpu], u64, u64, bool, Ptr[u64]], u64]) -> bool:
    """Register [base, base + size) of vm's guest-physical space with `handler`; false if the table is full, the
    window is empty or wraps, or it overlaps one already there."""
    if vm.emuls >= EMUL_MAX or size == 0 or base + size < base:
        return False
    for i in range(vm.emuls):
        e = addr_of(vm.emul[i])
        if base < e.base + e.size and e.base < base + size:
            return False
    e = addr_of(vm.emul[vm.emuls])
    e.base = base
    e.size = size
    e.handler = handler
    vm.emuls += 1
    return True


@inline
def emul_find(vm: Ptr[Vm], gpa: u64) -> Ptr[EmulMem]:
    """The region of vm that covers gpa, or null."""
    for i in range(vm.emuls):
        e = addr_of(vm.emul[i])
        if gpa >= e.base and gpa - e.base < e.size:
            return e
    return null(EmulMem)
