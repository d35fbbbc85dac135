"""E140: recursion, direct or mutual, is rejected (reported at the def of the first function of the cycle)."""
# ruff: noqa
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of


def fact(n: u64) -> u64:
    if n == 0:
        return 1
    return n * fact(n - 1)

#! E140 6:1
