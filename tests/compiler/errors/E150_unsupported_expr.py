"""E150: expressions outside the language (here a list display)."""
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of


def f() -> u32:
    x = [1, 2]
    return 0

#! E150 6:9
