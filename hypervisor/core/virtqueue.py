"""Split virtqueues, the device side (virtio 1.2 section 2.7): the queue's three areas in guest memory, the
available ring read, descriptor chains walked and checked, buffers used.

The guest owns the memory and may change it at any moment, from another vCPU: every value read from it is read
once into a local and checked before it is used, and every guest-physical range goes through `gmem_translate`
(core/guest_mem.py) right before it is touched. A chain is refused (VQ_BAD) when a descriptor's buffer is not
inside the VM's memory, its length wraps, its `next` is not below the queue size, the chain is longer than the
queue (a loop), it is INDIRECT (VIRTIO_F_INDIRECT_DESC is never offered), or a device-readable descriptor follows
a device-writable one (2.7.4.2). The caller then fails that request or marks its device broken
(DEVICE_NEEDS_RESET, 2.1.2); the hypervisor itself never trusts a guest value.

Ordering (2.7.13, RVWMO): the driver writes the ring entry before avail->idx, so the device reads avail->idx,
fences, then the entry; the device writes the used element, fences, then used->idx, and fences again before it
notifies.
"""

from compiler.prelude import Final, Ptr, addr_of, fence, struct, u8, u16, u32, u64
from hypervisor.core.guest_mem import gmem_translate
from hypervisor.core.vm import Vm

VQ_MAX_SIZE: Final = u32(256)  # QueueNumMax of our devices

VIRTQ_DESC_F_NEXT: Final = u16(1)  # 2.7.5
VIRTQ_DESC_F_WRITE: Final = u16(2)
VIRTQ_DESC_F_INDIRECT: Final = u16(4)
VIRTQ_AVAIL_F_NO_INTERRUPT: Final = u16(1)  # 2.7.6
VIRTQ_USED_F_NO_NOTIFY: Final = u16(1)  # 2.7.8

VQ_DESC_SIZE: Final = u64(16)  # struct virtq_desc: le64 addr, le32 len, le16 flags, le16 next
VQ_USED_ELEM_SIZE: Final = u64(8)  # struct virtq_used_elem: le32 id, le32 len

# vq_pop's answers
VQ_EMPTY: Final = u64(0)  # nothing new in the available ring
VQ_OK: Final = u64(1)  # a chain, checked
VQ_BAD: Final = u64(2)  # the driver broke the rules: the queue cannot be trusted any more


@struct
class Virtq:
    num: u32  # QueueNum: entries (a power of 2, 1 .. VQ_MAX_SIZE)
    ready: u32  # QueueReady
    desc: u64  # guest-physical addresses of the descriptor table, the driver (available) and device (used) areas
    driver: u64
    device: u64
    last_avail: u16  # the next available-ring entry the device takes
    used_idx: u16  # the device's used->idx


@struct
class VqChain:
    """A descriptor chain taken from the available ring, as checked by vq_pop."""

    head: u16
    descs: u32  # descriptors in it
    readable: u64  # bytes in its device-readable descriptors
    writable: u64  # bytes in its device-writable descriptors


@struct
class VqDesc:
    buf: u64  # the buffer (virtq_desc.addr)
    length: u32
    flags: u16
    next: u16


def vq_reset(q: Ptr[Virtq]) -> None:
    q.num = 0
    q.ready = 0
    q.desc = 0
    q.driver = 0
    q.device = 0
    q.last_avail = 0
    q.used_idx = 0


def vq_desc_area(num: u32) -> u64:
    return u64(num) * VQ_DESC_SIZE


def vq_driver_area(num: u32) -> u64:
    return u64(6) + u64(num) * 2  # flags, idx, ring[num], used_event


def vq_device_area(num: u32) -> u64:
    return u64(6) + u64(num) * VQ_USED_ELEM_SIZE  # flags, idx, ring[num], avail_event


def vq_num_ok(num: u32) -> bool:
    """2.7: a split queue's size is a power of 2 (at most 32768; ours at most VQ_MAX_SIZE)."""
    return num != 0 and num <= VQ_MAX_SIZE and num & (num - 1) == 0


def vq_setup_ok(vm: Ptr[Vm], q: Ptr[Virtq]) -> bool:
    """The queue as the driver set it up may be used (2.7 alignment: descriptors 16, driver area 2, device
    area 4 bytes; each area inside the VM's memory)."""
    if not vq_num_ok(q.num):
        return False
    if q.desc & 15 != 0 or q.driver & 1 != 0 or q.device & 3 != 0:
        return False
    return (
        gmem_translate(vm, q.desc, vq_desc_area(q.num)) != 0
        and gmem_translate(vm, q.driver, vq_driver_area(q.num)) != 0
        and gmem_translate(vm, q.device, vq_device_area(q.num)) != 0
    )


def vq_read_u16(vm: Ptr[Vm], gpa: u64) -> u64:
    """A little-endian u16 of guest memory; 0x10000 (not a u16) when the address is not the VM's."""
    h = gmem_translate(vm, gpa, u64(2))
    if h == 0:
        return u64(0x10000)
    return u64(Ptr[u16](h)[0])


def vq_avail_idx(vm: Ptr[Vm], q: Ptr[Virtq]) -> u64:
    return vq_read_u16(vm, q.driver + 2)


def vq_has_avail(vm: Ptr[Vm], q: Ptr[Virtq]) -> bool:
    """The driver has made a buffer available that the device has not taken (a bad ring counts: vq_pop says)."""
    if q.ready == 0:
        return False
    return vq_avail_idx(vm, q) != u64(q.last_avail)


def vq_desc(vm: Ptr[Vm], q: Ptr[Virtq], index: u64, out: Ptr[VqDesc]) -> bool:
    """Descriptor `index` (< q.num) read once into `out`; false if the table is not the VM's memory."""
    if index >= u64(q.num):
        return False
    h = gmem_translate(vm, q.desc + index * VQ_DESC_SIZE, VQ_DESC_SIZE)
    if h == 0:
        return False
    d = Ptr[VqDesc](h)
    out.buf = d.buf
    out.length = d.length
    out.flags = d.flags
    out.next = d.next
    return True


def vq_desc_ok(vm: Ptr[Vm], d: Ptr[VqDesc]) -> bool:
    """The descriptor's buffer is inside the VM's memory and not INDIRECT."""
    if d.flags & VIRTQ_DESC_F_INDIRECT != 0:
        return False
    return gmem_translate(vm, d.buf, u64(d.length)) != 0


def vq_walk(vm: Ptr[Vm], q: Ptr[Virtq], head: u64, c: Ptr[VqChain]) -> bool:
    """Check the whole chain from `head` and total its readable and writable bytes into c."""
    c.head = u16(head)
    c.descs = 0
    c.readable = 0
    c.writable = 0
    d = VqDesc()
    index = head
    while True:
        if c.descs >= q.num:  # longer than the queue: a loop (2.7.5.1: no longer than the queue size)
            return False
        if not vq_desc(vm, q, index, addr_of(d)) or not vq_desc_ok(vm, addr_of(d)):
            return False
        c.descs += 1
        if d.flags & VIRTQ_DESC_F_WRITE != 0:
            c.writable += u64(d.length)
        else:
            if c.writable != 0:  # 2.7.4.2: device-writable descriptors come after all device-readable ones
                return False
            c.readable += u64(d.length)
        if d.flags & VIRTQ_DESC_F_NEXT == 0:
            return True
        index = u64(d.next)
        if index >= u64(q.num):
            return False


def vq_pop(vm: Ptr[Vm], q: Ptr[Virtq], c: Ptr[VqChain]) -> u64:
    """Take the next available chain into c: VQ_OK, VQ_EMPTY, or VQ_BAD (the rings or the chain break the
    rules: the entry is not consumed)."""
    if q.ready == 0:
        return VQ_EMPTY
    idx = vq_avail_idx(vm, q)
    if idx > 0xFFFF:
        return VQ_BAD
    if idx == u64(q.last_avail):
        return VQ_EMPTY
    if (idx - u64(q.last_avail)) & 0xFFFF > u64(q.num):  # more made available than the queue holds
        return VQ_BAD
    fence()  # avail->idx before the ring entry it covers
    slot = u64(q.last_avail) & (u64(q.num) - 1)
    head = vq_read_u16(vm, q.driver + 4 + slot * 2)
    if head >= u64(q.num):
        return VQ_BAD
    if not vq_walk(vm, q, head, c):
        return VQ_BAD
    q.last_avail = q.last_avail + 1
    return VQ_OK


def vq_copy(vm: Ptr[Vm], q: Ptr[Virtq], c: Ptr[VqChain], writable: bool, offset: u64, buf: u64, n: u64) -> u64:
    """Copy between the chain's buffers and host memory at buf: from its readable bytes [offset, offset + n)
    (writable false) or into its writable bytes at [offset, offset + n) (writable true). Each descriptor is read
    again and checked again (the guest may have changed it since vq_pop): the bytes copied, which are fewer
    than n when the chain is shorter or became bad."""
    d = VqDesc()
    index = u64(c.head)
    pos = u64(0)  # of the bytes of the chosen direction, where this descriptor starts
    done = u64(0)
    for _ in range(c.descs):
        if done == n:
            break
        if not vq_desc(vm, q, index, addr_of(d)) or not vq_desc_ok(vm, addr_of(d)):
            return done
        mine = (d.flags & VIRTQ_DESC_F_WRITE != 0) == writable
        if mine:
            length = u64(d.length)
            if offset + done < pos + length:
                skip = offset + done - pos
                take = length - skip
                if take > n - done:
                    take = n - done
                h = gmem_translate(vm, d.buf + skip, take)
                if h == 0:
                    return done
                host = Ptr[u8](buf + done)
                guest = Ptr[u8](h)
                if writable:
                    for i in range(take):
                        guest[i] = host[i]
                else:
                    for i in range(take):
                        host[i] = guest[i]
                done += take
            pos += length
        if d.flags & VIRTQ_DESC_F_NEXT == 0:
            break
        index = u64(d.next)
        if index >= u64(q.num):
            return done
    return done


def vq_push(vm: Ptr[Vm], q: Ptr[Virtq], head: u64, written: u64) -> bool:
    """Give chain `head` back in the used ring with `written` bytes written into it, then publish used->idx
    (2.7.8); false if the device area is not the VM's memory."""
    slot = u64(q.used_idx) & (u64(q.num) - 1)
    elem = gmem_translate(vm, q.device + 4 + slot * VQ_USED_ELEM_SIZE, VQ_USED_ELEM_SIZE)
    idx = gmem_translate(vm, q.device + 2, u64(2))
    if elem == 0 or idx == 0:
        return False
    Ptr[u32](elem)[0] = u32(head)
    Ptr[u32](elem)[1] = u32(written)
    q.used_idx = q.used_idx + 1
    fence()  # the element before the index that publishes it
    Ptr[u16](idx)[0] = q.used_idx
    fence()  # the index before the notification
    return True


def vq_set_notify(vm: Ptr[Vm], q: Ptr[Virtq], wanted: bool) -> None:
    """2.7.10: whether the device wants to be notified of buffers the driver makes available: used->flags
    VIRTQ_USED_F_NO_NOTIFY when not (without VIRTIO_F_EVENT_IDX; a hint, the driver may notify anyway). A fence
    follows: the driver publishes avail->idx, fences, then reads the flag (2.7.13.3), so after the device asks
    for notifications and then reads avail->idx, either it sees the new buffer or the driver sees the request."""
    f = gmem_translate(vm, q.device, u64(2))
    if f == 0:
        return
    Ptr[u16](f)[0] = u16(0) if wanted else VIRTQ_USED_F_NO_NOTIFY
    fence()


def vq_wants_interrupt(vm: Ptr[Vm], q: Ptr[Virtq]) -> bool:
    """2.7.7.1: without VIRTIO_F_EVENT_IDX the driver's avail->flags says whether it wants used-buffer
    notifications (a hint: a device SHOULD NOT notify when told so)."""
    flags = vq_read_u16(vm, q.driver)
    return flags > 0xFFFF or u16(flags) & VIRTQ_AVAIL_F_NO_INTERRUPT == 0
