"""The hypervisor's one way into a guest's memory: a guest-physical range becomes a host address only when it
lies whole inside one memory region of the VM (today each VM has one: Vm.mem_gpa / mem_hpa / mem_size).
Every access the hypervisor makes on a guest's behalf to its RAM (virtqueues, buffers) goes through here, so a
range that leaves the VM's memory, wraps around the address space or straddles two regions is refused at one
place.
"""

from compiler.prelude import Ptr, u64
from hypervisor.core.vm import Vm


def gmem_translate(vm: Ptr[Vm], gpa: u64, length: u64) -> u64:
    """The host address of [gpa, gpa + length) when the range lies inside one memory region of vm, else 0.
    Overflow-safe: the checks never compute gpa + length."""
    if gpa < vm.mem_gpa:
        return u64(0)
    off = gpa - vm.mem_gpa
    if off >= vm.mem_size or length > vm.mem_size - off:
        return u64(0)
    return vm.mem_hpa + off
