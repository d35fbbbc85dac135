"""E131: no default arguments."""
# ruff: noqa
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of


def f(x: u32 = 1) -> u32:
    return x

#! E131 6:1
