"""E208: operators outside the language (here `/`)."""
# ruff: noqa
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of


def f(a: u32, b: u32) -> u32:
    return a / b

#! E208 7:12
