"""Stage-2 (G-stage) page tables, Sv39x4: guest physical -> host physical.

RISC-V privileged spec, Hypervisor extension, "Two-Stage Address Translation": the GPA is 41 bits; the root
table is 16 KiB (2048 entries, VPN[2] is 11 bits) aligned to 16 KiB; levels 1 and 0 are ordinary 4 KiB tables
(VPN[1], VPN[0]: 9 bits).  PTEs are Sv39's: V R W X U G A D in bits 0..7, PPN from bit 10.  Every G-stage access
is checked as a U-mode access, so leaves have U=1; A and D are set in leaves (no reliance on hardware A/D update).
Non-leaf PTEs have only V (A, D, U are reserved there).

Leaves are 1 GiB (level 2), 2 MiB (level 1), 64 KiB (Svnapot: 16 level-0 PTEs) or 4 KiB (level 0): the largest
whose size divides gpa and hpa and fits the remaining length, among the sizes `stage2_leaves_set` allows (the
build's largest leaf, `pyshyper build --stage2-leaf`, and 64 KiB only when the harts have Svnapot).  Table pages
come from the frame allocator; `stage2_destroy` gives every one back.  After changing a live table the caller
calls `stage2_flush(vmid)`.

Svnapot (Priv vol. II, "Svnapot" chapter): a level-0 leaf with N (bit 63) set and PPN[3:0] = 0b1000 maps the
naturally aligned 64 KiB range around it; the hart replaces PPN[3:0] by the GPA's VPN[0][3:0].  The 16 PTEs of
the range are written alike (a hart may use any of them for the whole range) and are only ever changed together:
a partial unmap first rewrites the range as 16 ordinary 4 KiB leaves of the same mapping.  N is reserved without
Svnapot (a guest-page fault), so NAPOT leaves are made only when the harts have it.
"""

from compiler.prelude import HGATP, Final, Ptr, csr_read, csr_write, hfence_gvma_vmid, u64
from hypervisor.core.frame_alloc import frame_alloc, frame_free

# PTE bits (Sv39 format, also used by the G-stage)
PTE_V: Final = u64(1 << 0)
PTE_R: Final = u64(1 << 1)
PTE_W: Final = u64(1 << 2)
PTE_X: Final = u64(1 << 3)
PTE_U: Final = u64(1 << 4)
PTE_G: Final = u64(1 << 5)
PTE_A: Final = u64(1 << 6)
PTE_D: Final = u64(1 << 7)
PTE_RWX: Final = PTE_R | PTE_W | PTE_X
PTE_N: Final = u64(1 << 63)  # Svnapot: a NAPOT leaf
PTE_PPN_SHIFT: Final = u64(10)
PTE_PPN_MASK: Final = u64((1 << 44) - 1)
PTE_FLAGS_MASK: Final = u64((1 << 10) - 1)  # V R W X U G A D and the two RSW bits

# mapping permissions given by callers of stage2_map (it accepts any non-empty R, W, X but W without R)
S2_PERM_RW: Final = PTE_R | PTE_W
S2_PERM_RWX: Final = PTE_RWX

S2_PAGE_SHIFT: Final = u64(12)
S2_PAGE_SIZE: Final = u64(1 << 12)
S2_SIZE_64K: Final = u64(1 << 16)
S2_SIZE_2M: Final = u64(1 << 21)
S2_SIZE_1G: Final = u64(1 << 30)
S2_NAPOT_PTES: Final = u64(16)  # level-0 PTEs of one 64 KiB NAPOT range
S2_NAPOT_PPN_64K: Final = u64(0b1000)  # Svnapot: PPN[3:0] of a 64 KiB NAPOT PTE
S2_GPA_LIMIT: Final = u64(1 << 41)
S2_HPA_LIMIT: Final = u64(1 << 56)
S2_ROOT_ENTRIES: Final = u64(2048)
S2_TABLE_ENTRIES: Final = u64(512)
S2_ROOT_PAGES: Final = u64(4)  # 16 KiB, aligned to 16 KiB

# hgatp
HGATP_MODE_SV39X4: Final = u64(8)
HGATP_MODE_SHIFT: Final = u64(60)
HGATP_VMID_SHIFT: Final = u64(44)
HGATP_VMID_MASK: Final = u64((1 << 14) - 1)
HGATP_PPN_MASK: Final = u64((1 << 44) - 1)
HGATP_NO_SV39X4: Final = u64(0xFFFF_FFFF_FFFF_FFFF)  # stage2_probe: the hart has no Sv39x4 mode

stage2_vmid_bits: u64 = 0  # VMIDLEN, found by stage2_probe
stage2_leaf_level_max: u64 = 2  # the largest leaf stage2_map makes: 2 (1 GiB), 1 (2 MiB) or 0 (4 KiB)
stage2_napot: bool = False  # stage2_map makes 64 KiB NAPOT leaves (the harts have Svnapot)

# leaf counts written by stage2_count_leaves
S2_COUNT_1G: Final = 0
S2_COUNT_2M: Final = 1
S2_COUNT_4K: Final = 2  # 4 KiB leaves that are not part of a NAPOT range
S2_COUNT_TABLES: Final = 3  # table pages in 4 KiB frames, root included (4)
S2_COUNT_64K: Final = 4  # 64 KiB NAPOT ranges (16 PTEs each)
S2_COUNTS: Final = 5


def _level_shift(level: u64) -> u64:
    return S2_PAGE_SHIFT + u64(9) * level


def _level_size(level: u64) -> u64:
    return u64(1) << _level_shift(level)


def _pte_index(gpa: u64, level: u64) -> u64:
    if level == 2:
        return (gpa >> _level_shift(level)) & (S2_ROOT_ENTRIES - 1)
    return (gpa >> _level_shift(level)) & (S2_TABLE_ENTRIES - 1)


def _pte_valid(pte: u64) -> bool:
    return pte & PTE_V != 0


def _pte_is_leaf(pte: u64) -> bool:
    return pte & PTE_V != 0 and pte & PTE_RWX != 0


def _pte_napot(pte: u64) -> bool:
    return pte & PTE_N != 0


def _pte_addr(pte: u64) -> u64:
    """The PPN as an address: for a NAPOT leaf, with its PPN[3:0] encoding still in it (see _leaf_hpa)."""
    return ((pte >> PTE_PPN_SHIFT) & PTE_PPN_MASK) << S2_PAGE_SHIFT


def _leaf_hpa(pte: u64, gpa: u64, level: u64) -> u64:
    """The host address gpa maps to through the leaf pte at level."""
    if _pte_napot(pte):  # Svnapot: PPN[3:0] is replaced by VPN[0][3:0]
        return (_pte_addr(pte) & ~(S2_SIZE_64K - 1)) | (gpa & (S2_SIZE_64K - 1))
    return _pte_addr(pte) + (gpa & (_level_size(level) - 1))


def _pte_table(table: u64) -> u64:
    return ((table >> S2_PAGE_SHIFT) << PTE_PPN_SHIFT) | PTE_V


def _pte_leaf(hpa: u64, perms: u64) -> u64:
    return ((hpa >> S2_PAGE_SHIFT) << PTE_PPN_SHIFT) | (perms & PTE_RWX) | PTE_V | PTE_U | PTE_A | PTE_D


def _pte_napot_leaf(hpa: u64, flags: u64) -> u64:
    """A NAPOT PTE of the 64 KiB range at hpa (64 KiB aligned), with flags (bits 9:0) as they are."""
    return (((hpa >> S2_PAGE_SHIFT) | S2_NAPOT_PPN_64K) << PTE_PPN_SHIFT) | (flags & PTE_FLAGS_MASK) | PTE_N


def _napot_break(group: Ptr[u64]) -> None:
    """Rewrite the 16 NAPOT PTEs at group as ordinary 4 KiB leaves with the same mapping and flags (each PTE maps
    the same page either way, so a hart that reads some old and some new PTEs still translates alike)."""
    pte = group[0]
    base = _pte_addr(pte) & ~(S2_SIZE_64K - 1)
    flags = pte & PTE_FLAGS_MASK
    for i in range(u64(0), S2_NAPOT_PTES):
        group[i] = (((base + i * S2_PAGE_SIZE) >> S2_PAGE_SHIFT) << PTE_PPN_SHIFT) | flags


def _entry(table: u64, gpa: u64, level: u64) -> Ptr[u64]:
    return Ptr[u64](table + _pte_index(gpa, level) * 8)


def _next_boundary(addr: u64, size: u64) -> u64:
    """The first multiple of size above addr (size a power of two); may wrap to 0 at the top."""
    return (addr | (size - 1)) + 1


def _table_empty(table: u64) -> bool:
    p = Ptr[u64](table)
    i = S2_TABLE_ENTRIES
    while i > 0:  # from the top: an unmap going upwards finds the remaining entries there first
        i -= 1
        if p[i] != 0:
            return False
    return True


def stage2_create() -> u64:
    """A new, empty root table (16 KiB aligned to 16 KiB); 0 when out of memory."""
    return frame_alloc(S2_ROOT_PAGES, S2_ROOT_PAGES)


def stage2_leaves_set(largest: u64, svnapot: bool) -> None:
    """Which leaves stage2_map makes from now on: none larger than `largest` bytes (S2_SIZE_1G, S2_SIZE_2M or
    S2_PAGE_SIZE: the build's STAGE2_LEAF_MAX), and 64 KiB NAPOT leaves when the harts have Svnapot and
    `largest` allows them.  Set once at boot, before any VM is mapped."""
    global stage2_leaf_level_max, stage2_napot
    if largest >= S2_SIZE_1G:
        stage2_leaf_level_max = 2
    elif largest >= S2_SIZE_2M:
        stage2_leaf_level_max = 1
    else:
        stage2_leaf_level_max = 0
    stage2_napot = svnapot and largest >= S2_SIZE_64K


def stage2_leaf_largest() -> u64:
    """The largest leaf stage2_map makes, in bytes."""
    if stage2_napot and stage2_leaf_level_max == 0:
        return S2_SIZE_64K
    return _level_size(stage2_leaf_level_max)


def stage2_leaf_napot() -> bool:
    return stage2_napot


def stage2_leaf_align(gpa: u64, size: u64) -> u64:
    """The host alignment, in bytes, that lets stage2_map cover [gpa, gpa + size) with its largest leaves: the
    largest leaf size it makes that divides gpa and is at most size (a host region at that alignment shares gpa's
    offset in it); 4 KiB when none."""
    for level in range(stage2_leaf_level_max, u64(0), -1):
        if gpa & (_level_size(level) - 1) == 0 and size >= _level_size(level):
            return _level_size(level)
    if stage2_napot and gpa & (S2_SIZE_64K - 1) == 0 and size >= S2_SIZE_64K:
        return S2_SIZE_64K
    return S2_PAGE_SIZE


def _range_ok(gpa: u64, size: u64) -> bool:
    if size == 0 or gpa & (S2_PAGE_SIZE - 1) != 0 or size & (S2_PAGE_SIZE - 1) != 0:
        return False
    return gpa < S2_GPA_LIMIT and size <= S2_GPA_LIMIT - gpa


def _range_free(root: u64, gpa: u64, size: u64) -> bool:
    """True when nothing in [gpa, gpa + size) is mapped."""
    end = gpa + size
    addr = gpa
    while addr < end:
        table = root
        level = u64(2)
        while True:
            pte = _entry(table, addr, level)[0]
            if not _pte_valid(pte):
                addr = _next_boundary(addr, _level_size(level))
                break
            if _pte_is_leaf(pte) or level == 0:
                return False
            table = _pte_addr(pte)
            level -= 1
    return True


def _leaf_table(root: u64, gpa: u64, leaf_level: u64) -> u64:
    """The table at leaf_level that holds gpa's entry, allocating the tables on the way; 0 when out of memory or
    when a leaf above is in the way."""
    table = root
    level = u64(2)
    while level > leaf_level:
        e = _entry(table, gpa, level)
        pte = e[0]
        if not _pte_valid(pte):
            t = frame_alloc(u64(1), u64(1))
            if t == 0:
                return 0
            e[0] = _pte_table(t)
            table = t
        elif _pte_is_leaf(pte):
            return 0
        else:
            table = _pte_addr(pte)
        level -= 1
    return table


def _map_leaf(root: u64, gpa: u64, hpa: u64, leaf_level: u64, perms: u64) -> bool:
    """One leaf at leaf_level, allocating the tables on the way; False when out of memory or already mapped."""
    table = _leaf_table(root, gpa, leaf_level)
    if table == 0:
        return False
    e = _entry(table, gpa, leaf_level)
    if e[0] != 0:
        return False
    e[0] = _pte_leaf(hpa, perms)
    return True


def _map_napot(root: u64, gpa: u64, hpa: u64, perms: u64) -> bool:
    """One 64 KiB NAPOT range (gpa and hpa 64 KiB aligned): its 16 level-0 PTEs, alike."""
    table = _leaf_table(root, gpa, u64(0))
    if table == 0:
        return False
    group = _entry(table, gpa, u64(0))
    for i in range(u64(0), S2_NAPOT_PTES):
        if group[i] != 0:
            return False
    pte = _pte_napot_leaf(hpa, _pte_leaf(hpa, perms))
    for i in range(u64(0), S2_NAPOT_PTES):
        group[i] = pte
    return True


def _leaf_level(gpa: u64, hpa: u64, remaining: u64) -> u64:
    for level in range(stage2_leaf_level_max, u64(0), -1):
        size = _level_size(level)
        if (gpa | hpa) & (size - 1) == 0 and remaining >= size:
            return level
    return 0


def _leaf_napot(gpa: u64, hpa: u64, remaining: u64) -> bool:
    """A level-0 piece of a mapping that a 64 KiB NAPOT leaf can cover."""
    return stage2_napot and (gpa | hpa) & (S2_SIZE_64K - 1) == 0 and remaining >= S2_SIZE_64K


def stage2_map(root: u64, gpa: u64, hpa: u64, size: u64, perms: u64) -> bool:
    """Map [gpa, gpa + size) to [hpa, hpa + size) with perms (S2_PERM_*: R, W, X; W needs R).  All three 4 KiB
    aligned.  False, with the table unchanged, on bad arguments, on overlap with an existing mapping, or when
    out of memory (what this call had mapped is undone and its new tables freed)."""
    if root == 0 or not _range_ok(gpa, size):
        return False
    if hpa & (S2_PAGE_SIZE - 1) != 0 or hpa >= S2_HPA_LIMIT or size > S2_HPA_LIMIT - hpa:
        return False
    if perms & PTE_RWX == 0 or perms & ~PTE_RWX != 0 or perms & (PTE_R | PTE_W) == PTE_W:
        return False
    if not _range_free(root, gpa, size):
        return False
    done = u64(0)
    while done < size:
        level = _leaf_level(gpa + done, hpa + done, size - done)
        if level == 0 and _leaf_napot(gpa + done, hpa + done, size - done):
            ok = _map_napot(root, gpa + done, hpa + done, perms)
            step = S2_SIZE_64K
        else:
            ok = _map_leaf(root, gpa + done, hpa + done, level, perms)
            step = _level_size(level)
        if not ok:
            # only out of memory can fail here: the range was free, so everything in it is ours to undo
            stage2_unmap(root, gpa, size)
            return False
        done += step
    return True


def _split_leaf(e: Ptr[u64], level: u64) -> bool:
    """Replace the block leaf *e at level (1 or 2) by a table of 512 leaves of the next level, same mapping: a
    2 MiB leaf becomes 32 NAPOT ranges of 64 KiB when stage2_map makes them, else 512 4 KiB leaves."""
    t = frame_alloc(u64(1), u64(1))
    if t == 0:
        return False
    pte = e[0]
    base = _pte_addr(pte)
    flags = pte & PTE_FLAGS_MASK
    child = _level_size(level - 1)
    p = Ptr[u64](t)
    napot = level == 1 and stage2_napot
    for i in range(u64(0), S2_TABLE_ENTRIES):
        if napot:
            p[i] = _pte_napot_leaf(base + (i & ~(S2_NAPOT_PTES - 1)) * child, flags)
        else:
            p[i] = (((base + i * child) >> S2_PAGE_SHIFT) << PTE_PPN_SHIFT) | flags
    e[0] = _pte_table(t)
    return True


def _prune(root: u64, addr: u64, upper: bool) -> None:
    """Free the level-0 table covering addr if it is empty, then (when upper) the level-1 table too."""
    e2 = _entry(root, addr, u64(2))
    if not _pte_valid(e2[0]) or _pte_is_leaf(e2[0]):
        return
    t1 = _pte_addr(e2[0])
    e1 = _entry(t1, addr, u64(1))
    if _pte_valid(e1[0]) and not _pte_is_leaf(e1[0]):
        t0 = _pte_addr(e1[0])
        if _table_empty(t0):
            e1[0] = 0
            frame_free(t0, u64(1))
    if upper and _table_empty(t1):
        e2[0] = 0
        frame_free(t1, u64(1))


def stage2_unmap(root: u64, gpa: u64, size: u64) -> bool:
    """Remove every mapping in [gpa, gpa + size) (holes are skipped); a 1 GiB / 2 MiB leaf that the range covers
    only partly is split first, a 64 KiB NAPOT range broken into 4 KiB leaves.  Tables left empty are freed.
    False on bad arguments, or when a split needs a table and memory is out (the part before it is then already
    unmapped)."""
    if root == 0 or not _range_ok(gpa, size):
        return False
    end = gpa + size
    addr = gpa
    while addr < end:
        table = root
        level = u64(2)
        nxt = addr
        while True:
            e = _entry(table, addr, level)
            pte = e[0]
            lsize = _level_size(level)
            if not _pte_valid(pte):
                nxt = _next_boundary(addr, lsize)
                break
            if _pte_is_leaf(pte):
                if level == 0 and _pte_napot(pte):
                    group = _entry(table, addr & ~(S2_SIZE_64K - 1), level)
                    if addr & (S2_SIZE_64K - 1) == 0 and end - addr >= S2_SIZE_64K:
                        for i in range(u64(0), S2_NAPOT_PTES):
                            group[i] = 0
                        nxt = addr + S2_SIZE_64K
                        break
                    _napot_break(group)  # then the 4 KiB page goes alone, below
                if addr & (lsize - 1) == 0 and end - addr >= lsize:
                    e[0] = 0
                    nxt = addr + lsize
                    break
                if not _split_leaf(e, level):
                    return False
                pte = e[0]
            table = _pte_addr(pte)
            level -= 1
        if nxt == 0 or nxt >= end:
            _prune(root, addr, True)
            return True
        if nxt & (S2_SIZE_2M - 1) == 0:
            _prune(root, addr, nxt & (S2_SIZE_1G - 1) == 0)
        addr = nxt
    return True


def stage2_translate(root: u64, gpa: u64, out_hpa: Ptr[u64]) -> bool:
    """Walk the table for gpa: True and the host physical address in out_hpa[0] when mapped."""
    if root == 0 or gpa >= S2_GPA_LIMIT:
        return False
    table = root
    level = u64(2)
    while True:
        pte = _entry(table, gpa, level)[0]
        if not _pte_valid(pte):
            return False
        if _pte_is_leaf(pte):
            out_hpa[0] = _leaf_hpa(pte, gpa, level)
            return True
        if level == 0:  # a non-leaf PTE at the last level is invalid
            return False
        table = _pte_addr(pte)
        level -= 1


def stage2_perms(root: u64, gpa: u64) -> u64:
    """The R/W/X bits of the leaf mapping gpa (0 when unmapped)."""
    if root == 0 or gpa >= S2_GPA_LIMIT:
        return 0
    table = root
    level = u64(2)
    while True:
        pte = _entry(table, gpa, level)[0]
        if not _pte_valid(pte):
            return 0
        if _pte_is_leaf(pte):
            return pte & PTE_RWX
        if level == 0:
            return 0
        table = _pte_addr(pte)
        level -= 1


def stage2_destroy(root: u64) -> None:
    """Free every table page, the root included.  The mapped host memory is not touched."""
    if root == 0:
        return
    r = Ptr[u64](root)
    for i in range(u64(0), S2_ROOT_ENTRIES):
        pte2 = r[i]
        if _pte_valid(pte2) and not _pte_is_leaf(pte2):
            t1 = _pte_addr(pte2)
            p1 = Ptr[u64](t1)
            for j in range(u64(0), S2_TABLE_ENTRIES):
                pte1 = p1[j]
                if _pte_valid(pte1) and not _pte_is_leaf(pte1):
                    frame_free(_pte_addr(pte1), u64(1))
            frame_free(t1, u64(1))
    frame_free(root, S2_ROOT_PAGES)


def stage2_count_leaves(root: u64, counts: Ptr[u64]) -> None:
    """counts[S2_COUNT_1G / _2M / _64K / _4K] = leaves of each size (a NAPOT range counts once, as 64K);
    counts[S2_COUNT_TABLES] = table frames (root: 4).  counts has S2_COUNTS slots."""
    counts[S2_COUNT_1G] = 0
    counts[S2_COUNT_2M] = 0
    counts[S2_COUNT_4K] = 0
    counts[S2_COUNT_TABLES] = 0
    counts[S2_COUNT_64K] = 0
    if root == 0:
        return
    counts[S2_COUNT_TABLES] = S2_ROOT_PAGES
    r = Ptr[u64](root)
    for i in range(u64(0), S2_ROOT_ENTRIES):
        pte2 = r[i]
        if not _pte_valid(pte2):
            continue
        if _pte_is_leaf(pte2):
            counts[S2_COUNT_1G] += 1
            continue
        counts[S2_COUNT_TABLES] += 1
        p1 = Ptr[u64](_pte_addr(pte2))
        for j in range(u64(0), S2_TABLE_ENTRIES):
            pte1 = p1[j]
            if not _pte_valid(pte1):
                continue
            if _pte_is_leaf(pte1):
                counts[S2_COUNT_2M] += 1
                continue
            counts[S2_COUNT_TABLES] += 1
            p0 = Ptr[u64](_pte_addr(pte1))
            for k in range(u64(0), S2_TABLE_ENTRIES):
                if not _pte_is_leaf(p0[k]):
                    continue
                if not _pte_napot(p0[k]):
                    counts[S2_COUNT_4K] += 1
                elif k & (S2_NAPOT_PTES - 1) == 0:
                    counts[S2_COUNT_64K] += 1


def stage2_hgatp(root: u64, vmid: u64) -> u64:
    """The hgatp value for this table: MODE=Sv39x4 (63:60), VMID (57:44), PPN of the root (43:0)."""
    return (
        (HGATP_MODE_SV39X4 << HGATP_MODE_SHIFT)
        | ((vmid & HGATP_VMID_MASK) << HGATP_VMID_SHIFT)
        | ((root >> S2_PAGE_SHIFT) & HGATP_PPN_MASK)
    )


def stage2_flush(vmid: u64) -> None:
    """Invalidate this VMID's G-stage translations after a change to its live table."""
    hfence_gvma_vmid(vmid)


def stage2_probe() -> u64:
    """Priv 9.2.10: hgatp.MODE is WARL and VMIDLEN is found by writing ones to every VMID bit and reading back.
    Writes MODE=Sv39x4 with all VMID bits, reads it back, leaves hgatp 0 (Bare) again. Returns VMIDLEN (0..14),
    or HGATP_NO_SV39X4 when the MODE did not stick (the hart has no Sv39x4); VMIDLEN is kept for stage2_vmids."""
    global stage2_vmid_bits
    csr_write(HGATP, (HGATP_MODE_SV39X4 << HGATP_MODE_SHIFT) | (HGATP_VMID_MASK << HGATP_VMID_SHIFT))
    back = csr_read(HGATP)
    csr_write(HGATP, u64(0))
    if back >> HGATP_MODE_SHIFT != HGATP_MODE_SV39X4:
        return HGATP_NO_SV39X4
    vmid = (back >> HGATP_VMID_SHIFT) & HGATP_VMID_MASK
    bits = u64(0)
    while bits < 14 and (vmid >> bits) & 1 != 0:  # 9.2.10: the implemented VMID bits are the low VMIDLEN ones
        bits += 1
    stage2_vmid_bits = bits
    return bits


def stage2_vmid_len() -> u64:
    """VMIDLEN, as stage2_probe found it."""
    return stage2_vmid_bits


def stage2_vmids() -> u64:
    """How many VMIDs the hart has: 2**VMIDLEN (1 when VMIDLEN is 0: every VM would share VMID 0)."""
    return u64(1) << stage2_vmid_bits
