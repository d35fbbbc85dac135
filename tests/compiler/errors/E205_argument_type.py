"""E205: an argument of the wrong type."""
# ruff: noqa
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of


def g(a: u32) -> u32:
    return a


def f(b: u64) -> u32:
    return g(b)

#! E205 11:14
