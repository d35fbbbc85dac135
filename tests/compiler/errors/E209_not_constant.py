"""E209: a global's initial value must be a constant."""
# ruff: noqa
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of


def g() -> u32:
    return 1


x: u32 = g()

#! E209 10:10
