"""E150: expressions outside the language (here a list display)."""
# ruff: noqa
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of


def f() -> u32:
    x = [1, 2]
    return 0

#! E150 7:9
