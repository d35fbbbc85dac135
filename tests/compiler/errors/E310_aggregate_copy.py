"""E310: aggregates are places, not values (binding a struct to a second name)."""
# ruff: noqa
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of


@struct
class S:
    a: u32


def f() -> u32:
    s = S()
    t = s
    return 0

#! E310 13:9
