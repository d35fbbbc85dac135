"""E121: assigning a scalar global without `global`."""
# ruff: noqa
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of

count: u32 = 0


def f() -> None:
    count = count + 1

#! E121 9:5
