"""E210: division by a constant zero."""
# ruff: noqa
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of


def f(a: u32) -> u32:
    return a // 0

#! E210 7:12
