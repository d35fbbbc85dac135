"""Host-side fuzzing of the hypervisor's guest-facing code: seeded, repeatable, under CPython (through the prelude)
and compiled for the host (MCJIT), with invariants checked after every case.

Targets (each case is one guest action, drawn from a seeded generator):

* ``sbi``: the SBI dispatcher (hypervisor/arch/riscv/vsbi.py ``sbi_handle_ecall``) called by a started vCPU of one
  of three VMs (the management VM with two vCPUs and fixed memory; a one-vCPU and a two-vCPU test guest with
  memory from the frame allocator): any EID (the implemented ones weighted up), any FID, any a0..a5.
* ``vplic``: the virtual PLIC (hypervisor/core/vplic.py): reads and writes of any offset, width and value, mixed
  with the device side (lines raised and lowered, passthrough sources), against a model of PLIC 1.0.0.
* ``vaplic``: the virtual APLIC of an AIA build (hypervisor/core/vaplic.py) behind its access check, as
  hypervisor/arch/riscv/mmio.py calls it, with the physical S-level APLIC as a mock device.
* ``decode``: the MMIO instruction decoder (hypervisor/arch/riscv/mmio_decode.py): any 16/32-bit word and any
  htinst, against a decoder written from the Unprivileged spec's encoding tables.
* ``mmio``: the trap path's emulation (hypervisor/arch/riscv/mmio.py ``mmio_emulate``) in the management VM: any
  instruction (htinst, or read back), at its PLIC window, its statistics page or beside them; the answer (done,
  an access fault, no region, or taken again when the instruction cannot be read back), sepc and the registers
  against the decoder's reference and each device's rule. ``mmio_fetch``: the same in a build that decodes every
  access by fetch (``--mmio-decode fetch``), which reads the instruction before it looks for the region.
* ``control`` and ``control_aia``: the control protocol's server (hypervisor/core/control.py) and the guest VMs
  it makes (core/gvm.py), in a PLIC and an AIA build: malformed and well-formed frames in any split, with garbage,
  mixed with the guests' own shutdowns, reboots and faults (tests/hypervisor/fuzz_control.py says what is checked).
* ``virtio``: the management VM's virtio-console (hypervisor/core/virtio_console.py on the virtio-mmio transport
  and split virtqueues): register accesses of any offset, width and value, initialisations with bad features and
  queues, descriptors pointing anywhere (inside the VM's RAM, across its end, below it, at random) with any
  length, flags and next index, available-ring entries and index jumps, notifies, control messages, receive
  buffers, bytes from the hypervisor's end; no access may leave the VM's RAM (a decoy page follows it), no lock
  stay held, no exception escape.

Cases run in episodes: a fresh world (a snapshot restored), then up to EPISODE_OPS cases on it. Around each case
the world's memory (every static of the hypervisor, the frame pool, each VM's RAM) is diffed: snapshots on the
host, a journal of every write (and a log of every read) under CPython, so a change outside what the case may touch
is found. A call that does not return is a hang (CPython: the case fails after CASE_SECONDS; compiled: the process
stops with a traceback after HANG_SECONDS). Both backends get the same cases from a seed, and what the guests saw
must agree between them. On a failure the episode is replayed and minimised (the fewest cases that still fail the
same check), and the seed, the episode and the minimal cases are printed.

Run: ``just fuzz`` (``python -m tests.hypervisor.fuzz --cases N --seed S [--target T] [--backend B] [--stats]``;
--stats lists the SBI outcomes reached); the test suite runs a short seeded slice (tests/hypervisor/test_fuzz.py).
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import dataclasses
import faulthandler
import hashlib
import importlib
import inspect
import os
import random
import signal
import sys
import tempfile
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path

import llvmlite.binding as llvm

from boards import make_config
from boards.constants import render_hypervisor_module
from compiler import prelude
from compiler.prelude import places as prelude_places
from tests.hypervisor.control_world import MODULES as CONTROL_MODULES
from tests.hypervisor.control_world import machine_reset_done, machine_reset_parks
from tests.hypervisor.fuzz_control import ControlFuzzWorld, control_op

ROOT = Path(__file__).resolve().parents[2]
HYP = ROOT / "hypervisor"
U64 = (1 << 64) - 1
EPISODE_OPS = 64
HANG_SECONDS = 300  # compiled code: an episode longer than this is a hang (a wait that never ends): exit, traceback
CASE_SECONDS = 20  # CPython: a call longer than this is a hang, reported as a failing case
TARGETS = ("sbi", "vplic", "vaplic", "decode", "mmio", "mmio_fetch", "virtio", "control", "control_aia")
# core/cons_ring.py: every line the hypervisor prints is also kept for the MVM's /dev/hvc0
LOG_RING = {"hypervisor.core.cons_ring.log_ring", "hypervisor.core.cons_ring.log_ring_data"}
STACKS = "__stacks_start"  # runtime/boot.S: the harts' hypervisor stacks (read by the stack high-water mark)
BACKENDS = ("cpython", "host")


class FuzzFailure(Exception):
    """An invariant broke: `check` names which (minimisation keeps it), the message says how."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"{check}: {message}")
        self.check = check


class MachineOff(BaseException):
    """The firmware's system reset, under CPython: it never returns (a BaseException: nothing catches it)."""


class Hang(Exception):
    """A call into the hypervisor's code that did not return within CASE_SECONDS (under CPython)."""


def _hang(signum, frame):
    raise Hang(f"no return after {CASE_SECONDS} s")


def fail(check: str, message: str) -> None:
    raise FuzzFailure(check, message)


def s64(x: int) -> int:
    x &= U64
    return x - (1 << 64) if x >> 63 else x


# ---------------------------------------------------------------------------------------------------------------
# Backends: the same modules under CPython (prelude) or compiled for the host


class Backend:
    """Load `module` (a dotted name under hypervisor/) and its imports against a rendered qemu-virt board in
    `irq` mode. The CPython modules are loaded in both backends: the host one reads struct layouts from them."""

    kind = ""

    def __init__(self, module: str, irq: str) -> None:
        self.module = module
        self.irq = irq
        self.tmp = tempfile.TemporaryDirectory(prefix="pyshyper-fuzz-")
        self.board_path = Path(self.tmp.name) / "board.py"
        mode, _, decode = irq.partition("-")  # "plic-fetch": a build that decodes every access by fetch
        cfg = make_config("qemu-virt", mode, 3 if mode == "aia" else None)
        if decode:
            cfg = dataclasses.replace(cfg, mmio_decode=decode)
        self.board_path.write_text(render_hypervisor_module(cfg))
        prelude.install_import_hook(["hypervisor"])
        for name in [n for n in sys.modules if n.startswith("hypervisor")]:
            sys.modules.pop(name)
        prelude.reset()
        self.board = prelude.load_module(str(self.board_path), "hypervisor.board")
        importlib.invalidate_caches()
        for name in module.split("+"):  # several modules: "a+b" (the first is `mod`)
            importlib.import_module(name)
        self.mod = importlib.import_module(module.split("+")[0])
        self.mods = {n: m for n, m in sys.modules.items() if n.startswith("hypervisor")}

    # the struct layouts (prelude), for both backends
    def struct(self, modname: str, name: str):
        return getattr(self.mods[modname], name)

    def is_lock(self, name: str) -> bool:
        """A static that is a lock (a Spinlock, or named as one): it may change in any case that takes it, and must
        be free after."""
        if "lock" in name.rsplit(".", 1)[-1]:
            return True
        mname, _, attr = name.rpartition(".")
        val = vars(self.mods[mname]).get(attr) if mname in self.mods else None
        return type(val).__name__ == "Spinlock"

    def close(self) -> None:
        self.tmp.cleanup()


class CPythonBackend(Backend):
    kind = "cpython"

    def __init__(self, module: str, irq: str) -> None:
        super().__init__(module, irq)
        self._fns: dict[str, tuple] = {}
        self._next = 0x1_0000_0000
        self.watch_writes = False
        self.fresh_from = 0  # writes at or above this address (fresh temporaries) are never the hypervisor's reach
        self.known: list[tuple[int, int]] = []
        self.stray: list[tuple[int, int]] = []
        self.reads: list[tuple[int, int]] = []
        self.journal: list[tuple[int, bytes]] = []  # (address, the bytes there before) of every write in a case
        self.watch_reads = False
        mem = prelude.memory
        real_write, real_read = type(mem).write, type(mem).read

        def write(addr, data, _self=mem):
            if self.watch_writes:
                a = int(addr)
                if a < self.fresh_from:
                    self.journal.append((a, real_read(_self, a, len(data))))
                    if not any(b <= a and a + len(data) <= b + n for b, n in self.known):
                        self.stray.append((a, len(data)))
            real_write(_self, addr, data)

        def read(addr, n, _self=mem):
            if self.watch_reads:
                self.reads.append((int(addr), n))
            return real_read(_self, addr, n)

        mem.write = write
        mem.read = read
        self.statics = self._statics()
        self._scalar_names = [  # the mutable ones (a Final is a constant)
            (m, attr)
            for m in self.mods.values()
            for attr, t in getattr(m, "__annotations__", {}).items()
            if isinstance(vars(m).get(attr), (bool, int)) and t is not typing.Final and "Final" not in str(t)
        ]

    def begin_case(self, regions: list[Region]) -> None:
        """Watch every write (journaled with the bytes it replaces) and read until end_case."""
        self.journal.clear()
        self.stray.clear()
        self.reads.clear()
        self.fresh_from = prelude._heap[0]
        self._scalars_before = self.scalars()
        self.watch_writes = self.watch_reads = True

    def end_case(self, regions: list[Region]) -> set[str]:
        """What the case changed, named like `diff` names it; writes outside every region are in `stray`."""
        self.watch_writes = self.watch_reads = False
        first: dict[int, int] = {}
        for a, old in self.journal:
            for k, b in enumerate(old):
                first.setdefault(a + k, b)
        pages = prelude.memory.pages
        ordered = sorted(regions, key=lambda r: not r.per_case)  # the finer regions first
        out = set()
        for a, b in first.items():
            page = pages.get(a >> 12)
            if (page[a & 4095] if page is not None else 0) == b:
                continue
            for r in ordered:
                if r.addr <= a < r.addr + r.size:
                    out.add(f"{r.name}[{(a - r.addr) // r.elem}]" if r.elem else r.name)
                    break
            else:
                out.add(f"memory at {a:#x}")
        now = self.scalars()
        out |= {n for n, v in self._scalars_before.items() if now.get(n) != v}
        return out

    def close(self) -> None:
        for name in ("write", "read"):
            prelude.memory.__dict__.pop(name, None)
        super().close()

    def _statics(self) -> dict[str, tuple[int, int]]:
        """Every static by the name of the module that defines it (another module that imports it by name holds
        the same object: it is not listed again)."""
        out = {}
        for mname, m in self.mods.items():
            try:
                src = inspect.getsource(m)
            except (OSError, TypeError):
                src = ""
            for attr, val in vars(m).items():
                if isinstance(val, (prelude.Array, prelude_places._StructBase)) and not isinstance(val, type):
                    if src and f"\n{attr} = " not in src and f"\n{attr}: " not in src:
                        continue  # imported from the module that defines it
                    out[f"{mname}.{attr}"] = (val._addr, prelude_places._size(type(val)))
        return out

    def scalars(self) -> dict[str, int]:
        """The modules' annotated scalar globals (plain Python globals under CPython)."""
        return {f"{m.__name__}.{attr}": int(vars(m)[attr]) for m, attr in self._scalar_names}

    def set_scalars(self, values: dict[str, int]) -> None:
        for name, v in values.items():
            mname, attr = name.rsplit(".", 1)
            m = self.mods[mname]
            old = vars(m)[attr]
            setattr(m, attr, bool(v) if isinstance(old, bool) else type(old)(v))

    def _fn(self, name: str):
        hit = self._fns.get(name)
        if hit is None:
            f = None
            for m in [self.mod, *self.mods.values()]:
                if callable(getattr(m, name, None)):
                    f = getattr(m, name)
                    break
            if f is None:
                raise KeyError(name)
            conv = []
            for p in inspect.signature(f).parameters.values():
                t = p.annotation
                if t is bool:
                    conv.append(bool)
                elif isinstance(t, type) and issubclass(t, prelude.Ptr):
                    conv.append(lambda a, t=t: t(prelude.u64(a)))
                else:
                    conv.append(lambda a, t=t: t(a & ((1 << t.BITS) - 1)) if hasattr(t, "BITS") else prelude.u64(a))
            hit = self._fns[name] = (f, conv)
        return hit

    def call(self, name: str, *args):
        f, conv = self._fn(name)
        old = signal.signal(signal.SIGALRM, _hang)
        signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
        try:
            r = f(*[c(a) for c, a in zip(conv, args, strict=True)])
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        if r is None:
            return 0
        if isinstance(r, bool):
            return r
        if isinstance(r, prelude.Ptr):
            return int(r.addr())
        return int(r)

    def alloc(self, size: int, align: int = 4096) -> int:
        a = (self._next + align - 1) & -align
        self._next = a + size
        prelude.memory.fill(a, size)
        return a

    def read(self, addr: int, n: int) -> bytes:
        w, self.watch_reads = self.watch_reads, False
        try:
            return prelude.memory.read(addr, n)
        finally:
            self.watch_reads = w

    def write(self, addr: int, data: bytes) -> None:
        w, self.watch_writes = self.watch_writes, False
        try:
            prelude.memory.write(addr, data)
        finally:
            self.watch_writes = w

    def global_addr(self, name: str) -> int:
        return self.statics[name][0]

    def extern_addr(self, symbol: str) -> int:
        return int(prelude.extern_addr(symbol))


class HostBackend(Backend):
    kind = "host"
    _programs: dict[tuple[str, str], tuple] = {}
    _extern_data: dict[str, ctypes.Array] = {}  # symbol -> its buffer (the process's JIT symbol table is one)

    def extern_addr(self, symbol: str) -> int:
        return ctypes.addressof(HostBackend._extern_data[symbol])

    def __init__(self, module: str, irq: str) -> None:
        super().__init__(module, irq)
        from compiler import driver
        from compiler.host import HostProgram

        key = (module, irq)
        if key not in HostBackend._programs:
            srcs = [str(HYP / Path(*m.split(".")[1:]).with_suffix(".py")) for m in module.split("+")]
            compiled = driver.compile_program(srcs, "host", 2, {"hypervisor.board": self.board_path})
            for g in compiled.module.global_variables:  # assembly's data symbols (extern_addr): host buffers
                if g.is_declaration and g.name not in HostBackend._extern_data:
                    size = int(self.board.MAX_HARTS * self.board.HART_STACK_SIZE) if g.name == STACKS else 0x1_0000
                    buf = ctypes.create_string_buffer(size)
                    HostBackend._extern_data[g.name] = buf
                    llvm.add_symbol(g.name, ctypes.addressof(buf))
            prog = HostProgram(compiled)
            td = prog.compiled.tm.target_data
            gl = {}
            for g in prog.compiled.module.global_variables:
                if g.name.startswith((".", "__pys")):
                    continue
                a = prog.engine.get_global_value_address(g.name)
                if a:
                    gl[g.name] = (a, td.get_abi_size(g.global_value_type))
            pristine = {n: ctypes.string_at(a, s) for n, (a, s) in gl.items()}
            HostBackend._programs[key] = (prog, gl, pristine)
        self.prog, self.statics, pristine = HostBackend._programs[key]
        for n, (a, s) in self.statics.items():  # every static as the program started (another world ran before)
            if ctypes.string_at(a, s) != pristine[n]:  # (constants may be in read-only memory)
                ctypes.memmove(a, pristine[n], s)
        self.bufs: list = []

    def scalars(self) -> dict[str, int]:
        return {}

    def begin_case(self, regions: list[Region]) -> None:
        self._before = snapshot(self, regions)

    def end_case(self, regions: list[Region]) -> set[str]:
        return diff(regions, self._before, snapshot(self, regions))

    def set_scalars(self, values: dict[str, int]) -> None:
        pass

    def call(self, name: str, *args):
        return self.prog.call(name, *[int(a) & U64 for a in args])

    def alloc(self, size: int, align: int = 4096) -> int:
        buf = ctypes.create_string_buffer(size + align)
        self.bufs.append(buf)
        return (ctypes.addressof(buf) + align - 1) & -align

    def read(self, addr: int, n: int) -> bytes:
        return ctypes.string_at(addr, n)

    def write(self, addr: int, data: bytes) -> None:
        ctypes.memmove(addr, data, len(data))

    def global_addr(self, name: str) -> int:
        return self.statics[name][0]


def make_backend(kind: str, module: str, irq: str) -> Backend:
    return CPythonBackend(module, irq) if kind == "cpython" else HostBackend(module, irq)


class View:
    """Fields of a struct at an address in the backend's memory (layouts from the prelude)."""

    _layouts: dict = {}

    def __init__(self, be: Backend, t, addr: int, data: tuple[bytes, int] | None = None) -> None:
        """`data`: (bytes, their address) to read from instead of the memory (a snapshot)."""
        self.be, self.t, self.addr, self.data = be, t, addr, data
        lay = View._layouts.get(t)
        if lay is None:
            lay = {}
            for name, (off, ft) in prelude.layout_of(t).fields.items():
                if isinstance(ft, type) and issubclass(ft, prelude.Array):
                    lay[name] = (off, prelude_places._size(ft._elem))
                else:
                    lay[name] = (off, prelude_places._size(ft))
            View._layouts[t] = lay
        self.lay = lay

    def off(self, name: str, i: int = 0) -> tuple[int, int]:
        off, size = self.lay[name]
        return self.addr + off + i * size, size

    def _read(self, a: int, n: int) -> bytes:
        if self.data is None:
            return self.be.read(a, n)
        raw, base = self.data
        return raw[a - base : a - base + n]

    def get(self, name: str, i: int = 0) -> int:
        off, size = self.lay[name]
        return int.from_bytes(self._read(self.addr + off + i * size, size), "little")

    def set(self, name: str, value: int, i: int = 0) -> None:
        a, n = self.off(name, i)
        self.be.write(a, (value & ((1 << (8 * n)) - 1)).to_bytes(n, "little"))

    def words(self, name: str, count: int) -> list[int]:
        a, n = self.off(name, 0)
        raw = self._read(a, n * count)
        return [int.from_bytes(raw[i * n : (i + 1) * n], "little") for i in range(count)]


# ---------------------------------------------------------------------------------------------------------------
# Memory snapshots: named regions, diffed per element or per page


@dataclass
class Region:
    name: str
    addr: int
    size: int
    elem: int = 0  # > 0: a change is reported per element, "name[i]"
    per_case: bool = True  # False: compared at the end of an episode only (large and rarely touched)


def snapshot(be: Backend, regions: list[Region], all_: bool = False) -> dict:
    snap = {r.name: be.read(r.addr, r.size) for r in regions if r.per_case or all_}
    for n, v in be.scalars().items():
        snap[n] = v
    return snap


def restore_regions(be: Backend, regions: list[Region], snap: dict) -> None:
    """Write back what changed since `snap` (constants may be in read-only memory: never written)."""
    for r in regions:
        if r.name in snap and be.read(r.addr, r.size) != snap[r.name]:
            be.write(r.addr, snap[r.name])


def diff(regions: list[Region], before: dict, after: dict) -> set[str]:
    out = set()
    by_name = {r.name: r for r in regions}
    for name, old in before.items():
        new = after.get(name)
        if new == old:
            continue
        r = by_name.get(name)
        if r is None or not r.elem or not isinstance(old, bytes):
            out.add(name)
            continue
        for i in range(0, r.size, r.elem):
            if old[i : i + r.elem] != new[i : i + r.elem]:
                out.add(f"{name}[{i // r.elem}]")
    return out


# ---------------------------------------------------------------------------------------------------------------
# Values


INTERESTING = (
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    31,
    32,
    63,
    64,
    95,
    96,
    0x7F,
    0x80,
    0xFF,
    0x100,
    0xFFFF,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FFFF,
    1 << 32,
    (1 << 63) - 1,
    1 << 63,
    U64 - 1,
    U64,
)


def value(rng: random.Random, addresses: tuple[int, ...] = ()) -> int:
    k = rng.random()
    if k < 0.3:
        return rng.choice(INTERESTING)
    if k < 0.45:
        return rng.randrange(16)
    if k < 0.7 and addresses:
        return (rng.choice(addresses) + rng.choice((0, 0, 1, 8, 0xFFF, 0x1000, -1, -8, -0x1000))) & U64
    if k < 0.85:
        return rng.getrandbits(32)
    return rng.getrandbits(64)


# ---------------------------------------------------------------------------------------------------------------
# Target: the SBI dispatcher

EID_LEGACY = (0x00, 0x01, 0x02)
EID_BASE, EID_TIME, EID_IPI, EID_RFENCE = 0x10, 0x54494D45, 0x735049, 0x52464E43
EID_HSM, EID_SRST, EID_PMU, EID_DBCN, EID_TEST = 0x48534D, 0x53525354, 0x504D55, 0x4442434E, 0x0A505354
EID_NAMES = {
    EID_BASE: "BASE",
    EID_TIME: "TIME",
    EID_IPI: "IPI",
    EID_RFENCE: "RFENCE",
    EID_HSM: "HSM",
    EID_SRST: "SRST",
    EID_DBCN: "DBCN",
    EID_PMU: "PMU",
    EID_TEST: "test",
    0: "legacy set_timer",
    1: "legacy putchar",
    2: "legacy getchar",
}
IMPLEMENTED = (EID_BASE, EID_TIME, EID_IPI, EID_RFENCE, EID_HSM, EID_SRST, EID_DBCN, *EID_LEGACY)
SBI_ERRORS = range(-9, 1)  # SBI 2.0 section 3.2: SUCCESS and SBI_ERR_FAILED .. SBI_ERR_NO_SHMEM
ERR_NOT_SUPPORTED, ERR_INVALID_PARAM, ERR_INVALID_ADDRESS = -2, -3, -5
CSR_HTINST = 0x64A
CSR_HTVAL = 0x643
CSR_STVAL = 0x143
A0, A1, A6, A7 = 10, 11, 16, 17

MVM_GPA, GUEST_GPA, DEVICE_GPA = 0x8000_0000, 0x8020_0000, 0x1000_0000
VM_RAM = 0x1_0000  # each VM's RAM (16 pages): test guests from the frame pool, the MVM a fixed block
IMAGE_SIZE = 0x800
BIG = 0x1000  # statics larger than this are diffed in full once an episode, their first BIG bytes every case
POOL_SIZE = 0x42_0000  # the stage-2 tables, then two test guests' RAM, each 2 MiB aligned (vm_create)
VM_RUNNING, VCPU_STOPPED, VCPU_STARTED = 1, 0, 1
ADDRS = (MVM_GPA, MVM_GPA + VM_RAM, GUEST_GPA, GUEST_GPA + VM_RAM, GUEST_GPA + IMAGE_SIZE, DEVICE_GPA, 0x0C00_0000)


def sbi_op(rng: random.Random) -> tuple:
    """(which started vCPU calls, EID, FID, a0..a5): any values, and for the implemented extensions often
    well-formed ones (a valid FID, harts the VM has, addresses in its RAM), so the success paths are reached."""
    k = rng.random()
    if k < 0.85:
        eid = rng.choice(IMPLEMENTED)
    elif k < 0.9:
        eid = rng.choice((EID_PMU, EID_TEST, 0x03, 0x04, 0x05, 0x08, 0x0F))
    else:
        eid = value(rng)
    fid = rng.randrange(8) if rng.random() < 0.85 else value(rng)
    args = [value(rng, ADDRS) for _ in range(6)]
    if rng.random() < 0.6:
        hart = rng.choice((0, 1, 1, 2, U64))
        ram = rng.choice((MVM_GPA, GUEST_GPA, DEVICE_GPA)) + rng.choice((0, 4, 0x100, 0x1000, VM_RAM - 4, VM_RAM, -4))
        if eid in (EID_IPI, EID_RFENCE):
            fid = rng.randrange(3) if eid == EID_RFENCE else 0
            args[:2] = [rng.choice((1, 2, 3, 4, 0)), rng.choice((0, 0, 1, 2, U64))]
        elif eid == EID_HSM:
            fid = rng.choice((0, 0, 1, 2))
            args[:2] = [hart, ram & U64]
        elif eid == EID_SRST and rng.random() < 0.5:  # (most resets end the world: fewer, for longer episodes)
            fid = 0
            args[:2] = [rng.choice((0, 1, 2, 3, 0xF000_0000)), rng.choice((0, 1, 2, 0xE000_0000, 0xF000_0000))]
        elif eid == EID_DBCN:
            fid = rng.choice((0, 0, 0, 1, 2))
            args[:3] = [rng.randrange(200), (ram + rng.randrange(-64, 4096)) & U64, 0]
        elif eid in (EID_BASE, EID_TIME):
            fid = rng.randrange(7) if eid == EID_BASE else 0
            args[0] = rng.choice(IMPLEMENTED + (EID_PMU, EID_TEST)) if eid == EID_BASE else args[0]
    return (rng.randrange(8), eid, fid, *args)


class SbiWorld:
    """Three VMs on a PLIC build: the management VM (id 0, fixed memory, vCPUs on harts 0 and 1, the second one
    stopped), a one-vCPU test guest (hart 2) and a two-vCPU one (harts 3 and 4, the second stopped), their memory
    from the frame pool. The firmware below is a mock: an IPI to a hart runs what that hart would (a vCPU whose VM
    ended parks, a started one enters and serves its fences); a system reset (the management VM's SRST, or its
    end when its last vCPU stops) is the end of the machine, and of the episode."""

    def __init__(self, be: Backend) -> None:
        self.be = be
        vm_mod = be.mods["hypervisor.core.vm"]
        self.Vm, self.Vcpu = vm_mod.Vm, vm_mod.Vcpu
        self.vm_size, self.vcpu_size = prelude_places._size(self.Vm), prelude_places._size(self.Vcpu)
        self.fpu_state_size = prelude_places._size(be.mods["hypervisor.arch.riscv.fpu"].FpuState)
        self.vms_addr = be.global_addr("hypervisor.core.vm.VMS")
        self.vcpus_addr = be.global_addr("hypervisor.core.vm.VCPUS")
        self.RunQueue = vm_mod.RunQueue
        self.rq_addr = be.global_addr("hypervisor.core.vm.RQ")
        self.rq_size = prelude_places._size(self.RunQueue)
        self.max_harts = int(be.board.MAX_HARTS)
        self.fw: list[tuple] = []
        self.console = bytearray()
        self.ended_machine = False
        self.frozen: dict | None = None
        self.live_callers: list[int] | None = None  # the started vCPUs of running VMs, read after the last case
        self.stats: collections.Counter = collections.Counter()
        prelude.mock.sbi_handler = self.firmware
        # the harts' stacks as runtime/boot.S leaves them: painted (core/stack.py reads how deep the paint wore)
        self.stacks, self.stacks_size = 0, 0
        if hasattr(be.board, "HART_STACK_PAINT"):
            self.stacks_size = int(be.board.MAX_HARTS * be.board.HART_STACK_SIZE)
            self.stacks = be.extern_addr(STACKS)
            be.write(self.stacks, int(be.board.HART_STACK_PAINT).to_bytes(8, "little") * (self.stacks_size // 8))
        be.call("hart_features_set", False, False, False)
        be.call("vsbi_init")  # the guests' SBI extensions, as the boot hart registers them (trap_init_tables)
        self.pool = be.alloc(POOL_SIZE + 0x20_0000, 0x20_0000)
        assert be.call("frame_alloc_init", self.pool, POOL_SIZE)
        self.image = be.alloc(IMAGE_SIZE)
        rnd = random.Random(7)
        self.image_bytes = rnd.randbytes(IMAGE_SIZE)
        be.write(self.image, self.image_bytes)
        # pages[i]: the frames VM index i took (its RAM when owned, its stage-2 tables)
        self.pages: dict[int, set[int]] = {}
        bm0 = self.bitmap()
        be.call("vm_mark_mvm")
        self.mvm_ram = be.alloc(VM_RAM)
        mvm = be.call("vm_setup", 0, MVM_GPA, self.mvm_ram, VM_RAM, False)
        assert mvm and be.call("vcpu_add", mvm, 0, True) and be.call("vcpu_add", mvm, 1, False)
        be.call("virq_init", mvm)
        self.device = be.alloc(4096)  # a passthrough device's registers (the UART's window): never read for a guest
        be.write(self.device, bytes([0xD5]) * 4096)
        assert be.call("vm_map_device", mvm, DEVICE_GPA, self.device, 4096)
        bm1 = self.bitmap()
        g1 = be.call("vm_create", self.image, IMAGE_SIZE, GUEST_GPA, VM_RAM, 0x1234, 2)
        bm2 = self.bitmap()
        g2 = be.call("vm_create", self.image, IMAGE_SIZE, GUEST_GPA, VM_RAM, 0x5678, 3)
        assert g1 and g2 and be.call("vcpu_add", g2, 4, False)
        bm3 = self.bitmap()
        be.call("vm_mark_created")
        self.pages = {0: bm1 - bm0, 1: bm2 - bm1, 2: bm3 - bm2}
        self.nvms = 3
        for i in range(self.nvms):  # each VM's RAM holds bytes of its own, so a read of another's shows
            vm = self.vm(i)
            fill = random.Random(100 + i).randbytes(VM_RAM)
            be.write(vm.get("mem_hpa"), fill)
        self.regions = self._regions()
        self.initial = snapshot(be, self.regions, all_=True)
        self.initial_mock = dict(prelude.mock.csr)
        self.hsm_address_rule = self._probe_hsm_address_rule()

    # ---- the world's state
    def bitmap(self, snap: dict | None = None) -> set[int]:
        """The frames in use (from the memory, or from a snapshot)."""
        name = "hypervisor.core.frame_alloc.frame_bitmap"
        n = POOL_SIZE // 4096 // 8 + 8
        raw = snap[name][:n] if snap is not None else self.be.read(self.be.global_addr(name), n)
        x = int.from_bytes(raw, "little")
        out = set()
        while x:
            low = x & -x
            out.add(low.bit_length() - 1)
            x ^= low
        return out

    def state(self) -> dict:
        """The VM and vCPU tables and the frame bitmap, as bytes."""
        out = {}
        for name in ("hypervisor.core.vm.VMS", "hypervisor.core.vm.VCPUS", "hypervisor.core.frame_alloc.frame_bitmap"):
            a, n = self.be.statics[name]
            out[name] = self.be.read(a, n if "bitmap" not in name else POOL_SIZE // 4096 // 8 + 8)
        return out

    def vm(self, i: int) -> View:
        data = (self.frozen["hypervisor.core.vm.VMS"], self.vms_addr) if self.frozen else None
        return View(self.be, self.Vm, self.vms_addr + i * self.vm_size, data)

    def vcpu(self, i: int) -> View:
        data = (self.frozen["hypervisor.core.vm.VCPUS"], self.vcpus_addr) if self.frozen else None
        return View(self.be, self.Vcpu, self.vcpus_addr + i * self.vcpu_size, data)

    def vcpus_of(self, vm_index: int) -> list[int]:
        vm = self.vm(vm_index)
        return list(range(vm.get("vcpu"), vm.get("vcpu") + vm.get("vcpus")))

    def vcpus_on_hart(self, hart: int) -> list[int]:
        """The VCPUS slots of the vCPUs placed on `hart` (its run queue, core/vm.py RQ), in queue order."""
        rq = View(self.be, self.RunQueue, self.rq_addr + hart * self.rq_size)
        return [(rq.get("vcpu", k) - self.vcpus_addr) // self.vcpu_size for k in range(rq.get("count"))]

    def vcpu_on_hart(self, hart: int) -> int | None:
        """The first vCPU placed on `hart` (the only one on a partitioned hart), None when none is."""
        on = self.vcpus_on_hart(hart)
        return on[0] if on else None

    def _regions(self) -> list[Region]:
        regions = []
        for name, (addr, size) in self.be.statics.items():
            elem = {
                "hypervisor.core.vm.VMS": self.vm_size,
                "hypervisor.core.vm.VCPUS": self.vcpu_size,
                "hypervisor.arch.riscv.fpu.FPU_STATE": self.fpu_state_size,  # by vCPU slot
                "hypervisor.arch.riscv.fpu.FPU_OWNER": 8,  # by hart
            }.get(name, 0)
            if (
                size > BIG and not elem
            ):  # (the frame bitmap: only its first words cover the pool) the rest once an episode
                regions.append(Region(name, addr, BIG, elem))
                regions.append(Region(f"{name} (beyond {BIG} bytes)", addr + BIG, size - BIG, per_case=False))
            else:
                regions.append(Region(name, addr, size, elem))
        regions.append(Region("mvm_ram", self.mvm_ram, VM_RAM, 4096))
        regions.append(Region("image", self.image, IMAGE_SIZE))
        regions.append(Region("device", self.device, 4096))
        if self.stacks:
            regions.append(Region("stacks", self.stacks, self.stacks_size, per_case=False))
        regions.append(Region("pool", self.pool, POOL_SIZE, 4096, per_case=False))
        for i in (1, 2):
            regions.append(Region(f"ram{i}", self.vm(i).get("mem_hpa"), VM_RAM, 4096))
        ram = set()
        for i in (1, 2):
            first = (self.vm(i).get("mem_hpa") - self.pool) // 4096
            ram |= set(range(first, first + VM_RAM // 4096))
        for p in sorted(set().union(*self.pages.values()) - ram):  # the stage-2 tables
            regions.append(Region(f"frame{p}", self.pool + 4096 * p, 4096))
        if isinstance(self.be, CPythonBackend):
            self.be.known = [(r.addr, r.size) for r in regions]
        return regions

    def restore(self, rng_seed: int = 0) -> None:
        restore_regions(self.be, self.regions, self.initial)
        self.be.set_scalars({k: v for k, v in self.initial.items() if not isinstance(v, bytes)})
        prelude.mock.csr.clear()
        prelude.mock.csr.update(self.initial_mock)
        self.fw.clear()
        self.console.clear()
        self.ended_machine = False
        self.live_callers = None
        self.be.call("hart_features_set", rng_seed & 1 == 1, False, False)  # with Sstc, or the firmware's timer

    def _probe_hsm_address_rule(self) -> bool:
        """Whether HSM hart_start refuses a start address outside the VM's RAM (SBI 2.0 section 9.1,
        SBI_ERR_INVALID_ADDRESS): once it does, a started vCPU never begins outside its RAM (checked always)."""
        self.restore()
        v = self.vcpu(0)
        for r in (A0, A1, A1 + 1):
            v.set("regs", 0, r)
        v.set("regs", 1, A0)
        v.set("regs", EID_HSM, A7)
        v.set("regs", 0, A6)
        self.be.call("sbi_handle_ecall", v.addr)
        rule = s64(v.get("regs", A0)) == ERR_INVALID_ADDRESS
        self.restore()
        return rule

    # ---- the firmware below the hypervisor, and the other harts
    def firmware(self, eid, fid, a0, a1, a2, a3, a4, a5):
        self.fw.append((eid, fid, a0, a1, a2))
        if eid == EID_DBCN and fid == 0:
            self.console += self.be.read(a1, a0)
            return 0, a0
        if eid == EID_IPI and fid == 0:
            harts = range(self.max_harts) if a1 == U64 else [a1 + i for i in range(64) if a0 >> i & 1]
            machine_reset_parks(self.be, len(harts))
            for h in harts:
                if h < self.max_harts and (i := self.vcpu_on_hart(h)) is not None:
                    self.other_hart(i)
            return 0, 0
        if eid == EID_SRST:
            machine_reset_done(self.be)
            self.ended_machine = True
            if isinstance(self.be, CPythonBackend):
                raise MachineOff  # a system reset that succeeds never returns (SBI 2.0 section 10.1)
        return 0, 0

    def other_hart(self, i: int) -> None:
        """What the hart of vCPU i does on an IPI: parks a vCPU whose VM ended (or that is stopped), enters or
        keeps running a started one and serves the remote fences asked of it (trap.py vcpu_run and vcpu_leave)."""
        t = self.vcpu(i)
        if self.vm(t.get("vm")).get("state") != VM_RUNNING or t.get("state") != VCPU_STARTED:
            t.set("running", 0)
            return
        t.set("running", 1)
        t.set("fence_done", t.get("fence_req"))

    def after_trap(self, i: int) -> None:
        """The caller's hart after the trap (trap.py trap_resume): back into the guest, or through hart_wait."""
        v = self.vcpu(i)
        vm = self.vm(v.get("vm"))
        parks = "parking" in v.lay  # (a Vcpu without that flag: the trap path decides from the state alone)
        if vm.get("state") != VM_RUNNING or v.get("state") != VCPU_STARTED:
            if parks:
                v.set("parking", 0)
            v.set("running", 0)
        elif parks and v.get("parking"):
            v.set("parking", 0)
            v.set("fence_done", v.get("fence_req"))

    # ---- one case
    def ends_machine(self, op: tuple, i: int) -> bool:
        """Whether the case powers the machine off through the management VM's end (its last vCPU stops, HSM):
        compiled, the hypervisor then spins after the firmware's reset, so the host backend does not run it.
        Under CPython it runs, and this prediction is checked."""
        pick, eid, fid, *args = op
        v = self.vcpu(i)
        mvm = self.vm(v.get("vm"))
        if mvm.get("id") != 0 or eid != EID_HSM or fid != 1:
            return False
        return [j for j in self.vcpus_of(v.get("vm")) if self.vcpu(j).get("state") == VCPU_STARTED] == [i]

    def run(self, op: tuple) -> None:
        self.caller = -1
        self._case(op)
        if self.ended_machine:
            self.obs = ("machine off", self.caller)
            return
        self.after_trap(self.caller)
        self.frozen = self.state()
        self.live_callers = self.callers()  # for the next case (alive), from the same reading
        v = self.vcpu(self.caller)
        # what the guests can see of the case, compared between the backends (the same seed, the same cases)
        self.obs = (
            self.caller,
            v.get("regs", A0),
            v.get("regs", A1),
            v.get("sepc"),
            v.get("state"),
            tuple(self.vm(j).get("state") for j in range(self.nvms)),
            bytes(self.console),
        )
        self.frozen = None

    def callers(self) -> list[int]:
        out = []
        for m in range(self.nvms):
            if self.vm(m).get("state") == VM_RUNNING:
                out += [i for i in self.vcpus_of(m) if self.vcpu(i).get("state") == VCPU_STARTED]
        return out

    def alive(self) -> bool:
        if self.live_callers is None:
            self.frozen = self.state()
            self.live_callers = self.callers()
            self.frozen = None
        return not self.ended_machine and bool(self.live_callers)

    def _case(self, op: tuple) -> None:
        pick, eid, fid, *args = op
        callers = self.live_callers
        self.live_callers = None
        i = self.caller = callers[pick % len(callers)]
        v = self.vcpu(i)
        m = v.get("vm")
        v.set("running", 1)
        for r, a in zip(range(A0, A0 + 6), args, strict=True):
            v.set("regs", a, r)
        v.set("regs", fid, A6)
        v.set("regs", eid, A7)
        regs = v.words("regs", 32)
        sepc = v.get("sepc")
        mine = set(self.vcpus_of(m))
        self.fw.clear()
        console_before = len(self.console)
        snap = self.state()
        self.frozen = snap
        before_state = {j: (self.vcpu(j).get("state"), self.vcpu(j).get("running")) for j in mine}
        self.frozen = None
        be = self.be
        powers_off = self.ends_machine(op, i)
        if powers_off and isinstance(be, HostBackend):
            self.ended_machine = True
            self.stats["HSM: the machine powers off (not run compiled)"] += 1
            return
        be.begin_case(self.regions)
        off = False
        try:
            be.call("sbi_handle_ecall", v.addr)
        except FuzzFailure:
            raise
        except MachineOff:
            off = True
        except Hang as e:
            fail("hang", f"{eid:#x}/{fid} did not return: {e}")
        except BaseException as e:  # noqa: BLE001 - any exception out of the hypervisor's code is a finding
            fail("exception", f"{type(e).__name__}: {e}")
        finally:
            changed = be.end_case(self.regions)
        if eid == EID_HSM and off != powers_off:
            fail("model", f"HSM {'powered the machine off' if off else 'left the machine on'}, not as predicted")
        after = self.state()
        self.frozen = after  # the checks read the state from here
        try:
            self._check(op, i, m, mine, before_state, snap, after, changed, regs, sepc, console_before)
        finally:
            self.frozen = None

    def _check(self, op, i, m, mine, before_state, snap, after, changed, regs, sepc, console_before) -> None:
        pick, eid, fid, *args = op
        be = self.be
        v, vm = self.vcpu(i), self.vm(m)
        ended = vm.get("state") != VM_RUNNING
        a0, a1 = s64(v.get("regs", A0)), v.get("regs", A1)
        name = EID_NAMES.get(eid, "other")
        # a reboot re-enters the vCPU from its entry (trap.py, through hart_wait), with the registers of a reset
        # (a7 among them: 0, never the SRST EID of a call that returns)
        if "parking" in v.lay:
            rebooted = not ended and v.get("state") == VCPU_STARTED and v.get("parking") == 1
        else:
            rebooted = not ended and v.get("state") == VCPU_STARTED and eid == EID_SRST and v.get("regs", A7) == 0
        if self.ended_machine:
            pass
        elif ended:
            self.stats[f"{name}: vm index {m} ended"] += 1
        elif rebooted:
            self.stats[f"{name}: vCPU rebooted"] += 1
        elif v.get("state") != VCPU_STARTED:
            self.stats[f"{name}: vCPU stopped"] += 1
        else:
            self.stats[f"{name}/{fid if fid < 8 else 'any'}: a0 {a0}"] += 1

        # memory: only the calling VM's own state, the console's and interrupt locks, the copy of what the
        # hypervisor prints (the log ring the MVM's /dev/hvc0 reads), and what an ending VM frees
        allowed = {f"hypervisor.core.vm.VMS[{m}]"} | {f"hypervisor.core.vm.VCPUS[{j}]" for j in mine}
        allowed |= {name for name in self.be.statics if self.be.is_lock(name)} | LOG_RING
        # its vCPUs' FP/vector save areas and their harts' owner entries (a vCPU's slot is its hart), and the
        # save/load counts: HSM start and SRST reboot reset a vCPU's state, the test extension's FID 4 switches it
        fpu = "hypervisor.arch.riscv.fpu"
        allowed |= {f"{fpu}.FPU_STATE[{j}]" for j in mine} | {f"{fpu}.FPU_OWNER[{j}]" for j in mine}
        allowed |= {n for n in changed if n.startswith(f"{fpu}.fpu_counts")}  # the host target's name: ".N" added
        if ended:
            allowed |= {"hypervisor.core.frame_alloc.frame_bitmap", "hypervisor.core.frame_alloc.frame_used_pages"}
            allowed |= {f"frame{p}" for p in self.pages[m]}
        if self.ended_machine:
            self.stats[f"{name}: the machine resets"] += 1
        if rebooted or ended:
            allowed |= {f"ram{m}[{k}]" for k in range(VM_RAM // 4096)} if m else set()
        bad = sorted(changed - allowed)
        if bad:
            fail("memory", f"vCPU {i} (vm index {m}) changed {', '.join(bad)}")
        if isinstance(be, CPythonBackend) and be.stray:
            fail("memory", f"writes outside every known region: {[(hex(a), n) for a, n in be.stray[:4]]}")
        if isinstance(be, CPythonBackend):  # reads: never another VM's RAM, never a device's registers
            for j in range(self.nvms):
                lo = self.vm(j).get("mem_hpa")
                for a, n in be.reads:
                    if j != m and a < lo + VM_RAM and a + n > lo:
                        fail("memory", f"read of vm index {j}'s RAM at {a:#x} for vCPU {i} (vm index {m})")
                    if a < self.device + 4096 and a + n > self.device:
                        fail("memory", f"read of a passthrough device at {a:#x} for vCPU {i} (vm index {m})")

        # locks given back
        for name, (addr, size) in self.be.statics.items():
            if be.is_lock(name) and not released(be.read(addr, size)):
                fail("lock", f"{name} still held")
        for f in ("console_busy", "console_spin"):  # the VM's own console lock
            if f in vm.lay and not released(vm.get(f).to_bytes(vm.lay[f][1], "little")):
                fail("lock", f"the VM's {f} is still held")

        # the firmware was asked only what this VM may cause
        for e, f, x0, x1, _ in self.fw:
            if e == EID_IPI:
                harts = range(self.max_harts) if x1 == U64 else [x1 + k for k in range(64) if x0 >> k & 1]
                for h in harts:
                    j = self.vcpu_on_hart(h) if h < self.max_harts else None
                    if j not in mine:
                        fail("firmware", f"vm index {m} sent an IPI to hart {h}, not one of its vCPUs'")
            elif e == EID_SRST:
                if vm.get("id") != 0:
                    fail("firmware", f"vm index {m} (id {vm.get('id')}) reset the machine")
            elif e not in (EID_TIME, EID_DBCN):
                fail("firmware", f"unexpected firmware call {e:#x}/{f}")

        # state consistent
        for j in range(self.nvms):
            w = self.vm(j)
            if w.get("state") not in (1, 2, 3, 4):
                fail("state", f"vm index {j} state {w.get('state')}")
            if w.get("console_len") >= 160:
                fail("state", f"vm index {j} console_len {w.get('console_len')}")
            for k in self.vcpus_of(j):
                t = self.vcpu(k)
                if t.get("state") not in (VCPU_STOPPED, VCPU_STARTED):
                    fail("state", f"vCPU {k} state {t.get('state')}")
                if t.get("fence_done") > t.get("fence_req"):
                    fail("state", f"vCPU {k} fence_done {t.get('fence_done')} > fence_req {t.get('fence_req')}")
                if any(x not in (0, 1) for x in t.words("mailbox", 4)):
                    fail("state", f"vCPU {k} mailbox {t.words('mailbox', 4)}")
        if ended:
            gone = self.pages[m]
            now, used_before = self.bitmap(after), self.bitmap(snap)
            if now != used_before - gone:
                fail(
                    "frames",
                    f"vm index {m} ended: frames {sorted(used_before - gone)} expected in use, {sorted(now)} are",
                )
            if m and vm.get("stage2_root") != 0:
                fail("frames", "an ended VM keeps its stage-2 root")

        # the guest's view
        started = [
            j
            for j in mine
            if j != i and before_state[j][0] == VCPU_STOPPED and self.vcpu(j).get("state") == VCPU_STARTED
        ]
        for j in started:
            t = self.vcpu(j)
            if eid != EID_HSM or fid != 0 or args[0] != t.get("vcpu_id") or a0 != 0:
                fail("hsm", f"vCPU {j} started by {eid:#x}/{fid} returning {a0}")
            if t.get("sepc") != args[1] or t.get("regs", A0) != args[0] or t.get("regs", A1) != args[2]:
                fail("hsm", f"vCPU {j} started with pc {t.get('sepc'):#x} a0 {t.get('regs', A0):#x}")
            lo = vm.get("mem_gpa")
            if self.hsm_address_rule and not lo <= args[1] < lo + vm.get("mem_size"):
                fail("hsm", f"vCPU {j} started at {args[1]:#x}, outside its VM's RAM")
        if ended:  # vm_end called every other vCPU of the VM off its hart before releasing the VM
            running = [j for j in mine if j != i and self.vcpu(j).get("running")]
            if running:
                fail("end", f"vm index {m} ended with vCPUs {running} still running")
        if eid == EID_RFENCE and fid < 3 and a0 == 0 and not ended:  # synchronous (SBI 2.0 chapter 8)
            mask, base = args[0], args[1]
            for j in mine:
                t, idx = self.vcpu(j), self.vcpu(j).get("vcpu_id")
                named = base == U64 or (idx >= base and idx - base < 64 and mask >> (idx - base) & 1)
                if j != i and named and before_state[j] == (VCPU_STARTED, 1):
                    if t.get("fence_done") < t.get("fence_req"):
                        fail("rfence", f"remote fence returned before vCPU {j} fenced")
        if ended or self.ended_machine:
            return
        if v.get("state") == VCPU_STOPPED:  # hart_stop: no return to the guest
            if eid != EID_HSM or fid != 1:
                fail("hsm", f"vCPU {i} stopped by {eid:#x}/{fid}")
            return
        if rebooted:
            if eid != EID_SRST or m != 1:
                fail("srst", f"vCPU {i} (vm index {m}) reset by {eid:#x}/{fid}")
            if v.get("sepc") != vm.get("entry") or be.read(vm.get("mem_hpa"), IMAGE_SIZE) != self.image_bytes:
                fail("srst", "a rebooted guest does not start from its image")
            return
        if v.get("sepc") != (sepc + 4) & U64:
            fail("return", f"sepc {v.get('sepc'):#x}, expected {sepc + 4:#x}")
        now = v.words("regs", 32)
        moved = [r for r in range(32) if r not in (A0, A1) and now[r] != regs[r]]
        if moved:
            fail("return", f"registers x{moved} changed (SBI 2.0 section 3.1: all but a0 and a1 are preserved)")
        if eid in EID_LEGACY:
            if a0 != (-1 if eid == 0x02 else 0):
                fail("return", f"legacy extension {eid:#x} returned a0 {a0}")
        elif a0 not in SBI_ERRORS:
            fail("return", f"a0 {a0} is not an SBI 2.0 error code (section 3.2)")
        elif eid == EID_TEST:  # the PyShyper test extension: its fault only in a --debug-faults build
            if a0 not in (0, ERR_NOT_SUPPORTED) or (fid == 0 and a0 != ERR_NOT_SUPPORTED):
                fail("return", f"the test extension's FID {fid} returned {a0} in a build without debug faults")
        elif eid not in IMPLEMENTED and a0 != ERR_NOT_SUPPORTED:
            fail("return", f"extension {eid:#x} is not implemented, but returned {a0} (not SBI_ERR_NOT_SUPPORTED)")
        if eid == EID_DBCN and fid == 0 and a0 == 0:
            n, base = a1, args[1]
            lo = vm.get("mem_gpa")
            if n > min(args[0], 4096) or (n and not (lo <= base and base + n <= lo + vm.get("mem_size"))):
                fail("dbcn", f"console_write of {args[0]} bytes at {base:#x} wrote {n}, outside the VM's RAM")
            want = be.read(vm.get("mem_hpa") + (base - lo), n) if n else b""
            got = vm_text_of(self.console[console_before:], vm.get("id")) + be.read(
                vm.off("console")[0], vm.get("console_len")
            )
            want = want.replace(b"\r", b"").replace(b"\n", b"")
            if not got.replace(b"\n", b"").endswith(want):
                fail("dbcn", f"the console shows {got[-40:]!r}, not the VM's bytes {want[-40:]!r}")

    def end_episode(self) -> None:
        """The large regions: the frame pool outside the frames in use must be untouched."""
        now = snapshot(self.be, self.regions, all_=True)
        for r in self.regions:
            if not r.per_case and r.name != "pool" and now[r.name] != self.initial[r.name]:
                fail("memory", f"{r.name} changed")
        used = set().union(*self.pages.values())
        for name in diff(self.regions, {"pool": self.initial["pool"]}, {"pool": now["pool"]}):
            page = int(name.split("[")[1].rstrip("]"))
            if page not in used:
                fail("memory", f"a free frame of the pool changed ({name})")


def released(raw: bytes) -> bool:
    """Free: a test-and-set word at 0, or a ticket lock whose two halves (next, owner) are equal."""
    half = len(raw) // 2
    return not any(raw) or (len(raw) % 2 == 0 and raw[:half] == raw[half:])


def vm_text_of(stream: bytes, vm_id: int) -> bytes:
    """The bytes of the lines `[vmN] ...` a VM's console printed in a stream of the hypervisor's console."""
    tag = b"[vm%d] " % vm_id
    return b"".join(line[len(tag) :] for line in bytes(stream).split(b"\n") if line.startswith(tag))


# ---------------------------------------------------------------------------------------------------------------
# Target: the virtual PLIC, against a model of PLIC 1.0.0


PLIC_SOURCES, PLIC_MAX_CONTEXTS = 96, 16


class PlicModel:
    """PLIC 1.0.0 for QEMU's virt layout as the guest sees it: chapter 3's map, 3 priority bits (WARL), gateways
    holding a request while the source is in service (chapter 4), claims that respect the threshold and take the
    highest priority then the lowest ID (chapters 5, 8, 9), completions ignored unless in service and enabled
    for the context (chapter 9) - or passthrough (hw_owned), which completes from any context."""

    def __init__(self, contexts: int) -> None:
        self.contexts = min(contexts, PLIC_MAX_CONTEXTS)
        self.prio = [0] * PLIC_SOURCES
        self.pending, self.deferred, self.in_service, self.hw = set(), set(), set(), set()
        self.enable = [set() for _ in range(PLIC_MAX_CONTEXTS)]
        self.threshold = [0] * PLIC_MAX_CONTEXTS

    def best(self, ctx: int) -> int:
        if ctx >= self.contexts:
            return 0
        cands = [s for s in self.pending & self.enable[ctx] if self.prio[s] > self.threshold[ctx]]
        return min(cands, key=lambda s: (-self.prio[s], s)) if cands else 0

    def read(self, off: int, width: int) -> int:
        if width != 4 or off & 3 or off >= 0x400_0000:
            return 0
        if off < 0x1000:
            return self.prio[off >> 2] if off >> 2 < PLIC_SOURCES else 0
        if off < 0x2000:
            w = (off - 0x1000) >> 2
            return sum(1 << (s & 31) for s in self.pending if s >> 5 == w) if w < 3 else 0
        if off < 0x20_0000:
            ctx, w = (off - 0x2000) // 0x80, ((off - 0x2000) % 0x80) >> 2
            if ctx < self.contexts and w < 3:
                return sum(1 << (s & 31) for s in self.enable[ctx] if s >> 5 == w)
            return 0
        ctx, reg = (off - 0x20_0000) // 0x1000, (off - 0x20_0000) % 0x1000
        if ctx >= self.contexts:
            return 0
        if reg == 0:
            return self.threshold[ctx]
        if reg == 4:
            s = self.best(ctx)
            if s:
                self.pending.discard(s)
                self.in_service.add(s)
            return s
        return 0

    def write(self, off: int, width: int, value: int) -> int:
        if width != 4 or off & 3 or off >= 0x400_0000:
            return 0
        v = value & 0xFFFF_FFFF
        if off < 0x1000:
            if 0 < off >> 2 < PLIC_SOURCES:
                self.prio[off >> 2] = v & 7
            return 0
        if off < 0x2000:
            return 0
        if off < 0x20_0000:
            ctx, w = (off - 0x2000) // 0x80, ((off - 0x2000) % 0x80) >> 2
            if ctx < self.contexts and w < 3:
                e = self.enable[ctx]
                e -= {s for s in e if s >> 5 == w}
                e |= {32 * w + b for b in range(32) if v >> b & 1 and 32 * w + b != 0}
            return 0
        ctx, reg = (off - 0x20_0000) // 0x1000, (off - 0x20_0000) % 0x1000
        if ctx >= self.contexts:
            return 0
        if reg == 0:
            self.threshold[ctx] = v & 7
            return 0
        if reg != 4 or not 0 < v < PLIC_SOURCES or v not in self.in_service:
            return 0
        if v not in self.enable[ctx] and v not in self.hw:
            return 0
        self.in_service.discard(v)
        if v in self.deferred:
            self.deferred.discard(v)
            self.pending.add(v)
        return v if v in self.hw else 0

    def raise_(self, s: int) -> None:
        if 0 < s < PLIC_SOURCES:
            (self.deferred if s in self.in_service else self.pending).add(s)

    def lower(self, s: int) -> None:
        self.pending.discard(s)
        self.deferred.discard(s)

    def set_hw(self, s: int, on: bool) -> None:
        if 0 < s < PLIC_SOURCES:
            (self.hw.add if on else self.hw.discard)(s)


def bits(words: list[int]) -> set[int]:
    return {32 * w + b for w, x in enumerate(words) for b in range(32) if x >> b & 1}


def plic_offset(rng: random.Random) -> int:
    k = rng.random()
    ctx = rng.randrange(18)
    if k < 0.2:
        off = 4 * rng.randrange(100)
    elif k < 0.25:
        off = 0x1000 + 4 * rng.randrange(5)
    elif k < 0.45:
        off = 0x2000 + 0x80 * ctx + 4 * rng.randrange(5)
    elif k < 0.85:
        off = 0x20_0000 + 0x1000 * ctx + rng.choice((0, 4, 4, 4, 8, 0xFFC))
    else:
        off = value(rng)
    if rng.random() < 0.05:
        off += rng.randrange(1, 4)
    return off & U64


def plic_op(rng: random.Random) -> tuple:
    k = rng.random()
    if k < 0.25:  # a driver's steps: sources enabled and given priorities, claims, completions of claimed ones
        ctx = rng.randrange(18)
        kind = rng.choice(("enable", "priority", "claim", "complete", "complete"))
        if kind == "enable":
            return ("write", 0x2000 + 0x80 * ctx + 4 * rng.randrange(3), 4, rng.choice((U64, 1 << rng.randrange(32))))
        if kind == "priority":
            return ("write", 4 * rng.randrange(96), 4, rng.randrange(1, 8))
        if kind == "claim":
            return ("read", 0x20_0004 + 0x1000 * ctx, 4)
        return ("complete", 0x20_0004 + 0x1000 * ctx, rng.randrange(8))
    k = rng.random()
    src = rng.randrange(97) if rng.random() < 0.95 else value(rng)
    width = 4 if rng.random() < 0.9 else rng.choice((0, 1, 2, 3, 8, 16, value(rng)))
    if k < 0.35:
        return ("read", plic_offset(rng), width)
    if k < 0.75:
        off = plic_offset(rng)
        if 0x20_0004 <= off < 0x21_0000 and off & 0xFFF == 4 and rng.random() < 0.7:
            return ("write", off, width, src)  # completions name a source
        v = rng.randrange(8) if off < 0x1000 or off & 0xFFF == 0 and rng.random() < 0.7 else value(rng)
        return ("write", off, width, v)
    if k < 0.88:
        return ("raise", src)
    if k < 0.95:
        return ("lower", src)
    return ("hw", src, rng.random() < 0.7)


class PlicWorld:
    GUARD = 256

    def __init__(self, be: Backend) -> None:
        self.be = be
        self.T = be.struct("hypervisor.core.vplic", "Vplic")
        self.size = prelude_places._size(self.T)
        base = be.alloc(self.size + 2 * self.GUARD, 64)
        self.guard_lo, self.addr = base, base + self.GUARD
        self.guard_bytes = bytes(range(256))
        self.p = View(be, self.T, self.addr)
        if isinstance(be, CPythonBackend):
            be.known = [(base, self.size + 2 * self.GUARD)]
        self.contexts_choices = (0, 1, 2, 4, 6, 16, 17, 1000)
        self.turn = 0

    def restore(self, rng_seed: int = 0) -> None:
        self.be.write(self.guard_lo, self.guard_bytes)
        self.be.write(self.addr, bytes([0xA5]) * self.size)  # garbage: init must clear everything
        self.be.write(self.addr + self.size, self.guard_bytes)
        contexts = self.contexts_choices[rng_seed % len(self.contexts_choices)]
        self.be.call("vplic_init", self.addr, contexts)
        self.model = PlicModel(contexts)
        self.check_state()

    def alive(self) -> bool:
        return True

    def run(self, op: tuple) -> None:
        be, m = self.be, self.model
        be.begin_case([])
        try:
            if op[0] == "read":
                got, want = be.call("vplic_read", self.addr, op[1], op[2]), m.read(op[1], op[2])
            elif op[0] == "complete":  # of the k-th source in service, if any (a completion a driver makes)
                live = sorted(m.in_service)
                src = live[op[2] % len(live)] if live else 0
                got, want = be.call("vplic_write", self.addr, op[1], 4, src), m.write(op[1], 4, src)
            elif op[0] == "write":
                got, want = be.call("vplic_write", self.addr, op[1], op[2], op[3]), m.write(op[1], op[2], op[3])
            elif op[0] == "raise":
                got = want = be.call("vplic_set_pending", self.addr, op[1]) or m.raise_(op[1]) or 0
            elif op[0] == "lower":
                got = want = be.call("vplic_clear_pending", self.addr, op[1]) or m.lower(op[1]) or 0
            else:
                got = want = be.call("vplic_set_hw_owned", self.addr, op[1], op[2]) or m.set_hw(op[1], op[2]) or 0
            # the notification of the context the access named, and of one more (each in turn)
            self.turn = (self.turn + 1) % (PLIC_MAX_CONTEXTS + 1)
            access = op[0] in ("read", "write", "complete")
            near = (op[1] - 0x20_0000) // 0x1000 if access and op[1] >= 0x20_0000 else self.turn
            ctxs = sorted({self.turn, min(near, PLIC_MAX_CONTEXTS)})
            notify = [be.call("vplic_context_pending", self.addr, c) for c in ctxs]
        except FuzzFailure:
            raise
        except BaseException as e:  # noqa: BLE001
            fail("exception", f"{type(e).__name__}: {e}")
        finally:
            be.end_case([])
        if isinstance(be, CPythonBackend) and be.stray:
            fail("memory", f"writes outside the Vplic: {[(hex(a), n) for a, n in be.stray[:4]]}")
        self.obs = (got, notify)
        if got != want:
            fail("model", f"{op[0]} gave {got:#x}, PLIC 1.0.0 says {want:#x}")
        want_notify = [m.best(c) != 0 for c in ctxs]
        if notify != want_notify:
            fail("model", f"notifications of contexts {ctxs}: {notify}, PLIC 1.0.0 says {want_notify}")
        self.check_state()

    def check_state(self) -> None:
        be, p, m = self.be, self.p, self.model
        if (
            be.read(self.guard_lo, self.GUARD) != self.guard_bytes
            or be.read(self.addr + self.size, self.GUARD) != self.guard_bytes
        ):
            fail("memory", "a write outside the Vplic (its guard bytes changed)")
        if p.get("contexts") != m.contexts:
            fail("state", f"contexts {p.get('contexts')}, expected {m.contexts}")
        prio = p.words("priority", PLIC_SOURCES)
        if prio[0] != 0 or max(prio) > 7:
            fail("state", f"priorities outside 0..7 or source 0's set: {prio}")
        thr = p.words("threshold", PLIC_MAX_CONTEXTS)
        if max(thr) > 7 or any(thr[c] for c in range(m.contexts, PLIC_MAX_CONTEXTS)):
            fail("state", f"thresholds {thr}")
        pend, dfr, ins = (bits(p.words(n, 3)) for n in ("pending", "deferred", "in_service"))
        if 0 in pend | dfr | ins:
            fail("state", "source 0 pending or in service")
        if pend & ins:
            fail("state", f"sources {sorted(pend & ins)} both pending and in service (claim/complete bookkeeping)")
        if not dfr <= ins:
            fail("state", f"held requests {sorted(dfr - ins)} of sources not in service")
        en = p.words("enable", 3 * PLIC_MAX_CONTEXTS)
        for c in range(PLIC_MAX_CONTEXTS):
            e = bits(en[3 * c : 3 * c + 3])
            if 0 in e or (c >= m.contexts and e):
                fail("state", f"context {c} enables {sorted(e)}")
            if e != m.enable[c]:
                fail("model", f"context {c} enables {sorted(e)}, expected {sorted(m.enable[c])}")
        got = (prio, thr, pend, dfr, ins, bits(p.words("hw_owned", 3)))
        want = (m.prio, m.threshold, m.pending, m.deferred, m.in_service, m.hw)
        for name, g, w in zip(
            ("priority", "threshold", "pending", "deferred", "in_service", "hw_owned"), got, want, strict=True
        ):
            if g != w:
                fail(
                    "model",
                    f"{name} {sorted(g) if isinstance(g, set) else g}, expected "
                    f"{sorted(w) if isinstance(w, set) else w}",
                )

    def end_episode(self) -> None:
        pass


# ---------------------------------------------------------------------------------------------------------------
# Target: the virtual APLIC (AIA build), behind its access check as mmio.py calls it


APLIC_SOURCES = 96


class AplicDevice:
    """The physical S-level APLIC: a register file that records every access."""

    def __init__(self) -> None:
        self.regs: dict[int, int] = {}
        self.log: list[tuple] = []

    def read(self, off, width):
        self.log.append(("r", off, width))
        return self.regs.get(off, 0)

    def write(self, off, width, value):
        self.log.append(("w", off, width, value))
        self.regs[off] = value


def aplic_offset(rng: random.Random) -> int:
    k = rng.random()
    s = rng.randrange(1, 97)
    if k < 0.05:
        off = 0
    elif k < 0.25:
        off = 0x4 + 4 * (s - 1)
    elif k < 0.45:
        off = 0x3004 + 4 * (s - 1)
    elif k < 0.7:
        off = rng.choice(
            (0x1C00, 0x1CDC, 0x1D00, 0x1DDC, 0x1E00, 0x1EDC, 0x1F00, 0x1FDC, 0x2000, 0x2004, 0x3000, 0x1BC0)
        ) + 4 * rng.randrange(4) * (rng.random() < 0.5)
    elif k < 0.9:
        off = 4 * rng.randrange(0x1000)
    else:
        off = value(rng)
    if rng.random() < 0.05:
        off += rng.randrange(1, 4)
    return off & U64


def aplic_op(rng: random.Random) -> tuple:
    off = aplic_offset(rng)
    width = 4 if rng.random() < 0.9 else rng.choice((0, 1, 2, 8, value(rng)))
    if rng.random() < 0.4:
        return ("read", off, width)
    k = rng.random()
    if k < 0.4:
        v = rng.randrange(97)
    elif k < 0.6:
        v = (rng.randrange(4) << 18) | (rng.randrange(64) << 12) | rng.randrange(2048)
    elif k < 0.7:
        v = int.from_bytes(rng.randrange(97).to_bytes(4, "little"), "big")  # setipnum_be
    else:
        v = value(rng)
    return ("write", off, width, v)


class AplicWorld:
    OWNED = (1, 10, 11, 31, 32, 33, 63, 64, 95)

    def __init__(self, be: Backend) -> None:
        self.be = be
        self.T = be.struct("hypervisor.core.vaplic", "Vaplic")
        self.addr = be.global_addr("hypervisor.core.vaplic.vaplic_main")
        self.p = View(be, self.T, self.addr)
        self.base = int(be.board.APLIC_S_BASE)
        self.harts = [int(be.board.MVM_HARTS[i]) for i in range(int(be.board.MVM_NUM_VCPUS))]
        self.dev = AplicDevice()
        # the emulation entry the trap path calls (core/emul.py: vaplic_emul), or the model's access check and
        # registers as mmio.py called them
        self.emul = "vaplic_emul" in vars(be.mods["hypervisor.core.vaplic"])
        self.value = be.alloc(8, 8)  # the access's value (a load's result, a store's operand)
        self.vcpu = be.alloc(prelude_places._size(be.struct("hypervisor.core.vm", "Vcpu")), 64)
        # a vCPU of the MVM (VMS[0]), as vcpu_add makes it: its VM's index and address
        View(be, be.struct("hypervisor.core.vm", "Vcpu"), self.vcpu).set(
            "vm_addr", be.global_addr("hypervisor.core.vm.VMS")
        )
        # and the VM's controller state, as irqc_vm_init sets it with the window (vaplic_emul's read finds it there)
        View(be, be.struct("hypervisor.core.vm", "Vm"), be.global_addr("hypervisor.core.vm.VMS")).set(
            "irqc_regs", self.addr
        )
        if self.emul:
            emul = be.mods["hypervisor.core.emul"]
            self.done, self.fault = int(emul.EMUL_DONE), int(emul.EMUL_FAULT)
            self.word_fault = int(emul.EMUL_WORD_FAULT)
        self.regions = [Region(n, a, s) for n, (a, s) in be.statics.items()]
        self.regions.append(Region("vcpu", self.vcpu, prelude_places._size(be.struct("hypervisor.core.vm", "Vcpu"))))
        self.regions.append(Region("value", self.value, 8))
        if isinstance(be, CPythonBackend):
            be.known = [(r.addr, r.size) for r in self.regions]
        self.initial = None

    def restore(self, rng_seed: int = 0) -> None:
        prelude.mock.reset()
        self.dev = AplicDevice()
        prelude.mock.map_mmio(self.base, 0x8000, self.dev.read, self.dev.write)
        if self.initial is None:
            self.be.call("aplic_init" if self.emul else "vaplic_init_physical")
            for s in self.OWNED:
                self.be.call("vaplic_own", s)
            self.initial = snapshot(self.be, self.regions)
        restore_regions(self.be, self.regions, self.initial)
        self.dev.log.clear()

    def alive(self) -> bool:
        return True

    def state(self) -> dict:
        p = self.p
        return {
            "domaincfg": p.get("domaincfg"),
            "sourcecfg": p.words("sourcecfg", APLIC_SOURCES),
            "target": p.words("target", APLIC_SOURCES),
            "enabled": bits(p.words("enabled", 3)),
            "owned": bits(p.words("owned", 3)),
        }

    def physical_target(self, guest: int) -> int:
        vcpu = guest >> 18
        hart = self.harts[vcpu if vcpu < len(self.harts) else 0]
        return (hart << 18) | (1 << 12) | (guest & 0x7FF)

    def expect(self, st: dict, op: tuple) -> tuple[int, list]:
        """AIA 1.0 chapter 4 for an S-level domain in MSI mode, as the guest sees it, and the physical writes it
        must cause: only for the VM's own sources, each target rewritten to the vCPU's hart and guest file 1."""
        kind, off, width = op[:3]
        owned = st["owned"]
        phys: list = []
        if width != 4 or off % 4 or off >= 0x4000:
            return 0, phys
        if kind == "read":
            if off == 0:
                return st["domaincfg"] | 0x8000_0000, phys
            if 0x4 <= off < 0x4 + 4 * 95:
                return st["sourcecfg"][(off - 4) // 4 + 1], phys
            if 0x3004 <= off < 0x3004 + 4 * 95:
                return st["target"][(off - 0x3004) // 4 + 1], phys
            if 0x1E00 <= off < 0x1E0C:
                w = (off - 0x1E00) // 4
                return sum(1 << (s & 31) for s in st["enabled"] if s >> 5 == w), phys
            if 0x1C00 <= off < 0x1C0C or 0x1D00 <= off < 0x1D0C:
                return None, phys  # setip / in_clrip: the physical APLIC's, masked to the owned sources
            return 0, phys  # msiaddrcfg (root domain only), genmsi, reserved
        v = op[3] & 0xFFFF_FFFF

        def enable(s, on):
            if 0 < s < APLIC_SOURCES:
                (st["enabled"].add if on else st["enabled"].discard)(s)
                if s in owned:
                    phys.append((0x1EDC if on else 0x1FDC, s))

        if off == 0:
            st["domaincfg"] = v & 0x104
        elif 0x4 <= off < 0x4 + 4 * 95:
            s = (off - 4) // 4 + 1
            sm = v & 7
            sm = 0 if sm in (2, 3) else sm
            if sm == st["sourcecfg"][s]:
                return 0, phys  # the value it holds, the physical one's too: nothing written anywhere
            st["sourcecfg"][s] = sm
            if s in owned:
                phys.append((off, st["sourcecfg"][s]))
                if st["sourcecfg"][s]:
                    phys.append((0x3004 + 4 * (s - 1), self.physical_target(st["target"][s])))
        elif 0x3004 <= off < 0x3004 + 4 * 95:
            s = (off - 0x3004) // 4 + 1
            st["target"][s] = v
            if s in owned:
                phys.append((off, self.physical_target(v)))
        elif off == 0x1EDC:
            enable(v, True)
        elif off == 0x1FDC:
            enable(v, False)
        elif 0x1E00 <= off < 0x1E0C or 0x1F00 <= off < 0x1F0C:
            for b in range(32):
                if v >> b & 1:
                    enable((off & 0xFF) // 4 * 32 + b, off < 0x1F00)
        elif off in (0x1CDC, 0x1DDC, 0x2000):
            if v in owned:
                phys.append((off, v))
        elif off == 0x2004:
            s = int.from_bytes(v.to_bytes(4, "little"), "big")
            if s in owned:
                phys.append((0x2000, s))
        return 0, phys

    def run(self, op: tuple) -> None:
        be = self.be
        st = self.state()
        want, want_phys = self.expect(st, op)
        self.dev.log.clear()
        be.begin_case(self.regions)
        legal = op[2] == 4 and op[1] % 4 == 0 and op[1] < 0x4000  # AIA 4.5: 32-bit registers, MSI-mode domain
        try:
            got = 0
            if self.emul and op[2] == 4 and (op[1] ^ (op[3] if op[0] == "write" else 0)) & 8:
                # an LW or SW: the window's word handlers (core/vm.py EmulMem), as mmio.py calls them
                if op[0] == "read":
                    r = be.call("vaplic_read32", self.vcpu, 0, op[1])
                    if not legal:
                        if r != self.word_fault:
                            fail("access", f"a refused LW at {op[1]:#x} answered {r:#x}")
                    elif r != ((r & 0xFFFF_FFFF) ^ 0x8000_0000) - 0x8000_0000 & U64:
                        fail("access", f"an LW at {op[1]:#x} answered {r:#x}, not sign-extended")
                    else:
                        got = r & 0xFFFF_FFFF
                else:
                    r = be.call("vaplic_write32", self.vcpu, 0, op[1], op[3])
                    if r != (self.done if legal else self.fault):
                        fail("access", f"an SW at {op[1]:#x} answered {r}")
            elif self.emul:
                marker = 0x5A5A_5A5A_5A5A_5A5A
                be.write(self.value, (op[3] if op[0] == "write" else marker).to_bytes(8, "little"))
                r = be.call("vaplic_emul", self.vcpu, op[1], op[2], op[0] == "write", self.value)
                after = int.from_bytes(be.read(self.value, 8), "little")
                if r != (self.done if legal else self.fault):
                    fail("access", f"a {op[2]}-byte access at {op[1]:#x} answered {r}")
                if op[0] == "read":
                    got = after if legal else 0
                    if not legal and after != marker:
                        fail("access", f"a refused load at {op[1]:#x} still gave a value")
                elif after != op[3]:
                    fail("memory", "a store's operand changed")
            elif be.call("vaplic_access_ok", op[1], op[2]):  # mmio.py: refused accesses never reach the model
                if op[0] == "read":
                    got = be.call("vaplic_read", op[1])
                else:
                    be.call("vaplic_write", op[1], op[3])
            elif legal:
                fail("access", f"a 4-byte aligned access at {op[1]:#x} refused")
        except FuzzFailure:
            raise
        except BaseException as e:  # noqa: BLE001
            fail("exception", f"{type(e).__name__}: {e}")
        finally:
            changed = be.end_case(self.regions)
        if isinstance(be, CPythonBackend) and be.stray:
            fail("memory", f"writes outside the hypervisor's statics: {[(hex(a), n) for a, n in be.stray[:4]]}")
        if changed - {"hypervisor.core.vaplic.vaplic_main", "hypervisor.core.vaplic.vaplic_spin", "value"}:
            fail("memory", f"changed {sorted(changed)}")
        if be.read(be.global_addr("hypervisor.core.vaplic.vaplic_spin"), 8)[:4] != be.read(
            be.global_addr("hypervisor.core.vaplic.vaplic_spin") + 4, 4
        ):
            fail("lock", "the virtual APLIC's lock is held after the access")
        phys = [(e[1], e[3]) for e in self.dev.log if e[0] == "w"]
        self.obs = (got, phys)
        for e in self.dev.log:
            if e[2] != 4 or e[1] % 4:
                fail("physical", f"a {e[2]}-byte access at {e[1]:#x} of the physical APLIC")
            if e[0] == "r" and not (0x1C00 <= e[1] < 0x1C0C or 0x1D00 <= e[1] < 0x1D0C):
                fail("physical", f"a read of the physical APLIC at {e[1]:#x}")
        if phys != want_phys:
            fail(
                "physical",
                f"physical APLIC writes {[(hex(a), hex(b)) for a, b in phys]}, expected "
                f"{[(hex(a), hex(b)) for a, b in want_phys]}",
            )
        for off, v in phys:
            if 0x3004 <= off < 0x3180 and (v >> 18 not in self.harts or (v >> 12) & 0x3F != 1):
                fail("physical", f"target {v:#x}: not a hart of the VM and its guest file")
            if 0x4 <= off < 0x180 and v not in (0, 1, 4, 5, 6, 7):
                fail("physical", f"sourcecfg {v:#x} (delegation or a reserved mode)")
        if op[0] == "read":
            if want is None:
                w = (op[1] & 0xFF) // 4
                mask = sum(1 << (s & 31) for s in st["owned"] if s >> 5 == w)
                if got & ~mask:
                    fail("read", f"setip/in_clrip {got:#x} shows sources the VM does not own")
            elif got != want:
                fail("read", f"read {op[1]:#x} gave {got:#x}, expected {want:#x}")
        now = self.state()
        if now != st:
            keys = [k for k in st if st[k] != now[k]]
            fail("model", f"{keys} differ from AIA 1.0: {[(now[k], st[k]) for k in keys][:1]}")
        if now["sourcecfg"][0] or now["target"][0] or 0 in now["enabled"]:
            fail("state", "source 0 configured")

    def end_episode(self) -> None:
        pass


# ---------------------------------------------------------------------------------------------------------------
# Target: the MMIO instruction decoder, against the Unprivileged spec's encodings


def ref_decode(htinst: int, insn: int):
    """(is_store, width, sign_extend, reg, insn_len) of an integer load/store, or None (Unprivileged spec 2.6, 16.3;
    Privileged spec 18.6.3 for the transformed htinst)."""

    def d32(x, length):
        op, f3 = x & 0x7F, (x >> 12) & 7
        if op == 0x03 and f3 != 7:
            return (False, 1 << (f3 & 3), f3 < 3, (x >> 7) & 31, length)
        if op == 0x23 and f3 < 4:
            return (True, 1 << f3, False, (x >> 20) & 31, length)
        return None

    if htinst:
        if not htinst & 1:
            return None  # a pseudoinstruction or a custom value
        return d32((htinst & 0xFFFF_FFFF) | 2, 4 if htinst & 2 else 2)
    if insn & 3 != 3:
        c = insn & 0xFFFF
        q, f3 = c & 3, c >> 13
        if q == 0:
            r = ((c >> 2) & 7) + 8
            return {
                2: (False, 4, True, r, 2),
                3: (False, 8, False, r, 2),
                6: (True, 4, False, r, 2),
                7: (True, 8, False, r, 2),
            }.get(f3)
        if q == 2:
            rd, rs2 = (c >> 7) & 31, (c >> 2) & 31
            if f3 in (2, 3):
                return (False, 4 if f3 == 2 else 8, f3 == 2, rd, 2) if rd else None
            if f3 in (6, 7):
                return (True, 4 if f3 == 6 else 8, False, rs2, 2)
        return None
    if insn & 0x1C == 0x1C:
        return None
    return d32(insn & 0xFFFF_FFFF, 4)


def decode_op(rng: random.Random) -> tuple:
    k = rng.random()
    if k < 0.25:
        insn = rng.getrandbits(16)
    elif k < 0.5:
        insn = rng.getrandbits(32)
    elif k < 0.7:  # loads and stores
        insn = (rng.getrandbits(25) << 7) | rng.choice((0x03, 0x23, 0x07, 0x27, 0x2F))
    elif k < 0.85:  # compressed quadrants 0 and 2
        insn = (rng.getrandbits(14) << 2) | rng.choice((0, 2))
    else:
        insn = rng.getrandbits(64)
    k = rng.random()
    if k < 0.5:
        htinst = 0
    elif k < 0.8:  # a transformed load/store: imm and rs1 zeroed, bit 1 clear for a compressed one
        f3 = rng.randrange(8)
        if rng.random() < 0.5:
            t = (rng.randrange(32) << 7) | (f3 << 12) | 0x03
        else:
            t = (rng.randrange(32) << 20) | (f3 << 12) | 0x23
        if rng.random() < 0.3:
            t &= ~2
        htinst = t | (rng.getrandbits(5) << 15 if rng.random() < 0.2 else 0)
    elif k < 0.9:
        htinst = rng.choice((0x2000, 0x3000, 0x2020, 0x3020))  # implicit VS-stage walk (Priv table 18.7)
    else:
        htinst = value(rng)
    return (htinst, insn, rng.getrandbits(64))


class DecodeWorld:
    GUARD = 64

    def __init__(self, be: Backend) -> None:
        self.be = be
        self.T = be.struct("hypervisor.arch.riscv.mmio_decode", "MmioAccess")
        self.size = prelude_places._size(self.T)
        base = be.alloc(self.size + 2 * self.GUARD, 64)
        self.guard_lo, self.addr = base, base + self.GUARD
        self.out = View(be, self.T, self.addr)
        if isinstance(be, CPythonBackend):
            be.known = [(base, self.size + 2 * self.GUARD)]

    def restore(self, rng_seed: int = 0) -> None:
        self.be.write(self.guard_lo, bytes([0x5A]) * (self.size + 2 * self.GUARD))

    def alive(self) -> bool:
        return True

    def run(self, op: tuple) -> None:
        htinst, insn, raw = op
        be = self.be
        be.write(self.addr, bytes([0xAA]) * self.size)
        be.begin_case([])
        try:
            ok = be.call("mmio_decode", htinst, insn, self.addr)
            got = None
            if ok:
                o = self.out
                got = (
                    o.get("is_store") == 1,
                    o.get("width"),
                    o.get("sign_extend") == 1,
                    o.get("reg"),
                    o.get("insn_len"),
                )
                load = be.call("mmio_load_value", self.addr, raw)
                store = be.call("mmio_store_value", self.addr, raw)
            length = be.call("mmio_insn_len", insn & 0xFFFF)
        except FuzzFailure:
            raise
        except BaseException as e:  # noqa: BLE001
            fail("exception", f"{type(e).__name__}: {e}")
        finally:
            be.end_case([])
        if isinstance(be, CPythonBackend) and be.stray:
            fail("memory", f"writes outside the MmioAccess: {[(hex(a), n) for a, n in be.stray[:4]]}")
        guard = bytes([0x5A]) * self.GUARD
        if be.read(self.guard_lo, self.GUARD) != guard or be.read(self.addr + self.size, self.GUARD) != guard:
            fail("memory", "a write outside the MmioAccess (its guard bytes changed)")
        if length != (4 if insn & 3 == 3 else 2):
            fail("insn_len", f"mmio_insn_len({insn & 0xFFFF:#x}) = {length}")
        if got is not None:
            is_store, width, sign, reg, ilen = got
            if width not in (1, 2, 4, 8) or reg >= 32 or ilen not in (2, 4) or (sign and (is_store or width == 8)):
                fail("range", f"decoded {got}")
            bits_ = 8 * width
            v = raw & ((1 << bits_) - 1)
            want_load = (v - (1 << bits_) if sign and v >> (bits_ - 1) else v) & U64
            if load != want_load or store != v:
                fail("value", f"load {load:#x} store {store:#x} of {raw:#x}, expected {want_load:#x} {v:#x}")
        want = ref_decode(htinst, insn)
        self.obs = (got, load, store) if got is not None else None
        if got != want:
            fail("model", f"decoded {got}, the spec's encoding says {want}")

    def end_episode(self) -> None:
        pass


# ---------------------------------------------------------------------------------------------------------------
# Target: the trap path's MMIO emulation (mmio_emulate: decode, the VM's emulated regions, the register write-back)


class PlicDevice(AplicDevice):
    """The physical PLIC: a register file that records every access (its claim registers read 0)."""


def mmio_op(rng: random.Random) -> tuple:
    """(vCPU, window, offset, htinst, insn, the page of the instruction gone, register seed): the guest's access
    in its PLIC window, its statistics page, or next to them, by any instruction."""
    window = rng.choice(("plic", "plic", "stats", "stats", "none"))
    if window == "plic":
        off = plic_offset(rng)
    elif window == "stats":
        off = rng.choice((rng.randrange(0x1000), 8 * rng.randrange(0x200), 0x800, 0x808, 0x810 + 8 * rng.randrange(9)))
    else:
        off = rng.choice((-8, -1, 0x600_0000, 0x1000, 0x1_0000)) if rng.random() < 0.8 else value(rng)
    htinst, insn, _ = decode_op(rng)
    if rng.random() < 0.5:  # often a real load or store, so the devices are reached
        htinst = 0
        f3 = rng.choice((0, 1, 2, 3, 2, 2, 4, 5, 6))
        if rng.random() < 0.5:
            insn = (rng.randrange(32) << 7) | (f3 << 12) | (rng.randrange(32) << 15) | 0x03
        else:
            insn = (rng.randrange(32) << 20) | (min(f3, 3) << 12) | (rng.randrange(32) << 15) | 0x23
    return (rng.randrange(2), window, off & U64, htinst, insn, rng.random() < 0.03, rng.getrandbits(32))


class MmioWorld:
    """The management VM (PLIC build) with two vCPUs, its virtual PLIC window (irqc_vm_init) and statistics page
    (stats_attach) registered, physical source 10 routed to it; a guest-page fault's access goes to mmio_emulate
    with htinst in the CSR and the instruction readable through the mock of runtime/trap.S hyp_guest_fetch_insn."""

    def __init__(self, be: Backend) -> None:
        self.be = be
        b = be.board
        vm_mod, emul = be.mods["hypervisor.core.vm"], be.mods["hypervisor.core.emul"]
        self.Vcpu = vm_mod.Vcpu
        self.vcpu_size = prelude_places._size(self.Vcpu)
        self.none, self.done, self.fault = int(emul.EMUL_NONE), int(emul.EMUL_DONE), int(emul.EMUL_FAULT)
        self.kept = int(emul.EMUL_KEPT)
        self.load_kept = int(vm_mod.REGS_LOAD_KEPT)
        self.kept_regs = int(be.mods["hypervisor.arch.riscv.mmio"].REGS_KEPT)
        self.plic_base, self.plic_size = int(b.MVM_PLIC_BASE), int(b.MVM_PLIC_SIZE)
        self.stats_base, self.stats_size = int(b.MVM_STATS_BASE), int(b.MVM_STATS_SIZE)
        self.fetch_only = int(b.MMIO_DECODE_FETCH) != 0
        self.phys_plic = int(b.PLIC_BASE)
        self.dev = PlicDevice()
        prelude.mock.reset()
        prelude.mock.map_mmio(self.phys_plic, int(b.PLIC_SIZE), self.dev.read, self.dev.write)
        prelude.mock.sbi_handler = lambda *a: (0, 0)
        self.stacks_size = int(b.MAX_HARTS * b.HART_STACK_SIZE)
        self.stacks = be.extern_addr(STACKS)
        be.write(self.stacks, int(b.HART_STACK_PAINT).to_bytes(8, "little") * (self.stacks_size // 8))
        self.pool = be.alloc(0x10_0000, 0x4000)
        assert be.call("frame_alloc_init", self.pool, 0x10_0000)
        self.ram = be.alloc(VM_RAM)
        vm = be.call("vm_setup", 0, MVM_GPA, self.ram, VM_RAM, False)
        be.call("vm_mark_mvm")
        self.vcpus = [be.call("vcpu_add", vm, h, True) for h in (0, 1)]
        assert vm and all(self.vcpus)
        assert be.call("irqc_vm_init", vm, self.plic_base) and be.call("stats_attach", vm)
        be.call("virq_route", vm, 10, 0)
        be.call("vm_mark_created")
        self.vcpus_addr = be.global_addr("hypervisor.core.vm.VCPUS")
        self.regions = []
        for name, (addr, size) in be.statics.items():
            elem = self.vcpu_size if name == "hypervisor.core.vm.VCPUS" else 0
            if size > BIG:
                self.regions.append(Region(name, addr, BIG, elem))
                self.regions.append(Region(f"{name} (beyond)", addr + BIG, size - BIG, per_case=False))
            else:
                self.regions.append(Region(name, addr, size, elem))
        self.regions += [
            Region("ram", self.ram, VM_RAM),
            Region("pool", self.pool, 0x10_0000, per_case=False),
            Region("stacks", self.stacks, self.stacks_size, per_case=False),
        ]
        if isinstance(be, CPythonBackend):
            be.known = [(r.addr, r.size) for r in self.regions]
        self.initial = snapshot(be, self.regions, all_=True)
        self.initial_csr = dict(prelude.mock.csr)
        self.dev.log.clear()
        self.stats: collections.Counter = collections.Counter()

    def restore(self, rng_seed: int = 0) -> None:
        restore_regions(self.be, self.regions, self.initial)
        self.be.set_scalars({k: v for k, v in self.initial.items() if not isinstance(v, bytes)})
        prelude.mock.csr.clear()
        prelude.mock.csr.update(self.initial_csr)
        self.dev.log.clear()

    def alive(self) -> bool:
        return True

    def end_episode(self) -> None:
        now = snapshot(self.be, self.regions, all_=True)
        for r in self.regions:
            if not r.per_case and now[r.name] != self.initial[r.name]:
                fail("memory", f"{r.name} changed")

    def run(self, op: tuple) -> None:
        pick, window, off, htinst, insn, gone, seed = op
        be = self.be
        i = pick
        v = View(be, self.Vcpu, self.vcpus[i])
        base = {"plic": self.plic_base, "stats": self.stats_base, "none": self.plic_base}[window]
        gpa = (base + off) & U64
        rnd = random.Random(seed)
        for r in range(1, 32):
            v.set("regs", rnd.getrandbits(64), r)
        sepc = MVM_GPA + 4 * rnd.randrange(64)
        v.set("sepc", sepc)
        # runtime/trap.S saved the kept registers (gp, tp, s1..s11) in this trap, or not yet
        saved = rnd.randrange(2)
        v.set("kept_saved", saved)
        v.set("regs_written", 0)
        regs = v.words("regs", 32)
        prelude.mock.csr[CSR_HTINST] = htinst
        # the trap's CSRs (Priv 9.4.4): the guest-physical address is htval << 2 | stval[1:0]
        prelude.mock.csr[CSR_HTVAL] = gpa >> 2
        prelude.mock.csr[CSR_STVAL] = (0xFFFF_FFC0_0000_0000 | rnd.getrandbits(32)) & ~3 | gpa & 3

        def fetch(gva):  # runtime/trap.S's read of the instruction at sepc (~0: its page is gone): 32 bits at a
            if gone or int(gva) != sepc:  # 4-byte-aligned address, so a 16-bit one comes with what follows it
                return U64
            return insn & 0xFFFF_FFFF if int(gva) % 4 == 0 else insn & 0xFFFF if insn & 3 != 3 else insn & 0xFFFF_FFFF

        prelude.mock.externs["hyp_guest_fetch_insn"] = fetch
        self.dev.log.clear()
        be.begin_case(self.regions)
        try:
            r = be.call("mmio_emulate", v.addr)
        except FuzzFailure:
            raise
        except Hang as e:
            fail("hang", str(e))
        except BaseException as e:  # noqa: BLE001
            fail("exception", f"{type(e).__name__}: {e}")
        finally:
            changed = be.end_case(self.regions)
        if isinstance(be, CPythonBackend) and be.stray:
            fail("memory", f"writes outside every known region: {[(hex(a), n) for a, n in be.stray[:4]]}")
        # what the guest should see: the region, the decoded access, the device's rule for it
        ht = 0 if self.fetch_only else htinst
        fetched = 0
        if ht & 1 == 0 and not gone:
            fetched = insn & 0xFFFF if insn & 3 != 3 else insn & 0xFFFF_FFFF
        acc = ref_decode(ht, fetched)
        in_plic = self.plic_base <= gpa < self.plic_base + self.plic_size
        in_stats = self.stats_base <= gpa < self.stats_base + self.stats_size
        # the instruction's page gone while it was read back: nothing performed, the guest takes it again
        retry = ht == 0 and gone
        if retry and self.fetch_only:
            want = self.done  # a fetch build reads the instruction first, before it looks for the region
        elif not (in_plic or in_stats):
            want = self.none
        elif retry:
            want = self.done
        elif acc is None:
            want = self.fault
        elif acc[0] and (1 << acc[3]) & self.kept_regs and not saved:
            want = self.kept  # a store, not performed: trap.S saves them and takes the trap again
        elif in_plic:
            o = gpa - self.plic_base
            want = self.done if acc[1] == 4 and o % 4 == 0 and o < 0x400_0000 else self.fault
        else:
            want = self.done if (gpa - self.stats_base) % acc[1] == 0 else self.fault
        self.obs = (r, v.get("sepc"), tuple(v.words("regs", 32)))
        done = "retry" if retry else "done"
        kind = {self.none: "none", self.done: done, self.fault: "fault", self.kept: "kept"}.get(r, r)
        self.stats[f"{window}: {kind}{'' if acc is None or kind != 'done' else ' store' if acc[0] else ' load'}"] += 1
        if r != want:
            fail("result", f"mmio_emulate gave {r} for {acc} at {gpa:#x}, expected {want}")
        now = v.words("regs", 32)
        moved = [k for k in range(32) if now[k] != regs[k]]
        if r == self.done and retry:
            if moved or v.get("sepc") != sepc or v.get("regs_written") != 0:
                fail("registers", f"x{moved}, sepc or regs_written changed when the instruction could not be read")
        elif r == self.done:
            is_store, width, sign, reg, ilen = acc
            if v.get("sepc") != sepc + ilen:
                fail("sepc", f"sepc {v.get('sepc'):#x} after a {ilen}-byte instruction at {sepc:#x}")
            # a load into a kept register leaves its value to trap.S (REGS_LOAD_KEPT: it saves them, then writes
            # mmio_value over rd); any other load writes rd; nothing else needs more than the short way back
            kept = not is_store and reg and (1 << reg) & self.kept_regs
            written = v.get("regs_written")
            if written != (self.load_kept if kept else 0):
                fail("registers", f"regs_written {written} after a {'store' if is_store else 'load'} of x{reg}")
            if moved and (is_store or kept or moved != [reg] or reg == 0):
                fail("registers", f"x{moved} changed by a {'store' if is_store else 'load'} into x{reg}")
            got = v.get("mmio_value") if kept else now[reg]
            if not is_store and reg and sign and width < 8:
                top = got >> (8 * width - 1)
                if top not in (0, (1 << (64 - 8 * width + 1)) - 1):
                    fail("registers", f"x{reg} = {got:#x}: not a sign-extended {width}-byte value")
            if not is_store and reg and not sign and width < 8 and got >> (8 * width):
                fail("registers", f"x{reg} = {got:#x}: not a zero-extended {width}-byte value")
        elif moved or v.get("sepc") != sepc:
            fail("registers", f"x{moved} or sepc changed by an access that was not performed")
        allowed = {f"hypervisor.core.vm.VCPUS[{k}]" for k in (0, 1)} | {"hypervisor.core.virq.vplic_main"}
        allowed |= {n for n in be.statics if be.is_lock(n)} | LOG_RING
        if changed - allowed:
            fail("memory", f"changed {sorted(changed - allowed)}")
        for name, (addr, size) in be.statics.items():
            if be.is_lock(name) and not released(be.read(addr, size)):
                fail("lock", f"{name} still held")
        for e in self.dev.log:  # the physical PLIC: only completions of the VM's own source 10
            if e[0] == "w" and not (e[1] & 0xFFF == 4 and e[1] >= 0x20_0000 and e[3] == 10):
                fail("physical", f"a write of {e[3]:#x} at {e[1]:#x} of the physical PLIC")


# ---------------------------------------------------------------------------------------------------------------
# virtio: the MVM's virtio-console on its virtio-mmio transport, driven by a malicious driver

VIO_QUEUES = (0, 1, 2, 3, 18, 19)  # port 0 receive/transmit, control receive/transmit, port 8 receive/transmit
VIO_RINGS = 0x800  # RAM offset of the queues' areas: 0x300 bytes each (descriptors, available, used)
VIO_BUFS = 0x4000  # RAM offset of the driver's buffers
VIO_REGS = (
    0x0,
    0x4,
    0x8,
    0xC,
    0x10,
    0x14,
    0x20,
    0x24,
    0x30,
    0x34,
    0x38,
    0x44,
    0x50,
    0x60,
    0x64,
    0x70,
    0x80,
    0x84,
    0x90,
    0x94,
    0xA0,
    0xA4,
    0xAC,
    0xB0,
    0xB8,
    0xC0,
    0xFC,
    0x100,
    0x102,
    0x104,
    0x108,
    0x10A,
    0x10C,
)


def vio_area(q: int) -> int:
    return MVM_GPA + VIO_RINGS + 0x300 * VIO_QUEUES.index(q)


def virtio_op(rng: random.Random) -> tuple:
    """One driver action: a register access, the whole initialisation, a descriptor, an available-ring entry, a
    notify, a control message, receive buffers, bytes from the hypervisor's side, or an idle vCPU."""
    kind = rng.choices(
        ("reg", "init", "desc", "offer", "notify", "msg", "rx", "tx", "hyp", "idle"),
        (16, 4, 14, 8, 10, 8, 8, 20, 6, 4),
    )[0]
    q = rng.choice(VIO_QUEUES)
    if kind == "reg":
        off = rng.choice(VIO_REGS) if rng.random() < 0.85 else rng.randrange(0x1100)
        width = rng.choice((4, 4, 4, 1, 2, 8))
        return (kind, off, width, rng.random() < 0.6, rng.choice((0, 1, 2, 3, 8, 15, 18, 19, rng.getrandbits(32))))
    if kind == "init":  # features: sometimes without VERSION_1 or with bits not offered; queues sometimes bad
        feats = rng.choice(((1 << 32) | 2, (1 << 32) | 2, 2, (1 << 32) | 0x20, (1 << 32)))
        return (kind, feats, rng.choice((8, 8, 8, 4, 6, 512)), rng.random() < 0.1, rng.randrange(len(VIO_QUEUES)))
    if kind == "desc":
        addr, length = vio_buffer(rng)
        return (kind, q, rng.randrange(10), addr, length, rng.randrange(8), rng.randrange(10))
    if kind == "tx":  # a chain of 1..3 descriptors offered and notified on a transmitq (mostly sound ones)
        chain = []
        for _ in range(rng.randrange(1, 4)):
            addr, length = vio_buffer(rng)
            flags = rng.choice((0, 0, 0, 2, 4, rng.randrange(8)))
            chain.append((addr, length, flags, rng.choice((None, None, rng.randrange(10)))))
        return (kind, rng.choice((1, 19, 19)), tuple(chain))
    if kind == "offer":
        return (kind, q, rng.randrange(10), rng.choice((1, 1, 1, 2, 9, 0xFFFF, rng.getrandbits(16))))
    if kind == "notify":
        return (kind, q if rng.random() < 0.9 else rng.randrange(64))
    if kind == "msg":  # DEVICE_READY, PORT_READY, PORT_OPEN (mostly for real ports), or anything
        event = rng.choice((0, 3, 3, 6, 6, rng.randrange(16)))
        return (kind, rng.choice((0, 8, 8, rng.randrange(12))), event, rng.choice((1, 1, 0, rng.getrandbits(16))))
    if kind == "rx":
        return (kind, rng.choice((0, 2, 18)), rng.randrange(1, 5), rng.choice((8, 64, 256, 4096)))
    if kind == "hyp":
        frame = struct_frame(rng)
        return (kind, rng.choice((0, 1, 8)), frame)
    return (kind,)


def vio_buffer(rng: random.Random) -> tuple[int, int]:
    """A descriptor's buffer: mostly inside the VM's RAM, else across its end, below it, just after it, or
    anywhere; any length."""
    where = rng.choice(("in", "in", "in", "in", "edge", "below", "after", "any"))
    addr = {
        "in": MVM_GPA + VIO_BUFS + rng.randrange(0x8000),
        "edge": MVM_GPA + VM_RAM - rng.randrange(1, 64),
        "below": MVM_GPA - rng.randrange(1, 64),
        "after": MVM_GPA + VM_RAM + rng.randrange(64),
        "any": rng.getrandbits(64),
    }[where]
    if where == "in":
        return addr, rng.choice((0, 1, 8, 24, 64, 300, 4096))
    return addr, rng.choice((1, 8, 64, 300, 4096, 0xFFFF_FFFF, rng.getrandbits(32)))


def struct_frame(rng: random.Random) -> bytes:
    """Bytes the control port's reader might see: a frame header of an unknown type, garbage, or both."""
    import struct as st

    hdr = st.pack(
        "<IHHIIII",
        0x59485350,
        rng.choice((1, 1, 2)),
        rng.randrange(1 << 16),
        rng.getrandbits(32),
        0,
        rng.choice((0, 0, 4, 70000)),
        rng.choice((0, 0, 1)),
    )
    junk = bytes(rng.getrandbits(8) for _ in range(rng.randrange(8)))
    return rng.choice((hdr, junk + hdr, junk, hdr[: rng.randrange(24)]))


class VirtioWorld:
    """The management VM (PLIC build) with two vCPUs, its virtual PLIC and its virtio-console (vcon_attach_mvm at
    the board's address and source); 64 KiB of guest RAM followed by a decoy page that no access may touch.
    Every case is guest accesses to the console's window through its emulated-MMIO handler (vcon_emul), the guest
    writing its own RAM (descriptors, rings, buffers) between them, or the hypervisor's end of a port."""

    def __init__(self, be: Backend) -> None:
        import struct as st

        self.st = st
        self.be = be
        b = be.board
        emul = be.mods["hypervisor.core.emul"]
        self.done, self.fault = int(emul.EMUL_DONE), int(emul.EMUL_FAULT)
        self.base, self.irq = int(b.MVM_VCON_BASE), int(b.MVM_VCON_IRQ)
        self.dev = PlicDevice()
        prelude.mock.reset()
        prelude.mock.map_mmio(int(b.PLIC_BASE), int(b.PLIC_SIZE), self.dev.read, self.dev.write)
        prelude.mock.sbi_handler = lambda *a: (0, 0)
        self.stacks_size = int(b.MAX_HARTS * b.HART_STACK_SIZE)
        self.stacks = be.extern_addr(STACKS)
        be.write(self.stacks, int(b.HART_STACK_PAINT).to_bytes(8, "little") * (self.stacks_size // 8))
        self.pool = be.alloc(0x10_0000, 0x4000)
        assert be.call("frame_alloc_init", self.pool, 0x10_0000)
        self.ram = be.alloc(VM_RAM + 0x1000)
        self.decoy = self.ram + VM_RAM
        be.write(self.decoy, b"\xd5" * 0x1000)
        vm = be.call("vm_setup", 0, MVM_GPA, self.ram, VM_RAM, False)
        be.call("vm_mark_mvm")
        self.vcpus = [be.call("vcpu_add", vm, h, True) for h in (0, 1)]
        assert vm and all(self.vcpus)
        assert be.call("irqc_vm_init", vm, int(b.MVM_PLIC_BASE))
        assert be.call("vcon_attach_mvm", vm, self.base, self.irq)
        be.call("vm_mark_created")
        self.value = be.alloc(8, 8)
        self.data = be.alloc(0x100, 8)
        self.regions = []
        for name, (addr, size) in be.statics.items():
            if size > BIG:
                self.regions.append(Region(name, addr, BIG))
                self.regions.append(Region(f"{name} (beyond)", addr + BIG, size - BIG, per_case=False))
            else:
                self.regions.append(Region(name, addr, size))
        self.regions += [
            Region("ram", self.ram, VM_RAM),
            Region("decoy", self.decoy, 0x1000),
            Region("value", self.value, 8),
            Region("data", self.data, 0x100),
            Region("pool", self.pool, 0x10_0000, per_case=False),
            Region("stacks", self.stacks, self.stacks_size, per_case=False),
        ]
        if isinstance(be, CPythonBackend):
            be.known = [(r.addr, r.size) for r in self.regions if r.name != "decoy"]
        self.initial = snapshot(be, self.regions, all_=True)
        self.stats: collections.Counter = collections.Counter()

    def restore(self, rng_seed: int = 0) -> None:
        restore_regions(self.be, self.regions, self.initial)
        self.be.set_scalars({k: v for k, v in self.initial.items() if not isinstance(v, bytes)})
        self.avail = dict.fromkeys(VIO_QUEUES, 0)

    def alive(self) -> bool:
        return True

    def end_episode(self) -> None:
        pass

    def guest_write(self, gpa: int, data: bytes) -> None:
        self.be.write(self.ram + (gpa - MVM_GPA), data)

    def reg(self, off: int, width: int, store: bool, value: int = 0) -> tuple[int, int]:
        self.be.write(self.value, (value & U64).to_bytes(8, "little"))
        r = self.be.call("vcon_emul", self.vcpus[0], off, width, store, self.value)
        got = int.from_bytes(self.be.read(self.value, 8), "little")
        if r not in (self.done, self.fault):
            fail("result", f"vcon_emul gave {r} at {off:#x} width {width}")
        if (width not in (1, 2, 4) or off >= 0x1000 or off % width) and r != self.fault:
            fail("result", f"an access of width {width} at {off:#x} was performed")
        if off < 0x100 and width != 4 and r != self.fault:
            fail("result", f"a {width}-byte access to register {off:#x} was performed")
        self.stats[f"reg: {'done' if r == self.done else 'fault'}"] += 1
        return r, got

    def offer(self, q: int, head: int, step: int) -> None:
        area = vio_area(q)
        slot = self.avail[q] % 8
        self.guest_write(area + 0x100 + 4 + 2 * slot, self.st.pack("<H", head))
        self.avail[q] = (self.avail[q] + step) & 0xFFFF
        self.guest_write(area + 0x100 + 2, self.st.pack("<H", self.avail[q]))

    def act(self, op: tuple) -> tuple:
        kind = op[0]
        st = self.st
        if kind == "reg":
            _, off, width, store, value = op
            return self.reg(off, width, store, value)
        if kind == "init":
            _, feats, num, bad_addr, bad_q = op
            out = [self.reg(0x70, 4, True, 0), self.reg(0x70, 4, True, 3)]
            for sel in (0, 1):
                self.reg(0x24, 4, True, sel)
                self.reg(0x20, 4, True, (feats >> (32 * sel)) & 0xFFFF_FFFF)
            self.reg(0x70, 4, True, 11)
            for i, q in enumerate(VIO_QUEUES):
                area = vio_area(q) + (0x7FFF_0000 if bad_addr and i == bad_q else 0)
                self.guest_write(vio_area(q), bytes(0x300))
                self.avail[q] = 0
                self.reg(0x30, 4, True, q)
                self.reg(0x38, 4, True, num)
                for off, a in ((0x80, area), (0x90, area + 0x100), (0xA0, area + 0x200)):
                    self.reg(off, 4, True, a & 0xFFFF_FFFF)
                    self.reg(off + 4, 4, True, a >> 32)
                self.reg(0x44, 4, True, 1)
            out.append(self.reg(0x70, 4, True, 15))
            out.append(self.reg(0x70, 4, False))
            return tuple(out)
        if kind == "desc":
            _, q, i, addr, length, flags, nxt = op
            self.guest_write(vio_area(q) + 16 * (i % 8), st.pack("<QIHH", addr & U64, length, flags, nxt))
            return ()
        if kind == "offer":
            _, q, head, step = op
            self.offer(q, head, step)
            return ()
        if kind == "notify":
            return self.reg(0x50, 4, True, op[1])
        if kind == "msg":  # a control message in one buffer, offered on the control transmitq
            _, port, event, value = op
            buf = MVM_GPA + VIO_BUFS + 0x7000
            self.guest_write(buf, st.pack("<IHH", port, event, value))
            self.guest_write(vio_area(3) + 16 * 7, st.pack("<QIHH", buf, 8, 0, 0))
            self.offer(3, 7, 1)
            return self.reg(0x50, 4, True, 3)
        if kind == "rx":  # receive buffers, each one device-writable descriptor
            _, q, count, size = op
            for k in range(count):
                buf = MVM_GPA + VIO_BUFS + 0x1000 * k
                self.guest_write(vio_area(q) + 16 * k, st.pack("<QIHH", buf, size, 2, 0))
                self.offer(q, k, 1)
            return self.reg(0x50, 4, True, q)
        if kind == "tx":
            _, q, chain = op
            for k, (addr, length, flags, nxt) in enumerate(chain):
                last = k == len(chain) - 1
                f = flags | (0 if last else 1)
                self.guest_write(
                    vio_area(q) + 16 * k, st.pack("<QIHH", addr & U64, length, f, k + 1 if nxt is None else nxt)
                )
            self.offer(q, 0, 1)
            return self.reg(0x50, 4, True, q)
        if kind == "hyp":  # the hypervisor's end: bytes for the MVM on a port, the control server's reads
            _, port, data = op
            self.be.write(self.data, data[:0x100])
            return (self.be.call("vcon_port_write", port, self.data, len(data[:0x100])),)
        self.be.call("vcon_idle", self.vcpus[0])
        return ()

    def run(self, op: tuple) -> None:
        be = self.be
        self.stats[op[0]] += 1
        be.begin_case(self.regions)
        try:
            self.obs = self.act(op)
        except FuzzFailure:
            raise
        except Hang as e:
            fail("hang", str(e))
        except BaseException as e:  # noqa: BLE001
            fail("exception", f"{type(e).__name__}: {e}")
        finally:
            changed = be.end_case(self.regions)
        if isinstance(be, CPythonBackend):
            if be.stray:
                fail("memory", f"writes outside every known region: {[(hex(a), n) for a, n in be.stray[:4]]}")
            for a, n in be.reads:
                if a < self.decoy + 0x1000 and a + n > self.decoy:
                    fail("memory", f"a read beyond the VM's RAM at {a:#x}")
        if isinstance(be, CPythonBackend):
            self.stats[f"guest RAM read: {any(self.ram <= a < self.ram + VM_RAM for a, _ in be.reads)}"] += 1
        allowed = {"ram", "value", "data", "hypervisor.core.virq.vplic_main"} | LOG_RING
        allowed |= {f"hypervisor.core.vm.VCPUS[{k}]" for k in (0, 1)}
        allowed |= {n for n in be.statics if be.is_lock(n)}
        prefixes = ("hypervisor.core.virtio_console.", "hypervisor.core.control.", "hypervisor.core.vm.VCPUS")
        bad = sorted(c for c in changed - allowed if not c.startswith(prefixes))
        if bad:
            fail("memory", f"changed {bad}")
        for name, (addr, size) in be.statics.items():
            if be.is_lock(name) and not released(be.read(addr, size)):
                fail("lock", f"{name} still held")
        vcon = be.global_addr("hypervisor.core.virtio_console.VCON")
        if not released(be.read(vcon + self.lock_offset(), 8)):
            fail("lock", "the console device's lock is still held")
        status = self.status()
        self.stats[f"status {status:#x}"] += 1

    def lock_offset(self) -> int:
        vc, vm = self.be.mods["hypervisor.core.virtio_console"], self.be.mods["hypervisor.core.virtio_mmio"]
        return prelude.layout_of(vc.Vcon).fields["t"][0] + prelude.layout_of(vm.VirtioMmio).fields["lock"][0]

    def status(self) -> int:
        vm = self.be.mods["hypervisor.core.virtio_mmio"]
        off = prelude.layout_of(vm.VirtioMmio).fields["status"][0]
        return int.from_bytes(
            self.be.read(self.be.global_addr("hypervisor.core.virtio_console.VCON") + off, 4), "little"
        )


# ---------------------------------------------------------------------------------------------------------------
# The runner


SPEC = {  # target: (module compiled/loaded, board irq mode, world, op generator)
    "sbi": ("hypervisor.arch.riscv.vsbi", "plic", SbiWorld, sbi_op),
    "vplic": ("hypervisor.core.vplic", "plic", PlicWorld, plic_op),
    "vaplic": ("hypervisor.core.vaplic", "aia", AplicWorld, aplic_op),
    "decode": ("hypervisor.arch.riscv.mmio_decode", "plic", DecodeWorld, decode_op),
    "mmio": ("hypervisor.arch.riscv.mmio+hypervisor.core.mvm", "plic", MmioWorld, mmio_op),
    "mmio_fetch": ("hypervisor.arch.riscv.mmio+hypervisor.core.mvm", "plic-fetch", MmioWorld, mmio_op),
    "virtio": ("hypervisor.core.virtio_console+hypervisor.core.mvm", "plic", VirtioWorld, virtio_op),
    "control": (CONTROL_MODULES, "plic", ControlFuzzWorld, control_op),
    "control_aia": (CONTROL_MODULES, "aia", ControlFuzzWorld, control_op),
}


@dataclass
class Result:
    target: str
    backend: str
    seed: int
    cases: int = 0
    episodes: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # this process's CPU time (the wall time depends on what else the machine runs)
    failure: str | None = None
    minimal: list = field(default_factory=list)
    stats: dict = field(default_factory=dict)  # outcomes seen (the SBI target): what the cases reached
    digests: list = field(default_factory=list)  # per episode, of what the guests saw: the backends must agree


def disagreement(a: Result, b: Result) -> str | None:
    """Where two backends' runs of one target and seed differ (the compiled code must do what CPython does)."""
    for ep, (x, y) in enumerate(zip(a.digests, b.digests, strict=False)):
        if x != y:
            return (
                f"{a.target}: {a.backend} and {b.backend} disagree on episode {ep} (seed {a.seed}): replay it with "
                f"just fuzz --seed {a.seed} --target {a.target} and compare the case results"
            )
    return None


def episode_ops(target: str, seed: int, episode: int) -> tuple[int, list]:
    rng = random.Random(f"{seed}/{target}/{episode}")
    gen = SPEC[target][3]
    return rng.randrange(1 << 30), [gen(rng) for _ in range(EPISODE_OPS)]


def play(world, world_seed: int, ops: list, digest=None) -> tuple[int, FuzzFailure | None]:
    """Run ops on a fresh world; (cases run, the failure or None). `digest` (a hash) takes what the guests saw."""
    world.restore(world_seed)
    n = 0
    try:
        for op in ops:
            if not world.alive():
                break
            n += 1
            world.run(op)
            if digest is not None:
                digest.update(repr(getattr(world, "obs", None)).encode())
        world.end_episode()
    except FuzzFailure as f:
        return n, f
    return n, None


def minimise(world, world_seed: int, ops: list, check: str) -> list:
    """Delta debugging over the episode's cases: the shortest sub-list found that still fails `check`."""

    def fails(sub):
        _, f = play(world, world_seed, sub)
        return f is not None and f.check == check

    n = 2
    while len(ops) >= 2:
        chunk = max(1, len(ops) // n)
        for i in range(0, len(ops), chunk):
            rest = ops[:i] + ops[i + chunk :]
            if rest and fails(rest):
                ops = rest
                n = max(n - 1, 2)
                break
        else:
            if chunk == 1:
                break
            n = min(len(ops), 2 * n)
    return ops


def fuzz(target: str, backend: str, cases: int, seed: int, log=None) -> Result:
    module, irq, World, _ = SPEC[target]
    res = Result(target, backend, seed)
    t0, c0 = time.perf_counter(), time.process_time()
    be = make_backend(backend, module, irq)
    try:
        world = World(be)
        ep = 0
        while res.cases < cases:
            wseed, ops = episode_ops(target, seed, ep)
            ops = ops[: cases - res.cases]
            faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
            digest = hashlib.sha256()
            try:
                n, f = play(world, wseed, ops, digest)
            finally:
                faulthandler.cancel_dump_traceback_later()
            res.cases += n
            res.episodes += 1
            res.digests.append(digest.hexdigest()[:16])
            if f is not None:
                res.minimal = minimise(world, wseed, ops[:n], f.check)
                _, f2 = play(world, wseed, res.minimal)
                res.failure = (
                    f"{f} (seed {seed}, episode {ep}, case {n} of it); minimised to "
                    f"{len(res.minimal)} case(s), failing with: {f2}"
                )
                break
            ep += 1
            if log and ep % 200 == 0:
                log(f"  {target}/{backend}: {res.cases} cases")
        res.stats = dict(getattr(world, "stats", {}))
    finally:
        be.close()
        prelude.mock.reset()
    res.seconds = time.perf_counter() - t0
    res.cpu_seconds = time.process_time() - c0
    return res


def report(res: Result) -> str:
    head = (
        f"{res.target:7} {res.backend:8} {res.cases:8} cases {res.episodes:6} episodes {res.seconds:7.1f} s "
        f"({res.cpu_seconds:.1f} s CPU)"
    )
    if res.failure is None:
        return head + "  ok"
    cases = "\n".join(f"    {op!r}," for op in res.minimal)
    return (
        f"{head}  FAILED\n  {res.failure}\n  minimal cases ({res.target} ops, replay on a fresh world):\n"
        f"{cases}\n  reproduce: just fuzz --seed {res.seed} --target {res.target} --backend {res.backend}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="just fuzz", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--cases",
        type=int,
        default=int(os.environ.get("FUZZ_CASES", "100000")),
        help="cases per target per backend (FUZZ_CASES; default 100000)",
    )
    ap.add_argument("--seed", type=int, default=None, help="the run's seed (FUZZ_SEED; default: a new one)")
    ap.add_argument("--target", action="append", choices=TARGETS, help="only this target (repeatable)")
    ap.add_argument("--backend", action="append", choices=BACKENDS, help="only this backend (repeatable)")
    ap.add_argument("--stats", action="store_true", help="print the outcomes the SBI and MMIO cases reached")
    a = ap.parse_args(argv)
    seed = a.seed if a.seed is not None else int(os.environ.get("FUZZ_SEED", random.randrange(1 << 32)))
    print(f"fuzz: seed {seed}, {a.cases} cases per target per backend", flush=True)
    ok = True
    t0, c0 = time.perf_counter(), time.process_time()
    for target in a.target or TARGETS:
        done = []
        for backend in a.backend or BACKENDS:
            res = fuzz(target, backend, a.cases, seed, log=lambda s: print(s, file=sys.stderr, flush=True))
            print(report(res), flush=True)
            done.append(res)
            if a.stats:
                for k, n in sorted(res.stats.items()):
                    print(f"    {n:7}  {k}")
            ok &= res.failure is None
        if len(done) == 2 and all(r.failure is None for r in done) and (why := disagreement(*done)):
            print(why, flush=True)
            ok = False
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"fuzz: {wall:.1f} s ({cpu:.1f} s CPU), seed {seed}: {'ok' if ok else 'FAILED'}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    # The targets' worlds in other modules import this one as tests.hypervisor.fuzz: run that module's main, so
    # that they raise the FuzzFailure its runner catches.
    from tests.hypervisor import fuzz as fuzz_module

    sys.exit(fuzz_module.main())
