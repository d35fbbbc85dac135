"""E120: assigning a Final constant."""
# ruff: noqa
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of

LIMIT: Final = 8


def f() -> None:
    LIMIT = 9

#! E120 9:5
