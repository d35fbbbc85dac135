"""E151: a name that is not defined."""
# ruff: noqa
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of


def f() -> u32:
    return missing + 1

#! E151 7:12
