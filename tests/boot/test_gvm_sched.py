"""Guest VMs sharing a hart (issue 12's scheduler, hypervisor/core/sched.py), over the MVM's serial console with
pexpect, once per interrupt mode, on `pyshyper run`'s machine (4 harts, 2G, the images disk):

two Linux GVMs placed on hart 2 (the shipped vm1.json, and vm2.json moved to hart 2) both reach their shells and
stay responsive while both run; FP and vector results stay correct in both while the higher-priority one's
fpvcheck preempts the lower's mid-computation; a CPU-bound loop in the lower-priority one does not keep the
higher-priority one from answering at once (it preempts on its console's interrupt); a CPU-bound loop in the
higher-priority one keeps the lower-priority one off the hart entirely (its switch count stands still) until it
stops.

Each mode boots once (a module-scoped fixture); the tests run in order on that boot. The serial log of a failing
test is saved as logs/<test>.log.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.boot.test_gvm import LOG_DIR, TIMEOUT, Mvm
from tests.boot.test_gvm import mvm as _mvm_fixture  # noqa: F401  (the module-scoped MVM boot, per mode)

pytestmark = [pytest.mark.qemu, pytest.mark.slow]

mvm = _mvm_fixture
HART = 2
PRIO = {1: 10, 2: 1}  # vm1 preempts vm2


@pytest.fixture(autouse=True)
def _log_on_failure(request, mvm):
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        LOG_DIR.mkdir(exist_ok=True)
        print(f"serial log: {mvm.save_log(request.node.name)}")


def _config(mvm: Mvm, vid: int) -> None:
    """vmN.json placed on hart 2 with its priority, as /root/sN.json, configured: it gets id N."""
    edit = (
        f'import json; c = json.load(open("/root/vm{vid}.json")); '
        f'c["cpu"].update(allocate_bitmap="0b{1 << HART:b}", master={HART}, priority={PRIO[vid]}); '
        f'json.dump(c, open("/root/s{vid}.json", "w"))'
    )
    mvm.run(f"python3 -c '{edit}'")
    assert mvm.run(f"shyper vm config /root/s{vid}.json").strip().endswith(str(vid))


def _rq(mvm: Mvm) -> dict[int, dict]:
    """Hart 2's run queue as `shyper system info --json` gives it: VM id -> its vCPU's entry."""
    info = json.loads(mvm.run("shyper system info --json"))
    return {e["vm"]: e for e in info["run_queues"][HART]}


def test_two_gvms_share_one_hart_and_reach_their_shells(mvm: Mvm):
    _config(mvm, 1)
    _config(mvm, 2)
    for vid in (1, 2):
        mvm.run(f"shyper vm boot {vid}", timeout=TIMEOUT)
    for vid in (1, 2):
        mvm.hvc(vid, f"echo shell-of-vm{vid}-$((6 * 7))", rf"shell-of-vm{vid}-42", timeout=300, resend=10)
    vms = mvm.vms()
    assert vms[1]["harts"] == [HART] and vms[2]["harts"] == [HART]
    rq = _rq(mvm)
    assert set(rq) == {1, 2}
    assert rq[1]["priority"] == PRIO[1] and rq[2]["priority"] == PRIO[2]
    assert rq[1]["switches"] > 0 and rq[2]["switches"] > 0


def test_both_stay_responsive(mvm: Mvm):
    for round_ in range(3):
        for vid in (1, 2):
            mvm.hvc(vid, f"echo again-{vid}-{round_}-$((round_ + 1))", rf"again-{vid}-{round_}-\d", timeout=60)


def test_fp_and_vector_state_stay_correct_while_sharing(mvm: Mvm):
    """fpvcheck (FP and vector work checked against scalar results, values changing every round) in both: vm2's
    (priority 1) runs in the background and is preempted by vm1's (priority 10) mid-computation, then resumes; both
    must report every round correct (arch/riscv/fpu.py saves and restores their registers across the switches)."""
    mvm.hvc(2, "(fpvcheck 16 > /tmp/fpv.out 2>&1; echo fpv-exit=$? >> /tmp/fpv.out) & echo started-fpv", r"started-fpv")
    time.sleep(2)
    got = mvm.hvc(1, "fpvcheck 4; echo fpv1-exit=$?", r"fpv1-exit=\d+", timeout=120)
    assert "fpv1-exit=0" in got and re.search(r"fpvcheck: ok \d+ rounds", got), got
    got = mvm.hvc(2, "cat /tmp/fpv.out", r"fpv-exit=\d+", timeout=120, resend=5)
    assert "fpv-exit=0" in got and re.search(r"fpvcheck: ok \d+ rounds", got), got


def test_higher_priority_answers_while_the_lower_spins(mvm: Mvm):
    """vm2 (priority 1) spins; vm1 (priority 10) waits in WFI for its console, and answers at once."""
    mvm.hvc(2, "(while :; do :; done) & echo spin=$!", r"spin=\d+")
    t0 = time.monotonic()
    mvm.hvc(1, "echo high-answers", r"high-answers", timeout=30)
    print(f"\n[{mvm.mode}] vm1 answered in {time.monotonic() - t0:.2f} s while vm2 spins")
    mvm.hvc(2, "kill %1; echo stopped-spin", r"stopped-spin", timeout=60)


def test_lower_priority_waits_while_the_higher_spins(mvm: Mvm):
    """vm1 (priority 10) spins: vm2 is never switched to meanwhile; once the loop is killed it runs again."""
    # The count starts once the loop runs and vm1's shell has settled: until then vm1 still waits now and then
    # (starting the loop), and vm2 rightly runs meanwhile. The loop is killed after the second count (its 120 s
    # limit is only a backstop): each count is a `shyper` run in the MVM, seconds on a loaded host, and a loop
    # that ended by itself before the second count let vm2 run in the window.
    got = mvm.hvc(
        1,
        "(timeout 120 sh -c 'echo spin-$((40 + 2))-started pid=$$; while :; do :; done'; echo spin-done) &",
        r"spin-42-started pid=\d+",
    )
    m = re.search(r"spin-42-started pid=(\d+)", got)
    assert m, got
    pid = m.group(1)
    time.sleep(1)
    before = _rq(mvm)[2]["switches"]
    time.sleep(4)
    during = _rq(mvm)[2]["switches"]
    mvm.hvc(1, f"kill {pid}; echo killed-$((6 * 7))", r"killed-42", timeout=60)
    assert during == before, f"vm2 switched to {during - before} times while vm1 (higher priority) spun"
    mvm.hvc(2, "echo low-runs-again", r"low-runs-again", timeout=60)
    assert _rq(mvm)[2]["switches"] > during


def test_remove_both(mvm: Mvm):
    for vid in (1, 2):
        mvm.run(f"shyper vm remove {vid}", timeout=TIMEOUT)
    assert json.loads(mvm.run("shyper system info --json"))["run_queues"][HART] == []
