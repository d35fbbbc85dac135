"""Panics: what a failed check, a division by zero, a failed `assert` or `panic(code)` raises under CPython, and
the fault of a bad access to the simulated memory."""

_U64_MASK = (1 << 64) - 1


def _u64raw(x) -> int:
    return int(x) & _U64_MASK


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
