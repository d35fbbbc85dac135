"""E152: a call with the wrong number of arguments."""
# ruff: noqa
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of


def g(a: u32, b: u32) -> u32:
    return a + b


def f() -> u32:
    return g(1)

#! E152 11:12
