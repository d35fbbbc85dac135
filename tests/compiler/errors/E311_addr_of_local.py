"""E311: the address of a scalar local is not available."""
# ruff: noqa
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of


def f() -> u64:
    x: u32 = 1
    p = addr_of(x)
    return p.addr()

#! E311 8:17
