"""E206: a returned value of the wrong type."""
# ruff: noqa
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of


def f(b: u64) -> u32:
    return b

#! E206 7:12
