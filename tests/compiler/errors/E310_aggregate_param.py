"""E310: passing an aggregate by value (an aggregate parameter type)."""
# ruff: noqa
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of


@struct
class S:
    a: u32


def f(s: S) -> u32:
    return 0

#! E310 11:10
