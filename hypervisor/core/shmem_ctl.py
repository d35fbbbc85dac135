"""SHM_CREATE and SHM_REMOVE (mvm-tools/PROTOCOL.md, "Shared memory"): the control server's requests that define
and remove a shared region (core/shmem.py), each field checked with a message that names it.

Runs in the control server only (core/control.py, under its lock): one request at a time, on a hart of the MVM.
"""

from compiler.prelude import Array, Final, Ptr, addr_of, cstr, struct, u8, u32, u64
from hypervisor.arch.riscv.aplic import APLIC_SOURCES
from hypervisor.arch.riscv.plic import PLIC_SOURCES
from hypervisor.board import (
    APLIC_S_BASE,
    APLIC_SIZE,
    IMSIC_PAGE_SIZE,
    IMSIC_S_BASE,
    IRQ_MODE,
    IRQ_MODE_AIA,
    MAX_HARTS,
    PLIC_BASE,
    PLIC_SIZE,
)
from hypervisor.core.gvm import (
    EBUSY,
    EINVAL,
    ELIMIT,
    GPA_LIMIT,
    OK,
    PAGE,
    fail,
    msg_byte,
    msg_clear,
    msg_dec,
    msg_str,
    overlaps,
)
from hypervisor.core.shmem import (
    SHM_DOOR_SIZE,
    SHM_MAX,
    SHM_RO,
    SHM_RW,
    SHM_SIZE_MAX,
    SHM_VMS,
    shm_get,
    shm_name_is,
    shm_peer_of,
)
from hypervisor.core.vm import VM_MAX, VM_NAME, VMS

PEER_NAMES: Final = VM_NAME * SHM_VMS


@struct
class ShmConfig:
    """An SHM_CREATE request, decoded (control.py): the SHM record's fields, not yet checked."""

    name: Array[u8, VM_NAME]
    ipa: u64
    size: u64
    doorbell: u64
    irq: u64
    peers: u64
    peer_name: Array[u8, PEER_NAMES]  # peer j's name at j * VM_NAME
    access: Array[u64, SHM_VMS]


def msg_name(name: Ptr[u8]) -> None:
    k = u64(0)
    while k < VM_NAME and name[k] != 0:
        msg_byte(name[k])
        k += 1


def name_ok(name: Ptr[u8]) -> bool:
    """1 .. 31 printable bytes without spaces, NUL-padded to VM_NAME."""
    n = u64(0)
    while n < VM_NAME and name[n] != 0:
        if name[n] < 0x21 or name[n] > 0x7E:
            return False
        n += 1
    if n == 0 or n == VM_NAME:
        return False
    for k in range(n, u64(VM_NAME)):
        if name[k] != 0:
            return False
    return True


def fail_peer(j: u64, text: Ptr[u8]) -> u32:
    msg_clear()
    msg_str(cstr(b"vms["))
    msg_dec(j)
    msg_str(cstr(b"]: "))
    msg_str(text)
    return EINVAL


def on_controller(base: u64, size: u64) -> bool:
    """[base, base + size) meets a GVM's interrupt controller (its IMSIC pages: as many as it could have vCPUs)."""
    if IRQ_MODE == IRQ_MODE_AIA:
        return overlaps(base, size, APLIC_S_BASE, APLIC_SIZE) or overlaps(
            base, size, IMSIC_S_BASE, MAX_HARTS * IMSIC_PAGE_SIZE
        )
    return overlaps(base, size, PLIC_BASE, PLIC_SIZE)


def shm_find(name: Ptr[u8]) -> u64:
    """The slot of the region called `name`, or SHM_MAX."""
    for i in range(u64(SHM_MAX)):
        if shm_get(i).used and shm_name_is(addr_of(shm_get(i).name[0]), name):
            return i
    return u64(SHM_MAX)


def shm_check(c: Ptr[ShmConfig]) -> u32:
    """Every field of an SHM_CREATE against PROTOCOL.md's rules, before anything is taken."""
    if not name_ok(addr_of(c.name[0])):
        return fail(EINVAL, cstr(b"name: not 1 .. 31 printable bytes without spaces, NUL-padded"))
    if shm_find(addr_of(c.name[0])) != SHM_MAX:
        msg_clear()
        msg_str(cstr(b"name: shared memory "))
        msg_name(addr_of(c.name[0]))
        msg_str(cstr(b" exists"))
        return EINVAL
    if c.size == 0 or c.size & (PAGE - 1) != 0:
        return fail(EINVAL, cstr(b"size: not a nonzero multiple of 4096"))
    if c.size > SHM_SIZE_MAX:
        return fail(EINVAL, cstr(b"size: above 1 GiB"))
    if c.ipa & (PAGE - 1) != 0:
        return fail(EINVAL, cstr(b"ipa: not a multiple of 4096"))
    if c.ipa >= GPA_LIMIT or c.size > GPA_LIMIT - c.ipa:
        return fail(EINVAL, cstr(b"ipa: the region goes beyond the 2^41 guest-physical space (Sv39x4)"))
    if c.doorbell & (PAGE - 1) != 0 or c.doorbell >= GPA_LIMIT - SHM_DOOR_SIZE:
        return fail(EINVAL, cstr(b"doorbell_ipa: not a page below 2^41"))
    if overlaps(c.doorbell, SHM_DOOR_SIZE, c.ipa, c.size):
        return fail(EINVAL, cstr(b"doorbell_ipa: inside the region"))
    if on_controller(c.ipa, c.size):
        return fail(EINVAL, cstr(b"ipa: the region overlaps the VMs' interrupt controller"))
    if on_controller(c.doorbell, SHM_DOOR_SIZE):
        return fail(EINVAL, cstr(b"doorbell_ipa: overlaps the VMs' interrupt controller"))
    sources = APLIC_SOURCES if IRQ_MODE == IRQ_MODE_AIA else PLIC_SOURCES
    if c.irq == 0 or c.irq >= sources:
        msg_clear()
        msg_str(cstr(b"irq: not an interrupt source 1 .. "))
        msg_dec(u64(sources - 1))
        return EINVAL
    if c.peers == 0 or c.peers > SHM_VMS:
        return fail(EINVAL, cstr(b"vms: not 1 .. 7 VMs"))
    for j in range(c.peers):
        name = addr_of(c.peer_name[j * VM_NAME])
        if not name_ok(name):
            return fail_peer(j, cstr(b"name: not 1 .. 31 printable bytes without spaces, NUL-padded"))
        if c.access[j] != SHM_RO and c.access[j] != SHM_RW:
            return fail_peer(j, cstr(b"access: not 1 (ro) or 2 (rw)"))
        for k in range(j):
            if shm_name_is(addr_of(c.peer_name[k * VM_NAME]), name):
                return fail_peer(j, cstr(b"named twice"))
    # Regions that share a VM with this one: apart in that VM's guest-physical space, on another source
    for i in range(u64(SHM_MAX)):
        s = shm_get(i)
        if not s.used:
            continue
        for j in range(c.peers):
            if shm_peer_of(s, addr_of(c.peer_name[j * VM_NAME])) == SHM_VMS:
                continue
            why = cstr(b"")
            if overlaps(c.ipa, c.size, s.ipa, s.size) or overlaps(c.ipa, c.size, s.doorbell, SHM_DOOR_SIZE):
                why = cstr(b"ipa: the region overlaps shared memory ")
            elif overlaps(c.doorbell, SHM_DOOR_SIZE, s.ipa, s.size) or c.doorbell == s.doorbell:
                why = cstr(b"doorbell_ipa: overlaps shared memory ")
            elif c.irq == s.irq:
                why = cstr(b"irq: the doorbell source of shared memory ")
            if why[0] != 0:
                msg_clear()
                msg_str(why)
                msg_name(addr_of(s.name[0]))
                msg_str(cstr(b" in "))
                msg_name(addr_of(c.peer_name[j * VM_NAME]))
                return EINVAL
    # Defined before the VMs it names: a VM that exists is not given new memory
    for j in range(c.peers):
        for k in range(u64(1), u64(VM_MAX)):
            if VMS[k].used and shm_name_is(addr_of(VMS[k].name[0]), addr_of(c.peer_name[j * VM_NAME])):
                msg_clear()
                msg_str(cstr(b"vms: "))
                msg_name(addr_of(c.peer_name[j * VM_NAME]))
                msg_str(cstr(b" exists (vm"))
                msg_dec(k)
                msg_str(cstr(b"): shared memory is defined before the VMs that map it"))
                return EBUSY
    return OK


def shm_create(c: Ptr[ShmConfig]) -> u32:
    """SHM_CREATE: check, then take a slot. No frames yet: the first VM that maps it takes them."""
    code = shm_check(c)
    if code != OK:
        return code
    slot = u64(SHM_MAX)
    for i in range(u64(SHM_MAX)):
        if not shm_get(i).used:
            slot = i
            break
    if slot == SHM_MAX:
        return fail(ELIMIT, cstr(b"no free shared-memory slot (the hypervisor holds 4)"))
    s = shm_get(slot)
    for k in range(u64(VM_NAME)):
        s.name[k] = c.name[k]
    s.ipa = c.ipa
    s.size = c.size
    s.doorbell = c.doorbell
    s.irq = c.irq
    s.peers = c.peers
    for j in range(u64(SHM_VMS)):
        for k in range(u64(VM_NAME)):
            s.peer[j].name[k] = c.peer_name[j * VM_NAME + k] if j < c.peers else u8(0)
        s.peer[j].access = c.access[j] if j < c.peers else u64(0)
        s.peer[j].vm = 0
    s.hpa = 0
    s.users = 0
    s.used = True
    return OK


def shm_remove(name: Ptr[u8]) -> u32:
    """SHM_REMOVE: only while no VM maps it."""
    if not name_ok(name):
        return fail(EINVAL, cstr(b"name: not 1 .. 31 printable bytes without spaces, NUL-padded"))
    i = shm_find(name)
    if i == SHM_MAX:
        msg_clear()
        msg_str(cstr(b"name: no shared memory called "))
        msg_name(name)
        return EINVAL
    s = shm_get(i)
    if s.users != 0:
        msg_clear()
        msg_str(cstr(b"name: "))
        msg_name(name)
        msg_str(cstr(b" is mapped by"))
        for j in range(s.peers):
            if s.peer[j].vm != 0:
                msg_str(cstr(b" vm"))
                msg_dec(s.peer[j].vm)
        msg_str(cstr(b" (remove them first)"))
        return EBUSY
    s.used = False
    return OK
