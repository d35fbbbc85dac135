"""A reset of the machine (core/machine.py machine_reset): every other hart parks in the hypervisor first, out of
its guest, and only then does SBI SRST reset the machine; a hart that never parks is not waited for beyond
RESET_PARK_WAIT_MS. Under CPython with the firmware and the time CSR mocked; the other harts' parking is what the
firmware mock does with the IPI (as trap.py irq_software and idle.py hart_wait do on a real hart)."""

from __future__ import annotations

import importlib

from compiler import prelude
from compiler.csrs import CSRS
from tests.hypervisor.hyp_env import load_board

EID_IPI, EID_SRST = 0x735049, 0x53525354
TIME = CSRS["TIME"]
WARM_REBOOT, NO_REASON = 2, 0


class World:
    def __init__(self, tmp_path, parks_on_ipi: set[int], park_after_reads: dict[int, int] | None = None) -> None:
        self.board = load_board(tmp_path, "plic")
        self.m = importlib.import_module("hypervisor.core.machine")
        self.events: list[tuple] = []
        self.now = 1_000
        self.reads = 0
        self.late = dict(park_after_reads or {})  # hart -> the time-CSR read after which it parks
        self.parks_on_ipi = parks_on_ipi
        prelude.mock.sbi_handler = self.firmware
        prelude.mock.csr_read_hook = self.csr_read

    def park(self, hart: int) -> None:
        self.events.append(("park", hart))
        self.m.harts_parked[0] = prelude.u32(int(self.m.harts_parked[0]) + 1)

    def firmware(self, eid, fid, a0, a1, *rest):
        if eid == EID_IPI:
            hart = int(a1)
            self.events.append(("ipi", hart))
            if hart in self.parks_on_ipi:
                self.park(hart)
            return 0, 0
        if eid == EID_SRST:
            self.events.append(("srst", int(a0), int(a1), self.now))
        return 0, 0

    def csr_read(self, num):
        if num != TIME:
            return None
        self.reads += 1
        for hart, after in list(self.late.items()):
            if self.reads >= after:
                del self.late[hart]
                self.park(hart)
        self.now += 1_000  # 100 us of the 10 MHz timebase per look
        return self.now


def test_the_reset_comes_after_every_other_hart_has_parked(tmp_path):
    w = World(tmp_path, parks_on_ipi={1}, park_after_reads={2: 20})  # hart 2 takes a while
    assert not w.m.machine_resetting()
    w.m.machine_reset(prelude.u64(WARM_REBOOT), prelude.u64(NO_REASON), prelude.u64(0b111))  # from hart 0
    assert w.m.machine_resetting()
    ipis = [e[1] for e in w.events if e[0] == "ipi"]
    assert sorted(ipis) == [0, 1, 2]  # every present hart (the resetting one's own stays pending)
    kinds = [e[0] for e in w.events]
    assert kinds[-1] == "srst" and kinds.count("srst") == 1
    assert {e[1] for e in w.events[:-1] if e[0] == "park"} == {1, 2}  # both others parked before the reset
    assert w.events[-1][1:3] == (WARM_REBOOT, NO_REASON)
    wait_ticks = int(w.m.RESET_PARK_WAIT_MS) * int(w.board.TIMEBASE_FREQUENCY) // 1000
    assert w.events[-1][3] < 1_000 + wait_ticks  # it did not run out of time: hart 2 parked


def test_a_hart_that_never_parks_is_not_waited_for_beyond_the_limit(tmp_path):
    w = World(tmp_path, parks_on_ipi={1})  # hart 2 spins with its interrupts off
    w.m.machine_reset(prelude.u64(WARM_REBOOT), prelude.u64(NO_REASON), prelude.u64(0b111))
    srst = [e for e in w.events if e[0] == "srst"]
    assert len(srst) == 1
    wait_ticks = int(w.m.RESET_PARK_WAIT_MS) * int(w.board.TIMEBASE_FREQUENCY) // 1000
    assert srst[0][3] >= 1_000 + wait_ticks


def test_a_lone_hart_resets_at_once(tmp_path):
    w = World(tmp_path, parks_on_ipi=set())
    w.m.machine_reset(prelude.u64(WARM_REBOOT), prelude.u64(NO_REASON), prelude.u64(0b1))
    assert [e[0] for e in w.events] == ["ipi", "srst"]
    assert w.reads <= 1
