"""The latency guest under the hypervisor (`just bench-latency`'s path, issue 12), on one MVM boot in PLIC mode
(4 harts, 2G, as `pyshyper run` makes it): `shyper vm config` + `boot` of tests/guests/latency alone on hart 2 with
a small N through its config's cmdline, its samples read from /dev/hvcN; then its switch recorder alone on hart 3.

Only sanity, no timing: every round gave a sample (the guest counts an interrupt before its deadline as a failure),
each below a generous second, the timebase the guest found in its device tree is the board's, the hypervisor gave it
Sstc (QEMU's default CPU has it), and the recorder's intervals are in order. The serial log of a failing run is
saved as logs/test_latency-*.log.
"""

from __future__ import annotations

import pytest

from boards import load_board
from pyshyper_host.bench import console, latency
from tests.conftest import require_tool

pytestmark = [pytest.mark.qemu, pytest.mark.slow]

N = 200


@pytest.fixture(scope="module")
def mvm(tmp_path_factory, mvm_image_cache):
    require_tool("qemu-system-riscv64", "riscv64-unknown-elf-ld")
    from pyshyper_host.run.command import mvm_qemu_command

    out = tmp_path_factory.mktemp("latency")
    cmd = mvm_qemu_command(False, 4, "2G", mvm_image_cache, irq="plic", out=out, quiet=True)
    sh, _, _ = console.start_shell(cmd, timeout=latency.TIMEOUT)
    m = latency.Mvm(sh)
    m.wait_daemon()
    m.put_file((out / "guests" / "latency.bin").read_bytes(), "/root/latency.bin")
    yield m
    sh.close()


@pytest.fixture(autouse=True)
def _log_on_failure(request, mvm):
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        p = latency.ROOT / "logs" / f"test_latency-{request.node.name}.log"
        p.parent.mkdir(exist_ok=True)
        mvm.sh.save_failure(p)
        print(f"serial log: {p}")


def test_timer_latency_alone(mvm):
    cfg = latency.guest_config("latency", latency.HART, latency.PRIORITY_HIGH, latency.timer_cmdline(N, 100, 300, 7))
    run = latency.run_timer_guest(mvm, cfg, N)
    tb = load_board("qemu-virt").timebase_frequency
    assert run.timebase == tb
    assert run.timer == "sstc"
    assert len(run.samples) == N
    assert all(0 <= v < tb for v in run.samples), max(run.samples)
    s = latency.summarize(run.samples)
    assert s.min <= s.median <= s.p99 <= s.max
    print(f"\nlatency alone, {N} rounds: median {s.median} p99 {s.p99} max {s.max} ticks")
    assert [v["id"] for v in mvm_vms(mvm)] == [0]  # stopped and removed


def test_switch_recorder_alone(mvm):
    res = latency.SwitchResult("plic")
    # Without -icount QEMU's instret is the host's cycle counter: a break is 10^5 of those (tens of microseconds)
    latency.run_switch_guests(mvm, ("switch-a",), latency.switch_cmdline(16, 100000, 300), 300, res)
    assert len(res.intervals) == 1 and 1 <= len(res.intervals[0]) <= 16
    assert res.costs is not None and res.costs.switches == []
    assert len(res.costs.same_vm) == len(res.intervals[0]) - 1
    assert [v["id"] for v in mvm_vms(mvm)] == [0]


def test_poweroff(mvm):
    assert mvm.sh.poweroff(latency.TIMEOUT) == 0


def mvm_vms(mvm) -> list[dict]:
    import json

    return json.loads(mvm.run("shyper vm list --json"))
