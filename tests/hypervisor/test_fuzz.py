"""A short seeded slice of the host-side fuzzing (tests/hypervisor/fuzz.py): every target under CPython and
compiled for the host, a few thousand cases each, every invariant checked after every case. `just fuzz` runs the
same targets with 10^5 cases each and a new seed."""

from __future__ import annotations

import functools
import importlib

import pytest

from compiler import prelude
from tests.hypervisor import fuzz

pytestmark = pytest.mark.fuzz

SEED = 20261202
CASES = {
    "sbi": 2000,
    "vplic": 3000,
    "vaplic": 3000,
    "decode": 5000,
    "mmio": 3000,
    "mmio_fetch": 2000,
    "virtio": 3000,
    "control": 800,
    "control_aia": 800,
}


@functools.cache
def _slice(target: str, backend: str) -> fuzz.Result:
    return fuzz.fuzz(target, backend, CASES[target], SEED)


@pytest.mark.parametrize("backend", fuzz.BACKENDS)
@pytest.mark.parametrize("target", fuzz.TARGETS)
def test_fuzz_slice(target, backend):
    res = _slice(target, backend)
    if res.failure is not None:
        pytest.fail(fuzz.report(res), pytrace=False)
    assert res.cases == CASES[target]


@pytest.mark.parametrize("target", fuzz.TARGETS)
def test_backends_agree(target):
    """The same seed gives the same cases to both backends: what the guests saw must be the same, case by case
    (the compiled hypervisor does what its source says under CPython)."""
    a, b = _slice(target, "cpython"), _slice(target, "host")
    assert a.failure is None and b.failure is None
    assert len(a.digests) == len(b.digests) > 0
    assert fuzz.disagreement(a, b) is None


def test_sbi_slice_reaches_the_success_paths():
    """The SBI cases are not all refused at the door: each implemented extension succeeds, a vCPU is started and
    stopped, a test guest reboots, VMs end and the machine resets (what the invariants are checked on)."""
    res = _slice("sbi", "host")
    assert res.failure is None, fuzz.report(res)
    seen = set(res.stats)
    for name in ("BASE/3", "TIME/0", "IPI/0", "RFENCE/0", "HSM/0", "HSM/2", "DBCN/0", "DBCN/2"):
        assert f"{name}: a0 0" in seen, name
    for event in ("SRST: vCPU rebooted", "SRST: the machine resets", "HSM: vCPU stopped"):
        assert res.stats.get(event, 0) > 0, event
    assert any(k.endswith("ended") for k in seen)


def test_mmio_slice_reaches_every_outcome():
    """Emulated loads and stores in the PLIC window and the statistics page, refused accesses there, and accesses
    no region covers: the MMIO cases reach each way mmio_emulate can answer."""
    res = _slice("mmio", "host")
    assert res.failure is None, fuzz.report(res)
    for name in (
        "plic: done load",
        "plic: done store",
        "plic: fault",
        "stats: done load",
        "stats: fault",
        "none: none",
    ):
        assert res.stats.get(name, 0) > 0, name


def test_mmio_fetch_slice_reads_every_instruction_back():
    """A build that decodes by fetch (`--mmio-decode fetch`): every access is decoded from the instruction read
    back, loads and stores performed, and a read that faults taken again by the guest, in a region or not."""
    res = _slice("mmio_fetch", "host")
    assert res.failure is None, fuzz.report(res)
    for name in ("plic: done load", "plic: done store", "stats: done load", "plic: retry", "none: retry"):
        assert res.stats.get(name, 0) > 0, name


def _plant(monkeypatch, module: str, name: str, fn) -> None:
    """Replace one function of a hypervisor module under CPython once the fuzz has loaded it (a planted bug)."""
    real = fuzz.make_backend

    def make(kind, mod, irq):
        be = real(kind, mod, irq)
        monkeypatch.setattr(importlib.import_module(module), name, fn(be))
        return be

    monkeypatch.setattr(fuzz, "make_backend", make)


def test_a_planted_sbi_bug_is_found_and_minimised(monkeypatch):
    """HSM that names vCPUs by their index in the whole vCPU table, not the VM's: a guest's hart_start reaches
    another VM's vCPU. The fuzz must catch the write outside the calling VM and cut the episode to a few cases."""

    def absolute(be):
        vm_mod = be.mods["hypervisor.core.vm"]
        return lambda vm, index: prelude.addr_of(vm_mod.VCPUS[index])

    _plant(monkeypatch, "hypervisor.arch.riscv.vsbi", "vm_vcpu", absolute)
    res = fuzz.fuzz("sbi", "cpython", CASES["sbi"], SEED)
    assert res.failure is not None and res.failure.startswith(("memory", "hsm")), res.failure
    assert 1 <= len(res.minimal) <= 3, res.minimal
    assert f"just fuzz --seed {SEED} --target sbi --backend cpython" in fuzz.report(res)


def test_a_planted_vplic_bug_is_found(monkeypatch):
    """A virtual PLIC that takes source 0 (which does not exist) for a real one."""
    _plant(monkeypatch, "hypervisor.core.vplic", "vplic_source_ok", lambda be: lambda src: src < 96)
    res = fuzz.fuzz("vplic", "cpython", CASES["vplic"], SEED)
    assert res.failure is not None, "the planted bug was not found"
    assert len(res.minimal) <= 3, res.minimal


def test_control_slice_reaches_the_success_paths():
    """The control cases are not all refused: guest VMs are made, loaded, booted, stopped and removed, and they
    shut down, reboot and fault by themselves, which the server reports as events."""
    res = _slice("control", "host")
    assert res.failure is None, fuzz.report(res)
    for name in ("0x10: status 0", "0x11: status 0", "0x12: status 0", "0x14: status 0", "0x16: status 0"):
        assert res.stats.get(name, 0) > 0, name
    assert res.stats.get("event", 0) > 0
    assert sum(n for k, n in res.stats.items() if k in ("guest: shutdown", "guest: reboot", "guest: fault")) > 0
    # shared memory: regions defined, listed and removed, and mapped into the VMs they name
    for name in ("0x20: status 0", "0x21: status 0", "0x22: status 0", "shm: mapped"):
        assert res.stats.get(name, 0) > 0, name


def test_a_planted_control_bug_is_found(monkeypatch):
    """A guest-memory translation that checks where a range starts but not where it ends: a VM_LOAD runs past its
    region into whatever frame follows."""

    def start_only(be):
        def translate(vm, gpa, length):
            for i in range(int(vm.regions)):
                r = prelude.addr_of(vm.region[i])
                if r.gpa <= gpa < r.gpa + r.size:
                    return r.hpa + (gpa - r.gpa)
            return prelude.u64(0)

        return translate

    _plant(monkeypatch, "hypervisor.core.gvm", "gmem_translate", start_only)
    res = fuzz.fuzz("control", "cpython", 3000, SEED)
    assert res.failure is not None and res.failure.startswith(("memory", "model")), res.failure


def test_a_planted_shared_memory_bug_is_found(monkeypatch):
    """A VM_CREATE that maps every shared region that has frames into the new VM, named by it or not."""

    def map_all(be):
        shmem = importlib.import_module("hypervisor.core.shmem")
        stage2 = importlib.import_module("hypervisor.arch.riscv.stage2")

        def shm_map(name, root):
            for i in range(4):
                s = shmem.shm_get(prelude.u64(i))
                if s.used and s.hpa != 0 and not stage2.stage2_map(root, s.ipa, s.hpa, s.size, stage2.S2_PERM_RW):
                    return False
            return True

        return shm_map

    _plant(monkeypatch, "hypervisor.core.gvm", "shm_map", map_all)
    res = fuzz.fuzz("control", "cpython", 3000, SEED)
    assert res.failure is not None and res.failure.startswith("state"), res.failure


def test_virtio_slice_reaches_broken_and_working_devices():
    """The virtio cases are not all refused at the door: drivers get as far as DRIVER_OK with FEATURES_OK, bad
    chains and queues mark the device DEVICE_NEEDS_RESET, and register accesses are both performed and refused."""
    res = _slice("virtio", "host")
    assert res.failure is None, fuzz.report(res)
    assert res.stats.get("status 0xf", 0) > 0  # ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK
    assert res.stats.get("status 0x4f", 0) > 0  # and DEVICE_NEEDS_RESET
    assert res.stats.get("reg: done", 0) > 0 and res.stats.get("reg: fault", 0) > 0
