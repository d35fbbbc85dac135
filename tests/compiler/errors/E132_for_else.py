"""E132: `for ... else` is rejected (reported at the first statement of the else block)."""
# ruff: noqa
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of


def f(n: u32) -> u32:
    for i in range(n):
        pass
    else:
        n = 5
    return n

#! E132 10:9
