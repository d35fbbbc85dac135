"""Intrinsics: the privileged instructions and helpers the language offers (LANGUAGE.md section 8).

One table drives the checker (argument and result types), the riscv64 lowering (marker calls that
`compiler.asm` expands into instructions before GNU as) and the host lowering (calls into Python).
"""

from __future__ import annotations

from dataclasses import dataclass

from compiler.types import U64, VOID, Type


@dataclass(frozen=True)
class Priv:
    name: str
    nargs: int
    ret: Type
    asm: str  # the instruction(s) replacing the marker call; arguments arrive in a0, a1; a result leaves in a0


_P = [
    Priv("fence_i", 0, VOID, "fence.i"),
    Priv("wfi", 0, VOID, "wfi"),
    Priv("sfence_vma", 0, VOID, "sfence.vma"),
    Priv("hfence_gvma", 0, VOID, "hfence.gvma"),
    Priv("hfence_vvma", 0, VOID, "hfence.vvma"),
    Priv("hfence_gvma_vmid", 1, VOID, "hfence.gvma zero, a0"),
    Priv("hfence_vvma_asid", 1, VOID, "hfence.vvma zero, a0"),
    Priv("hfence_gvma_gpa", 1, VOID, "srli a0, a0, 2\n\thfence.gvma a0, zero"),
]
for _w in ("b", "bu", "h", "hu", "w", "wu", "d"):
    _P.append(Priv(f"hlv_{_w}", 1, U64, f"hlv.{_w} a0, (a0)"))
for _w in ("hu", "wu"):
    _P.append(Priv(f"hlvx_{_w}", 1, U64, f"hlvx.{_w} a0, (a0)"))
for _w in ("b", "h", "w", "d"):
    _P.append(Priv(f"hsv_{_w}", 2, VOID, f"hsv.{_w} a1, (a0)"))

PRIV: dict[str, Priv] = {p.name: p for p in _P}
PRIV_OPS: list[str] = [p.name for p in _P]  # host op numbers are indexes into this list

CSR_OPS = ("csr_read", "csr_write", "csr_set", "csr_clear", "csr_swap")
CSR_ASM = {
    "csr_read": "csrr a0, {num}",
    "csr_write": "csrw {num}, a0",
    "csr_set": "csrs {num}, a0",
    "csr_clear": "csrc {num}, a0",
    "csr_swap": "csrrw a0, {num}, a0",
}
ATOMICS = {"amoswap_w": ("xchg", 32), "amoswap_d": ("xchg", 64), "amoadd_w": ("add", 32), "amoadd_d": ("add", 64)}
LRSC = {"lr_w": 32, "lr_d": 64, "sc_w": 32, "sc_d": 64}
LRSC_ASM = {
    "lr_w": "lr.w.aqrl a0, (a0)",
    "lr_d": "lr.d.aqrl a0, (a0)",
    "sc_w": "sc.w.rl a0, a1, (a0)",
    "sc_d": "sc.d.rl a0, a1, (a0)",
}
MARKER = "__pys_"


def marker_name(op: str, csr: int | None = None) -> str:
    return f"{MARKER}{op}" if csr is None else f"{MARKER}{op}_{csr:#x}"


def marker_asm(name: str) -> str | None:
    """The instructions that replace a call to marker `name`, or None if it is not a marker."""
    if not name.startswith(MARKER):
        return None
    op = name[len(MARKER) :]
    for c in CSR_OPS:
        if op.startswith(c + "_0x"):
            return CSR_ASM[c].format(num=op[len(c) + 1 :])
    if op in PRIV:
        return PRIV[op].asm
    if op in LRSC_ASM:
        return LRSC_ASM[op]
    if op == "ecall":
        return "ecall"
    return None
