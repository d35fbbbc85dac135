"""hypervisor/core/frame_alloc.py under CPython (prelude memory) and compiled for the host (ctypes pool)."""

import pytest

from tests.hypervisor.mm_env import make_env

PAGE = 4096
MiB = 1 << 20
GiB = 1 << 30


@pytest.fixture(params=["cpython", "host"])
def env(request):
    return make_env(request.param)


def test_init_rejects_bad_pools(env):
    base = env.pool(16 * PAGE)
    assert env.call("frame_alloc_init", base, 16 * PAGE) is True
    assert env.call("frame_alloc", 2, 1) == base
    assert env.call("frame_alloc_init", 0, 16 * PAGE) is False
    assert env.call("frame_alloc_init", base + 8, 16 * PAGE) is False
    assert env.call("frame_alloc_init", base, 0) is False
    assert env.call("frame_alloc_init", base, PAGE - 1) is False
    assert env.call("frame_alloc_init", 2**64 - 4 * PAGE, 8 * PAGE) is False  # wraps the address space
    # a refused init changes nothing
    assert env.call("frame_alloc_total_pages") == 16
    assert env.call("frame_alloc_used_pages") == 2


def test_largest_pool_accounting(env):
    # init only clears the bitmap: the pool memory is never touched, any address will do
    assert env.call("frame_alloc_init", 0x1_0000_0000, 4 * GiB) is True
    assert env.call("frame_alloc_total_pages") == 1 << 20
    assert env.call("frame_alloc_free_pages") == 1 << 20
    assert env.call("frame_alloc_used_pages") == 0
    # a larger pool is cut to what the bitmap covers
    assert env.call("frame_alloc_init", 0x1_0000_0000, 6 * GiB + PAGE) is True
    assert env.call("frame_alloc_total_pages") == 1 << 20


def test_reinit_clears_only_what_it_uses(env):
    base = env.pool(140 * PAGE)
    assert env.call("frame_alloc_init", base, 140 * PAGE)
    assert env.call("frame_alloc", 130, 1) == base  # bits in bitmap words 0..2
    assert env.call("frame_alloc_init", base, 8 * PAGE)  # clears word 0 only; words 1, 2 lie past the pool
    assert env.call("frame_alloc", 8, 1) == base
    assert env.call("frame_alloc", 1, 1) == 0
    assert env.call("frame_alloc_init", base, 140 * PAGE)
    assert env.call("frame_alloc", 140, 1) == base


def test_accounting_and_partial_page_dropped(env):
    base = env.pool(16 * PAGE)
    assert env.call("frame_alloc_init", base, 16 * PAGE + 100) is True
    assert env.call("frame_alloc_total_pages") == 16
    a = env.call("frame_alloc", 3, 1)
    b = env.call("frame_alloc", 2, 1)
    assert (a, b) == (base, base + 3 * PAGE)
    assert env.call("frame_alloc_used_pages") == 5
    assert env.call("frame_alloc_free_pages") == 11
    assert env.call("frame_free", a, 3) is True
    assert env.call("frame_alloc_used_pages") == 2
    assert env.call("frame_alloc_free_pages") == 14
    assert env.call("frame_free", b, 2) is True
    assert env.call("frame_alloc_used_pages") == 0


def test_memory_is_zeroed(env):
    base = env.pool(8 * PAGE)  # filled with 0xFF
    assert env.call("frame_alloc_init", base, 8 * PAGE)
    a = env.call("frame_alloc", 2, 1)
    assert a == base
    assert all(env.read_u64(a + off) == 0 for off in range(0, 2 * PAGE, 8))
    assert env.read_u64(a + 2 * PAGE) == 0xFFFF_FFFF_FFFF_FFFF  # the next frame is not touched


def test_alignment(env):
    base = env.pool(64 * PAGE, misalign=PAGE)  # base is 4 KiB- but not 16 KiB-aligned
    assert base % 16384 == PAGE
    assert env.call("frame_alloc_init", base, 60 * PAGE)
    root = env.call("frame_alloc", 4, 4)
    assert root % 16384 == 0
    assert root == base + 3 * PAGE
    # the frames skipped for alignment stay free and are used by smaller requests
    assert env.call("frame_alloc", 1, 1) == base
    assert env.call("frame_alloc", 2, 1) == base + PAGE
    assert env.call("frame_alloc", 1, 0) == base + 7 * PAGE  # align 0 counts as 1
    a8 = env.call("frame_alloc", 1, 8)
    assert a8 % (8 * PAGE) == 0 and a8 > root
    assert env.call("frame_alloc", 1, 3) == 0  # not a power of two
    assert env.call("frame_alloc_used_pages") == 9


def test_exhaustion(env):
    base = env.pool(16 * PAGE)
    assert env.call("frame_alloc_init", base, 16 * PAGE)
    assert env.call("frame_alloc", 17, 1) == 0
    assert env.call("frame_alloc", 0, 1) == 0
    got = [env.call("frame_alloc", 1, 1) for _ in range(16)]
    assert got == [base + i * PAGE for i in range(16)]
    assert env.call("frame_alloc", 1, 1) == 0
    assert env.call("frame_alloc_free_pages") == 0
    assert env.call("frame_free", got[5], 1)
    assert env.call("frame_alloc", 2, 1) == 0  # one free frame, not two
    assert env.call("frame_alloc", 1, 1) == got[5]


def test_fragmentation_contiguous_run(env):
    base = env.pool(16 * PAGE)
    assert env.call("frame_alloc_init", base, 16 * PAGE)
    a = env.call("frame_alloc", 4, 1)
    b = env.call("frame_alloc", 2, 1)
    c = env.call("frame_alloc", 4, 1)
    assert env.call("frame_free", b, 2)
    assert env.call("frame_alloc", 3, 1) == c + 4 * PAGE  # the 2-frame hole is too small
    assert env.call("frame_alloc", 2, 1) == b
    assert a == base


def test_double_free_and_bad_frees(env):
    base = env.pool(16 * PAGE)
    assert env.call("frame_alloc_init", base, 16 * PAGE)
    a = env.call("frame_alloc", 4, 1)
    assert env.call("frame_free", a, 0) is False
    assert env.call("frame_free", a + 8, 1) is False  # not frame-aligned
    assert env.call("frame_free", base - PAGE, 1) is False  # below the pool
    assert env.call("frame_free", base + 16 * PAGE, 1) is False  # past the pool
    assert env.call("frame_free", base + 14 * PAGE, 4) is False  # runs past the pool
    assert env.call("frame_free", a + 2 * PAGE, 3) is False  # partly free: no change
    assert env.call("frame_alloc_used_pages") == 4
    assert env.call("frame_free", a, 4) is True
    assert env.call("frame_free", a, 4) is False  # double free
    assert env.call("frame_free", a, 1) is False
    assert env.call("frame_alloc_used_pages") == 0


def test_full_words_are_skipped(env):
    base = env.pool(140 * PAGE)
    assert env.call("frame_alloc_init", base, 140 * PAGE)
    big = env.call("frame_alloc", 130, 1)
    assert big == base
    assert env.call("frame_alloc", 4, 4) == base + 132 * PAGE  # 16 KiB aligned past the used words
    assert env.call("frame_alloc", 8, 1) == 0
    assert env.call("frame_free", big, 130)
    assert env.call("frame_alloc", 8, 1) == base


def test_reinit_forgets_everything(env):
    base = env.pool(8 * PAGE)
    assert env.call("frame_alloc_init", base, 8 * PAGE)
    assert env.call("frame_alloc", 8, 1) == base
    assert env.call("frame_alloc_init", base, 8 * PAGE)
    assert env.call("frame_alloc_used_pages") == 0
    assert env.call("frame_alloc", 8, 1) == base
