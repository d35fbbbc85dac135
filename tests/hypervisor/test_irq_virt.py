"""Interrupt virtualization for the management VM, run on the host under CPython with the physical PLIC and
APLIC as mock MMIO: PLIC-mode routing (claim, virtual pending, VSEIP, completion after the guest's) and the
AIA-mode virtual APLIC mirrored into the physical one with rewritten MSI targets."""

from __future__ import annotations

import importlib

import pytest

from compiler import prelude
from compiler.csrs import CSRS
from tests.hypervisor.hyp_env import load_board

POOL = 0x9000_0000
MIP_VSEIP = 1 << 10


def _load(tmp_path, irq: str):
    b = load_board(tmp_path, irq)
    mods = {
        n: importlib.import_module(f"hypervisor.{n}")
        for n in ("core.frame_alloc", "core.vm", "core.virq", "core.vplic", "core.vaplic", "core.spinlock")
    }
    prelude.memory.fill(POOL, 1 << 20)
    assert mods["core.frame_alloc"].frame_alloc_init(prelude.u64(POOL), prelude.u64(1 << 20))
    return b, mods


class Mmio:
    """A register file standing in for a physical interrupt controller."""

    def __init__(self, base: int):
        self.base, self.regs, self.writes, self.claims = base, {}, [], []

    def read(self, off, width):
        if self.claims and off == 0x200004 + 0x1000 * 1:  # hart 0's S context claim register
            return self.claims.pop(0)
        return self.regs.get(off, 0)

    def write(self, off, width, value):
        self.writes.append((off, value))
        self.regs[off] = value


@pytest.fixture
def plic(tmp_path):
    b, m = _load(tmp_path, "plic")
    dev = Mmio(int(b.PLIC_BASE))
    prelude.mock.map_mmio(int(b.PLIC_BASE), 0x4000000, dev.read, dev.write)
    ipis = []
    prelude.mock.sbi_handler = lambda eid, fid, *a: (ipis.append((eid, fid, a[0], a[1])), (0, 0))[1]
    vm_mod = m["core.vm"]
    vm = vm_mod.vm_setup(
        prelude.u64(0), prelude.u64(0x9000_0000), prelude.u64(0x9000_0000), prelude.u64(0x20_0000), False
    )
    v0 = vm_mod.vcpu_add(vm, prelude.u64(0), True)
    v1 = vm_mod.vcpu_add(vm, prelude.u64(1), True)
    m["core.virq"].virq_init(vm)
    m["core.virq"].virq_route(vm, prelude.u64(10), prelude.u64(0))
    return m, dev, vm, v0, v1, ipis


def test_plic_route_programs_the_physical_plic(plic):
    m, dev, vm, v0, v1, ipis = plic
    assert (4 * 10, 1) in dev.writes  # priority of source 10
    assert (0x2000 + 0x80 * 1, 1 << 10) in dev.writes  # enabled for hart 0's S context
    assert (0x200000 + 0x1000 * 1, 0) in dev.writes  # threshold 0


def _source_10_enabled_and_raised(plic, context: int):
    """The guest gives source 10 priority 1 and enables it in one S context of its virtual PLIC; then the
    physical PLIC raises source 10 on vCPU 0's hart. Returns (vplic module, virq module, the virtual PLIC)."""
    m, dev, vm, v0, v1, ipis = plic
    vp, virq = m["core.vplic"], m["core.virq"]
    p = virq.virq_vplic()
    u64 = prelude.u64
    vp.vplic_write(p, u64(4 * 10), u64(4), u64(1))
    vp.vplic_write(p, u64(0x2000 + 0x80 * context), u64(4), u64(1 << 10))
    dev.claims = [10, 0]
    virq.virq_external(v0, u64(0))
    return vp, virq, p


def test_plic_claim_makes_it_pending_and_raises_vseip_then_completes_after_the_guest(plic):
    m, dev, vm, v0, v1, ipis = plic
    vp, virq, p = _source_10_enabled_and_raised(plic, context=1)  # vCPU 0's S context
    u64 = prelude.u64
    assert prelude.mock.csr[CSRS["HVIP"]] & MIP_VSEIP  # vCPU 0 (this hart) sees its external line
    assert not ipis  # vCPU 1's context has nothing enabled: its line does not change, no IPI
    assert not any(off == 0x200004 + 0x1000 and val == 10 for off, val in dev.writes)  # not completed yet
    src = vp.vplic_read(p, u64(0x200004 + 0x1000 * 1), u64(4))  # guest claims
    assert int(src) == 10
    virq.virq_update(v0)
    assert not prelude.mock.csr[CSRS["HVIP"]] & MIP_VSEIP
    done = vp.vplic_write(p, u64(0x200004 + 0x1000 * 1), u64(4), u64(10))  # guest completes
    assert int(done) == 10
    other = m["core.vm"].vm_setup(
        prelude.u64(1), prelude.u64(0x8000_0000), prelude.u64(0x9020_0000), prelude.u64(0x20_0000), False
    )
    virq.virq_guest_completed(other, done)  # a guest VM's own source 10 is not the MVM's physical one
    assert not any(off == 0x200004 + 0x1000 and val == 10 for off, val in dev.writes)
    virq.virq_guest_completed(vm, done)
    assert (0x200004 + 0x1000 * 1, 10) in dev.writes  # now the physical source is completed


def test_plic_other_vcpu_is_told_only_when_its_line_changes(plic):
    m, dev, vm, v0, v1, ipis = plic
    _, virq, _ = _source_10_enabled_and_raised(plic, context=3)  # vCPU 1's S context
    assert len(ipis) == 1 and ipis[0][0] == 0x735049 and ipis[0][3] == 1  # vCPU 1's hart must raise its line
    assert int(v1.mailbox[m["core.vm"].MSG_VSEIP]) == 1
    virq.virq_update_vcpu(v1)  # what vCPU 1's hart does with the message
    assert int(v1.vseip) == 1
    virq.virq_update(v0)  # nothing changed for vCPU 1 since: no second IPI
    assert len(ipis) == 1


def test_plic_lines_are_decided_under_the_lock(plic, monkeypatch):
    """Each vCPU's line is read from the virtual PLIC, and compared with the line its hart last applied, with the
    lock held: then a change made on another hart is either seen by that vCPU's own update or announced to it,
    never lost between its read and its write of `vseip` (the race the lock closes)."""
    m, dev, vm, v0, v1, ipis = plic
    vp, virq = m["core.vplic"], m["core.virq"]
    p = virq.virq_vplic()
    u64 = prelude.u64
    held = []
    real = virq.vplic_context_pending

    def pending(pl, ctx):
        held.append(m["core.spinlock"].spin_held(prelude.addr_of(virq.vplic_spin)))
        return real(pl, ctx)

    monkeypatch.setattr(virq, "vplic_context_pending", pending)
    vp.vplic_write(p, u64(4 * 10), u64(4), u64(1))
    vp.vplic_write(p, u64(0x2000 + 0x80 * 3), u64(4), u64(1 << 10))
    dev.claims = [10, 0]
    virq.virq_external(v0, u64(0))
    virq.virq_update_vcpu(v1)
    virq.virq_update(v1)
    assert len(held) >= 4 and set(held) == {True}, held
    assert not m["core.spinlock"].spin_held(prelude.addr_of(virq.vplic_spin))  # and released


def test_plic_unowned_source_is_dropped(plic):
    m, dev, vm, v0, v1, ipis = plic
    dev.claims = [33, 0]
    m["core.virq"].virq_external(v0, prelude.u64(0))
    assert (0x200004 + 0x1000 * 1, 33) in dev.writes


@pytest.fixture
def aplic(tmp_path):
    b, m = _load(tmp_path, "aia")
    dev = Mmio(int(b.APLIC_S_BASE))
    prelude.mock.map_mmio(int(b.APLIC_S_BASE), 0x8000, dev.read, dev.write)
    va = m["core.vaplic"]
    importlib.import_module("hypervisor.arch.riscv.aplic").aplic_init()
    va.vaplic_own(prelude.u64(10))
    return va, dev, b


def test_aplic_physical_domain_is_msi_and_enabled(aplic):
    va, dev, b = aplic
    assert (0x0, (1 << 8) | (1 << 2)) in dev.writes


def test_aplic_owned_source_is_mirrored_with_rewritten_target(aplic):
    va, dev, b = aplic
    u64 = prelude.u64
    va.vaplic_write(u64(0x4 + 4 * 9), u64(6 | (1 << 10)))  # sourcecfg[10]: level high, D bit refused
    assert (0x4 + 4 * 9, 6) in dev.writes
    assert int(va.vaplic_read(u64(0x4 + 4 * 9))) == 6
    guest_target = (1 << 18) | 33  # vCPU 1, guest index 0, EIID 33
    va.vaplic_write(u64(0x3004 + 4 * 9), u64(guest_target))
    hart1 = int(b.MVM_HARTS[1])
    assert (0x3004 + 4 * 9, (hart1 << 18) | (1 << 12) | 33) in dev.writes  # guest file VGEIN=1 on hart 1
    assert int(va.vaplic_read(u64(0x3004 + 4 * 9))) == guest_target  # the guest reads back what it wrote
    va.vaplic_write(u64(0x1EDC), u64(10))  # setienum
    assert (0x1EDC, 10) in dev.writes
    assert int(va.vaplic_read(u64(0x1E00))) == 1 << 10


def test_aplic_target_written_before_the_source_is_active_reaches_hardware(aplic):
    """AIA 4.5.16: an inactive source's target is read-only zero in a real APLIC, so a target the guest programs
    before its sourcecfg is written again to the physical APLIC once the source becomes active."""
    va, dev, b = aplic
    u64 = prelude.u64
    va.vaplic_write(u64(0x3004 + 4 * 9), u64(45))  # vCPU 0, EIID 45, source 10 still inactive
    va.vaplic_write(u64(0x4 + 4 * 9), u64(4))  # sourcecfg[10]: edge rising
    want = (int(b.MVM_HARTS[0]) << 18) | (1 << 12) | 45
    assert dev.writes[-2:] == [(0x4 + 4 * 9, 4), (0x3004 + 4 * 9, want)]
    n = len(dev.writes)
    va.vaplic_write(u64(0x4 + 4 * 9), u64(0))  # inactive again: nothing to re-send
    assert dev.writes[n:] == [(0x4 + 4 * 9, 0)]


def test_aplic_reserved_source_mode_makes_the_source_inactive(aplic):
    """AIA 4.5.2: source modes 2 and 3 are reserved. The guest reads its source back as inactive, and the physical
    APLIC is told inactive, never the reserved value."""
    va, dev, b = aplic
    u64 = prelude.u64
    for sm in (2, 3, 2 | (1 << 10)):
        n = len(dev.writes)
        va.vaplic_write(u64(0x4 + 4 * 9), u64(sm))
        assert int(va.vaplic_read(u64(0x4 + 4 * 9))) == 0, sm
        assert dev.writes[n:] == [(0x4 + 4 * 9, 0)], sm
    va.vaplic_write(u64(0x4 + 4 * 9), u64(7))  # level low: a real mode is kept
    assert int(va.vaplic_read(u64(0x4 + 4 * 9))) == 7


def test_aplic_unowned_source_never_reaches_hardware(aplic):
    va, dev, b = aplic
    u64 = prelude.u64
    before = list(dev.writes)
    va.vaplic_write(u64(0x4 + 4 * 19), u64(6))
    va.vaplic_write(u64(0x3004 + 4 * 19), u64(5))
    va.vaplic_write(u64(0x1EDC), u64(20))
    assert dev.writes == before
    assert int(va.vaplic_read(u64(0x0))) & 0x80000000  # domaincfg bit 31 reads as 1
    assert not va.vaplic_access_ok(u64(0x2), u64(4)) and not va.vaplic_access_ok(u64(0x4), u64(2))


def test_aplic_level_retrigger_reaches_hardware(aplic):
    """Linux re-triggers a level-sensitive source by writing its number to setipnum_le after handling it
    (AIA 4.9.2); dropping that write loses interrupts that arrived meanwhile (UART input)."""
    va, dev, b = aplic
    u64 = prelude.u64
    va.vaplic_write(u64(0x2000), u64(10))
    assert (0x2000, 10) in dev.writes
    va.vaplic_write(u64(0x2004), u64(10 << 24))  # setipnum_be
    assert dev.writes[-1] == (0x2000, 10)
    n = len(dev.writes)
    va.vaplic_write(u64(0x2000), u64(20))  # not the VM's source
    assert len(dev.writes) == n


def test_aplic_reset_makes_owned_sources_inactive_physically_and_word_store_of_the_same_value_writes_nothing(aplic):
    """An owned source's physical sourcecfg always holds the virtual one: a domain reset (the MVM's reboot) makes
    it inactive in both, so that the word path (vaplic_write32) may skip a store of the value the register holds,
    with no lock and no write to the physical APLIC, and still forward any other."""
    va, dev, b = aplic
    u64 = prelude.u64
    vm_mod = importlib.import_module("hypervisor.core.vm")
    vm = vm_mod.vm_setup(u64(0), u64(0x9000_0000), u64(0x9000_0000), u64(0x20_0000), False)
    v0 = vm_mod.vcpu_add(vm, u64(0), True)
    vm.irqc_regs = va.vaplic_of(vm).addr()
    off = u64(0x4 + 4 * 9)  # sourcecfg[10], owned
    n = len(dev.writes)
    assert int(va.vaplic_write32(v0, u64(0), off, u64(6))) == 0 and dev.writes[n] == (int(off), 6)  # then target
    n = len(dev.writes)
    assert int(va.vaplic_write32(v0, u64(0), off, u64(6))) == 0 and dev.writes[n:] == []  # holds 6 already
    va.vaplic_reset(vm, False)
    assert dev.writes[n:] == [(int(off), 0)] and int(va.vaplic_read32(v0, u64(0), off)) == 0
    n = len(dev.writes)
    assert int(va.vaplic_write32(v0, u64(0), off, u64(0))) == 0 and dev.writes[n:] == []
    assert int(va.vaplic_write32(v0, u64(0), off, u64(6))) == 0 and dev.writes[n] == (int(off), 6)
    assert int(va.vaplic_read32(v0, u64(0), off + 2)) == 1 << 32  # misaligned: EMUL_WORD_FAULT
