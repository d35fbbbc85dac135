"""E201: a local's type never changes (reported at the new value)."""
# ruff: noqa
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of


def f() -> u64:
    x: u32 = 1
    x = u64(2)
    return 0

#! E201 8:9
