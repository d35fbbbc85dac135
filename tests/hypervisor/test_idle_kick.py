"""A kick (MSG_KICK) on the host: a partitioned vCPU's WFI does not trap (hstatus.VTW is set only on a shared
hart), so its VM's idle work (the MVM's control server, console bytes) runs when it is kicked
(arch/riscv/trap.py irq_software -> vcpu_idle_work); on a shared hart the IPI sets VTW instead and the work
waits for the vCPU's trapped WFI."""

from __future__ import annotations

import importlib

import pytest

from compiler import prelude
from compiler.csrs import CSRS
from tests.hypervisor.test_sbi import hyp, two_vcpus  # noqa: F401  (fixtures)

HSTATUS_VTW = 1 << 21
MSG_KICK = 2


@pytest.fixture
def kicked(hyp, two_vcpus, monkeypatch):  # noqa: F811
    vm, v0, v1 = two_vcpus
    trap = importlib.import_module("hypervisor.arch.riscv.trap")
    done: list[str] = []
    monkeypatch.setattr(trap, "control_idle", lambda: done.append("control"))
    monkeypatch.setattr(trap, "vcon_idle", lambda v: done.append(f"console {int(v.vcpu_id)}"))
    monkeypatch.setattr(trap, "sched_check", lambda v, now: done.append("sched"))
    v0.state = hyp.mods["core.vm"].VCPU_STARTED
    v0.running = prelude.u32(1)
    prelude.mock.csr[CSRS["HSTATUS"]] = 0
    prelude.mock.sbi_handler = lambda *a: (0, 0)
    return hyp, trap, v0, done


def _kick(v) -> None:
    v.mailbox[MSG_KICK] = prelude.u32(1)
    prelude.mock.csr[CSRS["SIP"]] = 1 << 1  # SSIP: the IPI


def test_a_kick_runs_the_idle_work_on_a_partitioned_hart(kicked):
    h, trap, v0, done = kicked
    rq = h.mods["core.vm"].RQ[int(v0.hart)]
    assert int(rq.count) == 1
    _kick(v0)
    trap.irq_software(v0)
    assert done == ["control", "console 0"]  # VM 0: the control server, then its console
    assert int(v0.mailbox[MSG_KICK]) == 0 and int(v0.idle_due) == 0
    assert prelude.mock.csr[CSRS["HSTATUS"]] & HSTATUS_VTW == 0
    assert prelude.mock.csr[CSRS["SIP"]] & 2 == 0
    trap.irq_software(v0)  # an IPI with no kick (a fence, a virtual IPI): no idle work
    assert done == ["control", "console 0"]


def test_a_hart_made_shared_sets_vtw_and_leaves_the_work_to_the_wfi(kicked):
    h, trap, v0, done = kicked
    rq = h.mods["core.vm"].RQ[int(v0.hart)]
    rq.count = prelude.u64(2)  # another vCPU placed beside v0; its IPI follows
    _kick(v0)
    trap.irq_software(v0)
    assert prelude.mock.csr[CSRS["HSTATUS"]] & HSTATUS_VTW != 0
    assert done == ["sched"] and int(v0.idle_due) == 1


def test_a_kick_taken_on_entry_is_done_once_the_vcpu_runs(kicked):
    """vcpu_run reads the mailbox before it enters: a kick found there raises SSIP, whose trap does the work."""
    h, trap, v0, done = kicked
    sbi = h.mods["arch.riscv.vsbi"]
    prelude.mock.csr[CSRS["SIP"]] = 0
    v0.mailbox[MSG_KICK] = prelude.u32(1)
    sbi.vcpu_handle_messages(v0)
    assert int(v0.idle_due) == 1 and done == []
    prelude.mock.csr[CSRS["SIP"]] = 2
    trap.irq_software(v0)
    assert done == ["control", "console 0"] and int(v0.idle_due) == 0


def test_a_vcpu_leaving_a_vm_whose_event_waits_kicks_the_mvm(kicked, monkeypatch):
    """The kick at a guest VM's end may come before its last vCPU has left (core/gvm.py gvm_settled then says
    no): vcpu_leave kicks again while the VM's event is pending, and only then."""
    h, trap, v0, done = kicked
    vcpu = importlib.import_module("hypervisor.arch.riscv.vcpu")
    kicks: list[int] = []
    monkeypatch.setattr(vcpu, "vm_wake_mvm", lambda: kicks.append(int(v0.running)))
    vm = h.mods["core.vm"].vcpu_vm(v0)
    vcpu.vcpu_leave(v0)
    assert kicks == []
    v0.running = prelude.u32(1)
    vm.event = prelude.u32(1)
    vcpu.vcpu_leave(v0)
    assert kicks == [0]  # after `running` was cleared
