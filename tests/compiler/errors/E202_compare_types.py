"""E202: comparison operands of two different types."""
# ruff: noqa
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of


def f(a: u32, b: i32) -> bool:
    return a < b

#! E202 7:12
