"""Globals and decorators: `static(...)`, `@export`, `@extern`, `cstr`, `extern_addr`, `@inline`, `@noinline`."""

from compiler.prelude.ints import _is_int_type, u8, u64
from compiler.prelude.mock_machine import mock
from compiler.prelude.places import (
    _NAMESPACE,
    Array,
    Ptr,
    _align,
    _builtin_len,
    _is_aggregate,
    _load,
    _resolve,
    _size,
    _store,
    len,
)
from compiler.prelude.sim_memory import _alloc, _statics, fn_id, memory


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
