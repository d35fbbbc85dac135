"""E312: one target per assignment."""
# ruff: noqa
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of


def f() -> u32:
    a: u32 = 0
    b: u32 = 0
    a = b = 2
    return a

#! E312 9:5
