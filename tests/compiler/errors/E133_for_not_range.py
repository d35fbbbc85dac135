"""E133: `for` loops only over range(...)."""
# ruff: noqa
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of

t = static(Array[u32, 4])


def f() -> u32:
    s: u32 = 0
    for x in t:
        s += x
    return s

#! E133 10:14
