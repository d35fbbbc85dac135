"""The PyShyper prelude: every name of compiler/LANGUAGE.md, implemented for CPython.

Hypervisor modules do `from compiler.prelude import u32, Ptr, struct, ...` and then run unchanged under CPython
with the results compiled code gives (LANGUAGE.md is the contract; where this file and the compiled code differ,
LANGUAGE.md decides).

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
"""

import ast
import collections.abc
import importlib.abc
import importlib.machinery
import importlib.util
import operator
import sys
import typing
from collections.abc import Callable
from typing import Final

from compiler.csrs import CSRS

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
    "wfi",
    "sfence_vma",
    "hfence_gvma",
    "hfence_vvma",
    "hfence_gvma_vmid",
    "hfence_vvma_asid",
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

_U64_MASK = (1 << 64) - 1


def _u64raw(x) -> int:
    return int(x) & _U64_MASK


# ----------------------------------------------------------------------------------------------------------------
# Panics


class Panic(Exception):
    """What `pyshyper_panic(kind, a, b)` raises: kind 1 bounds (index, length), 2 division by zero (dividend, divisor),
    3 assertion (line, 0), 4 explicit (code, 0).  `a` and `b` are plain ints, as the u64 the handler receives
    (a negative i32 index -1 is 2**64-1)."""

    def __init__(self, kind, a=0, b=0):
        self.kind = int(kind)
        self.a = _u64raw(a)
        self.b = _u64raw(b)
        super().__init__(self.kind, self.a, self.b)

    def __eq__(self, other):
        return isinstance(other, Panic) and (self.kind, self.a, self.b) == (other.kind, other.a, other.b)

    def __hash__(self):
        return hash((self.kind, self.a, self.b))

    def __repr__(self):
        return f"Panic({self.kind}, {self.a:#x}, {self.b:#x})"

    __str__ = __repr__


class AssertPanic(Panic, AssertionError):
    """Panic(3, line, 0) from a failed `assert` in a module loaded through the import hook."""


class MemoryFault(Exception):
    """An access to the null page or outside the 64-bit address space of the simulated memory."""


def panic(code) -> None:
    raise Panic(4, _expect_u64(code, "panic"), 0)


# ----------------------------------------------------------------------------------------------------------------
# Integers


class _Int(int):
    BITS = 64
    SIGNED = False
    MASK = _U64_MASK
    MIN = 0
    MAX = _U64_MASK

    def __new__(cls, value=0):
        if isinstance(value, float):
            raise TypeError(f"{cls.__name__}() of a float")
        v = operator.index(value) & cls.MASK
        if cls.SIGNED and v > cls.MAX:
            v -= 1 << cls.BITS
        return int.__new__(cls, v)

    def __repr__(self):
        return f"{type(self).__name__}({int(self)})"

    def __str__(self):
        return str(int(self))

    def __bool__(self):  # `bool(x)` is the language's `x != 0`; `if x:` (E203) is left to the compiler
        return int(self) != 0

    def __hash__(self):
        return int.__hash__(self)

    # operand of a binary operator: same type, or a plain int literal (or literal form, computed in this type)
    def _other(self, o, op):
        t = type(o)
        if t is type(self):
            return int(o)
        if t is int or t is _LitForm:
            return int(_lit_to(type(self), o))
        if isinstance(o, (int, bool)):
            raise TypeError(f"operands have types {type(self).__name__} and {_tname(t)} for {op} (E202)")
        return NotImplemented

    def _panic_div(self, a, b):
        raise Panic(2, a, b)

    def _bin(op_name, fn, reflected=False):
        def method(self, o):
            b = self._other(o, op_name)
            if b is NotImplemented:
                return NotImplemented
            a = int(self)
            if reflected:
                a, b = b, a
            return type(self)(fn(self, a, b))

        method.__name__ = op_name
        return method

    def _div(self, a, b):
        if b == 0:
            self._panic_div(a, b)
        return a // b

    def _mod(self, a, b):
        if b == 0:
            self._panic_div(a, b)
        return a % b

    __add__ = _bin("__add__", lambda s, a, b: a + b)
    __radd__ = _bin("__radd__", lambda s, a, b: a + b, True)
    __sub__ = _bin("__sub__", lambda s, a, b: a - b)
    __rsub__ = _bin("__rsub__", lambda s, a, b: a - b, True)
    __mul__ = _bin("__mul__", lambda s, a, b: a * b)
    __rmul__ = _bin("__rmul__", lambda s, a, b: a * b, True)
    __floordiv__ = _bin("__floordiv__", lambda s, a, b: s._div(a, b))
    __rfloordiv__ = _bin("__rfloordiv__", lambda s, a, b: s._div(a, b), True)
    __mod__ = _bin("__mod__", lambda s, a, b: s._mod(a, b))
    __rmod__ = _bin("__rmod__", lambda s, a, b: s._mod(a, b), True)
    __and__ = _bin("__and__", lambda s, a, b: a & b)
    __rand__ = _bin("__rand__", lambda s, a, b: a & b, True)
    __or__ = _bin("__or__", lambda s, a, b: a | b)
    __ror__ = _bin("__ror__", lambda s, a, b: a | b, True)
    __xor__ = _bin("__xor__", lambda s, a, b: a ^ b)
    __rxor__ = _bin("__rxor__", lambda s, a, b: a ^ b, True)
    del _bin

    def __divmod__(self, o):
        raise TypeError("divmod is not in the language")

    __rdivmod__ = __divmod__

    def _unsupported(self, *a):
        raise TypeError("operator not in the language (use //, and no floats or **)")

    __truediv__ = __rtruediv__ = __pow__ = __rpow__ = _unsupported

    # shifts: the left operand gives the type; the count may be any integer type; only its low log2(bits) bits count
    def _count(self, o):
        if isinstance(o, bool) or not isinstance(o, int):
            raise TypeError(f"shift count of type {_tname(type(o))}")
        return int(o) & (self.BITS - 1)

    def __lshift__(self, o):
        return type(self)(int(self) << self._count(o))

    def __rshift__(self, o):
        return type(self)(int(self) >> self._count(o))  # Python's >> is arithmetic; unsigned values are >= 0

    # `literal << x`: the literal has no type of its own; it is a literal form that takes the type it meets
    def __rlshift__(self, o):
        if type(o) is not int and type(o) is not _LitForm:
            return NotImplemented
        return _LitForm.of(int(o) << (int(self) & 63), ("shift", operator.lshift, o, self))

    def __rrshift__(self, o):
        if type(o) is not int and type(o) is not _LitForm:
            return NotImplemented
        return _LitForm.of(int(o) >> (int(self) & 63), ("shift", operator.rshift, o, self))

    def __neg__(self):
        return type(self)(-int(self))

    def __pos__(self):
        return self

    def __invert__(self):
        return type(self)(~int(self))

    def __abs__(self):
        raise TypeError("abs() is not in the language")

    # comparisons: one type on both sides (or a plain int literal)
    def _cmp(op_name, fn):
        def method(self, o):
            t = type(o)
            if t is type(self) or t is int:
                return fn(int(self), int(o))
            if t is _LitForm:
                return fn(int(self), int(_lit_to(type(self), o)))
            if isinstance(o, (int, bool)):
                raise TypeError(f"comparison of {type(self).__name__} and {_tname(t)} (E202)")
            return NotImplemented

        method.__name__ = op_name
        return method

    __eq__ = _cmp("__eq__", operator.eq)
    __ne__ = _cmp("__ne__", operator.ne)
    __lt__ = _cmp("__lt__", operator.lt)
    __le__ = _cmp("__le__", operator.le)
    __gt__ = _cmp("__gt__", operator.gt)
    __ge__ = _cmp("__ge__", operator.ge)
    del _cmp

    def __reduce__(self):
        return (type(self), (int(self),))


class _LitForm(int):
    """A literal form that is not constant (LANGUAGE.md 3): `1 << n`, arithmetic of it with literals and other
    forms (`4 if c else 8` is a plain int already).  It has no type of its own: it takes the type of the typed
    operand, annotated target, parameter or result it meets (`_lit_to`), and is an i64 when bound to a new local.
    Its int value is the form computed on Python ints (a shift count's low 6 bits); `_form` keeps how it was made,
    so that `_lit_to` computes it again in its type, as compiled (`u16`: a count's low 4 bits, wrapping sums)."""

    @staticmethod
    def of(v: int, form) -> "_LitForm":
        r = _LitForm(v)
        r._form = form
        return r

    def _op(op_name, fn, reflected=False):
        def method(self, o):
            if type(o) is not int and type(o) is not _LitForm:
                return NotImplemented  # a typed operand converts the form (its reflected operator)
            a, b = (o, self) if reflected else (self, o)
            if fn in (operator.floordiv, operator.mod) and int(b) == 0:
                raise Panic(2, int(a), 0)  # as compiled: division by zero panics (LANGUAGE.md 3)
            return _LitForm.of(fn(int(a), int(b)), ("op", fn, a, b))

        method.__name__ = op_name
        return method

    __add__ = _op("__add__", operator.add)
    __radd__ = _op("__radd__", operator.add, True)
    __sub__ = _op("__sub__", operator.sub)
    __rsub__ = _op("__rsub__", operator.sub, True)
    __mul__ = _op("__mul__", operator.mul)
    __rmul__ = _op("__rmul__", operator.mul, True)
    __floordiv__ = _op("__floordiv__", operator.floordiv)
    __rfloordiv__ = _op("__rfloordiv__", operator.floordiv, True)
    __mod__ = _op("__mod__", operator.mod)
    __rmod__ = _op("__rmod__", operator.mod, True)
    __and__ = _op("__and__", operator.and_)
    __rand__ = _op("__rand__", operator.and_, True)
    __or__ = _op("__or__", operator.or_)
    __ror__ = _op("__ror__", operator.or_, True)
    __xor__ = _op("__xor__", operator.xor)
    __rxor__ = _op("__rxor__", operator.xor, True)
    del _op

    def __lshift__(self, o):
        if isinstance(o, bool) or not isinstance(o, int):
            return NotImplemented
        return _LitForm.of(int(self) << (int(o) & 63), ("shift", operator.lshift, self, o))

    def __rshift__(self, o):
        if isinstance(o, bool) or not isinstance(o, int):
            return NotImplemented
        return _LitForm.of(int(self) >> (int(o) & 63), ("shift", operator.rshift, self, o))

    def _cmp(op_name, fn):
        def method(self, o):  # a typed operand decides (its reflected comparison converts the form)
            if type(o) is not int and type(o) is not _LitForm:
                return NotImplemented
            return fn(int(self), int(o))

        method.__name__ = op_name
        return method

    __eq__ = _cmp("__eq__", operator.eq)
    __ne__ = _cmp("__ne__", operator.ne)
    __lt__ = _cmp("__lt__", operator.lt)
    __le__ = _cmp("__le__", operator.le)
    __gt__ = _cmp("__gt__", operator.gt)
    __ge__ = _cmp("__ge__", operator.ge)
    __hash__ = int.__hash__
    del _cmp

    def __neg__(self):
        return _LitForm.of(-int(self), ("unary", operator.neg, self))

    def __invert__(self):
        return _LitForm.of(~int(self), ("unary", operator.invert, self))

    def __pos__(self):
        return self


def _lit_to(t, v):
    """A plain int literal or a literal form as a value of integer type t: the form computed again with t's
    operators (without recursion: a form may be a sum of thousands of terms)."""
    out: list = []
    todo: list = [(v, False)]
    while todo:
        x, ready = todo.pop()
        form = x._form if type(x) is _LitForm else None
        if form is None:
            out.append(t(int(x)))
        elif form[0] == "shift":  # the count stays as it is: only the shifted literal takes the type
            if not ready:
                todo += [(x, True), (form[2], False)]
            else:
                out.append(form[1](out.pop(), form[3]))
        elif form[0] == "unary":
            if not ready:
                todo += [(x, True), (form[2], False)]
            else:
                out.append(form[1](out.pop()))
        elif not ready:  # ("op", fn, a, b)
            todo += [(x, True), (form[3], False), (form[2], False)]
        else:
            b = out.pop()
            a = out.pop()
            out.append(form[1](a, b))
    return out[0]


def _tname(t) -> str:
    return getattr(t, "__name__", str(t))


def _make_int(name: str, bits: int, signed: bool):
    mask = (1 << bits) - 1
    attrs = dict(
        BITS=bits,
        SIGNED=signed,
        MASK=mask,
        MIN=-(1 << (bits - 1)) if signed else 0,
        MAX=(1 << (bits - 1)) - 1 if signed else mask,
        __module__=__name__,
        __qualname__=name,
    )
    return type(name, (_Int,), attrs)


u8 = _make_int("u8", 8, False)
u16 = _make_int("u16", 16, False)
u32 = _make_int("u32", 32, False)
u64 = _make_int("u64", 64, False)
i8 = _make_int("i8", 8, True)
i16 = _make_int("i16", 16, True)
i32 = _make_int("i32", 32, True)
i64 = _make_int("i64", 64, True)
usize = u64
INT_TYPES: tuple = (u8, u16, u32, u64, i8, i16, i32, i64)


def _is_int_type(t) -> bool:
    return isinstance(t, type) and issubclass(t, _Int) and t is not _Int


def _coerce_int(t, v, what="value"):
    """A value for a place of integer type t: a plain int literal converts; another fixed type is an error."""
    tv = type(v)
    if tv is t:
        return v
    if tv is int or tv is _LitForm:
        return _lit_to(t, v)
    raise TypeError(f"{what}: expected {t.__name__}, got {_tname(tv)} (E206)")


def _expect_u64(v, what="value"):
    return _coerce_int(u64, v, what)


# ----------------------------------------------------------------------------------------------------------------
# Simulated memory


class Memory:
    """Sparse byte-addressed memory of 4 KiB pages; unwritten bytes read as 0.  Page 0 faults."""

    PAGE = 4096

    def __init__(self, null_page_faults: bool = True):
        self.pages: dict[int, bytearray] = {}
        self.null_page_faults = null_page_faults

    def _check(self, addr: int, n: int):
        if addr < 0 or addr + n > (1 << 64) or (self.null_page_faults and addr < self.PAGE):
            raise MemoryFault(f"access of {n} bytes at {addr:#x}")

    def read(self, addr: int, n: int) -> bytes:
        addr = int(addr)
        self._check(addr, n)
        out = bytearray()
        while n > 0:
            pno, off = divmod(addr, self.PAGE)
            k = min(n, self.PAGE - off)
            page = self.pages.get(pno)
            out += page[off : off + k] if page is not None else bytes(k)
            addr += k
            n -= k
        return bytes(out)

    def write(self, addr: int, data: bytes) -> None:
        addr = int(addr)
        self._check(addr, len(data))
        i = 0
        n = len(data)
        while i < n:
            pno, off = divmod(addr + i, self.PAGE)
            k = min(n - i, self.PAGE - off)
            page = self.pages.get(pno)
            if page is None:
                page = self.pages[pno] = bytearray(self.PAGE)
            page[off : off + k] = data[i : i + k]
            i += k

    def load(self, addr: int, size: int, signed: bool = False) -> int:
        return int.from_bytes(self.read(addr, size), "little", signed=signed)

    def store(self, addr: int, size: int, value: int) -> None:
        self.write(addr, (int(value) & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))

    def fill(self, addr: int, n: int, byte: int = 0) -> None:
        self.write(addr, bytes([byte]) * n)


memory = Memory()

HEAP_BASE: Final = 0x7F00_0000_0000  # statics and constructed aggregates are bump-allocated from here
_heap = [HEAP_BASE]
_statics: list = []  # (address, type, section) of every static(), for introspection


def _alloc(size: int, align: int) -> int:
    a = (_heap[0] + align - 1) & -align
    _heap[0] = a + max(size, 1)
    return a


# function pointers: id <-> Python callable
FN_BASE: Final = 0x0F00_0000_0000
_fn_by_id: dict[int, object] = {}
_fn_ids: dict[object, int] = {}


def fn_id(f) -> int:
    """The non-zero id a function gets when stored into memory (0 for None)."""
    if f is None:
        return 0
    i = _fn_ids.get(f)
    if i is None:
        i = FN_BASE + 16 * (len(_fn_ids) + 1)
        _fn_ids[f] = i
        _fn_by_id[i] = f
    return i


def _fn_from_id(i: int):
    if i == 0:
        return None
    f = _fn_by_id.get(i)
    if f is None:
        raise MemoryFault(f"call through {i:#x}, which is not a stored function")
    return f


# ----------------------------------------------------------------------------------------------------------------
# Types: sizes, alignments, loads and stores


def _is_callable_type(t) -> bool:
    return t is Callable or typing.get_origin(t) is collections.abc.Callable


def _resolve(t):
    """Type expressions may be forward references (strings) under `from __future__ import annotations`."""
    if isinstance(t, _Ref):
        return t.get()
    return t


def sizeof(t) -> "u64":
    return u64(_size(t))


def alignof(t) -> "u64":
    return u64(_align(t))


def _size(t) -> int:
    t = _resolve(t)
    if _is_int_type(t):
        return t.BITS // 8
    if t is bool:
        return 1
    if isinstance(t, type) and issubclass(t, (Ptr, Mmio)) or _is_callable_type(t):
        return 8
    if isinstance(t, _StructMeta):
        return t.__layout__.size
    if isinstance(t, type) and issubclass(t, Array) and t._elem is not None:
        return _size(t._elem) * t._n
    raise TypeError(f"{t!r} is not a type of the language")


def _align(t) -> int:
    t = _resolve(t)
    if isinstance(t, _StructMeta):
        return t.__layout__.align
    if isinstance(t, type) and issubclass(t, Array) and t._elem is not None:
        return _align(t._elem)
    return _size(t)


def _is_aggregate(t) -> bool:
    t = _resolve(t)
    return isinstance(t, _StructMeta) or (isinstance(t, type) and issubclass(t, Array))


class _Placed:
    """Mixin-free marker: loaded integers carry `_place = (addr, type)` so `addr_of(table[3])` works."""


def _load(t, addr: int):
    t = _resolve(t)
    if _is_int_type(t):
        v = t(memory.load(addr, t.BITS // 8, t.SIGNED))
        v._place = (addr, t)
        return v
    if t is bool:
        return memory.load(addr, 1) != 0
    if isinstance(t, type) and issubclass(t, (Ptr, Mmio)):
        p = t(memory.load(addr, 8))
        p._place = addr
        return p
    if _is_callable_type(t):
        return _fn_from_id(memory.load(addr, 8))
    if _is_aggregate(t):
        return t._view(addr)
    raise TypeError(f"cannot load a {t!r}")


def _store(t, addr: int, v) -> None:
    t = _resolve(t)
    if _is_int_type(t):
        memory.store(addr, t.BITS // 8, _coerce_int(t, v, "store"))
    elif t is bool:
        if type(v) is not bool:
            raise TypeError(f"store: expected bool, got {_tname(type(v))}")
        memory.store(addr, 1, int(v))
    elif isinstance(t, type) and issubclass(t, (Ptr, Mmio)):
        if not isinstance(v, (Ptr, Mmio)) or not _same_type(type(v), t):
            raise TypeError(f"store: expected {t!r}, got {v!r}")
        memory.store(addr, 8, v._a)
    elif _is_callable_type(t):
        if v is not None and not callable(v):
            raise TypeError(f"store: expected a function, got {v!r}")
        memory.store(addr, 8, fn_id(v))
    elif _is_aggregate(t):
        raise TypeError("aggregates are places, not values: take addr_of(...) (E310)")
    else:
        raise TypeError(f"cannot store a {t!r}")


def _same_type(a, b) -> bool:
    a, b = _resolve(a), _resolve(b)
    if a is b:
        return True
    if isinstance(a, type) and isinstance(b, type) and issubclass(a, Ptr) and issubclass(b, Ptr):
        if issubclass(a, Mmio) != issubclass(b, Mmio) or a._elem is None or b._elem is None:
            return False
        return _same_type(a._elem, b._elem)
    return False


class _Ref:
    """A forward reference `Ptr["TrapFrame"]`, resolved in the globals of the module that wrote it."""

    def __init__(self, name: str, globs: dict):
        self.name = name
        self.globs = globs

    def get(self):
        try:
            return eval(self.name, self.globs, _NAMESPACE)
        except NameError as e:
            raise TypeError(f"unresolved type {self.name!r}: {e}") from None

    def __repr__(self):
        return self.name


def _key(t):
    return ("ref", t.name, id(t.globs)) if isinstance(t, _Ref) else t


def _type_arg(t, depth=2):
    if isinstance(t, str):
        return _Ref(t, sys._getframe(depth).f_globals)
    return t


# ----------------------------------------------------------------------------------------------------------------
# Structs


class StructLayout:
    """The C layout of a struct: `fields` maps name -> (offset, type), in declaration order."""

    def __init__(self, fields: dict, size: int, align: int):
        self.fields = fields
        self.size = size
        self.align = align

    def __repr__(self):
        inner = ", ".join(f"{n}@{o}" for n, (o, _) in self.fields.items())
        return f"StructLayout({inner}; size={self.size}, align={self.align})"


class _StructMeta(type):
    @property
    def __layout__(cls) -> StructLayout:
        lay = cls.__dict__.get("_layout_cache")
        if lay is None:
            lay = _compute_layout(cls)
            type.__setattr__(cls, "_layout_cache", lay)
        return lay

    def __call__(cls, *args, **kw):
        if args or kw:
            raise TypeError(f"{cls.__name__}() takes no arguments: it makes a zeroed struct")
        lay = cls.__layout__
        a = _alloc(lay.size, lay.align)
        memory.fill(a, lay.size)
        return cls._view(a)

    def _view(cls, addr: int):
        v = object.__new__(cls)
        object.__setattr__(v, "_addr", addr)
        return v

    def __repr__(cls):
        return cls.__name__


def _compute_layout(cls) -> StructLayout:
    anns = cls.__dict__.get("__annotations__", {})
    mod = sys.modules.get(cls.__module__)
    globs = dict(vars(mod)) if mod is not None else {}
    globs.setdefault(cls.__name__, cls)
    fields = {}
    off = 0
    align = 1
    for name, t in anns.items():
        if isinstance(t, str):
            t = eval(t, globs, _NAMESPACE)
        if typing.get_origin(t) is typing.ClassVar:
            continue
        a = _align(t)
        off = (off + a - 1) & -a
        fields[name] = (off, t)
        off += _size(t)
        align = max(align, a)
    size = (off + align - 1) & -align
    return StructLayout(fields, size, align)


class _StructBase:
    """Instances are views: `_addr` + the class's layout."""

    __slots__ = ("_addr",)

    def __getattr__(self, name):
        f = type(self).__layout__.fields.get(name)
        if f is None:
            raise AttributeError(f"struct {type(self).__name__} has no field {name!r}")
        return _load(f[1], self._addr + f[0])

    def __setattr__(self, name, value):
        f = type(self).__layout__.fields.get(name)
        if f is None:
            raise AttributeError(f"struct {type(self).__name__} has no field {name!r}")
        _store(f[1], self._addr + f[0], value)

    def __eq__(self, other):
        return type(other) is type(self) and other._addr == self._addr

    def __hash__(self):
        return hash((type(self), self._addr))

    def __repr__(self):
        return f"<{type(self).__name__} at {self._addr:#x}>"

    def __bool__(self):
        raise TypeError("a struct used as a condition (E203)")


def struct(cls):
    """`@struct class X: a: u32; b: u64` -> a struct type with C layout (`X.__layout__`, lazily computed so that
    fields may name structs defined later)."""
    ns = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
    anns = ns.get("__annotations__", {})
    for name in anns:
        ns.pop(name, None)  # no class-level defaults: fields live in memory
    ns["__slots__"] = ()
    new = _StructMeta(cls.__name__, (_StructBase,), ns)
    new.__qualname__ = cls.__qualname__
    return new


def layout_of(t) -> StructLayout:
    return _resolve(t).__layout__


def offsetof(t, field: str) -> "u64":
    return u64(layout_of(t).fields[field][0])


# ----------------------------------------------------------------------------------------------------------------
# Arrays


class _Unchecked:
    __slots__ = ("_arr",)

    def __init__(self, arr):
        self._arr = arr

    def __getitem__(self, i):
        return self._arr._get(_index(i))

    def __setitem__(self, i, v):
        self._arr._set(_index(i), v)


def _index(i) -> int:
    if isinstance(i, bool) or not isinstance(i, int):
        raise TypeError(f"index of type {_tname(type(i))}")
    return int(i)


class Array:
    """`Array[T, N]` is the type; `Array[T, N]()` a zeroed array (a view); `a[i]` checks, `a.unchecked[i]` not."""

    __slots__ = ("_addr",)
    _elem = None
    _n = 0
    _cache: dict = {}

    def __class_getitem__(cls, params):
        t, n = params
        t = _type_arg(t)
        n = operator.index(n)
        key = (_key(t), n)
        c = Array._cache.get(key)
        if c is None:
            c = type(f"Array[{_tname(t)}, {n}]", (Array,), {"__slots__": (), "_elem": t, "_n": n})
            Array._cache[key] = c
            c._keep = t
        return c

    def __new__(cls, *args):
        if cls._elem is None:
            raise TypeError("Array needs [T, N]")
        if args:
            raise TypeError("Array[T, N]() takes no arguments: it makes a zeroed array")
        size = _size(cls)
        a = _alloc(size, _align(cls))
        memory.fill(a, size)
        return cls._view(a)

    @classmethod
    def _view(cls, addr):
        v = object.__new__(cls)
        v._addr = addr
        return v

    def _get(self, i):
        t = self._elem
        return _load(t, (self._addr + i * _size(t)) & _U64_MASK)

    def _set(self, i, v):
        t = self._elem
        _store(t, (self._addr + i * _size(t)) & _U64_MASK, v)

    def _check(self, i):
        i = _index(i)
        if not 0 <= i < self._n:
            raise Panic(1, i, self._n)
        return i

    def __getitem__(self, i):
        return self._get(self._check(i))

    def __setitem__(self, i, v):
        self._set(self._check(i), v)

    @property
    def unchecked(self):
        return _Unchecked(self)

    def __len__(self):
        return self._n

    def __iter__(self):
        raise TypeError("arrays are not iterable: use `for i in range(len(a))`")

    def __eq__(self, other):
        return type(other) is type(self) and other._addr == self._addr

    def __hash__(self):
        return hash((type(self), self._addr))

    def __repr__(self):
        return f"<{type(self).__name__} at {self._addr:#x}>"

    def __bool__(self):
        raise TypeError("an array used as a condition (E203)")


_builtin_len = len


def len(x):  # noqa: A001 - the language's len: u64 for arrays
    if isinstance(x, Array):
        return u64(x._n)
    return _builtin_len(x)


# ----------------------------------------------------------------------------------------------------------------
# Pointers and MMIO


class Ptr:
    """`Ptr[T](addr)`: `p.addr()`, `p.offset(n)`, `p[i]`, `p.field` (T a struct), `p[i] = v`."""

    __slots__ = ("_a", "_place")
    _elem = None
    _cache: dict = {}

    def __class_getitem__(cls, t):
        t = _type_arg(t)
        key = _key(t)
        c = cls._cache.get(key)
        if c is None:
            c = type(f"{cls.__name__}[{_tname(t)}]", (cls,), {"__slots__": (), "_elem": t})
            cls._cache[key] = c
            c._keep = t
        return c

    def __init__(self, addr=0):
        if self._elem is None:
            raise TypeError(f"{type(self).__name__} needs a type: {type(self).__name__}[T](addr)")
        if isinstance(addr, bool) or not isinstance(addr, int):
            raise TypeError(f"{type(self).__name__}(addr) needs a u64, got {_tname(type(addr))}")
        object.__setattr__(self, "_a", int(addr) & _U64_MASK)

    def addr(self) -> u64:
        return u64(self._a)

    def offset(self, n):
        return type(self)((self._a + _index(n) * _size(self._elem)) & _U64_MASK)

    def __getitem__(self, i):
        t = self._elem
        return _load(t, (self._a + _index(i) * _size(t)) & _U64_MASK)

    def __setitem__(self, i, v):
        t = self._elem
        _store(t, (self._a + _index(i) * _size(t)) & _U64_MASK, v)

    def _target(self):
        t = _resolve(self._elem)
        if not isinstance(t, _StructMeta):
            raise AttributeError(f"{type(self).__name__} does not point to a struct")
        return t._view(self._a)

    def __getattr__(self, name):
        if name.startswith("__") or name in ("_a", "_place"):
            raise AttributeError(name)
        return getattr(self._target(), name)

    def __setattr__(self, name, value):
        if name in ("_a", "_place"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._target(), name, value)

    def __eq__(self, other):
        if isinstance(other, Ptr):
            if not _same_type(type(self), type(other)):
                raise TypeError(f"comparison of {type(self).__name__} and {type(other).__name__} (E202)")
            return self._a == other._a
        return NotImplemented

    def __ne__(self, other):
        r = self.__eq__(other)
        return r if r is NotImplemented else not r

    def __hash__(self):
        return hash(self._a)

    def __bool__(self):
        raise TypeError("a pointer used as a condition (E203): compare with null(T)")

    def __repr__(self):
        return f"{type(self).__name__}({self._a:#x})"


class Mmio(Ptr):
    """`Mmio[T](addr)`: `r.read()`, `r.write(v)` (volatile, T's width, through `mock`), `r.offset(n)`, `r.addr()`."""

    __slots__ = ()
    _cache: dict = {}

    def __class_getitem__(cls, t):
        if not _is_int_type(t):
            raise TypeError(f"Mmio[T] needs an integer type, got {t!r}")
        return super().__class_getitem__(t)

    def read(self):
        t = self._elem
        return t(mock.mmio_read(self._a, t.BITS // 8))

    def write(self, v) -> None:
        t = self._elem
        mock.mmio_write(self._a, t.BITS // 8, int(_coerce_int(t, v, "Mmio.write")) & t.MASK)

    def __getitem__(self, i):
        raise TypeError("Mmio registers are accessed with read()/write()")

    __setitem__ = __getitem__

    def __getattr__(self, name):
        raise AttributeError(name)


def null(t) -> Ptr:
    return Ptr[_type_arg(t)](0)


def addr_of(place) -> Ptr:
    """A Ptr to an aggregate place (a struct or array view), or to a scalar just loaded from memory
    (`addr_of(table[3])`, `addr_of(frame.sepc)`)."""
    if isinstance(place, (_StructBase, Array)):
        return Ptr[type(place)](place._addr)
    p = getattr(place, "_place", None)
    if isinstance(place, _Int) and p is not None:
        return Ptr[p[1]](p[0])
    if isinstance(place, Ptr) and isinstance(p, int):
        return Ptr[type(place)](p)
    raise TypeError("addr_of needs a global, a struct field or an array element place (E311)")


# ----------------------------------------------------------------------------------------------------------------
# Globals and decorators


def static(t, init=None, align=None, section=None, export=None):
    """A global of type t in the simulated memory.  Aggregates give a view; scalars give the initial value (which
    carries its place, so `addr_of` works right after; later rebinding of the Python global does not update
    memory: take addresses of aggregate globals)."""
    if align is not None and (align <= 0 or align & (align - 1)):
        raise ValueError(f"static: align={align} is not a power of two (E150)")
    size = _size(t)
    a = _alloc(size, max(_align(t), align or 1))
    memory.fill(a, size)
    _statics.append((a, t, section))
    if export is not None:
        _exported[export] = a  # extern_addr(export) is this global's address, as the linker makes it
    rt = _resolve(t)
    if init is not None:
        if isinstance(rt, type) and issubclass(rt, Array):
            _init_array(rt, a, init)
        elif _is_aggregate(rt):
            raise TypeError("static: init is for scalars and arrays of scalars")
        else:
            _store(rt, a, init)
    return _load(rt, a)


def _init_array(t, addr: int, init) -> None:
    """`init=` of an array: a tuple of at most N values (a tuple again for each element that is an array); the
    elements it does not give stay zero (LANGUAGE.md 4)."""
    if not isinstance(init, tuple) or _builtin_len(init) > t._n:
        raise TypeError(f"static: init for {t.__name__} must be a tuple of at most {t._n} values")
    elem = _resolve(t._elem)
    for i, v in enumerate(init):
        at = addr + i * _size(elem)
        if isinstance(elem, type) and issubclass(elem, Array):
            _init_array(elem, at, v)
        elif _is_aggregate(elem):
            raise TypeError("static: init is for scalars and arrays of scalars")
        else:
            _store(elem, at, v)


def export(symbol: str):
    def deco(f):
        f.__export__ = symbol
        _exported_fns[symbol] = f  # extern_addr(symbol) is the function's address (its fn_id)
        return f

    if not isinstance(symbol, str):
        raise TypeError('use @export("symbol")')
    return deco


def extern(symbol: str):
    """A function defined in assembly: under CPython a call goes to `mock.externs[symbol]` (default: returns 0)."""
    if not isinstance(symbol, str):
        raise TypeError('use @extern("symbol")')

    def deco(f):
        def call(*args):
            impl = mock.externs.get(symbol)
            v = impl(*args) if impl is not None else 0
            # the declared result type, as the host target gives it (a plain int from the mock would become an
            # i64 when bound to a new local)
            t = f.__annotations__.get("return")
            if isinstance(t, str):
                t = eval(t, f.__globals__, _NAMESPACE)
            if _is_int_type(t) and isinstance(v, int) and not isinstance(v, bool):
                return t(int(v))
            if t is bool and v is not None:
                return bool(v)
            return v

        call.__extern__ = symbol
        call.__name__ = f.__name__
        return call

    return deco


_cstrs: dict[bytes, int] = {}


def cstr(text) -> "Ptr":
    """A Ptr[u8] to a NUL-terminated constant copy of the literal (one copy per distinct text)."""
    data = text.encode() if isinstance(text, str) else bytes(text)
    a = _cstrs.get(data)
    if a is None:
        a = _alloc(len(data) + 1, 1)
        memory.write(a, data + b"\0")
        _cstrs[data] = a
    return Ptr[u8](a)


_externs_addr: dict[str, int] = {}
_exported: dict[str, int] = {}  # export= symbol of a static -> its address (cleared by reset())
_exported_fns: dict[str, object] = {}  # @export symbol -> the function


def extern_addr(symbol: str) -> "u64":
    """The address of an assembly symbol: under CPython a stable made-up address per name; a symbol the program
    exports itself (`static(..., export=)`, `@export`) gives that global's address or the function's id."""
    if symbol in _exported:
        return u64(_exported[symbol])
    if symbol in _exported_fns:
        return u64(fn_id(_exported_fns[symbol]))
    if symbol not in _externs_addr:
        _externs_addr[symbol] = 0x0E00_0000_0000 + 0x100 * len(_externs_addr)
    return u64(_externs_addr[symbol])


def inline(f):
    f.__inline__ = True
    return f


def noinline(f):
    f.__inline__ = False
    return f


# ----------------------------------------------------------------------------------------------------------------
# The mock machine: CSRs, MMIO, privileged instructions, SBI, guest memory


class Mock:
    """The hart and devices that CSR/MMIO/SBI/H intrinsics talk to under CPython (and, through callbacks, on the
    host target).  Program it in tests; `reset()` restores a clean state.

    * `csr: dict[int, int]` CSR number -> value (missing: 0).  `csr_read_hook(num) -> int | None` overrides reads
      (None: use the dict); `csr_write_hook(num, new_value)` is called after every write/set/clear/swap.
    * MMIO: `map_mmio(base, length, read=fn(offset, width) -> int, write=fn(offset, width, value))` for device
      models; unmapped addresses behave as plain registers kept in `mmio: dict[int, int]` (addr -> last value).
      `mmio_log`: ("r"|"w", addr, width, value) for every access.
    * `sbi_handler(eid, fid, a0, a1, a2, a3, a4, a5) -> (error, value)`; default returns (-2, 0)
      (SBI_ERR_NOT_SUPPORTED).  `sbi_calls`: the argument tuples of every call.
    * Guest memory for hlv/hlvx/hsv: `guest` (a Memory with no null page) or `guest_read_hook(addr, width, exec)
      -> int` / `guest_write_hook(addr, width, value)`.
    * `log`: every privileged operation as a tuple, e.g. ("csrw", HSTATUS, v), ("csrr", SCAUSE), ("wfi",),
      ("hfence_gvma_vmid", 3), ("sbi", eid, fid, ...).  `ops(name)` filters it.
    * lr/sc: `reservation` is the address reserved by the last lr (None after sc).  `sc_fail_next` makes the
      next sc fail once.
    """

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.csr: dict[int, int] = {}
        self.csr_read_hook = None
        self.csr_write_hook = None
        self.mmio: dict[int, int] = {}
        self.mmio_regions: list = []
        self.mmio_log: list = []
        self.sbi_handler = None
        self.sbi_calls: list = []
        self.guest = Memory(null_page_faults=False)
        self.guest_read_hook = None
        self.guest_write_hook = None
        self.log: list = []
        self.reservation = None
        self.sc_fail_next = False
        self.externs: dict = {}

    def ops(self, name: str) -> list:
        return [e for e in self.log if e[0] == name]

    # CSRs (values are plain ints here; the intrinsics convert to u64)
    def csr_read(self, num: int) -> int:
        self.log.append(("csrr", num))
        if self.csr_read_hook is not None:
            v = self.csr_read_hook(num)
            if v is not None:
                return int(v) & _U64_MASK
        return self.csr.get(num, 0)

    def _csr_put(self, num: int, value: int) -> None:
        self.csr[num] = value & _U64_MASK
        if self.csr_write_hook is not None:
            self.csr_write_hook(num, value & _U64_MASK)

    def _csr_old(self, num: int) -> int:
        if self.csr_read_hook is not None:
            v = self.csr_read_hook(num)
            if v is not None:
                return int(v) & _U64_MASK
        return self.csr.get(num, 0)

    def csr_write(self, num: int, value: int) -> None:
        self.log.append(("csrw", num, value))
        self._csr_put(num, value)

    def csr_set(self, num: int, value: int) -> None:
        self.log.append(("csrs", num, value))
        self._csr_put(num, self._csr_old(num) | value)

    def csr_clear(self, num: int, value: int) -> None:
        self.log.append(("csrc", num, value))
        self._csr_put(num, self._csr_old(num) & ~value)

    def csr_swap(self, num: int, value: int) -> int:
        self.log.append(("csrrw", num, value))
        old = self._csr_old(num)
        self._csr_put(num, value)
        return old

    # MMIO
    def map_mmio(self, base: int, length: int, read=None, write=None) -> None:
        self.mmio_regions.append((int(base), int(length), read, write))

    def _region(self, addr: int):
        for base, length, r, w in self.mmio_regions:
            if base <= addr < base + length:
                return base, r, w
        return None

    def mmio_read(self, addr: int, width: int) -> int:
        reg = self._region(addr)
        if reg is not None and reg[1] is not None:
            v = int(reg[1](addr - reg[0], width))
        else:
            v = self.mmio.get(addr, 0)
        v &= (1 << (8 * width)) - 1
        self.mmio_log.append(("r", addr, width, v))
        return v

    def mmio_write(self, addr: int, width: int, value: int) -> None:
        value &= (1 << (8 * width)) - 1
        self.mmio_log.append(("w", addr, width, value))
        reg = self._region(addr)
        if reg is not None and reg[2] is not None:
            reg[2](addr - reg[0], width, value)
        else:
            self.mmio[addr] = value

    # instructions without data (fence, fence_i, wfi, sfence_vma, hfence_*)
    def instr(self, name: str, *args: int) -> None:
        self.log.append((name, *args))

    # hypervisor loads/stores
    def hlv(self, addr: int, width: int, exec_: bool = False) -> int:
        self.log.append(("hlvx" if exec_ else "hlv", addr, width))
        if self.guest_read_hook is not None:
            return int(self.guest_read_hook(addr, width, exec_)) & ((1 << (8 * width)) - 1)
        return self.guest.load(addr, width)

    def hsv(self, addr: int, width: int, value: int) -> None:
        self.log.append(("hsv", addr, width, value))
        value &= (1 << (8 * width)) - 1
        if self.guest_write_hook is not None:
            self.guest_write_hook(addr, width, value)
        else:
            self.guest.store(addr, width, value)

    def sbi_call(self, eid: int, fid: int, args) -> tuple[int, int]:
        """The host target's entry: args = [a0 .. a5]."""
        return self.sbi(eid, fid, *args)

    def sbi(self, eid, fid, a0, a1, a2, a3, a4, a5) -> tuple[int, int]:
        args = (eid, fid, a0, a1, a2, a3, a4, a5)
        self.log.append(("sbi", *args))
        self.sbi_calls.append(args)
        if self.sbi_handler is None:
            return (-2, 0)
        err, val = self.sbi_handler(*args)
        return int(err), int(val)


mock = Mock()


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


# ----------------------------------------------------------------------------------------------------------------
# Intrinsics

for _name, _num in CSRS.items():
    globals()[_name] = _num
del _name, _num


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


# ----------------------------------------------------------------------------------------------------------------
# Import hook: the static typing of compiled code, for CPython


_INT_NAMES = frozenset(["u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64", "usize", "bool"])


def _coerce(t, v):
    """Annotated parameters, results and assignments: a plain int takes the annotated integer type."""
    if _is_int_type(t):
        tv = type(v)
        if tv is int or tv is _LitForm:
            return _lit_to(t, v)
        if tv is not t and isinstance(v, (int, bool)):
            raise TypeError(f"expected {t.__name__}, got {_tname(tv)} (E206)")
    elif t is bool and type(v) is not bool:
        raise TypeError(f"expected bool, got {_tname(type(v))} (E206)")
    return v


def _range(*args):
    # the bounds give the type; the step is a constant of any type and sign, never converted (LANGUAGE.md 7)
    ts = {type(a) for a in args[:2] if type(a) is not int and type(a) is not _LitForm}
    if _builtin_len(ts) > 1:
        raise TypeError(f"range bounds of types {sorted(t.__name__ for t in ts)} (E202)")
    t = ts.pop() if ts else i64
    if not _is_int_type(t):
        raise TypeError(f"range bound of type {_tname(t)}")
    bounds = [int(_lit_to(t, a)) if type(a) is not t else int(a) for a in args[:2]]
    for i in range(*bounds, *[int(a) for a in args[2:]]):
        yield t(i)


def _old(name: str, glob: bool, depth: int = 2):
    f = sys._getframe(depth)
    return (f.f_globals if glob else f.f_locals).get(name)


def _bind(v, name: str, glob: bool = False, depth: int = 1):
    """`name = v`: a plain int literal or literal form takes the type of the variable (i64 for a new local)."""
    tv = type(v)
    if tv is not int and tv is not _LitForm:
        return v
    old = _old(name, glob, depth + 1)
    return _lit_to(type(old) if _is_int_type(type(old)) else i64, v)


def _make(t, name: str, glob: bool = False):
    """`name = T()` in a function: a zeroed T every time it runs; a local that already holds a T is zeroed in place,
    so the local keeps one place per call, as compiled (LANGUAGE.md 5).  Any other zero-argument call is called."""
    if isinstance(t, _StructMeta) or (isinstance(t, type) and issubclass(t, Array)):
        old = _old(name, glob)
        if type(old) is t:
            memory.fill(old._addr, _size(t))
            return old
        return t()
    return _bind(t(), name, glob, 2)


def _assert_failed(line: int):
    raise AssertPanic(3, line, 0)


def _int_ann(node):
    """u32 / Final[u32] annotation nodes -> the type name, else None."""
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "Final":
        node = node.slice
    if isinstance(node, ast.Name) and node.id in _INT_NAMES:
        return node.id
    return None


class _Typer(ast.NodeTransformer):
    def __init__(self):
        self.ret: list = []
        self.globs: list = []  # per function: the names of its `global` statements

    def _call(self, fn: str, *args, like):
        return ast.copy_location(ast.Call(func=ast.Name(id=fn, ctx=ast.Load()), args=list(args), keywords=[]), like)

    def visit_FunctionDef(self, node):
        self.ret.append(_int_ann(node.returns) if node.returns is not None else None)
        self.globs.append({n for g in ast.walk(node) if isinstance(g, ast.Global) for n in g.names})
        self.generic_visit(node)
        self.globs.pop()
        self.ret.pop()
        pre = []
        for a in node.args.posonlyargs + node.args.args:
            t = _int_ann(a.annotation) if a.annotation is not None else None
            if t is not None:
                assign = ast.Assign(
                    targets=[ast.Name(id=a.arg, ctx=ast.Store())],
                    value=self._call(
                        "__ps_coerce__", ast.Name(id=t, ctx=ast.Load()), ast.Name(id=a.arg, ctx=ast.Load()), like=node
                    ),
                    lineno=node.lineno,
                )
                pre.append(ast.copy_location(assign, node))
        if pre:
            body = node.body
            k = (
                1
                if body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
                else 0
            )
            node.body = body[:k] + pre + body[k:]
        return node

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Return(self, node):
        self.generic_visit(node)
        t = self.ret[-1] if self.ret else None
        if t is not None and node.value is not None:
            node.value = self._call("__ps_coerce__", ast.Name(id=t, ctx=ast.Load()), node.value, like=node.value)
        return node

    def visit_AnnAssign(self, node):
        self.generic_visit(node)
        t = _int_ann(node.annotation)
        if t is not None and node.value is not None:
            node.value = self._call("__ps_coerce__", ast.Name(id=t, ctx=ast.Load()), node.value, like=node.value)
        elif node.value is not None and self._is_zero_arg_call(node.value):
            node.value = self._bind(node.target, node.value)
        return node

    def visit_Assign(self, node):
        self.generic_visit(node)
        if len(node.targets) == 1:
            node.value = self._bind(node.targets[0], node.value)
        return node

    @staticmethod
    def _is_zero_arg_call(value) -> bool:
        return (
            isinstance(value, ast.Call)
            and not value.args
            and not value.keywords
            and isinstance(value.func, (ast.Name, ast.Subscript))
        )

    def _bind(self, target, value):
        """`x = v` in a function -> `x = __ps_bind__(v, "x", is_global)`: a plain int (a literal, a literal form)
        takes x's type, or i64 for a new local (LANGUAGE.md 3); `x = T()` -> `x = __ps_make__(T, "x", is_global)`,
        which zeroes x's place again when x already holds a T (LANGUAGE.md 5)."""
        if not (self.ret and isinstance(target, ast.Name)):
            return value
        glob = ast.Constant(target.id in self.globs[-1])
        if self._is_zero_arg_call(value):
            return self._call("__ps_make__", value.func, ast.Constant(target.id), glob, like=value)
        return self._call("__ps_bind__", value, ast.Constant(target.id), glob, like=value)

    def visit_Assert(self, node):
        self.generic_visit(node)
        fail = ast.Expr(value=self._call("__ps_assert_failed__", ast.Constant(node.lineno), like=node))
        new = ast.If(test=ast.UnaryOp(op=ast.Not(), operand=node.test), body=[ast.copy_location(fail, node)], orelse=[])
        return ast.copy_location(new, node)

    def visit_ImportFrom(self, node):
        # `from hypervisor.x import a, b` between program modules: bound now if defined, else once the cycle has
        # loaded (LANGUAGE.md 1: import cycles are allowed).  The language's own names import as usual.
        if node.level != 0 or node.module is None or node.module.split(".")[0] in ("compiler", "__future__", "typing"):
            return node
        names = ast.Tuple(elts=[ast.Constant(a.name) for a in node.names], ctx=ast.Load())
        call = self._call(
            "__ps_import__", self._call("globals", like=node), ast.Constant(node.module), names, like=node
        )
        return ast.copy_location(ast.Expr(value=call), node)

    def visit_For(self, node):
        self.generic_visit(node)
        it = node.iter
        if isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "range":
            it.func = ast.copy_location(ast.Name(id="__ps_range__", ctx=ast.Load()), it.func)
        return node


def _typed_code(source: str, path: str):
    # The rewrite and compile() of the tree recurse per level of an expression: room for what the compiler
    # accepts (2000 levels, compiler.checker.MAX_DEPTH; CPython's parser keeps its own limit).
    tree = ast.parse(source, filename=path)
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 20000))
    try:
        tree = _Typer().visit(tree)
        ast.fix_missing_locations(tree)
        return compile(tree, path, "exec", dont_inherit=True)
    finally:
        sys.setrecursionlimit(old)


_pending: list = []  # (globals, module, name) waiting for a module of an import cycle to finish
_loading = [0]


def _import_from(globs: dict, modname: str, names: tuple) -> None:
    mod = importlib.import_module(modname)
    for n in names:
        if n in vars(mod):
            globs[n] = vars(mod)[n]
        else:
            _pending.append((globs, mod, n))


def _resolve_pending() -> None:
    still = []
    for globs, mod, n in _pending:
        if n in vars(mod):
            globs[n] = vars(mod)[n]
        else:
            still.append((globs, mod, n))
    _pending[:] = still
    if _loading[0] == 0 and still:
        globs, mod, n = still[0]
        _pending.clear()
        raise ImportError(f"cannot import name {n!r} from {mod.__name__!r} (E103)")


_HOOK_NAMES = {
    "__ps_coerce__": _coerce,
    "__ps_range__": _range,
    "__ps_make__": _make,
    "__ps_bind__": _bind,
    "len": len,  # the language's len (a u64 for arrays) even where the module does not import it
    "__ps_assert_failed__": _assert_failed,
    "__ps_import__": _import_from,
}


class _TypedLoader(importlib.abc.Loader):
    def __init__(self, path: str):
        self.path = path

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        code = _typed_code(self.get_source(module.__name__), self.path)
        module.__dict__.update(_HOOK_NAMES)
        _loading[0] += 1
        try:
            exec(code, module.__dict__)
        except BaseException:
            _loading[0] -= 1
            if _loading[0] == 0:
                _pending.clear()
            raise
        _loading[0] -= 1
        _resolve_pending()

    def get_source(self, name):
        # decoded as CPython's own loader does: a UTF-8 BOM or a PEP 263 coding line, else UTF-8
        with open(self.path, "rb") as f:
            return importlib.util.decode_source(f.read())


class _TypedFinder(importlib.abc.MetaPathFinder):
    def __init__(self, prefixes):
        self.prefixes = tuple(prefixes)

    def find_spec(self, fullname, path, target=None):
        if not any(fullname == p or fullname.startswith(p + ".") for p in self.prefixes):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            return spec
        spec.loader = _TypedLoader(spec.origin)
        return spec


_finder: list = []


def install_import_hook(prefixes=("hypervisor",)) -> None:
    """Load modules under these dotted prefixes with the typing rewrite (idempotent; prefixes accumulate)."""
    if _finder:
        f = _finder[0]
        f.prefixes = tuple(dict.fromkeys(f.prefixes + tuple(prefixes)))
        return
    f = _TypedFinder(prefixes)
    _finder.append(f)
    sys.meta_path.insert(0, f)


def load_module(path: str, name: str):
    """Load one file as module `name` with the typing rewrite (and register it in sys.modules)."""
    spec = importlib.util.spec_from_file_location(name, path, loader=_TypedLoader(path))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return mod


_NAMESPACE = {n: globals()[n] for n in __all__ if n in globals()}
