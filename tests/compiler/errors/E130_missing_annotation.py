"""E130: every parameter is annotated."""
# ruff: noqa
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of


def f(x) -> u32:
    return 1

#! E130 6:7
