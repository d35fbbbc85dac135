"""A kick (MSG_KICK) on the host: a partitioned vCPU's WFI does not trap (hstatus.VTW is set only on a shared
hart), so its VM's idle work (the MVM's control server, console bytes) runs when it is kicked
(arch/riscv/trap.py irq_software -> vcpu_idle_work); on a shared hart the IPI sets VTW instead and the work
waits for the vCPU's trapped WFI. Once its VM asks remote fences of it, a partitioned vCPU's WFI traps too and
its hart waits in the hypervisor (`idle`), where fences asked of it wait for its wake."""

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


def _trap_wfi(trap, v) -> None:
    """A WFI from VS-mode trapped (scause 22) with stval holding the instruction."""
    prelude.mock.csr[CSRS["STVAL"]] = 0x1050_0073
    prelude.mock.csr[CSRS["HSTATUS"]] |= 1 << 8  # hstatus.SPVP: it came from VS-mode
    trap.trap_virtual_instruction(v)


def test_a_wfi_on_its_own_hart_gives_vtw_up_until_its_vm_asks_fences(kicked, monkeypatch):
    """On its own hart a vCPU whose VM never asked a remote fence of it waits in the guest's WFI (VTW cleared
    at the first trapped one); once a fence was asked of it, VTW stays set and its WFIs wait in the
    hypervisor."""
    h, trap, v0, done = kicked
    sbi = h.mods["arch.riscv.vsbi"]
    monkeypatch.setattr(trap, "wfi", lambda: None)
    prelude.mock.csr[CSRS["HSTATUS"]] = HSTATUS_VTW
    pc = int(v0.sepc)
    _trap_wfi(trap, v0)
    assert int(v0.sepc) == pc + 4 and int(v0.wfi_exits) == 1
    assert prelude.mock.csr[CSRS["HSTATUS"]] & HSTATUS_VTW == 0 and not sbi.vcpu_wfi_traps(v0)
    v0.fence_req = prelude.u64(1)  # another vCPU of its VM asks a fence; its IPI comes
    sbi.vcpu_handle_messages(v0)
    assert int(v0.fence_done) == 1 and sbi.vcpu_wfi_traps(v0)
    assert prelude.mock.csr[CSRS["HSTATUS"]] & HSTATUS_VTW != 0
    _trap_wfi(trap, v0)
    assert prelude.mock.csr[CSRS["HSTATUS"]] & HSTATUS_VTW != 0 and int(v0.wfi_exits) == 2


def test_a_fence_asked_of_a_vcpu_idle_in_the_hypervisor_is_served_when_it_wakes(kicked, two_vcpus, monkeypatch):  # noqa: F811
    """While v0's hart waits in the hypervisor at its trapped WFI (`idle`), v1's remote fence neither sends it
    an IPI nor waits: v0 fences after its WFI ends, before its guest runs, whatever ended it (here one of its
    guest's own interrupts, which the hypervisor does not take)."""
    h, trap, v0, done = kicked
    _, _, v1 = two_vcpus
    sbi = h.mods["arch.riscv.vsbi"]
    trap.trap_init_tables()
    v0.fence_req = prelude.u64(1)
    sbi.vcpu_fence_local(v0)  # its VM asked a fence of it before: its WFI traps
    v1.state = h.mods["core.vm"].VCPU_STARTED
    v1.running = prelude.u32(1)
    ipis: list[int] = []

    def firmware(eid, fid, a0, a1, *rest):
        if eid == 0x735049:  # an IPI: hart_mask 1 at hart_mask_base, the hart
            ipis.append(int(a1))
        return 0, 0

    prelude.mock.sbi_handler = firmware
    seen: list[tuple[int, int, int]] = []

    def wfi():
        seen.append((int(v0.idle), int(v0.fence_req), int(v0.fence_done)))
        v1.regs[10], v1.regs[11], v1.regs[16], v1.regs[17] = (prelude.u64(x) for x in (1, 0, 1, 0x52464E43))
        sbi.sbi_handle_ecall(v1)  # remote_sfence_vma, hart mask 0b1: vCPU 0
        seen.append((int(v1.regs[10]), int(v0.fence_req), int(v0.fence_done)))
        prelude.mock.csr[CSRS["SIP"]] = 0
        prelude.mock.log.clear()

    monkeypatch.setattr(trap, "wfi", wfi)
    traps = int(v0.traps)
    _trap_wfi(trap, v0)
    assert seen == [(1, 1, 1), (0, 2, 1)]  # idle while it waited; v1's call returned at once, unserved
    assert ipis == [] and int(v1.fences_deferred) == 1 and int(v1.fences_waited) == 0
    assert int(v0.idle) == 0 and int(v0.fence_done) == 2  # served on the way back to its guest
    assert len(prelude.mock.ops("hfence_vvma")) == 1 and int(v0.traps) == traps
    assert prelude.mock.csr[CSRS["HSTATUS"]] & HSTATUS_VTW != 0


def test_the_interrupt_that_ends_a_wfi_in_the_hypervisor_is_taken_there(kicked, monkeypatch):
    """An IPI carrying a virtual IPI ends v0's WFI: it is handled before the guest resumes (hvip.VSSIP set,
    sip.SSIP cleared) and counted as the trap it would have been, not taken again once the guest runs."""
    h, trap, v0, done = kicked
    sbi = h.mods["arch.riscv.vsbi"]
    trap.trap_init_tables()
    v0.fence_req = prelude.u64(1)
    sbi.vcpu_fence_local(v0)

    def wfi():
        v0.mailbox[0] = prelude.u32(1)  # MSG_VSSIP, and the IPI that wakes the hart
        prelude.mock.csr[CSRS["SIP"]] = 1 << 1
        prelude.mock.csr[CSRS["SIE"]] = (1 << 1) | (1 << 5) | (1 << 9)

    monkeypatch.setattr(trap, "wfi", wfi)
    prelude.mock.csr[CSRS["HVIP"]] = 0
    traps, irqs = int(v0.traps), int(v0.irqs)
    _trap_wfi(trap, v0)
    assert prelude.mock.csr[CSRS["SIP"]] & 2 == 0 and prelude.mock.csr[CSRS["HVIP"]] & (1 << 2) != 0
    assert (int(v0.traps), int(v0.irqs)) == (traps + 1, irqs + 1) and int(v0.mailbox[0]) == 0
    prelude.mock.csr[CSRS["SIE"]] = 0
    monkeypatch.setattr(trap, "wfi", lambda: None)
    _trap_wfi(trap, v0)  # nothing of the hypervisor's pending: nothing taken
    assert (int(v0.traps), int(v0.irqs)) == (traps + 1, irqs + 1)
