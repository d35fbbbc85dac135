"""Intrinsics: the builtins, privileged instructions and helpers the language offers (LANGUAGE.md section 8).

One table, a row per intrinsic, drives the checker (the row's `rule` names how compiler/check/builtins.py types a
call, from the row's parameters, result, width or fold), the riscv64 lowering (marker calls that `compiler.asm`
expands into the row's `asm` before GNU as) and the host lowering (calls into Python, numbered by the op lists).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from compiler.types import BOOL, I64, INTS, U64, VOID, PtrT, Type, alignof, sizeof


@dataclass(frozen=True)
class Intrinsic:
    name: str
    rule: str  # the checker's type rule: compiler/check/builtins.py RULES
    params: tuple[Type, ...] = ()  # "call": the argument types; "csr": those after the CSR
    ret: Type | None = VOID  # None: the rule derives it (an atomic gives the integer it reaches)
    asm: str | None = None  # riscv64: the instruction(s) replacing the marker call; a0, a1 in, a0 out
    bits: int = 0  # atomics and lr/sc: the width of the integer the pointer reaches
    nargs: int = 0  # how many arguments: the parameters', or for atomics the pointer and perhaps a value
    rmw: str = ""  # atomics: the LLVM atomicrmw operation
    fold: Callable[[Type], int] | None = None  # "type": the constant a type gives
    marker: str = ""  # the marker's op when it is not the name
    prelude: bool = True  # imported from compiler.prelude
    builtin: bool = False  # a Python builtin: named without an import
    noreturn: bool = False  # a call as a statement ends its block (E134, LANGUAGE.md 7)
    preserves: bool = True  # riscv64: `asm` writes no register but a0, its result (the marker call keeps the rest)

    def __post_init__(self) -> None:
        if self.params and not self.nargs:
            object.__setattr__(self, "nargs", len(self.params))


_ROWS: list[Intrinsic] = [
    Intrinsic("bool", "convert", ret=BOOL, prelude=False, builtin=True),
    Intrinsic("sizeof", "type", ret=U64, fold=sizeof),
    Intrinsic("alignof", "type", ret=U64, fold=alignof),
    Intrinsic("offsetof", "offsetof", ret=U64),
    Intrinsic("len", "len", ret=U64, builtin=True),
    Intrinsic("addr_of", "addr_of", ret=None),
    Intrinsic("null", "null", ret=None),
    Intrinsic("panic", "call", (U64,), noreturn=True),
    Intrinsic("fence", "call"),
    Intrinsic("cstr", "string", ret=PtrT(INTS["u8"])),
    Intrinsic("extern_addr", "string", ret=U64),
    # SBI calling convention: a0..a5 arguments, a6 = FID, a7 = EID; a0 = error, a1 = value
    Intrinsic("sbi_ecall", "call", (U64,) * 8 + (PtrT(U64),), I64, asm="ecall", marker="ecall"),
    Intrinsic("csr_read", "csr", (), U64, asm="csrr a0, {num}"),
    Intrinsic("csr_write", "csr", (U64,), VOID, asm="csrw {num}, a0"),
    Intrinsic("csr_set", "csr", (U64,), VOID, asm="csrs {num}, a0"),
    Intrinsic("csr_clear", "csr", (U64,), VOID, asm="csrc {num}, a0"),
    Intrinsic("csr_swap", "csr", (U64,), U64, asm="csrrw a0, {num}, a0"),
]
_PRIV_ROWS = [
    Intrinsic("fence_i", "call", (), VOID, "fence.i"),
    Intrinsic("fence_io", "call", (), VOID, "fence iorw, iorw"),
    Intrinsic("wfi", "call", (), VOID, "wfi"),
    Intrinsic("sfence_vma", "call", (), VOID, "sfence.vma"),
    Intrinsic("hfence_gvma", "call", (), VOID, "hfence.gvma"),
    Intrinsic("hfence_vvma", "call", (), VOID, "hfence.vvma"),
    Intrinsic("hfence_gvma_vmid", "call", (U64,), VOID, "hfence.gvma zero, a0"),
    Intrinsic("hfence_vvma_asid", "call", (U64,), VOID, "hfence.vvma zero, a0"),
    Intrinsic("hfence_gvma_gpa", "call", (U64,), VOID, "srli a0, a0, 2\n\thfence.gvma a0, zero", preserves=False),
]
for _w in ("b", "bu", "h", "hu", "w", "wu", "d"):
    _PRIV_ROWS.append(Intrinsic(f"hlv_{_w}", "call", (U64,), U64, f"hlv.{_w} a0, (a0)"))
for _w in ("hu", "wu"):
    _PRIV_ROWS.append(Intrinsic(f"hlvx_{_w}", "call", (U64,), U64, f"hlvx.{_w} a0, (a0)"))
for _w in ("b", "h", "w", "d"):
    _PRIV_ROWS.append(Intrinsic(f"hsv_{_w}", "call", (U64, U64), VOID, f"hsv.{_w} a1, (a0)"))
_ATOMIC_ROWS = [
    Intrinsic("amoswap_w", "atomic", ret=None, bits=32, nargs=2, rmw="xchg"),
    Intrinsic("amoswap_d", "atomic", ret=None, bits=64, nargs=2, rmw="xchg"),
    Intrinsic("amoadd_w", "atomic", ret=None, bits=32, nargs=2, rmw="add"),
    Intrinsic("amoadd_d", "atomic", ret=None, bits=64, nargs=2, rmw="add"),
]
_LRSC_ROWS = [
    Intrinsic("lr_w", "atomic", ret=None, bits=32, nargs=1, asm="lr.w.aqrl a0, (a0)"),
    Intrinsic("lr_d", "atomic", ret=None, bits=64, nargs=1, asm="lr.d.aqrl a0, (a0)"),
    Intrinsic("sc_w", "atomic", ret=U64, bits=32, nargs=2, asm="sc.w.rl a0, a1, (a0)"),  # 0 when stored
    Intrinsic("sc_d", "atomic", ret=U64, bits=64, nargs=2, asm="sc.d.rl a0, a1, (a0)"),
]

INTRINSICS: dict[str, Intrinsic] = {i.name: i for i in [*_ROWS, *_PRIV_ROWS, *_ATOMIC_ROWS, *_LRSC_ROWS]}

# The families the lowerings take by name; host op numbers are indexes into PRIV_OPS and CSR_OPS.
PRIV: dict[str, Intrinsic] = {i.name: i for i in _PRIV_ROWS}
PRIV_OPS: list[str] = [i.name for i in _PRIV_ROWS]
CSR_OPS: tuple[str, ...] = tuple(i.name for i in _ROWS if i.rule == "csr")
ATOMICS: dict[str, tuple[str, int]] = {i.name: (i.rmw, i.bits) for i in _ATOMIC_ROWS}
LRSC: dict[str, int] = {i.name: i.bits for i in _LRSC_ROWS}
MARKER = "__pys_"
_BY_MARKER: dict[str, Intrinsic] = {i.marker or i.name: i for i in INTRINSICS.values() if i.asm and i.rule != "csr"}


def marker_name(op: str, csr: int | None = None) -> str:
    return f"{MARKER}{op}" if csr is None else f"{MARKER}{op}_{csr:#x}"


def marker_asm(name: str) -> str | None:
    """The instructions that replace a call to marker `name`, or None if it is not a marker."""
    if not name.startswith(MARKER):
        return None
    op = name[len(MARKER) :]
    for c in CSR_OPS:
        if op.startswith(c + "_0x"):
            return INTRINSICS[c].asm.format(num=op[len(c) + 1 :])  # type: ignore[union-attr]
    row = _BY_MARKER.get(op)
    return row.asm if row is not None else None
