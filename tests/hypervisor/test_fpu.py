"""A vCPU's FP and vector state (hypervisor/arch/riscv/fpu.py) under CPython, against a model of harts: each hart's
f0..f31, fcsr, v0..v31, vstart, vl, vtype, vcsr and sstatus. runtime/fpu.S's functions are modelled on the current
hart (an FP or vector instruction with sstatus.FS or .VS Off is an illegal instruction: the model fails the test);
a guest's write sets sstatus.FS/VS Dirty as the hart would (Priv 9.2.10). Random schedules of vCPUs sharing harts
check that every vCPU always finds its own registers, and the counts that the save and restore are lazy."""

from __future__ import annotations

import importlib
import random

import pytest

from compiler import prelude
from compiler.csrs import CSRS
from tests.hypervisor.hyp_env import load_board

SSTATUS = CSRS["SSTATUS"]
FS_SHIFT, VS_SHIFT = 13, 9
OFF, INITIAL, CLEAN, DIRTY = 0, 1, 2, 3
VILL = 1 << 63
VLENB = 16  # QEMU's default VLEN 128


def field(s: int, shift: int) -> int:
    return (s >> shift) & 3


class Hart:
    def __init__(self) -> None:
        self.sstatus = 0
        self.fp = [0x1111 * (n + 1) for n in range(32)] + [0x55]  # f0..f31, fcsr: garbage left by the firmware
        self.vec = [bytes([0xA5]) * (32 * VLENB), 3, 7, 0x18, 5]  # v0..v31, vstart, vl, vtype, vcsr


class Model:
    """The harts, the current one, and the runtime/fpu.S functions acting on it."""

    def __init__(self, fpu, harts: int) -> None:
        self.fpu = fpu
        self.harts = [Hart() for _ in range(harts)]
        self.cur = 0
        prelude.mock.csr_read_hook = lambda num: self.hart.sstatus if num == SSTATUS else None
        prelude.mock.csr_write_hook = self._csr_written
        ext = prelude.mock.externs
        ext["hyp_fpu_save_fp"] = self._save_fp
        ext["hyp_fpu_load_fp"] = self._load_fp
        ext["hyp_fpu_save_v"] = self._save_v
        ext["hyp_fpu_load_v"] = self._load_v
        ext["hyp_fpu_vlenb"] = lambda: self._need_v() or prelude.u64(VLENB)

    @property
    def hart(self) -> Hart:
        return self.harts[self.cur]

    def _csr_written(self, num: int, value: int) -> None:
        if num == SSTATUS:
            self.hart.sstatus = value

    def _need_fp(self) -> None:
        assert field(self.hart.sstatus, FS_SHIFT) != OFF, "an FP instruction with sstatus.FS Off"

    def _need_v(self) -> None:
        assert field(self.hart.sstatus, VS_SHIFT) != OFF, "a vector instruction with sstatus.VS Off"

    def _dirty(self, shift: int) -> None:
        self.hart.sstatus = (self.hart.sstatus & ~(3 << shift)) | (DIRTY << shift)

    def _save_fp(self, st) -> None:
        self._need_fp()
        for n in range(32):
            st.f[n] = self.hart.fp[n]
        st.fcsr = self.hart.fp[32]

    def _load_fp(self, st) -> None:
        self._need_fp()
        self.hart.fp = [int(st.f[n]) for n in range(32)] + [int(st.fcsr)]
        self._dirty(FS_SHIFT)  # loading the registers writes them

    def _save_v(self, st) -> None:
        self._need_v()
        v, vstart, vl, vtype, vcsr = self.hart.vec
        prelude.memory.write(prelude.addr_of(st.v).addr(), v)
        st.vstart, st.vl, st.vtype, st.vcsr = vstart, vl, vtype, vcsr
        self._dirty(VS_SHIFT)  # it zeroes vstart for its whole-register stores, then writes it back

    def _load_v(self, st) -> None:
        self._need_v()
        v = prelude.memory.read(prelude.addr_of(st.v).addr(), 32 * VLENB)
        self.hart.vec = [v, int(st.vstart), int(st.vl), int(st.vtype), int(st.vcsr)]
        self._dirty(VS_SHIFT)

    def guest_writes(self, rng: random.Random, fp: bool, vec: bool) -> None:
        """The running guest changes its registers: new values, and the hart marks the state Dirty."""
        if fp:
            self.hart.fp[rng.randrange(33)] = rng.getrandbits(64) if rng.random() < 0.9 else 0
            self._dirty(FS_SHIFT)
        if vec:
            v = bytearray(self.hart.vec[0])
            v[rng.randrange(len(v))] = rng.randrange(256)
            self.hart.vec = [bytes(v), rng.randrange(4), rng.randrange(64), rng.choice([0, 0x49, 0xDB, VILL]), 3]
            self._dirty(VS_SHIFT)

    def registers(self) -> tuple:
        return (tuple(self.hart.fp), tuple(self.hart.vec))


FRESH = (tuple([0] * 33), (bytes(32 * VLENB), 0, 0, VILL, 0))


@pytest.fixture
def fpu(tmp_path):
    load_board(tmp_path, "plic")
    vm = importlib.import_module("hypervisor.core.vm")
    fpu = importlib.import_module("hypervisor.arch.riscv.fpu")
    model = Model(fpu, 3)
    assert fpu.fpu_init(True)
    return fpu, vm, model


def vcpu(vm, slot: int, hart: int):
    v = prelude.addr_of(vm.VCPUS[slot])
    v.hart = hart
    return v


def counts(fpu) -> list[int]:
    """Saves and loads (FP, vector) over every hart (fpu_counts is per hart: hart * 4 + kind)."""
    harts = len(fpu.fpu_counts) // 4
    return [sum(int(fpu.fpu_counts[h * 4 + i]) for h in range(harts)) for i in range(4)]


def test_vcpus_sharing_harts_keep_their_registers(fpu):
    """4 vCPUs on 3 harts, 3000 random switches (a vCPU may move to another hart): at every entry the hart's
    registers are exactly the vCPU's (its last values, or zeroed ones after its reset), and the hart's
    sstatus.FS/VS are Clean; the saves are no more than the leaves with Dirty state."""
    fpu, vm, model = fpu
    rng = random.Random(12)
    vcpus = 4
    expected = {s: FRESH for s in range(vcpus)}
    for s in range(vcpus):
        fpu.fpu_reset(vcpu(vm, s, 0))
    on_hart: dict[int, int] = {}  # hart -> slot running there
    dirty_leaves = 0
    for _ in range(3000):
        h = rng.randrange(3)
        model.cur = h
        if h in on_hart:
            s = on_hart.pop(h)
            before = counts(fpu)
            was_dirty = field(model.hart.sstatus, FS_SHIFT) == DIRTY or field(model.hart.sstatus, VS_SHIFT) == DIRTY
            expected[s] = model.registers()
            fpu.fpu_leave(vcpu(vm, s, h))
            dirty_leaves += was_dirty
            assert field(model.hart.sstatus, FS_SHIFT) != DIRTY and field(model.hart.sstatus, VS_SHIFT) != DIRTY
            if not was_dirty:
                assert counts(fpu)[:2] == before[:2], "a save of Clean state"
        idle = [s for s in range(vcpus) if s not in on_hart.values()]
        s = rng.choice(idle)
        if rng.random() < 0.03:
            fpu.fpu_reset(vcpu(vm, s, h))
            expected[s] = FRESH
        fpu.fpu_enter(vcpu(vm, s, h))
        on_hart[h] = s
        assert model.registers() == expected[s], f"vCPU {s} on hart {h} found another's registers"
        assert field(model.hart.sstatus, FS_SHIFT) == CLEAN and field(model.hart.sstatus, VS_SHIFT) == CLEAN
        model.guest_writes(rng, rng.random() < 0.5, rng.random() < 0.3)
    saved_fp, saved_v, loaded_fp, loaded_v = counts(fpu)
    assert 0 < saved_fp <= dirty_leaves and 0 < saved_v <= saved_fp
    assert loaded_fp == loaded_v < 3000, "every entry restored: nothing lazy"


def test_entering_again_on_the_same_hart_loads_nothing(fpu):
    fpu, vm, model = fpu
    v = vcpu(vm, 0, 1)
    model.cur = 1
    fpu.fpu_reset(v)
    fpu.fpu_enter(v)
    assert model.registers() == FRESH and counts(fpu) == [0, 0, 1, 1]
    model.guest_writes(random.Random(1), True, False)
    mine = model.registers()
    fpu.fpu_leave(v)
    assert counts(fpu) == [1, 0, 1, 1], "FP was Dirty, vector Clean: only FP saved"
    fpu.fpu_enter(v)
    assert counts(fpu) == [1, 0, 1, 1] and model.registers() == mine, "the hart still held them"
    # another vCPU took the hart in between: v's registers come back from its area
    w = vcpu(vm, 1, 1)
    fpu.fpu_leave(v)
    fpu.fpu_reset(w)
    fpu.fpu_enter(w)
    assert model.registers() == FRESH
    fpu.fpu_leave(w)
    fpu.fpu_enter(v)
    assert model.registers() == mine
    # v moves to hart 2 and back: hart 1's registers are no longer v's latest
    fpu.fpu_leave(v)
    model.cur = 2
    fpu.fpu_enter(vcpu(vm, 0, 2))
    model.guest_writes(random.Random(2), True, True)
    moved = model.registers()
    fpu.fpu_leave(vcpu(vm, 0, 2))
    model.cur = 1
    fpu.fpu_enter(vcpu(vm, 0, 1))
    assert model.registers() == moved


def test_forget_makes_the_next_entry_restore(fpu):
    fpu, vm, model = fpu
    v = vcpu(vm, 2, 0)
    model.cur = 0
    fpu.fpu_reset(v)
    fpu.fpu_enter(v)
    model.guest_writes(random.Random(3), True, True)
    mine = model.registers()
    fpu.fpu_leave(v)
    model.hart.fp = [7] * 33  # as fpu_test_switch's clobber: the hart's registers are no longer v's
    fpu.fpu_forget(v)
    assert all(int(fpu.FPU_OWNER[h]) == 0 for h in range(3))
    fpu.fpu_enter(v)
    assert model.registers() == mine


def test_vlen_beyond_the_save_areas_fails_the_boot(fpu):
    fpu, vm, model = fpu
    prelude.mock.externs["hyp_fpu_vlenb"] = lambda: prelude.u64(2 * int(fpu.FPU_VLENB_MAX))
    assert not fpu.fpu_init(True)
    prelude.mock.externs["hyp_fpu_vlenb"] = lambda: prelude.u64(int(fpu.FPU_VLENB_MAX))
    assert fpu.fpu_init(True)
    assert fpu.fpu_init(False) and int(fpu.fpu_vlenb) == 0
