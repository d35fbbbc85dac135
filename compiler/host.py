"""The host target: MCJIT over the same IR, with CSR, MMIO, privileged instructions and SBI calls
forwarded to the prelude's implementations (and so to `prelude.mock`), and panics raised as `Panic`.
"""

from __future__ import annotations

import ctypes

import llvmlite.binding as llvm

from compiler import intrinsics as intr
from compiler import prelude
from compiler.types import BoolT, IntT, VoidT

_I64 = ctypes.c_int64
_U64 = ctypes.c_uint64
_CSR_FN = ctypes.CFUNCTYPE(_U64, _U64, _U64, _U64)
_PRIV_FN = ctypes.CFUNCTYPE(_U64, _U64, _U64, _U64)
_MMIO_FN = ctypes.CFUNCTYPE(_U64, _U64, _U64, _U64, _U64)
_SBI_FN = ctypes.CFUNCTYPE(_I64, *([_U64] * 8), ctypes.c_void_p)
_PANIC_FN = ctypes.CFUNCTYPE(None, _U64, _U64, _U64)

_pending: list[tuple[int, int, int]] = []
_error: list[BaseException] = []


def _guard(default):
    def wrap(fn):
        def inner(*a):
            try:
                return fn(*a)
            except BaseException as e:  # an exception must not cross the JIT frames
                _error.append(e)
                return default

        return inner

    return wrap


@_guard(0)
def _csr(op: int, num: int, val: int) -> int:
    f = getattr(prelude, intr.CSR_OPS[op])
    r = f(num) if op == 0 else f(num, prelude.u64(val))
    return int(r or 0) & (2**64 - 1)


@_guard(0)
def _priv(op: int, a: int, b: int) -> int:
    name = intr.PRIV_OPS[op]
    p = intr.PRIV[name]
    args = [prelude.u64(a), prelude.u64(b)][: p.nargs]
    r = getattr(prelude, name)(*args)
    return int(r or 0) & (2**64 - 1)


_INT_BY_BITS = {8: "u8", 16: "u16", 32: "u32", 64: "u64"}


@_guard(0)
def _mmio(op: int, bits: int, addr: int, val: int) -> int:
    t = getattr(prelude, _INT_BY_BITS[bits])
    reg = prelude.Mmio[t](prelude.u64(addr))
    if op == 0:
        return int(reg.read()) & ((1 << bits) - 1)
    reg.write(t(val))
    return 0


@_guard(0)
def _sbi(eid, fid, a0, a1, a2, a3, a4, a5, out):
    err, val = prelude.mock.sbi_call(int(eid), int(fid), [int(x) for x in (a0, a1, a2, a3, a4, a5)])
    if out:
        ctypes.c_uint64.from_address(out).value = int(val) & (2**64 - 1)
    return int(err)


def _panic(kind: int, a: int, b: int) -> None:
    _pending.append((int(kind), int(a), int(b)))


_callbacks = {
    "pyshyper_host_csr": _CSR_FN(_csr),
    "pyshyper_host_priv": _PRIV_FN(_priv),
    "pyshyper_host_mmio": _MMIO_FN(_mmio),
    "pyshyper_host_sbi": _SBI_FN(_sbi),
    "pyshyper_host_panic": _PANIC_FN(_panic),
}
_bound = False


def _bind() -> None:
    global _bound
    if _bound:
        return
    for name, cb in _callbacks.items():
        llvm.add_symbol(name, ctypes.cast(cb, ctypes.c_void_p).value)
    libc = ctypes.CDLL(None)
    for name in ("_setjmp", "longjmp"):
        llvm.add_symbol(name, ctypes.cast(getattr(libc, name), ctypes.c_void_p).value)
    _bound = True


_extern_cbs: dict[str, object] = {}


def _bind_extern(f) -> None:
    """An @extern function (defined in assembly on riscv64) calls `prelude.mock.externs[symbol]` on the host, as
    under CPython (default: returns 0); an unresolved symbol would crash MCJIT."""
    sym, params, ret = f.extern, list(f.params), f.ret

    @_guard(0)
    def cb(*raw):
        impl = prelude.mock.externs.get(sym)
        if impl is None:
            return 0
        args = []
        for (_, t), r in zip(params, raw, strict=True):
            if isinstance(t, IntT):
                args.append(getattr(prelude, t.name)(t.wrap(r)))
            else:
                args.append(bool(r & 1) if isinstance(t, BoolT) else int(r))
        v = impl(*args)
        return 0 if isinstance(ret, VoidT) or v is None else int(v) & (2**64 - 1)

    c = ctypes.CFUNCTYPE(_U64, *([_U64] * len(params)))(cb)
    _extern_cbs[sym] = c  # keep it alive: MCJIT code holds its address
    llvm.add_symbol(sym, ctypes.cast(c, ctypes.c_void_p).value)


class HostProgram:
    """A program compiled for the host, callable by function name (`main` or `module.main`)."""

    def __init__(self, compiled) -> None:
        _bind()
        for f in compiled.program.funcs:
            if f.extern:
                _bind_extern(f)
        self.compiled = compiled
        self.prog = compiled.program
        self.engine = llvm.create_mcjit_compiler(compiled.module, compiled.tm)
        self.engine.finalize_object()
        self.engine.run_static_constructors()
        self._cache: dict[str, tuple] = {}

    def _find(self, name: str):
        for f in self.prog.funcs:
            if name in (f.name, f"{f.module.name}.{f.name}", f.symbol) and (
                "." in name or f.module is self.prog.main or f.symbol == name
            ):
                return f
        for f in self.prog.funcs:
            if f.name == name:
                return f
        raise KeyError(f"no function `{name}` in the program")

    def call(self, name: str, *args: int) -> int:
        if name not in self._cache:
            f = self._find(name)
            addr = self.engine.get_function_address("__pys_call." + f.symbol)
            proto = ctypes.CFUNCTYPE(_U64, *([_U64] * len(f.params)))
            self._cache[name] = (f, proto(addr))
        f, fn = self._cache[name]
        if len(args) != len(f.params):
            raise TypeError(f"{f.name} takes {len(f.params)} arguments")
        _pending.clear()
        _error.clear()
        raw = fn(*[int(a) & (2**64 - 1) for a in args])
        if _error:
            raise _error[0]
        if _pending:
            kind, a, b = _pending[0]
            raise prelude.Panic(kind, a, b)
        t = f.ret
        if isinstance(t, VoidT):
            return 0
        if isinstance(t, BoolT):
            return bool(raw & 1)
        if isinstance(t, IntT):
            return t.wrap(raw)
        return int(raw)
