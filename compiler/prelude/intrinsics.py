"""The intrinsics of compiler/intrinsics.py under CPython: CSRs, fences, hypervisor loads and stores, atomics,
lr/sc, SBI calls (all through `mock`) and `panic`."""

from compiler.csrs import CSRS
from compiler.prelude.ints import _coerce_int, _expect_u64, i64, u32, u64
from compiler.prelude.mock_machine import mock
from compiler.prelude.panics import Panic
from compiler.prelude.places import Ptr, _resolve
from compiler.prelude.sim_memory import memory


def panic(code) -> None:
    raise Panic(4, _expect_u64(code, "panic"), 0)


def _csr_num(c) -> int:
    c = int(c)
    if c not in CSRS.values():
        raise ValueError(f"{c:#x} is not a CSR of compiler.csrs")
    return c


def csr_read(c) -> u64:
    return u64(mock.csr_read(_csr_num(c)))


def csr_write(c, v) -> None:
    mock.csr_write(_csr_num(c), int(_expect_u64(v, "csr_write")))


def csr_set(c, v) -> None:
    mock.csr_set(_csr_num(c), int(_expect_u64(v, "csr_set")))


def csr_clear(c, v) -> None:
    mock.csr_clear(_csr_num(c), int(_expect_u64(v, "csr_clear")))


def csr_swap(c, v) -> u64:
    return u64(mock.csr_swap(_csr_num(c), int(_expect_u64(v, "csr_swap"))))


def fence() -> None:
    mock.instr("fence")


def fence_i() -> None:
    mock.instr("fence_i")


def fence_io() -> None:
    mock.instr("fence_io")


def wfi() -> None:
    mock.instr("wfi")


def sfence_vma() -> None:
    mock.instr("sfence_vma")


def hfence_gvma() -> None:
    mock.instr("hfence_gvma")


def hfence_vvma() -> None:
    mock.instr("hfence_vvma")


def hfence_gvma_vmid(vmid) -> None:
    mock.instr("hfence_gvma_vmid", int(_expect_u64(vmid, "hfence_gvma_vmid")))


def hfence_vvma_asid(asid) -> None:
    mock.instr("hfence_vvma_asid", int(_expect_u64(asid, "hfence_vvma_asid")))


def hfence_gvma_gpa(gpa) -> None:
    mock.instr("hfence_gvma_gpa", int(_expect_u64(gpa, "hfence_gvma_gpa")))


def _hlv(addr, width: int, signed: bool, exec_: bool = False) -> u64:
    v = mock.hlv(int(_expect_u64(addr, "hlv")), width, exec_)
    if signed and v >> (8 * width - 1):
        v -= 1 << (8 * width)
    return u64(v)


def hlv_b(addr) -> u64:
    return _hlv(addr, 1, True)


def hlv_bu(addr) -> u64:
    return _hlv(addr, 1, False)


def hlv_h(addr) -> u64:
    return _hlv(addr, 2, True)


def hlv_hu(addr) -> u64:
    return _hlv(addr, 2, False)


def hlv_w(addr) -> u64:
    return _hlv(addr, 4, True)


def hlv_wu(addr) -> u64:
    return _hlv(addr, 4, False)


def hlv_d(addr) -> u64:
    return _hlv(addr, 8, False)


def hlvx_hu(addr) -> u64:
    return _hlv(addr, 2, False, True)


def hlvx_wu(addr) -> u64:
    return _hlv(addr, 4, False, True)


def _hsv(addr, v, width: int) -> None:
    mock.hsv(int(_expect_u64(addr, "hsv")), width, int(_expect_u64(v, "hsv")))


def hsv_b(addr, v) -> None:
    _hsv(addr, v, 1)


def hsv_h(addr, v) -> None:
    _hsv(addr, v, 2)


def hsv_w(addr, v) -> None:
    _hsv(addr, v, 4)


def hsv_d(addr, v) -> None:
    _hsv(addr, v, 8)


def _atomic_ptr(p, t, what):
    if not isinstance(p, Ptr) or _resolve(p._elem) is not t:
        raise TypeError(f"{what} needs a Ptr[{t.__name__}], got {p!r}")
    return p._a


def _amo(p, v, t, what, fn):
    a = _atomic_ptr(p, t, what)
    v = _coerce_int(t, v, what)
    old = t(memory.load(a, t.BITS // 8))
    memory.store(a, t.BITS // 8, fn(int(old), int(v)))
    mock.instr(what, a)
    if mock.reservation == a:
        mock.reservation = None
    return old


def amoswap_w(p, v) -> u32:
    return _amo(p, v, u32, "amoswap_w", lambda old, v: v)


def amoswap_d(p, v) -> u64:
    return _amo(p, v, u64, "amoswap_d", lambda old, v: v)


def amoadd_w(p, v) -> u32:
    return _amo(p, v, u32, "amoadd_w", lambda old, v: old + v)


def amoadd_d(p, v) -> u64:
    return _amo(p, v, u64, "amoadd_d", lambda old, v: old + v)


def _lr(p, t, what):
    a = _atomic_ptr(p, t, what)
    mock.instr(what, a)
    mock.reservation = a
    return t(memory.load(a, t.BITS // 8))


def _sc(p, v, t, what) -> u64:
    a = _atomic_ptr(p, t, what)
    v = _coerce_int(t, v, what)
    mock.instr(what, a)
    ok = mock.reservation == a and not mock.sc_fail_next
    mock.reservation = None
    mock.sc_fail_next = False
    if not ok:
        return u64(1)
    memory.store(a, t.BITS // 8, int(v))
    return u64(0)


def lr_w(p) -> u32:
    return _lr(p, u32, "lr_w")


def lr_d(p) -> u64:
    return _lr(p, u64, "lr_d")


def sc_w(p, v) -> u64:
    return _sc(p, v, u32, "sc_w")


def sc_d(p, v) -> u64:
    return _sc(p, v, u64, "sc_d")


def sbi_ecall(eid, fid, a0, a1, a2, a3, a4, a5, value) -> i64:
    args = [int(_expect_u64(x, "sbi_ecall")) for x in (eid, fid, a0, a1, a2, a3, a4, a5)]
    if not isinstance(value, Ptr) or _resolve(value._elem) is not u64:
        raise TypeError(f"sbi_ecall: value must be a Ptr[u64], got {value!r}")
    err, val = mock.sbi(*args)
    if value._a != 0:
        memory.store(value._a, 8, val)
    return i64(err)
