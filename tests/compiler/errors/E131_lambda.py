"""E131: no lambdas."""
# ruff: noqa
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of


def f() -> None:
    g = lambda: 1

#! E131 7:9
