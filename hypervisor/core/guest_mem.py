"""The hypervisor's one way into a guest's memory: a guest-physical range becomes a host address only when it
lies whole inside ONE memory region of the VM (Vm.region: up to MEM_REGIONS; a VM's emulated and passthrough
devices are never reached this way). Every access the hypervisor makes on a VM's behalf to its RAM (virtqueues,
buffers, image loads, SBI DBCN) goes through here, so a range that leaves the VM's memory, wraps around the
address space or straddles two regions is refused at one place.

Which harts: a VM's regions are written only while it is made (core/gvm.py, core/vm.py vm_setup) and before
they are freed (VM_REMOVE); both happen while none of its vCPUs runs and no device of it is served, so readers
need no lock.
"""

from compiler.prelude import Ptr, addr_of, u64
from hypervisor.core.vm import Vm


def gmem_translate(vm: Ptr[Vm], gpa: u64, length: u64) -> u64:
    """The host address of [gpa, gpa + length) of vm's memory when the whole range lies inside one of its memory
    regions (length 0: gpa itself must be inside one), else 0. Overflowing ranges are refused."""
    for i in range(vm.regions):
        r = addr_of(vm.region[i])
        if gpa >= r.gpa and gpa - r.gpa < r.size:
            off = gpa - r.gpa
            if length > r.size - off:
                return u64(0)
            return r.hpa + off
    return u64(0)
