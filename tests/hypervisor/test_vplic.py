"""hypervisor/core/vplic.py (the virtual PLIC register model) under CPython and compiled for the host, driven
through its register interface like a guest driver (Linux irq-sifive-plic) would."""

from __future__ import annotations

import ctypes
import importlib
import sys
from pathlib import Path

import pytest

from boards import make_config, render_hypervisor_module
from compiler import prelude
from tests.hypervisor.hyp_env import load_board

ROOT = Path(__file__).resolve().parents[2]
MODULE = "hypervisor.core.vplic"
SRC = ROOT / "hypervisor" / "core" / "vplic.py"
SIM_VPLIC = 0x6000_0000

PENDING, ENABLE, CONTEXT = 0x1000, 0x2000, 0x200000


def prio(src: int) -> int:
    return 4 * src


def enable(ctx: int, word: int = 0) -> int:
    return ENABLE + 0x80 * ctx + 4 * word


def threshold(ctx: int) -> int:
    return CONTEXT + 0x1000 * ctx


def claim(ctx: int) -> int:
    return CONTEXT + 0x1000 * ctx + 4


_BOARD: list[Path] = []


def board_dir() -> Path:
    """One rendered `hypervisor.board` (PLIC mode) for the model's sizes and register map."""
    if not _BOARD:
        import tempfile

        d = Path(tempfile.mkdtemp(prefix="vplic-board-"))
        (d / "board.py").write_text(render_hypervisor_module(make_config("qemu-virt", "plic", None)))
        _BOARD.append(d)
    return _BOARD[0]


class CPythonEnv:
    kind = "cpython"

    def __init__(self) -> None:
        load_board(board_dir())
        sys.modules.pop(MODULE, None)
        importlib.invalidate_caches()
        self.mod = importlib.import_module(MODULE)
        self.size = int(prelude.sizeof(self.mod.Vplic))
        prelude.memory.fill(SIM_VPLIC, self.size, 0xA5)  # garbage: init must clear everything
        self.p = prelude.Ptr[self.mod.Vplic](prelude.u64(SIM_VPLIC))

    def call(self, name: str, *args):
        r = getattr(self.mod, name)(*args)
        return r if isinstance(r, bool) or r is None else int(r)


class HostEnv:
    kind = "host"
    _program = None

    def __init__(self) -> None:
        from compiler import driver

        if HostEnv._program is None:
            HostEnv._program = driver.compile_host(
                [str(SRC)], extra_modules={"hypervisor.board": board_dir() / "board.py"}
            )
        self.prog = HostEnv._program
        load_board(board_dir())
        sys.modules.pop(MODULE, None)
        self.size = int(prelude.sizeof(importlib.import_module(MODULE).Vplic))
        self.buf = ctypes.create_string_buffer(b"\xa5" * self.size, self.size)
        self.p = ctypes.addressof(self.buf)

    def call(self, name: str, *args):
        return self.prog.call(name, *[int(a) for a in args])


class Plic:
    """The model behind one guest PLIC window."""

    def __init__(self, env, contexts: int) -> None:
        self.env = env
        env.call("vplic_init", env.p, contexts)

    def rd(self, off: int, width: int = 4) -> int:
        return self.env.call("vplic_read", self.env.p, off, width)

    def wr(self, off: int, value: int, width: int = 4) -> int:
        return self.env.call("vplic_write", self.env.p, off, width, value)

    def raise_(self, src: int) -> None:
        self.env.call("vplic_set_pending", self.env.p, src)

    def lower(self, src: int) -> None:
        self.env.call("vplic_clear_pending", self.env.p, src)

    def hw(self, src: int, owned: bool = True) -> None:
        self.env.call("vplic_set_hw_owned", self.env.p, src, owned)

    def notify(self, ctx: int) -> bool:
        return self.env.call("vplic_context_pending", self.env.p, ctx)

    def claim(self, ctx: int) -> int:
        return self.rd(claim(ctx))

    def complete(self, ctx: int, src: int) -> int:
        return self.wr(claim(ctx), src)

    def pending(self) -> int:
        return self.rd(PENDING) | self.rd(PENDING + 4) << 32 | self.rd(PENDING + 8) << 64

    def enable_all(self, ctx: int, *srcs: int) -> None:
        bits = sum(1 << s for s in srcs)
        for w in range(3):
            self.wr(enable(ctx, w), (bits >> (32 * w)) & 0xFFFF_FFFF)


@pytest.fixture(params=["cpython", "host"])
def env(request):
    return CPythonEnv() if request.param == "cpython" else HostEnv()


@pytest.fixture
def plic(env):
    return Plic(env, 4)  # 2 vCPUs: contexts 0 (M0) 1 (S0) 2 (M1) 3 (S1)


def test_context_of_vcpu(env):
    assert [env.call("vplic_context_of_vcpu", n) for n in range(4)] == [1, 3, 5, 7]


def test_init_clears_everything(plic):
    for s in range(96):
        assert plic.rd(prio(s)) == 0
    assert plic.pending() == 0
    for c in range(4):
        assert [plic.rd(enable(c, w)) for w in range(3)] == [0, 0, 0]
        assert plic.rd(threshold(c)) == 0
        assert plic.claim(c) == 0
        assert not plic.notify(c)


def test_priority_registers_warl(plic):
    plic.wr(prio(1), 5)
    plic.wr(prio(95), 0xFFFF_FFFF)
    plic.wr(prio(10), 8)
    plic.wr(prio(0), 7)  # source 0 does not exist
    assert plic.rd(prio(1)) == 5
    assert plic.rd(prio(95)) == 7
    assert plic.rd(prio(10)) == 0
    assert plic.rd(prio(0)) == 0
    assert plic.rd(prio(96)) == 0  # past the last source: reserved


def test_threshold_warl_and_masking(plic):
    plic.wr(threshold(1), 0x1F)
    assert plic.rd(threshold(1)) == 7
    plic.wr(prio(10), 3)
    plic.enable_all(1, 10)
    plic.raise_(10)
    for t, expected in ((0, True), (2, True), (3, False), (7, False)):
        plic.wr(threshold(1), t)
        assert plic.notify(1) is expected, t
    plic.wr(threshold(1), 3)
    assert plic.claim(1) == 0  # a claim respects the threshold too (as QEMU's PLIC does)
    assert plic.pending() == 1 << 10  # and leaves the source pending
    plic.wr(threshold(1), 2)
    assert plic.claim(1) == 10


def test_priority_zero_never_interrupts(plic):
    plic.enable_all(1, 4)
    plic.raise_(4)
    assert plic.pending() == 1 << 4
    assert not plic.notify(1)
    assert plic.claim(1) == 0
    plic.wr(prio(4), 1)
    assert plic.notify(1)


def test_claim_order_highest_priority_then_lowest_id(plic):
    for src, p in ((3, 2), (7, 5), (9, 5), (40, 6), (70, 1), (95, 6)):
        plic.wr(prio(src), p)
        plic.raise_(src)
    plic.enable_all(1, 3, 7, 9, 40, 70, 95)
    order = []
    while plic.notify(1):
        order.append(plic.claim(1))
    assert order == [40, 95, 7, 9, 3, 70]
    assert plic.claim(1) == 0
    assert plic.pending() == 0


def test_claim_clears_pending_and_complete_allows_next(plic):
    plic.wr(prio(10), 1)
    plic.enable_all(1, 10)
    plic.raise_(10)
    assert plic.pending() == 1 << 10
    assert plic.claim(1) == 10
    assert plic.pending() == 0
    assert not plic.notify(1)
    plic.raise_(10)  # in service: the gateway holds the new request
    assert plic.pending() == 0
    assert plic.claim(1) == 0
    assert plic.complete(1, 10) == 0  # emulated source: nothing to complete physically
    assert plic.pending() == 1 << 10  # the held request is forwarded now
    assert plic.claim(1) == 10
    assert plic.complete(1, 10) == 0
    assert plic.pending() == 0
    plic.raise_(10)
    assert plic.claim(1) == 10


def test_complete_of_source_not_in_service_is_ignored(plic):
    plic.wr(prio(5), 1)
    plic.enable_all(1, 5)
    plic.hw(5)
    assert plic.complete(1, 5) == 0  # never claimed
    plic.raise_(5)
    assert plic.complete(1, 5) == 0  # pending but not claimed
    assert plic.claim(1) == 5
    assert plic.complete(1, 0) == 0
    assert plic.complete(1, 96) == 0
    assert plic.complete(1, 0xFFFF_FFFF) == 0
    assert plic.complete(1, 5) == 5
    assert plic.complete(1, 5) == 0  # twice: no longer in service


def test_complete_needs_enable_for_that_context(plic):
    """PLIC 1.0.0 ch. 9: a completion for a source not enabled for the target is silently ignored (Linux's
    plic_irq_eoi enables a masked source around its completion for this reason)."""
    plic.wr(prio(6), 1)
    plic.enable_all(1, 6)
    plic.raise_(6)
    assert plic.claim(1) == 6
    plic.enable_all(1)
    plic.complete(1, 6)
    plic.complete(3, 6)  # another context, not enabled there either
    plic.enable_all(1, 6)
    plic.raise_(6)
    assert plic.claim(1) == 0  # still in service: the request is held
    plic.complete(1, 6)
    assert plic.claim(1) == 6  # completed now: the held request is taken


def test_passthrough_completion_from_a_context_it_moved_away_from(plic):
    """A passthrough source the guest moved to another vCPU between claim and completion (its enable bit gone
    from the claiming context) is still completed, on the physical PLIC too: never left in service forever."""
    plic.wr(prio(10), 1)
    plic.hw(10)
    plic.enable_all(1, 10)
    plic.raise_(10)
    assert plic.claim(1) == 10
    plic.enable_all(1)
    plic.enable_all(3, 10)  # affinity moved to vCPU 1
    assert plic.complete(1, 10) == 10
    assert plic.complete(1, 10) == 0  # once
    plic.raise_(10)
    assert plic.claim(3) == 10


def test_enable_per_context(plic):
    plic.wr(prio(33), 2)
    plic.wr(prio(2), 2)
    plic.wr(enable(1, 1), 1 << 1)  # source 33 for vCPU 0's S context
    plic.wr(enable(3, 0), 1 << 2)  # source 2 for vCPU 1's S context
    assert plic.rd(enable(1, 1)) == 2 and plic.rd(enable(1, 0)) == 0
    assert plic.rd(enable(3, 0)) == 4 and plic.rd(enable(3, 1)) == 0
    plic.raise_(33)
    assert plic.notify(1) and not plic.notify(3) and not plic.notify(0) and not plic.notify(2)
    plic.raise_(2)
    assert plic.notify(3)
    assert plic.claim(3) == 2
    assert plic.claim(1) == 33
    assert not plic.notify(1) and not plic.notify(3)


def test_enable_bit_of_source_0_hardwired(plic):
    plic.wr(enable(1, 0), 0xFFFF_FFFF)
    plic.wr(enable(1, 2), 0xFFFF_FFFF)
    assert plic.rd(enable(1, 0)) == 0xFFFF_FFFE
    assert plic.rd(enable(1, 2)) == 0xFFFF_FFFF
    assert plic.rd(enable(1, 3)) == 0  # past source 95: reserved
    plic.wr(enable(1, 3), 0xFFFF_FFFF)
    assert plic.rd(enable(1, 3)) == 0


def test_same_source_enabled_in_two_contexts_is_claimed_once(plic):
    plic.wr(prio(8), 1)
    plic.enable_all(1, 8)
    plic.enable_all(3, 8)
    plic.raise_(8)
    assert plic.notify(1) and plic.notify(3)
    assert plic.claim(3) == 8
    assert plic.claim(1) == 0
    assert not plic.notify(1)


def test_pending_read_back_and_read_only(plic):
    for s in (1, 31, 32, 63, 64, 95):
        plic.raise_(s)
    assert plic.rd(PENDING) == (1 << 1) | (1 << 31)
    assert plic.rd(PENDING + 4) == 1 | (1 << 31)
    assert plic.rd(PENDING + 8) == 1 | (1 << 31)
    assert plic.rd(PENDING + 12) == 0
    plic.wr(PENDING, 0)
    plic.wr(PENDING + 4, 0xFFFF_FFFF)
    assert plic.pending() == sum(1 << s for s in (1, 31, 32, 63, 64, 95))
    plic.raise_(0)
    plic.raise_(96)
    plic.raise_(1 << 40)
    assert plic.pending() == sum(1 << s for s in (1, 31, 32, 63, 64, 95))
    plic.lower(31)
    plic.lower(64)
    assert plic.pending() == sum(1 << s for s in (1, 32, 63, 95))


def test_lowered_line_while_in_service_drops_held_request(plic):
    plic.wr(prio(12), 1)
    plic.enable_all(1, 12)
    plic.raise_(12)
    assert plic.claim(1) == 12
    plic.raise_(12)
    plic.lower(12)
    assert plic.complete(1, 12) == 0
    assert plic.pending() == 0


def test_hw_owned_completion_reported(plic):
    plic.hw(10)
    plic.hw(33)
    for s in (10, 33, 11):
        plic.wr(prio(s), 1)
    plic.enable_all(1, 10, 33, 11)
    for s in (10, 33, 11):
        plic.raise_(s)
    got = [plic.claim(1) for _ in range(3)]
    assert got == [10, 11, 33]
    assert plic.complete(1, 33) == 33
    assert plic.complete(1, 11) == 0
    assert plic.complete(1, 10) == 10
    plic.hw(10, False)
    plic.raise_(10)
    assert plic.claim(1) == 10
    assert plic.complete(1, 10) == 0
    plic.hw(0)  # ignored
    plic.hw(200)


def test_contexts_beyond_configured_are_reserved(env):
    plic = Plic(env, 2)  # one vCPU
    plic.wr(prio(1), 1)
    plic.raise_(1)
    plic.wr(enable(2, 0), 2)
    plic.wr(threshold(2), 3)
    assert plic.rd(enable(2, 0)) == 0
    assert plic.rd(threshold(2)) == 0
    assert plic.claim(2) == 0
    assert not plic.notify(2)
    assert not plic.notify(1 << 40)
    plic.wr(enable(1, 0), 2)
    assert plic.claim(1) == 1
    assert plic.complete(2, 1) == 0  # another (absent) context
    assert plic.complete(1, 1) == 0


def test_contexts_clamped_to_maximum(env):
    plic = Plic(env, 1000)
    plic.wr(prio(3), 1)
    plic.raise_(3)
    plic.wr(enable(15, 0), 8)
    assert plic.claim(15) == 3
    plic.wr(enable(16, 0), 8)
    assert plic.rd(enable(16, 0)) == 0
    assert plic.rd(threshold(16)) == 0


def test_access_ok(env):
    ok = lambda off, w: env.call("vplic_access_ok", off, w)  # noqa: E731
    assert ok(0, 4) and ok(4, 4) and ok(PENDING, 4) and ok(claim(15), 4) and ok(0x3FF_FFFC, 4)
    assert ok(0x1800, 4)  # reserved but a legal access
    for w in (1, 2, 8, 0, 3):
        assert not ok(prio(1), w)
    for off in (1, 2, 3, claim(1) + 1, PENDING + 6):
        assert not ok(off, 4)
    assert not ok(0x400_0000, 4)
    assert not ok(1 << 63, 4)


def test_refused_and_reserved_accesses_are_harmless(plic):
    plic.wr(prio(2), 3)
    plic.wr(prio(2), 7, width=1)
    plic.wr(prio(2), 7, width=8)
    plic.wr(prio(2) + 1, 7)
    assert plic.rd(prio(2)) == 3
    assert plic.rd(prio(2), width=8) == 0
    assert plic.rd(prio(2), width=2) == 0
    assert plic.rd(prio(2) + 2) == 0
    plic.enable_all(1, 2)
    plic.raise_(2)
    assert plic.rd(claim(1), width=8) == 0  # no claim side effect
    assert plic.rd(claim(1) + 1) == 0
    assert plic.pending() == 1 << 2
    for off in (
        0x180,
        0xFFC,
        0x100C,
        0x1FFC,
        enable(0, 3),
        0x1F_FFFC,
        threshold(1) + 8,
        threshold(1) + 0xFFC,
        0x3FF_FFFC,
        0x400_0000,
        1 << 63,
    ):
        assert plic.wr(off, 0xFFFF_FFFF) == 0
        assert plic.rd(off) == 0, hex(off)
    assert plic.claim(1) == 2
    assert plic.rd(prio(2)) == 3
