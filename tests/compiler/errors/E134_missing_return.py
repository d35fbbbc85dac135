"""E134: a function with a result that can reach its end without return (reported at the def)."""
# ruff: noqa
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of


def f(x: u32) -> u32:
    if x > 1:
        return 1

#! E134 6:1
