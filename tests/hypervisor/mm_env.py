"""Test-only helpers for the memory-management tests (frame allocator, stage-2 tables): one interface over the
two ways the same modules run, under CPython through the prelude and compiled for the host by MCJIT.

* `call(name, *args)`: a function of hypervisor.core.frame_alloc or hypervisor.arch.riscv.stage2.
* `pool(size, misalign)`: a pool address, 16 KiB-aligned plus `misalign` bytes, whose `size` bytes are filled
  with 0xFF (so zeroing is visible).  CPython: an address in the prelude's simulated memory.  Host: a ctypes
  buffer kept alive by the env.
* `out(n)`: (argument for a `Ptr[u64]` parameter, reader list function) for n u64 slots.
* `read_u64(addr)`: a u64 of pool memory (page-table entries).
"""

from __future__ import annotations

import ctypes
import importlib
import sys
from pathlib import Path

from compiler import prelude

ROOT = Path(__file__).resolve().parents[2]
FRAME_ALLOC = ROOT / "hypervisor" / "core" / "frame_alloc.py"
STAGE2 = ROOT / "hypervisor" / "arch" / "riscv" / "stage2.py"
MODULES = ("hypervisor.core.frame_alloc", "hypervisor.arch.riscv.stage2")

SIM_POOL = 0x9000_0000  # CPython: pools live here in the simulated memory (16 KiB aligned)
SIM_OUT = 0x6000_0000  # CPython: out-parameter slots


class CPythonEnv:
    kind = "cpython"

    def __init__(self) -> None:
        prelude.install_import_hook(["hypervisor"])
        for name in MODULES:
            sys.modules.pop(name, None)
        importlib.invalidate_caches()
        prelude.reset()
        self.mods = [importlib.import_module(n) for n in MODULES]

    def fn(self, name: str):
        for m in self.mods:
            if hasattr(m, name):
                return getattr(m, name)
        raise KeyError(name)

    def call(self, name: str, *args):
        r = self.fn(name)(*args)
        return r if isinstance(r, bool) or r is None else int(r)

    def pool(self, size: int, misalign: int = 0) -> int:
        prelude.memory.fill(SIM_POOL, size + misalign, 0xFF)
        return SIM_POOL + misalign

    def out(self, n: int):
        prelude.memory.fill(SIM_OUT, 8 * n, 0xAA)
        return prelude.Ptr[prelude.u64](SIM_OUT), lambda: [prelude.memory.load(SIM_OUT + 8 * i, 8) for i in range(n)]

    def read_u64(self, addr: int) -> int:
        return prelude.memory.load(addr, 8)


class HostEnv:
    kind = "host"
    _program = None

    def __init__(self) -> None:
        from compiler import driver

        if HostEnv._program is None:
            HostEnv._program = driver.compile_host([str(STAGE2), str(FRAME_ALLOC)])
        self.prog = HostEnv._program
        self.bufs: list = []
        prelude.mock.reset()

    def call(self, name: str, *args):
        return self.prog.call(name, *[int(a) for a in args])

    def pool(self, size: int, misalign: int = 0) -> int:
        buf = ctypes.create_string_buffer(size + misalign + 16384)
        self.bufs.append(buf)
        base = (ctypes.addressof(buf) + 16383) & ~16383
        ctypes.memset(base, 0xFF, size + misalign)
        return base + misalign

    def out(self, n: int):
        arr = (ctypes.c_uint64 * n)(*([0xAAAAAAAAAAAAAAAA] * n))
        self.bufs.append(arr)
        return ctypes.addressof(arr), lambda: list(arr)

    def read_u64(self, addr: int) -> int:
        return ctypes.c_uint64.from_address(addr).value


def make_env(kind: str):
    return CPythonEnv() if kind == "cpython" else HostEnv()
