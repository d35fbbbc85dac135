"""hypervisor/arch/riscv/stage2.py against a model: seeded random stage2_map / stage2_unmap sequences over a 2 GiB
guest-physical window, under CPython and compiled for the host, in each leaf setting (largest leaf 1 GiB, 2 MiB
or 4 KiB; with and without Svnapot).

The model is a list of mapped intervals (gpa, size, hpa, perms). After every operation: the result is the model's
(a map that overlaps fails and changes nothing), stage2_translate and stage2_perms agree with the model at sampled
addresses (interval edges, the operation's range, random ones), the leaf counts add up to the mapped bytes and
name no leaf the setting forbids, the table frames counted are the frames in use (none leaked), and the tables
are well formed: every NAPOT PTE sits in a 64 KiB aligned run of 16 alike PTEs whose PPN[3:0] is 0b1000. At the
end everything is unmapped and only the root is left.
"""

from __future__ import annotations

import bisect
import random

import pytest

from tests.hypervisor.mm_env import make_env

PAGE = 4096
KiB64 = 1 << 16
MiB = 1 << 20
GiB = 1 << 30
R, W, X = 2, 4, 8
N = 1 << 63
WINDOW = 2 * GiB  # guest-physical [0, 2 GiB)
POOL_PAGES = 768
OPS = {"cpython": 30, "host": 400}  # operations per run (the prelude's simulated memory is slow)
SETTINGS = [(GiB, True), (GiB, False), (2 * MiB, True), (PAGE, False)]
PPN_MASK = (1 << 44) - 1


class Model:
    def __init__(self) -> None:
        self.maps: list[tuple[int, int, int, int]] = []  # sorted by gpa, never overlapping

    def free(self, gpa: int, size: int) -> bool:
        return all(g + s <= gpa or gpa + size <= g for g, s, _, _ in self.maps)

    def map(self, gpa: int, size: int, hpa: int, perms: int) -> None:
        bisect.insort(self.maps, (gpa, size, hpa, perms))

    def unmap(self, gpa: int, size: int) -> None:
        end = gpa + size
        out = []
        for g, s, h, p in self.maps:
            if g + s <= gpa or end <= g:
                out.append((g, s, h, p))
                continue
            if g < gpa:
                out.append((g, gpa - g, h, p))
            if end < g + s:
                out.append((end, g + s - end, h + (end - g), p))
        self.maps = sorted(out)

    def lookup(self, addr: int) -> tuple[int, int] | None:
        for g, s, h, p in self.maps:
            if g <= addr < g + s:
                return h + (addr - g), p
        return None

    def bytes(self) -> int:
        return sum(s for _, s, _, _ in self.maps)


def _size(rng: random.Random, largest: int) -> int:
    """A mapping's size; 1 GiB only where it takes large leaves (262144 4 KiB leaves would only be slow)."""
    kind = rng.random()
    if kind < 0.35:
        return PAGE * rng.randint(1, 40)
    if kind < 0.65:
        return KiB64 * rng.randint(1, 12) + PAGE * rng.choice([0, 0, 1, 3])
    if kind < 0.92 or largest < 2 * MiB:
        return 2 * MiB * rng.randint(1, 4) + KiB64 * rng.randint(0, 3)
    return GiB


def _gpa(rng: random.Random, size: int) -> int:
    align = rng.choice([PAGE, KiB64, KiB64, 2 * MiB, 2 * MiB, GiB])
    top = max(WINDOW - size, 0)
    return (rng.randrange(0, top + 1) // align) * align


def _hpa(rng: random.Random, gpa: int, size: int) -> int:
    """A host address alike gpa modulo 1 GiB (large leaves possible), or for a small mapping 64 KiB or 4 KiB off
    it."""
    base = rng.randrange(1, 64) * GiB
    return base + (gpa % GiB) + (rng.choice([0, 0, 0, KiB64, PAGE]) if size <= 16 * MiB else 0)


def _walk(env, root):
    """(gpa, level, pte) of every valid leaf, checking the tables' shape and the NAPOT runs on the way."""
    leaves = []
    for i in range(2048):
        e2 = env.read_u64(root + 8 * i)
        if e2 & 1 == 0:
            continue
        if e2 & 0xE:
            leaves.append((i << 30, 2, e2))
            continue
        t1 = ((e2 >> 10) & PPN_MASK) << 12
        for j in range(512):
            e1 = env.read_u64(t1 + 8 * j)
            if e1 & 1 == 0:
                continue
            if e1 & 0xE:
                leaves.append(((i << 30) | (j << 21), 1, e1))
                continue
            t0 = ((e1 >> 10) & PPN_MASK) << 12
            ptes = [env.read_u64(t0 + 8 * k) for k in range(512)]
            for k, pte in enumerate(ptes):
                if pte & 1 == 0:
                    assert pte == 0
                    continue
                assert pte & 0xE, "a non-leaf PTE at level 0"
                if pte & N:
                    first = k & ~15
                    assert ptes[first : first + 16] == [pte] * 16, "a NAPOT run of 16 alike PTEs"
                    assert (pte >> 10) & 0xF == 0b1000, "PPN[3:0] of a 64 KiB NAPOT PTE"
                leaves.append(((i << 30) | (j << 21) | (k << 12), 0, pte))
    return leaves


def _check(env, root, model: Model, rng: random.Random, largest: int, napot: bool, near: list[int], base_used: int):
    arg, read = env.out(5)
    env.call("stage2_count_leaves", root, arg)
    c1g, c2m, c4k, tables, c64k = read()
    assert c1g * GiB + c2m * 2 * MiB + c64k * KiB64 + c4k * PAGE == model.bytes()
    assert tables == env.call("frame_alloc_used_pages") - base_used
    if largest < GiB:
        assert c1g == 0
    if largest < 2 * MiB:
        assert c2m == 0
    if not napot or largest < KiB64:
        assert c64k == 0
    addrs = list(near)
    for g, s, _, _ in model.maps:
        addrs += [g, g + s - 1, g + s, g - 1]
    addrs += [rng.randrange(0, WINDOW) for _ in range(24)]
    out, read1 = env.out(1)
    for a in addrs:
        if not 0 <= a < WINDOW:
            continue
        want = model.lookup(a)
        ok = env.call("stage2_translate", root, a, out)
        assert ok is (want is not None), hex(a)
        if want is not None:
            assert read1()[0] == want[0], hex(a)
        assert env.call("stage2_perms", root, a) == (0 if want is None else want[1]), hex(a)
    return c2m, c64k


@pytest.mark.parametrize("largest, napot", SETTINGS, ids=lambda v: str(v))
@pytest.mark.parametrize("kind", ["cpython", "host"])
def test_stage2_random_against_model(kind, largest, napot):
    env = make_env(kind)
    base = env.pool(POOL_PAGES * PAGE)
    assert env.call("frame_alloc_init", base, POOL_PAGES * PAGE)
    env.call("stage2_leaves_set", largest, napot)
    root = env.call("stage2_create")
    assert root != 0
    base_used = env.call("frame_alloc_used_pages") - 4
    rng = random.Random(f"stage2-{largest}-{napot}")
    model = Model()
    seen_2m = seen_64k = 0
    for op in range(OPS[kind]):
        if rng.random() < 0.55 or not model.maps:
            size = _size(rng, largest)
            gpa = _gpa(rng, size)
            hpa = _hpa(rng, gpa, size)
            perms = rng.choice([R, R | W, R | X, R | W | X])
            free = model.free(gpa, size)
            got = env.call("stage2_map", root, gpa, hpa, size, perms)
            assert got is free, (op, hex(gpa), hex(size), hex(hpa))
            if got:
                model.map(gpa, size, hpa, perms)
        else:
            if rng.random() < 0.7:  # inside or across a mapping
                g, s, _, _ = rng.choice(model.maps)
                gpa = g + (rng.randrange(0, s) // PAGE) * PAGE
                size = PAGE * rng.randint(1, 48) if rng.random() < 0.6 else _size(rng, largest)
            else:
                size = _size(rng, largest)
                gpa = _gpa(rng, size)
            size = min(size, WINDOW - gpa)
            assert env.call("stage2_unmap", root, gpa, size), (op, hex(gpa), hex(size))
            model.unmap(gpa, size)
        near = [gpa, gpa + size - 1, gpa + size, gpa + rng.randrange(0, size)]
        c2m, c64k = _check(env, root, model, rng, largest, napot, near, base_used)
        seen_2m, seen_64k = max(seen_2m, c2m), max(seen_64k, c64k)
        if op % 20 == 19:
            _walk(env, root)
    leaves = _walk(env, root)
    assert (len(leaves) == 0) is (model.bytes() == 0)
    assert (seen_2m > 0) is (largest >= 2 * MiB), "the sequence made the large leaves the setting allows"
    assert (seen_64k > 0) is napot
    assert env.call("stage2_unmap", root, 0, WINDOW)
    model.unmap(0, WINDOW)
    _check(env, root, model, rng, largest, napot, [], base_used)
    assert env.call("frame_alloc_used_pages") - base_used == 4
    assert _walk(env, root) == []
