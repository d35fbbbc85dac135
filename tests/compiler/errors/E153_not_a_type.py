"""E153: a type outside the language (Mmio of a non-integer)."""
# ruff: noqa
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of
from compiler.prelude import Mmio


def f(r: Mmio[bool]) -> u32:
    return 0

#! E153 7:15
