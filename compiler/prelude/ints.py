"""Fixed-width integers `u8 .. i64` (`usize is u64`): `int` subclasses that wrap, and literal forms (LANGUAGE.md 3)."""

import operator

from compiler.prelude.panics import _U64_MASK, Panic


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
        __module__="compiler.prelude",  # where programs import them from
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
