"""Bounded byte rings between the hypervisor's consoles and the management VM's virtio-console ports: one per
port and direction. A writer that must never wait (a guest's console, the hypervisor's log) drops the oldest
bytes when the ring is full and counts them; the control port's writer takes only what fits.

`head` and `tail` count bytes since the start (they never wrap in practice: 2^64); the ring's lock guards them
and the data. It is taken alone or as the innermost lock (under a device's or the console's lock), never around
another one.
"""

from compiler.prelude import Array, Final, Ptr, addr_of, amoswap_w, fence, static, struct, u8, u32, u64
from hypervisor.arch.riscv.ipi import hart_ipi
from hypervisor.core.spinlock import Spinlock, spin_lock, spin_unlock


@struct
class ByteRing:
    head: u64  # bytes ever written
    tail: u64  # bytes ever read
    dropped: u64  # bytes lost to a full ring (oldest first)
    data: u64  # the storage's address and size (a power of 2)
    size: u64
    lock: Spinlock


def ring_setup(r: Ptr[ByteRing], data: u64, size: u64) -> None:
    """Give r its storage (idempotent: the same storage every time)."""
    if r.size == 0:
        r.data = data
        r.size = size


def ring_len(r: Ptr[ByteRing]) -> u64:
    return r.head - r.tail


def ring_room(r: Ptr[ByteRing]) -> u64:
    spin_lock(addr_of(r.lock))
    room = r.size - (r.head - r.tail)
    spin_unlock(addr_of(r.lock))
    return room


def ring_put(r: Ptr[ByteRing], src: u64, n: u64, drop_oldest: bool) -> u64:
    """Append n bytes from src: with drop_oldest all of them, the oldest bytes dropped (and counted) to make
    room; otherwise only what fits. The bytes taken."""
    if r.size == 0:
        return u64(0)
    s = Ptr[u8](src)
    d = Ptr[u8](r.data)
    spin_lock(addr_of(r.lock))
    room = r.size - (r.head - r.tail)
    take = n
    if take > room and not drop_oldest:
        take = room
    first = u64(0)
    if take > r.size:  # only the last `size` bytes can be kept
        first = take - r.size
        r.dropped += first
    for i in range(first, take):
        if r.head - r.tail == r.size:
            r.tail += 1
            r.dropped += 1
        d[r.head & (r.size - 1)] = s[i]
        r.head += 1
    spin_unlock(addr_of(r.lock))
    return take


def ring_get(r: Ptr[ByteRing], dst: u64, n: u64) -> u64:
    """Take up to n of the oldest bytes into dst; how many."""
    if r.size == 0:
        return u64(0)
    o = Ptr[u8](dst)
    d = Ptr[u8](r.data)
    spin_lock(addr_of(r.lock))
    k = u64(0)
    while k < n and r.tail != r.head:
        o[k] = d[r.tail & (r.size - 1)]
        r.tail += 1
        k += 1
    spin_unlock(addr_of(r.lock))
    return k


def ring_clear(r: Ptr[ByteRing]) -> None:
    spin_lock(addr_of(r.lock))
    r.tail = r.head
    spin_unlock(addr_of(r.lock))


LOG_RING_SIZE: Final = u64(0x4000)
log_ring = static(ByteRing)
log_ring_data = static(Array[u8, LOG_RING_SIZE])


def log_ring_get() -> Ptr[ByteRing]:
    """The hypervisor's log as the management VM's /dev/hvc0 reads it (fed by core/virtio_console.py)."""
    r = addr_of(log_ring)
    ring_setup(r, addr_of(log_ring_data[0]).addr(), LOG_RING_SIZE)
    return r


# The log ring's reader (the MVM's console, core/virtio_console.py vcon_rx): a partitioned MVM vCPU's WFI does not
# trap, so nothing would look at the ring again by itself. Before each look the reader arms `log_armed` and names
# the mailbox word (its MSG_KICK) and hart to wake; the first line after that wakes it, once. The reader arms,
# then reads the ring; a writer fills the ring, then disarms: each fenced, so either the reader sees the bytes or
# the writer sees it armed. Any hart writes; the reader's fields are the same values every time.
log_armed = static(Array[u32, 1])
log_reader = static(Array[u64, 2])  # the mailbox word's address, the hart


def log_arm(word: u64, hart: u64) -> None:
    """The reader is about to look at the ring: the next bytes put into it from now on wake it."""
    log_reader[0] = word
    log_reader[1] = hart
    fence()
    amoswap_w(addr_of(log_armed[0]), u32(1))
    fence()


def log_tee(src: u64, n: u64) -> None:
    """A copy of what the hypervisor prints (core/console.py), the oldest dropped when nobody reads; it wakes the
    ring's reader if it waits. Only a message and an IPI here: this runs under whatever lock its printer holds,
    the reader does the work on its own hart."""
    ring_put(log_ring_get(), src, n, True)
    fence()
    if amoswap_w(addr_of(log_armed[0]), u32(0)) != 0:
        amoswap_w(Ptr[u32](log_reader[0]), u32(1))
        fence()
        hart_ipi(log_reader[1])
