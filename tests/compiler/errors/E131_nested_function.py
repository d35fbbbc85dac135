"""E131: no nested functions or closures."""
# ruff: noqa
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of


def f() -> u32:
    def g() -> u32:
        return 1
    return 0

#! E131 7:5
