"""E111: a name defined twice in a module."""
# ruff: noqa
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of


def f() -> u32:
    return 1


def f() -> u32:
    return 2

#! E111 10:1
