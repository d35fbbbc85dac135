"""The vCPU scheduler's run queues and preemption logic (hypervisor/core/sched.py), on guest VMs made through the
control protocol and placed on one hart, run under CPython and compiled for the host: which vCPU a shared hart
picks, when the running one is preempted, round-robin among equal priorities, which waiting vCPUs a pending
interrupt unblocks, and the hart's timer; then a randomized comparison against a model of the policy."""

from __future__ import annotations

import random

import pytest

from compiler import prelude
from tests.hypervisor import fuzz
from tests.hypervisor.control_world import MODULES, ControlWorld

HART = 2
EID_TIME = 0x54494D45
NEVER = (1 << 64) - 1
MIP_VSSIP, MIP_VSTIP, MIP_VSEIP = 1 << 2, 1 << 6, 1 << 10
SIE_ALL = (1 << 1) | (1 << 5) | (1 << 9)  # vsie: SSIE, STIE, SEIE


@pytest.fixture(params=[("cpython", "plic"), ("host", "plic"), ("host", "aia")], ids="-".join)
def w(request):
    kind, irq = request.param
    be = fuzz.make_backend(kind, MODULES, irq)
    try:
        yield ControlWorld(be)
    finally:
        be.close()
        prelude.mock.reset()


def place(w: ControlWorld, priorities: list[int]) -> list:
    """One guest VM per priority, each with its vCPU on HART, running and started; their vCPU views."""
    out = []
    for i, p in enumerate(priorities):
        vid = w.create(name=b"s%d" % i, hart_mask=1 << HART, priority=p)
        w.vm(vid).set("state", 1)  # VM_RUNNING
        k = w.vcpus_on_hart(HART)[-1]
        v = w.vcpu(k)
        v.set("state", 1)  # VCPU_STARTED
        out.append(v)
    return out


def pick(w: ControlWorld, now: int = 1000):
    a = w.be.call("sched_pick", HART, now)
    return None if a == 0 else (a - w.vcpus_addr) // w.vcpu_size


def slot(w: ControlWorld, v) -> int:
    return (v.addr - w.vcpus_addr) // w.vcpu_size


def timers(w: ControlWorld) -> list[int]:
    return [a0 for e, _f, a0, _a1 in w.fw if e == EID_TIME]


def test_a_partitioned_hart_is_not_shared_and_picks_its_vcpu(w):
    (v,) = place(w, [5])
    assert not w.be.call("sched_shared", HART)
    assert pick(w) == slot(w, v)
    v.set("state", 0)  # HSM stopped: nothing to run
    assert pick(w) is None


def test_the_highest_runnable_priority_runs(w):
    lo, hi, mid = place(w, [1, 9, 5])
    assert w.be.call("sched_shared", HART)
    assert pick(w) == slot(w, hi)
    hi.set("blocked", 1)  # waits in WFI with nothing pending
    assert pick(w) == slot(w, mid)
    w.vm(mid.get("vm")).set("state", 7)  # its VM stopped
    assert pick(w) == slot(w, lo)
    lo.set("state", 0)
    assert pick(w) is None


def test_a_waiting_vcpu_is_unblocked_only_by_an_interrupt_it_enabled(w):
    (v, other) = place(w, [9, 1])
    v.set("blocked", 1)
    v.set("timer_deadline", NEVER)
    assert pick(w) == slot(w, other)
    v.set("s_hvip", MIP_VSSIP)  # pending, but vsie has it disabled
    assert pick(w) == slot(w, other) and v.get("blocked") == 1
    v.set("s_vsie", SIE_ALL)
    assert pick(w) == slot(w, v) and v.get("blocked") == 0
    # a message (an IPI, a line change) for it unblocks it too
    v.set("s_hvip", 0)
    v.set("blocked", 1)
    assert pick(w) == slot(w, other)
    v.set("mailbox", 1, 1)
    assert pick(w) == slot(w, v) and v.get("blocked") == 0
    # and its timer deadline, once passed
    v.set("mailbox", 0, 1)
    v.set("blocked", 1)
    v.set("timer_deadline", 5000)
    assert pick(w, now=4999) == slot(w, other)
    assert pick(w, now=5000) == slot(w, v)


def test_equal_priorities_take_turns(w):
    a, b, c = place(w, [3, 3, 3])
    order = []
    for _ in range(6):
        k = pick(w)
        order.append(k)
        w.be.call("sched_switch_to", HART, w.vcpus_addr + k * w.vcpu_size, 1000)
    assert order == [slot(w, a), slot(w, b), slot(w, c)] * 2
    assert [v.get("switches") for v in (a, b, c)] == [2, 2, 2]


def test_a_higher_priority_preempts_at_once(w):
    lo, hi = place(w, [1, 9])
    hi.set("blocked", 1)
    hi.set("s_vsie", SIE_ALL)
    hi.set("timer_deadline", 7000)
    w.be.call("sched_switch_to", HART, lo.addr, 1000)
    w.be.call("sched_check", lo.addr, 2000)
    assert lo.get("parking") == 0
    assert timers(w)[-1] == 7000  # the waiting one's deadline is the hart's timer
    w.be.call("sched_check", lo.addr, 7000)  # its deadline passed: runnable, and higher
    assert lo.get("parking") == 1 and hi.get("blocked") == 0


def test_a_disabled_timer_is_not_armed_for_a_waiting_vcpu(w):
    """A waiting vCPU with vsie.STIE clear is not woken by its deadline: arming it would wake the hart for nothing,
    again and again once it passed."""
    run, wait = place(w, [1, 9])
    wait.set("blocked", 1)
    wait.set("timer_deadline", 3000)
    w.be.call("sched_switch_to", HART, run.addr, 1000)
    w.be.call("sched_timer_program", HART, run.addr)
    assert timers(w)[-1] == NEVER
    wait.set("s_vsie", 1 << 5)
    w.be.call("sched_timer_program", HART, run.addr)
    assert timers(w)[-1] == 3000


def test_a_lower_priority_never_preempts(w):
    lo, hi = place(w, [1, 9])
    w.be.call("sched_switch_to", HART, hi.addr, 1000)
    for now in (2000, 10**7, 10**9):
        w.be.call("sched_check", hi.addr, now)
        assert hi.get("parking") == 0
    assert timers(w)[-1] == NEVER  # no slice: nothing of its priority waits


def test_round_robin_slice(w):
    a, b = place(w, [4, 4])
    a.set("slice", 500)
    w.be.call("sched_switch_to", HART, a.addr, 1000)
    w.be.call("sched_check", a.addr, 1200)
    assert a.get("parking") == 0 and timers(w)[-1] == 1500  # the slice's end
    w.be.call("sched_check", a.addr, 1500)
    assert a.get("parking") == 1


@pytest.fixture(params=["cpython", "host"])
def w_aia(request):
    be = fuzz.make_backend(request.param, MODULES, "aia")
    try:
        yield ControlWorld(be)
    finally:
        be.close()
        prelude.mock.reset()


def test_waiting_files_are_the_blocked_vcpus_own(w_aia):
    """AIA: an MSI into a waiting vCPU's guest interrupt file must wake its hart (hgeie)."""
    w = w_aia
    a, b, c = place(w, [1, 2, 3])
    for v in (a, b, c):
        v.set("s_vsie", SIE_ALL)
    b.set("blocked", 1)
    c.set("blocked", 1)
    files = w.be.call("sched_waiting_files", HART, b.addr)
    assert files == 1 << c.get("vgein")
    assert w.be.call("sched_waiting_files", HART, 0) == (1 << b.get("vgein")) | (1 << c.get("vgein"))
    c.set("s_vsie", 1 << 5)  # it has external interrupts disabled: its file would wake the hart for nothing
    assert w.be.call("sched_waiting_files", HART, 0) == 1 << b.get("vgein")


def model_pick(vs: list[dict], now: int) -> int | None:
    best = None
    for i, v in enumerate(vs):
        if not v["started"] or not v["vm_running"]:
            continue
        if v["blocked"]:
            pending = v["hvip"] | (MIP_VSTIP if v["deadline"] <= now else 0)
            if not (v["mailbox"] or pending & (v["vsie"] << 1)):
                continue
        if best is None or (v["prio"], -v["last"]) > (vs[best]["prio"], -vs[best]["last"]):
            best = i
    return best


def test_pick_matches_the_model_on_random_queues(w):
    rng = random.Random(12)
    vs = place(w, [rng.randrange(4) for _ in range(3 if w.aia else 6)])
    for _case in range(150):
        state = []
        for k, v in enumerate(vs):
            s = {
                "started": rng.random() < 0.85,
                "vm_running": rng.random() < 0.9,
                "blocked": rng.random() < 0.5,
                "mailbox": rng.random() < 0.15,
                "hvip": rng.choice([0, 0, MIP_VSSIP, MIP_VSEIP]),
                "vsie": rng.choice([0, SIE_ALL, 1 << 5]),
                "deadline": rng.choice([NEVER, 500, 1500]),
                "prio": rng.randrange(4),
                "last": rng.randrange(1, 50) * 8 + k,
            }
            state.append(s)
            v.set("state", int(s["started"]))
            w.vm(v.get("vm")).set("state", 1 if s["vm_running"] else 2)
            v.set("blocked", int(s["blocked"]))
            v.set("mailbox", int(s["mailbox"]), 0)
            v.set("s_hvip", s["hvip"])
            v.set("s_vsie", s["vsie"])
            v.set("timer_deadline", s["deadline"])
            v.set("priority", s["prio"])
            v.set("last_run", s["last"])
        want = model_pick(state, 1000)
        got = pick(w, 1000)
        assert got == (None if want is None else slot(w, vs[want])), (state, got)


FENCE_NONE, FENCE_VS, FENCE_ALL = 0, 1, 2


def enter(w: ControlWorld, v, asked: bool = False, vmids: int = 1 << 14) -> int:
    """The TLB fences vcpu_run makes as v enters HART (core/sched.py sched_fences); a fresh vCPU is fresh no more
    once it ran, as vcpu_run clears it."""
    kind = w.be.call("sched_fences", v.addr, w.vm(v.get("vm")).get("vmid"), vmids, asked)
    v.set("fresh", 0)
    return kind


def fence_counts(w: ControlWorld) -> tuple[int, int]:
    rq = w.View(w.be, w.RunQueue, w.rq_addr + HART * w.rq_size)
    return rq.get("fences_all"), rq.get("fences_vs")


def test_tlb_fences_only_when_a_vcpu_of_the_same_vmid_ran_in_between(w):
    """Translations are tagged by VMID: a switch between VMs fences nothing; a vCPU entering after another vCPU
    of its own VM fences its VS stage; a fresh vCPU, or one a remote fence waits for, fences all its VMID's."""
    (a,) = place(w, [3])
    vid = w.create(name=b"pair", hart_mask=1 << HART, vcpus=2, priority=3)  # two vCPUs of one VM on one hart
    w.vm(vid).set("state", 1)
    c0, c1 = (w.vcpu(k) for k in w.vcpus_on_hart(HART)[-2:])
    for v in (c0, c1):
        v.set("state", 1)
    assert c0.get("vm") == c1.get("vm") == vid != a.get("vm")
    assert w.vm(vid).get("vmid") != w.vm(a.get("vm")).get("vmid")
    assert [a.get("fresh"), c0.get("fresh"), c1.get("fresh")] == [1, 1, 1]
    assert [enter(w, a), enter(w, a)] == [FENCE_ALL, FENCE_NONE]  # afresh, then re-entered
    assert [enter(w, c0), enter(w, a), enter(w, c0), enter(w, a)] == [FENCE_ALL] + [FENCE_NONE] * 3  # VMs alternate
    assert enter(w, c1) == FENCE_ALL
    # c1 ran on c0's VMID since c0 did: c0's VS stage goes; a in between changes nothing for either
    assert [enter(w, c0), enter(w, c0), enter(w, a), enter(w, c0), enter(w, a), enter(w, c1)] == [
        FENCE_VS,
        FENCE_NONE,
        FENCE_NONE,
        FENCE_NONE,
        FENCE_NONE,
        FENCE_VS,
    ]
    assert enter(w, a, asked=True) == FENCE_ALL  # a remote fence was asked of it while it was off its hart
    a.set("fresh", 1)  # reset (its VM rebooted)
    assert [enter(w, a), enter(w, a)] == [FENCE_ALL, FENCE_NONE]
    assert fence_counts(w) == (5, 2)


def test_tlb_fences_on_every_entry_when_the_vmids_do_not_fit(w):
    """A VMID the hart cannot hold (VMIDLEN too small, so VMs would share hgatp.VMID): everything fences."""
    a, b = place(w, [3, 3])
    vmids = min(w.vm(v.get("vm")).get("vmid") for v in (a, b))  # the hart's VMIDs stop below both
    assert [enter(w, a), enter(w, b), enter(w, a)] == [FENCE_ALL, FENCE_ALL, FENCE_NONE]
    assert [enter(w, b, vmids=vmids), enter(w, b, vmids=vmids), enter(w, a, vmids=vmids)] == [FENCE_ALL] * 3
