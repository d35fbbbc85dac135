"""E204: a literal that does not fit its type."""
# ruff: noqa
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of


def f() -> u8:
    x: u8 = 300
    return x

#! E204 7:13
