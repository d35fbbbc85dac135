"""E133: a range step must be a non-zero constant."""
# ruff: noqa
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of


def f(n: u32) -> u32:
    s: u32 = 0
    for i in range(0, n, 0):
        s += i
    return s

#! E133 8:26
