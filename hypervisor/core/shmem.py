"""Shared memory between guest VMs (mvm-tools/PROTOCOL.md, "Shared memory"): a region the control protocol
defines (SHM_CREATE, core/shmem_ctl.py) by name, size, guest-physical address, doorbell page, doorbell interrupt
and the VMs, by name, that map it, each read-write or read-only.

Frames: a region has no memory while no VM maps it. The first VM made (VM_CREATE) whose name the region lists
takes a zeroed run of the frame pool for it (`shm_prepare`), every such VM maps that same run into its stage 2 at
the region's address (R and W for "rw", R alone for "ro"; never X), and the run goes back to the pool when the
last of them is removed (VM_REMOVE: `shm_detach`). A VM the region does not list never has it in its stage 2:
its access there is outside its memory and ends it like any other (trap.py). A store by a VM that maps the region
read-only is a store guest-page fault on a mapped address: the guest gets a store/AMO access fault, as from a
read-only memory (trap.py asks `shm_read_only`), and runs on. The hypervisor itself never reads or writes a
shared region on a VM's behalf (it is not one of the VM's memory regions: core/guest_mem.py refuses it).

The doorbell: each VM that maps a region has an emulated page at the region's doorbell address (core/emul.py),
32-bit registers, naturally aligned (any other access is an access fault for the guest):

    0x00 MAGIC   r  0x4d485350 ("PSHM")
    0x04 ACCESS  r  1 read-only, 2 read-write (this VM's mapping)
    0x08 INDEX   r  this VM's place in the region's list of VMs (0 .. 6)
    0x0c RING    w  any value: ring the doorbell of every other VM that maps the region (read: 0)
    0x10 COUNT   r  rings this VM received since it last booted
    0x14 STATUS  r  1 while a ring is not acknowledged: the doorbell interrupt line is high (level)
    0x18 ACK     w  any value: STATUS to 0, the line low (read: 0)
    0x1c SENT    r  rings this VM made since it last booted
    0x20 SIZE    r  the region's size in bytes, low word; 0x24 its high word

A VM that maps a region read-only may ring (it tells the writer it has read). A ring reaches the other VMs'
doorbells whatever their state, but a VM that is not running has its line left low, and a boot starts with
COUNT, STATUS and SENT at 0 (`shm_vm_boot`), so a ring before a VM's boot is lost. The line is the doorbell's
wired source `irq` of the VM's virtual interrupt controller (arch/riscv/irqc.py irqc_set_line: the vPLIC's
gateway, or the vAPLIC's MSI into the VM's guest interrupt file).

Which harts: the table (`shm`) is written by the control server (one request at a time, on a hart of the MVM,
core/control.py) while no VM that maps a region runs on it: a definition is made before any VM it names exists
and removed after the last one is gone; `users` and the frames change only in VM_CREATE and VM_REMOVE. A
doorbell access comes from any hart: each region's `spin` guards its VMs' doorbell state and their lines (taken
before the interrupt controller's own lock, never after it).
"""

from compiler.prelude import Array, Callable, Final, Ptr, addr_of, static, struct, u8, u32, u64
from hypervisor.arch.riscv.irqc import irqc_set_line, irqc_wire_irq
from hypervisor.arch.riscv.stage2 import PTE_R, S2_PERM_RW, stage2_map
from hypervisor.core.emul import EMUL_DONE, EMUL_FAULT, emul_add
from hypervisor.core.frame_alloc import frame_alloc, frame_free
from hypervisor.core.spinlock import Spinlock, spin_lock, spin_unlock
from hypervisor.core.vm import VM_MAX, VM_NAME, VM_RUNNING, Vcpu, Vm, vcpu_vm, vm_get

SHM_MAX: Final = 4  # shared regions the hypervisor holds
SHM_VMS: Final = 7  # VMs one region names (every guest VM id, 1 .. 7)
SHM_SIZE_MAX: Final = u64(1) << 30  # 1 GiB
SHM_PAGE: Final = u64(4096)
SHM_DOOR_SIZE: Final = u64(4096)  # the doorbell's emulated page
SHM_BLOCK: Final = u64(1) << 21  # 2 MiB: a stage-2 megapage leaf, when the region's address and size allow

SHM_RO: Final = u64(1)
SHM_RW: Final = u64(2)

# Doorbell registers (the module docstring)
DOOR_MAGIC: Final = u64(0x00)
DOOR_ACCESS: Final = u64(0x04)
DOOR_INDEX: Final = u64(0x08)
DOOR_RING: Final = u64(0x0C)
DOOR_COUNT: Final = u64(0x10)
DOOR_STATUS: Final = u64(0x14)
DOOR_ACK: Final = u64(0x18)
DOOR_SENT: Final = u64(0x1C)
DOOR_SIZE_LO: Final = u64(0x20)
DOOR_SIZE_HI: Final = u64(0x24)
DOOR_MAGIC_VALUE: Final = u64(0x4D485350)  # "PSHM" little-endian


@struct
class ShmPeer:
    """One VM a region names: its name and access; `vm` the VM index that maps it now (0: none)."""

    name: Array[u8, VM_NAME]
    access: u64
    vm: u64


@struct
class Shm:
    used: bool
    name: Array[u8, VM_NAME]  # NUL-padded
    ipa: u64
    size: u64
    doorbell: u64  # guest-physical address of each VM's doorbell page
    irq: u64  # the doorbell's wired source in each VM's interrupt controller
    peers: u64
    peer: Array[ShmPeer, SHM_VMS]
    hpa: u64  # host address of its frames; 0 while no VM maps it
    users: u64  # VMs that map it
    spin: Spinlock


@struct
class ShmDoor:
    """A VM's doorbell of one region (by region and VM index)."""

    count: u32
    status: u32
    sent: u32


shm = static(Array[Shm, SHM_MAX])
shm_doors = static(Array[ShmDoor, SHM_MAX * VM_MAX])
shm_handler = static(Array[Callable[[Ptr[Vcpu], u64, u64, bool, Ptr[u64]], u64], SHM_MAX])
shm_handlers_set: bool = False


def shm_get(i: u64) -> Ptr[Shm]:
    return addr_of(shm[i])


def shm_door(i: u64, vm_index: u64) -> Ptr[ShmDoor]:
    return addr_of(shm_doors[i * VM_MAX + vm_index])


def shm_name_is(name: Ptr[u8], other: Ptr[u8]) -> bool:
    """Two NUL-padded names of VM_NAME bytes are the same."""
    for k in range(u64(VM_NAME)):
        if name[k] != other[k]:
            return False
    return True


def shm_peer_of(s: Ptr[Shm], name: Ptr[u8]) -> u64:
    """The place of the VM called `name` in s's list, or SHM_VMS when s does not name it."""
    for j in range(s.peers):
        if shm_name_is(addr_of(s.peer[j].name[0]), name):
            return j
    return u64(SHM_VMS)


def shm_peer_of_vm(s: Ptr[Shm], vm: Ptr[Vm]) -> u64:
    """The place of vm in s's list when vm maps s now, else SHM_VMS."""
    for j in range(s.peers):
        if s.peer[j].vm == vm.index and vm.index != 0:
            return j
    return u64(SHM_VMS)


# --------------------------------------------------------------------------------------------------------------
# Frames and mappings (VM_CREATE, VM_REMOVE)


def shm_frames_for(name: Ptr[u8]) -> u64:
    """Pages a new VM called `name` takes from the pool for the regions that name it and no VM maps yet."""
    pages = u64(0)
    for i in range(u64(SHM_MAX)):
        s = addr_of(shm[i])
        if s.used and s.users == 0 and shm_peer_of(s, name) < SHM_VMS:
            pages += s.size // SHM_PAGE
    return pages


def shm_prepare(name: Ptr[u8]) -> bool:
    """Before a VM called `name` is made: frames for each region that names it and has none yet; false (every
    run this call took given back) when the pool has no contiguous run for one."""
    for i in range(u64(SHM_MAX)):
        s = addr_of(shm[i])
        if s.used and s.users == 0 and s.hpa == 0 and shm_peer_of(s, name) < SHM_VMS:
            pages = s.size // SHM_PAGE
            hpa = u64(0)
            if s.ipa & (SHM_BLOCK - 1) == 0 and s.size & (SHM_BLOCK - 1) == 0:
                hpa = frame_alloc(pages, SHM_BLOCK // SHM_PAGE)
            if hpa == 0:
                hpa = frame_alloc(pages, u64(1))
            if hpa == 0:
                shm_unprepare()
                return False
            s.hpa = hpa
    return True


def shm_unprepare() -> None:
    """Give back the frames of every region that has some but no VM mapping it (a VM_CREATE that failed)."""
    for i in range(u64(SHM_MAX)):
        s = addr_of(shm[i])
        if s.used and s.users == 0 and s.hpa != 0:
            frame_free(s.hpa, s.size // SHM_PAGE)
            s.hpa = 0


def shm_map(name: Ptr[u8], root: u64) -> bool:
    """Map every region that names the VM called `name` (shm_prepare gave each frames) into its stage-2 table
    `root`: read-write, or read-only. False when a table page cannot be had (what was mapped stays in `root`,
    freed with it)."""
    for i in range(u64(SHM_MAX)):
        s = addr_of(shm[i])
        if s.used and s.hpa != 0:
            j = shm_peer_of(s, name)
            if j < SHM_VMS:
                perms = S2_PERM_RW if s.peer[j].access == SHM_RW else PTE_R
                if not stage2_map(root, s.ipa, s.hpa, s.size, perms):
                    return False
    return True


def shm_attach(vm: Ptr[Vm]) -> bool:
    """vm (mapped by shm_map, its interrupt controller made) counts as a user of each region that names it and
    gets its doorbell page and its line; false when its emulated-device table is full."""
    global shm_handlers_set
    if not shm_handlers_set:
        shm_handler[0] = shm_door_emul0
        shm_handler[1] = shm_door_emul1
        shm_handler[2] = shm_door_emul2
        shm_handler[3] = shm_door_emul3
        shm_handlers_set = True
    ok = True
    for i in range(u64(SHM_MAX)):
        s = addr_of(shm[i])
        if s.used and s.hpa != 0:
            j = shm_peer_of(s, addr_of(vm.name[0]))
            if j < SHM_VMS:
                spin_lock(addr_of(s.spin))
                s.peer[j].vm = vm.index
                s.users += 1
                d = shm_door(i, vm.index)
                d.count = 0
                d.status = 0
                d.sent = 0
                spin_unlock(addr_of(s.spin))
                if not emul_add(vm, s.doorbell, SHM_DOOR_SIZE, shm_handler[i]):
                    ok = False
                irqc_wire_irq(vm, s.irq)
    return ok


def shm_detach(vm: Ptr[Vm]) -> u64:
    """vm is removed (none of its vCPUs runs): it no longer maps any region; a region's frames go back to the
    pool with its last user. The pages given back."""
    back = u64(0)
    for i in range(u64(SHM_MAX)):
        s = addr_of(shm[i])
        if not s.used:
            continue
        j = shm_peer_of_vm(s, vm)
        if j == SHM_VMS:
            continue
        spin_lock(addr_of(s.spin))
        s.peer[j].vm = 0
        s.users -= 1
        spin_unlock(addr_of(s.spin))
        if s.users == 0 and s.hpa != 0:
            frame_free(s.hpa, s.size // SHM_PAGE)
            s.hpa = 0
            back += s.size // SHM_PAGE
    return back


def shm_vm_boot(vm: Ptr[Vm]) -> None:
    """vm boots: its doorbells as at power-on (nothing received, nothing sent, the line low)."""
    for i in range(u64(SHM_MAX)):
        s = addr_of(shm[i])
        if s.used and shm_peer_of_vm(s, vm) < SHM_VMS:
            spin_lock(addr_of(s.spin))
            d = shm_door(i, vm.index)
            d.count = 0
            d.status = 0
            d.sent = 0
            spin_unlock(addr_of(s.spin))


def shm_read_only(vm: Ptr[Vm], gpa: u64) -> bool:
    """gpa is in a region vm maps read-only (its store there is the guest's mistake: an access fault)."""
    for i in range(u64(SHM_MAX)):
        s = addr_of(shm[i])
        if s.used and gpa >= s.ipa and gpa - s.ipa < s.size:
            j = shm_peer_of_vm(s, vm)
            if j < SHM_VMS and s.peer[j].access == SHM_RO:
                return True
    return False


# --------------------------------------------------------------------------------------------------------------
# The doorbell


def shm_ring(i: u64, v: Ptr[Vcpu]) -> None:
    """v's VM rings region i: every other VM that maps it counts a ring, its STATUS goes to 1 and, when it runs,
    its line goes high."""
    s = addr_of(shm[i])
    me = vcpu_vm(v)
    spin_lock(addr_of(s.spin))
    shm_door(i, me.index).sent += 1
    for j in range(s.peers):
        k = s.peer[j].vm
        if k != 0 and k != me.index:
            d = shm_door(i, k)
            d.count += 1
            d.status = 1
            target = vm_get(k)
            if target.state == VM_RUNNING:
                irqc_set_line(target, s.irq, True, v)
    spin_unlock(addr_of(s.spin))


def shm_ack(i: u64, v: Ptr[Vcpu]) -> None:
    s = addr_of(shm[i])
    me = vcpu_vm(v)
    spin_lock(addr_of(s.spin))
    shm_door(i, me.index).status = 0
    irqc_set_line(me, s.irq, False, v)
    spin_unlock(addr_of(s.spin))


def shm_door_read(i: u64, vm: Ptr[Vm], offset: u64) -> u64:
    s = addr_of(shm[i])
    d = shm_door(i, vm.index)
    if offset == DOOR_MAGIC:
        return DOOR_MAGIC_VALUE
    j = shm_peer_of_vm(s, vm)
    if offset == DOOR_ACCESS:
        return s.peer[j].access if j < SHM_VMS else u64(0)
    if offset == DOOR_INDEX:
        return j
    if offset == DOOR_COUNT:
        return u64(d.count)
    if offset == DOOR_STATUS:
        return u64(d.status)
    if offset == DOOR_SENT:
        return u64(d.sent)
    if offset == DOOR_SIZE_LO:
        return s.size & 0xFFFF_FFFF
    if offset == DOOR_SIZE_HI:
        return s.size >> 32
    return u64(0)


def shm_door_emul(i: u64, v: Ptr[Vcpu], offset: u64, width: u64, store: bool, value: Ptr[u64]) -> u64:
    """Region i's doorbell page in v's VM (core/emul.py handler): 32-bit, naturally aligned accesses."""
    if width != 4 or offset % 4 != 0:
        return EMUL_FAULT
    if store:
        if offset == DOOR_RING:
            shm_ring(i, v)
        elif offset == DOOR_ACK:
            shm_ack(i, v)
        return EMUL_DONE  # the read-only registers ignore stores
    value[0] = shm_door_read(i, vcpu_vm(v), offset)
    return EMUL_DONE


# One handler per region slot: a handler is told the offset in its window, not which window it is.
def shm_door_emul0(v: Ptr[Vcpu], offset: u64, width: u64, store: bool, value: Ptr[u64]) -> u64:
    return shm_door_emul(u64(0), v, offset, width, store, value)


def shm_door_emul1(v: Ptr[Vcpu], offset: u64, width: u64, store: bool, value: Ptr[u64]) -> u64:
    return shm_door_emul(u64(1), v, offset, width, store, value)


def shm_door_emul2(v: Ptr[Vcpu], offset: u64, width: u64, store: bool, value: Ptr[u64]) -> u64:
    return shm_door_emul(u64(2), v, offset, width, store, value)


def shm_door_emul3(v: Ptr[Vcpu], offset: u64, width: u64, store: bool, value: Ptr[u64]) -> u64:
    return shm_door_emul(u64(3), v, offset, width, store, value)


def shm_user_count(vm_name: Ptr[u8]) -> u64:
    """How many regions name the VM called vm_name (each takes one of its emulated-device windows)."""
    n = u64(0)
    for i in range(u64(SHM_MAX)):
        s = addr_of(shm[i])
        if s.used and shm_peer_of(s, vm_name) < SHM_VMS:
            n += 1
    return n
