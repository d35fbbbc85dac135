"""hypervisor/arch/riscv/stage2.py (Sv39x4 G-stage tables) under CPython and compiled for the host.

Table pages come from the frame allocator over a small pool; the mapped host addresses are only numbers (the
tables never touch them), so large guest ranges cost nothing.
"""

import pytest

from compiler import prelude
from tests.hypervisor.mm_env import make_env

PAGE = 4096
MiB = 1 << 20
GiB = 1 << 30
KiB64 = 1 << 16
R, W, X = 2, 4, 8
V, U, G, A, D = 1, 16, 32, 64, 128
N = 1 << 63  # Svnapot
POOL_PAGES = 64


@pytest.fixture(params=["cpython", "host"])
def env(request):
    e = make_env(request.param)
    base = e.pool(POOL_PAGES * PAGE, misalign=PAGE)  # the root must still come out 16 KiB aligned
    assert e.call("frame_alloc_init", base, POOL_PAGES * PAGE)
    e.call("stage2_leaves_set", GiB, False)  # the default: every size but 64 KiB (a hart without Svnapot)
    e.base = base
    return e


def counts(env, root):
    arg, read = env.out(5)
    env.call("stage2_count_leaves", root, arg)
    c = read()  # S2_COUNT_1G, _2M, _4K, _TABLES, _64K
    return (c[0], c[1], c[4], c[2], c[3])  # (1G, 2M, 64K NAPOT, 4K leaves, table frames incl. the 4-frame root)


def translate(env, root, gpa):
    arg, read = env.out(1)
    if env.call("stage2_translate", root, gpa, arg):
        return read()[0]
    return None


def used(env):
    return env.call("frame_alloc_used_pages")


def create(env):
    root = env.call("stage2_create")
    assert root != 0 and root % 16384 == 0
    return root


def test_create_root_16k(env):
    root = create(env)
    assert root == env.base + 3 * PAGE
    assert used(env) == 4
    assert counts(env, root) == (0, 0, 0, 0, 4)
    assert all(env.read_u64(root + off) == 0 for off in range(0, 16384, 8))


def test_1g_leaf(env):
    root = create(env)
    assert env.call("stage2_map", root, 1 * GiB, 0x1_0000_0000, GiB, R | W | X)
    assert counts(env, root) == (1, 0, 0, 0, 4)  # no intermediate table
    assert used(env) == 4
    pte = env.read_u64(root + 1 * 8)  # VPN[2] = 1
    assert pte == ((0x1_0000_0000 >> 12) << 10) | V | R | W | X | U | A | D
    assert pte & G == 0
    assert translate(env, root, GiB) == 0x1_0000_0000
    assert translate(env, root, GiB + 0x1234_5678) == 0x1_1234_5678
    assert translate(env, root, 2 * GiB - 1) == 0x1_3FFF_FFFF
    assert translate(env, root, 2 * GiB) is None
    assert translate(env, root, GiB - 1) is None


def test_2m_leaves(env):
    root = create(env)
    assert env.call("stage2_map", root, 0x8020_0000, 0x9000_0000, 6 * MiB, R | W)
    assert counts(env, root) == (0, 3, 0, 0, 5)
    assert translate(env, root, 0x8020_0000) == 0x9000_0000
    assert translate(env, root, 0x8060_0010) == 0x9040_0010
    assert translate(env, root, 0x807F_FFFF) == 0x905F_FFFF
    assert translate(env, root, 0x8080_0000) is None
    assert env.call("stage2_perms", root, 0x8040_0000) == R | W


def test_1g_aligned_gpa_but_2m_aligned_hpa_uses_2m(env):
    root = create(env)
    assert env.call("stage2_map", root, GiB, 0x1_0020_0000, GiB, R | X)
    assert counts(env, root) == (0, 512, 0, 0, 5)
    assert translate(env, root, GiB + GiB // 2 + 5) == 0x1_0020_0000 + GiB // 2 + 5


def test_unaligned_4k(env):
    root = create(env)
    assert env.call("stage2_map", root, 0x8000_1000, 0x1000_3000, 5 * PAGE, R)
    assert counts(env, root) == (0, 0, 0, 5, 6)
    for i in range(5):
        assert translate(env, root, 0x8000_1000 + i * PAGE + 0x7F8) == 0x1000_3000 + i * PAGE + 0x7F8
    assert translate(env, root, 0x8000_0FFF) is None
    assert translate(env, root, 0x8000_6000) is None
    # 2M-aligned gpa and size but a 4K-aligned hpa: 4K leaves only
    assert env.call("stage2_map", root, 0x4000_0000, 0x2000_1000, 2 * MiB, R)
    assert counts(env, root) == (0, 0, 0, 5 + 512, 8)


def test_mixed_range(env):
    root = create(env)
    gpa = GiB - 2 * MiB
    size = 2 * MiB + GiB + 2 * MiB + 3 * PAGE
    hpa = 0x2_0000_0000 + gpa
    assert env.call("stage2_map", root, gpa, hpa, size, R | W | X)
    # a 2M leaf up to the 1G boundary, a 1G leaf, a 2M leaf, three 4K leaves
    assert counts(env, root) == (1, 2, 0, 3, 7)
    for off in (0, 2 * MiB - 8, 2 * MiB, 2 * MiB + GiB - 1, 2 * MiB + GiB, size - PAGE, size - 1):
        assert translate(env, root, gpa + off) == hpa + off, hex(off)
    assert translate(env, root, gpa + size) is None
    assert translate(env, root, gpa - 1) is None


def test_top_of_41bit_gpa_space(env):
    root = create(env)
    # VPN[2] has 11 bits: GPA 1 TiB is root entry 1024, the last 4 KiB page is entry 2047
    assert env.call("stage2_map", root, 1 << 40, 0x8000_0000, GiB, R | W)
    assert env.read_u64(root + 1024 * 8) & (V | R | W) == V | R | W
    top = (1 << 41) - PAGE
    assert env.call("stage2_map", root, top, 0x8000_0000, PAGE, R)
    assert translate(env, root, top + 0x10) == 0x8000_0010
    assert env.read_u64(root + 2047 * 8) & (V | R | W | X) == V  # a table pointer
    assert translate(env, root, 1 << 41) is None
    assert env.call("stage2_map", root, top, 0x8000_0000, 2 * PAGE, R) is False  # past 2^41
    assert env.call("stage2_map", root, 1 << 41, 0x8000_0000, PAGE, R) is False


def test_bad_arguments(env):
    root = create(env)
    assert env.call("stage2_map", 0, 0, 0, PAGE, R) is False
    assert env.call("stage2_map", root, 0x10, 0, PAGE, R) is False
    assert env.call("stage2_map", root, 0, 0x10, PAGE, R) is False
    assert env.call("stage2_map", root, 0, 0, 0, R) is False
    assert env.call("stage2_map", root, 0, 0, 100, R) is False
    assert env.call("stage2_map", root, 0, 0, PAGE, 0) is False
    assert env.call("stage2_map", root, 0, 0, PAGE, W) is False  # W without R is reserved
    assert env.call("stage2_map", root, 0, 0, PAGE, W | X) is False
    assert env.call("stage2_map", root, 0, 0, PAGE, R | V) is False
    assert env.call("stage2_map", root, 0, 0, PAGE, R | U) is False
    assert env.call("stage2_map", root, 0, 1 << 56, PAGE, R) is False  # hpa beyond 56 bits
    assert env.call("stage2_unmap", root, 0, 0) is False
    assert counts(env, root) == (0, 0, 0, 0, 4)
    assert used(env) == 4


def test_overlap_rejected(env):
    root = create(env)
    assert env.call("stage2_map", root, GiB, 0x1_0000_0000, GiB, R | W)  # a 1G leaf
    assert env.call("stage2_map", root, 0x8020_0000, 0x9000_0000, 4 * MiB, R | W)  # two 2M leaves
    assert env.call("stage2_map", root, 0x9000_1000, 0x1000, 2 * PAGE, R)  # two 4K leaves
    before = (counts(env, root), used(env))
    for gpa, size in [
        (GiB + 5 * MiB, PAGE),  # inside the 1G leaf
        (GiB - PAGE, 2 * PAGE),  # runs into it
        (0, 4 * GiB),  # covers everything
        (0x8000_0000, 4 * MiB),  # ends inside the first 2M leaf
        (0x8030_0000, PAGE),  # inside a 2M leaf
        (0x9000_2000, 2 * MiB),  # starts on the second 4K leaf
        (0x8FFF_F000, 3 * PAGE),  # ends on the first 4K leaf
    ]:
        assert env.call("stage2_map", root, gpa, 0x7000_0000, size, R) is False, (hex(gpa), hex(size))
    assert (counts(env, root), used(env)) == before
    # neighbours touching exactly are fine
    assert env.call("stage2_map", root, 0x9000_0000, 0x5000, PAGE, R)
    assert env.call("stage2_map", root, 0x9000_3000, 0x6000, PAGE, R)
    assert env.call("stage2_map", root, 0x8060_0000, 0x9040_0000, 2 * MiB, R)
    assert env.call("stage2_map", root, 2 * GiB, 0x1_4000_0000, 2 * MiB, R)


def test_unmap_and_split(env):
    root = create(env)
    start = used(env)
    assert env.call("stage2_map", root, 0x8000_0000, 0x1_0000_0000, GiB + 2 * MiB + 3 * PAGE, R | W | X)
    assert counts(env, root) == (1, 1, 0, 3, 6)
    # a 4K hole inside the 1G leaf: split to 2M leaves, then the first 2M leaf to 4K leaves
    assert env.call("stage2_unmap", root, 0x8000_1000, PAGE)
    assert counts(env, root) == (0, 512, 0, 514, 8)
    assert translate(env, root, 0x8000_1000) is None
    assert translate(env, root, 0x8000_0FF8) == 0x1_0000_0FF8
    assert translate(env, root, 0x8000_2000) == 0x1_0000_2000
    assert translate(env, root, 0x8020_0000) == 0x1_0020_0000
    assert env.call("stage2_perms", root, 0x8000_2000) == R | W | X
    # unmapping a hole again is not an error
    assert env.call("stage2_unmap", root, 0x8000_1000, PAGE)
    # the whole range, holes included: every table but the root is freed
    assert env.call("stage2_unmap", root, 0x8000_0000, GiB + 2 * MiB + 3 * PAGE)
    assert counts(env, root) == (0, 0, 0, 0, 4)
    assert used(env) == start
    assert translate(env, root, 0x8000_0000) is None
    # the range can be mapped again, with the large leaves again
    assert env.call("stage2_map", root, 0x8000_0000, 0x1_0000_0000, GiB, R)
    assert counts(env, root) == (1, 0, 0, 0, 4)


def test_unmap_part_of_2m_run_keeps_the_rest(env):
    root = create(env)
    assert env.call("stage2_map", root, 0x8020_0000, 0x9000_0000, 6 * MiB, R | W)
    assert env.call("stage2_unmap", root, 0x8040_0000, 2 * MiB)
    assert counts(env, root) == (0, 2, 0, 0, 5)
    assert translate(env, root, 0x8040_0000) is None
    assert translate(env, root, 0x8060_0000) == 0x9040_0000
    assert env.call("stage2_unmap", root, 0x8020_0000, 0x1000) and env.call("stage2_unmap", root, 0x8060_0000, 2 * MiB)
    assert counts(env, root) == (0, 0, 0, 511, 6)
    assert env.call("stage2_unmap", root, 0x8020_1000, 2 * MiB - PAGE)
    assert counts(env, root) == (0, 0, 0, 0, 4)
    assert used(env) == 4


def test_destroy_returns_every_page(env):
    before = used(env)
    root = create(env)
    assert env.call("stage2_map", root, GiB - 2 * MiB, 0x2_3FE0_0000, 2 * MiB + GiB + 2 * MiB + 3 * PAGE, R | W)
    assert env.call("stage2_map", root, 0x10_0000_1000, 0x3000, 5 * PAGE, R)
    assert env.call("stage2_map", root, 1 << 40, 0x8000_0000, 4 * MiB, R | X)
    assert env.call("stage2_unmap", root, 0x10_0000_2000, PAGE)
    assert used(env) > before + 4
    assert counts(env, root)[4] == used(env) - before
    env.call("stage2_destroy", root)
    assert used(env) == before
    assert env.call("frame_alloc_free_pages") == POOL_PAGES
    # and a second VM gets the same root back
    assert env.call("stage2_create") == root


def test_out_of_memory_is_clean(env):
    # leave the root plus one free frame: a 4K mapping needs two tables (level 1 and level 0)
    root = create(env)
    hog = [env.call("frame_alloc", 1, 1) for _ in range(POOL_PAGES - 5)]
    assert 0 not in hog and env.call("frame_alloc_free_pages") == 1
    assert env.call("stage2_map", root, 0x8000_0000, 0x1000, PAGE, R) is False
    assert translate(env, root, 0x8000_0000) is None
    assert counts(env, root) == (0, 0, 0, 0, 4)
    assert env.call("frame_alloc_free_pages") == 1
    # a mapping that runs out half-way is undone as a whole
    assert env.call("frame_free", hog[10], 1) and env.call("frame_free", hog[20], 1)
    assert env.call("stage2_map", root, 0x8000_0000, 0x1000, PAGE, R)  # 2 tables: 1 frame left
    assert env.call("stage2_map", root, 0x801F_F000, 0x2000, 2 * MiB + 2 * PAGE, R) is False
    assert translate(env, root, 0x801F_F000) is None
    assert counts(env, root) == (0, 0, 0, 1, 6)
    assert env.call("frame_alloc_free_pages") == 1
    # a 1G leaf needs no table at all
    assert env.call("stage2_map", root, 4 * GiB, 0, GiB, R)
    # a split that runs out of memory fails
    assert env.call("frame_alloc", 1, 1) != 0
    assert env.call("stage2_unmap", root, 4 * GiB + PAGE, PAGE) is False
    assert env.call("stage2_create") == 0


def test_hgatp(env):
    root = create(env)
    h = env.call("stage2_hgatp", root, 5)
    assert h >> 60 == 8
    assert (h >> 44) & 0x3FFF == 5
    assert (h >> 58) & 0x3 == 0
    assert h & ((1 << 44) - 1) == root >> 12
    assert env.call("stage2_hgatp", 0x8000_4000, 0x3FFF) == (8 << 60) | (0x3FFF << 44) | 0x80004
    assert env.call("stage2_hgatp", 0x8000_4000, 0x4001) == (8 << 60) | (1 << 44) | 0x80004  # VMID is 14 bits


def test_flush_fences_the_vmid(env):
    prelude.mock.reset()
    env.call("stage2_flush", 7)
    assert prelude.mock.ops("hfence_gvma_vmid") == [("hfence_gvma_vmid", 7)]


# Svnapot 64 KiB leaves and the largest-leaf setting (pyshyper build --stage2-leaf)


def level0_ptes(env, root, gpa, n):
    """The n level-0 PTEs from gpa's on (all in one level-0 table)."""
    e2 = env.read_u64(root + ((gpa >> 30) & 2047) * 8)
    t1 = ((e2 >> 10) & ((1 << 44) - 1)) << 12
    e1 = env.read_u64(t1 + ((gpa >> 21) & 511) * 8)
    t0 = ((e1 >> 10) & ((1 << 44) - 1)) << 12
    return [env.read_u64(t0 + (((gpa >> 12) & 511) + i) * 8) for i in range(n)]


def test_napot_64k_leaves(env):
    env.call("stage2_leaves_set", GiB, True)
    root = create(env)
    gpa, hpa = 0x8001_0000, 0x1_0005_0000  # both 64 KiB aligned, not alike modulo 2 MiB
    assert env.call("stage2_map", root, gpa, hpa, 3 * KiB64 + 2 * PAGE, R | W)
    assert counts(env, root) == (0, 0, 3, 2, 6)
    ptes = level0_ptes(env, root, gpa, 48)
    for g in range(3):
        want = N | ((((hpa + g * KiB64) >> 12) | 0b1000) << 10) | V | R | W | U | A | D
        assert ptes[16 * g : 16 * g + 16] == [want] * 16, g  # 16 alike PTEs, PPN[3:0] = 1000
    tail = level0_ptes(env, root, gpa + 3 * KiB64, 2)
    assert all(t & N == 0 for t in tail)
    for off in (0, 8, PAGE, 7 * PAGE + 0x123, KiB64 - 1, KiB64, 2 * KiB64 + 15 * PAGE + 0xFF8, 3 * KiB64 + PAGE):
        assert translate(env, root, gpa + off) == hpa + off, hex(off)
    assert translate(env, root, gpa + 3 * KiB64 + 2 * PAGE) is None
    assert env.call("stage2_perms", root, gpa + 5 * PAGE) == R | W
    # a NAPOT range is mapped: nothing may overlap it
    assert env.call("stage2_map", root, gpa + 4 * PAGE, 0x7000_0000, PAGE, R) is False


def test_napot_fills_around_2m_leaves(env):
    env.call("stage2_leaves_set", GiB, True)
    root = create(env)
    gpa = 0x801E_0000  # 2 x 64 KiB, a 2 MiB leaf, 64 KiB, 4 KiB
    hpa = 0x2_001E_0000
    size = 2 * KiB64 + 2 * MiB + KiB64 + PAGE
    assert env.call("stage2_map", root, gpa, hpa, size, R | W | X)
    assert counts(env, root) == (0, 1, 3, 1, 7)
    for off in range(0, size, PAGE):
        assert translate(env, root, gpa + off + 0x10) == hpa + off + 0x10, hex(off)


def test_napot_needs_svnapot_and_alignment(env):
    root = create(env)  # leaves_set(GiB, False): the hart has no Svnapot
    assert env.call("stage2_map", root, 0x8001_0000, 0x1_0005_0000, 2 * KiB64, R)
    assert counts(env, root) == (0, 0, 0, 32, 6)
    env.call("stage2_leaves_set", GiB, True)
    # 64 KiB aligned gpa but an hpa 4 KiB off it: 4 KiB leaves only
    assert env.call("stage2_map", root, 0x8010_0000, 0x1_0005_1000, 2 * KiB64, R)
    assert counts(env, root) == (0, 0, 0, 64, 6)
    # less than 64 KiB left: 4 KiB leaves
    assert env.call("stage2_map", root, 0x8020_0000, 0x1_0020_0000, KiB64 - PAGE, R)
    assert counts(env, root) == (0, 0, 0, 64 + 15, 7)
    assert all(p & N == 0 for p in level0_ptes(env, root, 0x8001_0000, 32))


@pytest.mark.parametrize(
    "largest, svnapot, want",
    [
        (GiB, True, (0, 2, 1, 1)),
        (2 * MiB, True, (0, 2, 1, 1)),
        (2 * MiB, False, (0, 2, 0, 17)),
        (PAGE, True, (0, 0, 0, 2 * 512 + 17)),  # 4 KiB only: never a large or NAPOT leaf, Svnapot or not
        (PAGE, False, (0, 0, 0, 2 * 512 + 17)),
    ],
)
def test_largest_leaf_setting(env, largest, svnapot, want):
    env.call("stage2_leaves_set", largest, svnapot)
    root = create(env)
    # 2 x 2 MiB + 64 KiB + 4 KiB at a 1 GiB aligned gpa, the hpa aligned alike
    size = 4 * MiB + KiB64 + PAGE
    assert env.call("stage2_map", root, GiB, 0x1_4000_0000, size, R | W)
    assert counts(env, root)[:4] == want
    for off in range(0, size, PAGE):
        assert translate(env, root, GiB + off + 0x18) == 0x1_4000_0000 + off + 0x18
    assert env.call("stage2_unmap", root, GiB, size)
    assert counts(env, root) == (0, 0, 0, 0, 4)
    assert used(env) == 4


@pytest.mark.parametrize("largest, want", [(GiB, (1, 1, 0, 0)), (2 * MiB, (0, 513, 0, 0))])
def test_1g_leaves_only_when_allowed(env, largest, want):
    env.call("stage2_leaves_set", largest, True)
    root = create(env)
    assert env.call("stage2_map", root, GiB, 0x1_4000_0000, GiB + 2 * MiB, R | W)
    assert counts(env, root)[:4] == want
    assert translate(env, root, GiB + GiB // 2 + 8) == 0x1_4000_0000 + GiB // 2 + 8


def test_leaf_largest_and_align(env):
    cases = [
        (GiB, True, GiB, True),
        (GiB, False, GiB, False),
        (2 * MiB, True, 2 * MiB, True),
        (PAGE, True, PAGE, False),  # Svnapot on the hart, but the build allows 4 KiB leaves only
    ]
    for largest, svnapot, biggest, napot in cases:
        env.call("stage2_leaves_set", largest, svnapot)
        assert env.call("stage2_leaf_largest") == biggest
        assert env.call("stage2_leaf_napot") is napot
    env.call("stage2_leaves_set", GiB, True)
    align = [
        (0x4000_0000, GiB, GiB),
        (0x4000_0000, GiB - PAGE, 2 * MiB),  # too small for 1 GiB
        (0x9000_0000, 512 * MiB, 2 * MiB),  # the MVM: 256 MiB aligned
        (0x8000_0000, MiB, KiB64),  # the tiny guest: 1 MiB
        (0x8001_0000, 4 * MiB, KiB64),
        (0x8000_1000, 4 * MiB, PAGE),
        (0x8000_0000, KiB64 - PAGE, PAGE),
    ]
    for gpa, size, want in align:
        assert env.call("stage2_leaf_align", gpa, size) == want, (hex(gpa), hex(size))
    env.call("stage2_leaves_set", 2 * MiB, False)
    assert env.call("stage2_leaf_align", 0x4000_0000, GiB) == 2 * MiB
    assert env.call("stage2_leaf_align", 0x8000_0000, MiB) == PAGE
    env.call("stage2_leaves_set", PAGE, True)
    assert env.call("stage2_leaf_align", 0x4000_0000, GiB) == PAGE


def test_unmap_part_of_napot_range_breaks_it(env):
    env.call("stage2_leaves_set", GiB, True)
    root = create(env)
    gpa, hpa = 0x8001_0000, 0x1_0005_0000
    assert env.call("stage2_map", root, gpa, hpa, 2 * KiB64, R | X)
    assert env.call("stage2_unmap", root, gpa + 5 * PAGE, PAGE)
    assert counts(env, root) == (0, 0, 1, 15, 6)
    first = level0_ptes(env, root, gpa, 16)
    assert first[5] == 0
    for i, pte in enumerate(first):
        if i != 5:
            assert pte == (((hpa + i * PAGE) >> 12) << 10) | V | R | X | U | A | D, i  # plain 4 KiB leaves
    assert level0_ptes(env, root, gpa + KiB64, 16) == [level0_ptes(env, root, gpa + KiB64, 1)[0]] * 16
    for i in range(32):
        want = None if i == 5 else hpa + i * PAGE + 0x44
        assert translate(env, root, gpa + i * PAGE + 0x44) == want, i
    assert env.call("stage2_perms", root, gpa + 6 * PAGE) == R | X
    # a range that starts inside the second NAPOT range and runs past it: broken, then its pages go
    assert env.call("stage2_unmap", root, gpa + KiB64 + 14 * PAGE, 4 * PAGE)
    assert counts(env, root) == (0, 0, 0, 15 + 14, 6)
    # a whole NAPOT range at once, then everything: the tables go
    assert env.call("stage2_map", root, 0x8010_0000, 0x1_0010_0000, KiB64, R)
    assert env.call("stage2_unmap", root, 0x8010_0000, KiB64)
    assert level0_ptes(env, root, 0x8010_0000, 16) == [0] * 16
    assert env.call("stage2_unmap", root, gpa, 2 * KiB64)
    assert counts(env, root) == (0, 0, 0, 0, 4)
    assert used(env) == 4


def test_split_2m_leaf_into_napot_ranges(env):
    env.call("stage2_leaves_set", GiB, True)
    root = create(env)
    assert env.call("stage2_map", root, 0x8020_0000, 0x9000_0000, 2 * MiB, R | W)
    assert counts(env, root) == (0, 1, 0, 0, 5)
    # one 4 KiB page out of it: 31 NAPOT ranges and the 15 other pages of the broken one
    assert env.call("stage2_unmap", root, 0x8023_3000, PAGE)
    assert counts(env, root) == (0, 0, 31, 15, 6)
    for off in range(0, 2 * MiB, PAGE):
        want = None if off == 0x3_3000 else 0x9000_0000 + off + 8
        assert translate(env, root, 0x8020_0000 + off + 8) == want, hex(off)
    # without Svnapot the same split makes 4 KiB leaves
    env.call("stage2_leaves_set", GiB, False)
    assert env.call("stage2_map", root, 0x8040_0000, 0x9040_0000, 2 * MiB, R)
    assert env.call("stage2_unmap", root, 0x8040_0000, PAGE)
    assert counts(env, root) == (0, 0, 31, 15 + 511, 7)


def test_split_1g_leaf_then_napot(env):
    env.call("stage2_leaves_set", GiB, True)
    root = create(env)
    assert env.call("stage2_map", root, GiB, 0x1_0000_0000, GiB, R | W)
    assert env.call("stage2_unmap", root, GiB + 2 * MiB + KiB64, KiB64)
    assert counts(env, root) == (0, 511, 31, 0, 6)
    assert translate(env, root, GiB + 2 * MiB + KiB64) is None
    assert translate(env, root, GiB + 2 * MiB + 2 * KiB64 + 4) == 0x1_0000_0000 + 2 * MiB + 2 * KiB64 + 4
    env.call("stage2_destroy", root)
    assert used(env) == 0


def test_destroy_with_napot_returns_every_page(env):
    env.call("stage2_leaves_set", GiB, True)
    before = used(env)
    root = create(env)
    assert env.call("stage2_map", root, 0x8001_0000, 0x1_0001_0000, 5 * KiB64 + 3 * PAGE, R | W)
    assert env.call("stage2_unmap", root, 0x8002_1000, PAGE)
    assert counts(env, root)[4] == used(env) - before
    env.call("stage2_destroy", root)
    assert used(env) == before
