"""Page-frame allocator: one physical pool of 4 KiB frames, a bitmap (no heap) and accounting.

The pool is `[base, base + pages * 4 KiB)`; bit i of `frame_bitmap` is set when frame `base + i * 4 KiB` is
allocated.  Allocations are contiguous runs whose physical start is aligned to `align_pages` frames (a power of
two: a stage-2 root needs 4 frames aligned to 4), and their memory is zeroed.

Any hart may allocate or free (a VM ends on whichever hart claims its end): `frame_alloc` and `frame_free` hold
`frame_spin` around the bitmap and the counters; `frame_alloc_init` runs on the boot hart before any other hart.
"""

from compiler.prelude import Array, Final, Ptr, addr_of, static, u64
from hypervisor.core.spinlock import Spinlock, spin_lock, spin_unlock

FRAME_SIZE: Final = u64(4096)
FRAME_SHIFT: Final = u64(12)
FRAME_MAX_PAGES: Final = u64(1 << 20)  # the largest pool: 4 GiB of 4 KiB frames (a 128 KiB bitmap)
FRAME_BITMAP_WORDS: Final = 16384  # FRAME_MAX_PAGES / 64
FRAME_WORD_FULL: Final = u64(0xFFFF_FFFF_FFFF_FFFF)

frame_bitmap = static(Array[u64, FRAME_BITMAP_WORDS])
frame_pool_base: u64 = 0
frame_pool_pages: u64 = 0
frame_used_pages: u64 = 0
frame_spin = static(Spinlock)


def _frame_bit(i: u64) -> bool:
    return (frame_bitmap[i >> 6] >> (i & 63)) & 1 != 0


def _frame_set(i: u64) -> None:
    frame_bitmap[i >> 6] = frame_bitmap[i >> 6] | (u64(1) << (i & 63))


def _frame_clear(i: u64) -> None:
    frame_bitmap[i >> 6] = frame_bitmap[i >> 6] & ~(u64(1) << (i & 63))


def _frame_align_index(i: u64, align_pages: u64) -> u64:
    """The first index >= i whose physical frame number is a multiple of align_pages (a power of two)."""
    pfn = (frame_pool_base >> FRAME_SHIFT) + i
    return ((pfn + align_pages - 1) & ~(align_pages - 1)) - (frame_pool_base >> FRAME_SHIFT)


def frame_alloc_init(base: u64, size: u64) -> bool:
    """Take `[base, base + size)` as the pool (base 4 KiB-aligned; size rounded down to whole frames).  A pool
    larger than FRAME_MAX_PAGES frames is cut to its first FRAME_MAX_PAGES (frame_alloc_total_pages tells).
    Every frame starts free.  False (and no change) on bad arguments."""
    global frame_pool_base, frame_pool_pages, frame_used_pages
    if base == 0 or base & (FRAME_SIZE - 1) != 0:
        return False
    pages = size >> FRAME_SHIFT
    if pages == 0:
        return False
    if pages > FRAME_MAX_PAGES:
        pages = FRAME_MAX_PAGES
    if base + ((pages << FRAME_SHIFT) - 1) < base:  # the pool would wrap around the address space
        return False
    for w in range(u64(0), (pages + 63) >> 6):  # the words past the pool are never looked at
        frame_bitmap[w] = 0
    frame_pool_base = base
    frame_pool_pages = pages
    frame_used_pages = 0
    return True


def frame_alloc(pages: u64, align_pages: u64) -> u64:
    """A zeroed run of `pages` frames whose address is a multiple of `align_pages` frames (0 counts as 1; not a
    power of two: refused).  The physical address, or 0 when no such run is free."""
    spin_lock(addr_of(frame_spin))
    addr = _frame_alloc_locked(pages, align_pages)
    spin_unlock(addr_of(frame_spin))
    if addr != 0:  # zeroed outside the lock: the run is this caller's alone now
        p = Ptr[u64](addr)
        for k in range(u64(0), pages * (FRAME_SIZE // 8)):
            p[k] = 0
    return addr


def _frame_alloc_locked(pages: u64, align_pages: u64) -> u64:
    global frame_used_pages
    if pages == 0 or pages > frame_pool_pages - frame_used_pages:
        return 0
    if align_pages == 0:
        align_pages = 1
    if align_pages & (align_pages - 1) != 0:
        return 0
    i = _frame_align_index(u64(0), align_pages)
    while i < frame_pool_pages and pages <= frame_pool_pages - i:
        if frame_bitmap[i >> 6] == FRAME_WORD_FULL:  # skip a fully used word at once
            i = _frame_align_index((i | 63) + 1, align_pages)
            continue
        j = i
        while j < i + pages:
            if _frame_bit(j):
                break
            j += 1
        if j == i + pages:
            for k in range(i, i + pages):
                _frame_set(k)
            frame_used_pages += pages
            return frame_pool_base + (i << FRAME_SHIFT)
        i = _frame_align_index(j + 1, align_pages)
    return 0


def frame_free(addr: u64, pages: u64) -> bool:
    """Give back `pages` frames from `addr`.  False (and no change) when the run is not inside the pool, not
    frame-aligned, or any of its frames is already free (a double free)."""
    spin_lock(addr_of(frame_spin))
    ok = _frame_free_locked(addr, pages)
    spin_unlock(addr_of(frame_spin))
    return ok


def _frame_free_locked(addr: u64, pages: u64) -> bool:
    global frame_used_pages
    if pages == 0 or addr < frame_pool_base or addr & (FRAME_SIZE - 1) != 0:
        return False
    i = (addr - frame_pool_base) >> FRAME_SHIFT
    if i >= frame_pool_pages or pages > frame_pool_pages - i:
        return False
    for k in range(i, i + pages):
        if not _frame_bit(k):
            return False
    for k in range(i, i + pages):
        _frame_clear(k)
    frame_used_pages -= pages
    return True


def frame_alloc_free_pages() -> u64:
    return frame_pool_pages - frame_used_pages


def frame_alloc_used_pages() -> u64:
    return frame_used_pages


def frame_alloc_total_pages() -> u64:
    return frame_pool_pages
