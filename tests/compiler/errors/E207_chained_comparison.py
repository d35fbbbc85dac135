"""E207: chained comparisons are rejected."""
# ruff: noqa
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of


def f(a: u32, b: u32, c: u32) -> bool:
    return a < b < c

#! E207 7:12
