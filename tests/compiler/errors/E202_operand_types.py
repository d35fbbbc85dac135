"""E202: binary operands of two different types (reported at the whole operation)."""
# ruff: noqa
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of


def f(a: u32, b: u64) -> u64:
    total = a + b
    return total

#! E202 7:13
