"""E203: conditions must be bool."""
# ruff: noqa
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of


def f(x: u32) -> u32:
    if x:
        return 1
    return 0

#! E203 7:8
