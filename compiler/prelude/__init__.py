"""The PyShyper prelude: every name of compiler/LANGUAGE.md, implemented for CPython.

Hypervisor modules do `from compiler.prelude import u32, Ptr, struct, ...` and then run unchanged under CPython
with the results compiled code gives (LANGUAGE.md is the contract; where this package and the compiled code
differ, LANGUAGE.md decides).

* Fixed-width integers `u8 .. i64` (`usize is u64`) are `int` subclasses that wrap.  A plain Python `int` mixed with
  one acts as a literal of its type; two different fixed types raise `TypeError` (the compiler's E202).  `bool(x)`
  is `x != 0`.
* Aggregates (structs, arrays) live in a simulated, sparse, byte-addressed memory (`memory`); struct and array
  expressions are *views* (address + type).  Scalars are stored little-endian at their width, `bool` as one byte,
  `Ptr`/`Mmio`/`Callable` as 8 bytes.  Functions stored into memory get a non-zero id (`fn_id`).
* CSRs, MMIO, privileged instructions and SBI calls go to `mock` (a `Mock`), which tests inspect and program.
* `install_import_hook()` / `load_module()` load project modules with a small AST rewrite that gives CPython the
  static typing compiled code has: annotated parameters, results and annotated assignments of integer types are
  converted (`def f(x: u32)` called with `5` sees `u32(5)`), `for i in range(...)` yields the bounds' type, and a
  failed `assert` raises `Panic(3, line, 0)` (also an `AssertionError`).  Without the hook the code still runs;
  untyped plain ints just do not wrap.
* `reset()` gives a clean memory, function table and mock (the test runners call it between cases).

The modules, each importing only those above it: panics, ints (the integers), sim_memory (pages, allocator,
function ids), mock_machine (`Mock`), places (sizes, loads and stores, structs, arrays, Ptr, Mmio), statics
(`static`, the decorators, `cstr`, `extern_addr`), intrinsics (CSRs, fences, hlv/hsv, atomics, SBI, `panic`),
importer (the import hook).  This module re-exports their names, so `from compiler.prelude import ...` is the one
way in.
"""

from collections.abc import Callable
from typing import Final

from compiler.csrs import CSRS
from compiler.prelude.importer import install_import_hook, load_module
from compiler.prelude.intrinsics import (
    amoadd_d,
    amoadd_w,
    amoswap_d,
    amoswap_w,
    csr_clear,
    csr_read,
    csr_set,
    csr_swap,
    csr_write,
    fence,
    fence_i,
    fence_io,
    hfence_gvma,
    hfence_gvma_gpa,
    hfence_gvma_vmid,
    hfence_vvma,
    hfence_vvma_asid,
    hlv_b,
    hlv_bu,
    hlv_d,
    hlv_h,
    hlv_hu,
    hlv_w,
    hlv_wu,
    hlvx_hu,
    hlvx_wu,
    hsv_b,
    hsv_d,
    hsv_h,
    hsv_w,
    lr_d,
    lr_w,
    panic,
    sbi_ecall,
    sc_d,
    sc_w,
    sfence_vma,
    wfi,
)
from compiler.prelude.ints import (
    INT_TYPES,
    _lit_to,  # noqa: F401 - tests compute literal forms with it
    i8,
    i16,
    i32,
    i64,
    u8,
    u16,
    u32,
    u64,
    usize,
)
from compiler.prelude.mock_machine import Mock, mock
from compiler.prelude.panics import (
    AssertPanic,  # noqa: F401 - what a failed assert raises, for tests to name
    MemoryFault,
    Panic,
)
from compiler.prelude.places import (
    _NAMESPACE,
    Array,
    Mmio,
    Ptr,
    StructLayout,
    addr_of,
    alignof,
    layout_of,
    len,
    null,
    offsetof,
    sizeof,
    struct,
)
from compiler.prelude.sim_memory import HEAP_BASE, Memory, _fn_by_id, _fn_ids, _heap, _statics, fn_id, memory
from compiler.prelude.statics import _cstrs, _exported, cstr, export, extern, extern_addr, inline, noinline, static

__all__ = [
    "u8",
    "u16",
    "u32",
    "u64",
    "i8",
    "i16",
    "i32",
    "i64",
    "usize",
    "INT_TYPES",
    "Final",
    "Callable",
    "struct",
    "Array",
    "Ptr",
    "Mmio",
    "static",
    "sizeof",
    "alignof",
    "offsetof",
    "addr_of",
    "null",
    "len",
    "panic",
    "Panic",
    "MemoryFault",
    "export",
    "extern",
    "inline",
    "noinline",
    "cstr",
    "extern_addr",
    "csr_read",
    "csr_write",
    "csr_set",
    "csr_clear",
    "csr_swap",
    "fence",
    "fence_i",
    "fence_io",
    "wfi",
    "sfence_vma",
    "hfence_gvma",
    "hfence_vvma",
    "hfence_gvma_vmid",
    "hfence_vvma_asid",
    "hfence_gvma_gpa",
    "hlv_b",
    "hlv_bu",
    "hlv_h",
    "hlv_hu",
    "hlv_w",
    "hlv_wu",
    "hlv_d",
    "hlvx_hu",
    "hlvx_wu",
    "hsv_b",
    "hsv_h",
    "hsv_w",
    "hsv_d",
    "amoswap_w",
    "amoswap_d",
    "amoadd_w",
    "amoadd_d",
    "lr_w",
    "lr_d",
    "sc_w",
    "sc_d",
    "sbi_ecall",
    "mock",
    "Mock",
    "memory",
    "Memory",
    "reset",
    "fn_id",
    "layout_of",
    "StructLayout",
    "install_import_hook",
    "load_module",
    "CSRS",
] + list(CSRS)


def reset() -> None:
    """A clean simulated memory, allocator, function table and mock."""
    memory.pages.clear()
    _cstrs.clear()
    _heap[0] = HEAP_BASE
    _statics.clear()
    _exported.clear()
    _fn_by_id.clear()
    _fn_ids.clear()
    mock.reset()


globals().update(CSRS)  # the CSR names of compiler/csrs.py, as constants
_NAMESPACE.update({n: globals()[n] for n in __all__ if n in globals()})
