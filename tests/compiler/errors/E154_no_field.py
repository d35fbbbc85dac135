"""E154: a field the struct does not have."""
# ruff: noqa
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of


@struct
class S:
    a: u32


def f(p: Ptr[S]) -> u32:
    return p.b

#! E154 12:12
