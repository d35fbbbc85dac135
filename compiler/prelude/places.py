"""Types that live in the simulated memory: sizes and alignments, loads and stores, structs, arrays, pointers and
Mmio registers (views: an address and a type), `addr_of`, `null`, `len`."""

import collections.abc
import operator
import sys
import typing
from collections.abc import Callable

from compiler.prelude.ints import _coerce_int, _Int, _is_int_type, _tname, u64
from compiler.prelude.mock_machine import mock
from compiler.prelude.panics import _U64_MASK, Panic
from compiler.prelude.sim_memory import _alloc, _fn_from_id, fn_id, memory

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


# The prelude's names, for type expressions written as strings (filled by compiler/prelude/__init__.py).
_NAMESPACE: dict = {}
