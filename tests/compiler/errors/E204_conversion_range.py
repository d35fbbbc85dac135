"""E204: a conversion of a literal outside its width read signed or unsigned (-2**(bits-1) .. 2**bits - 1)."""
# ruff: noqa
from compiler.prelude import i8, i64, u8, u16, u64


def f() -> u64:
    a = u8(-129)
    b = i8(256)
    c = u16(-32769)
    d = i64(0x10000000000000000)
    e = u8(-1) + u8(255) + u8(-128)
    return u64(a) + u64(b) + u64(c) + u64(d) + u64(e)

#! E204 7:12
#! E204 8:12
#! E204 9:13
#! E204 10:13
