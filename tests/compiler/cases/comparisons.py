"""Comparisons need one type on both sides, give bool, order by signedness."""
from compiler.prelude import i8, i32, i64, u8, u32, u64


def lt_u32(a: u32, b: u32) -> bool:
    return a < b


def lt_i32(a: i32, b: i32) -> bool:
    return a < b


def all_u8(a: u8, b: u8) -> u32:
    r: u32 = 0
    if a == b:
        r |= 1
    if a != b:
        r |= 2
    if a < b:
        r |= 4
    if a <= b:
        r |= 8
    if a > b:
        r |= 16
    if a >= b:
        r |= 32
    return r


def all_i8(a: i8, b: i8) -> u32:
    r: u32 = 0
    if a == b:
        r |= 1
    if a != b:
        r |= 2
    if a < b:
        r |= 4
    if a <= b:
        r |= 8
    if a > b:
        r |= 16
    if a >= b:
        r |= 32
    return r


def literal_cmp(a: i64) -> bool:
    return a > -1


def u64_top(a: u64) -> bool:
    return a > 0x7FFFFFFFFFFFFFFF


#: lt_u32(1, 0xFFFFFFFF) == 1
#: lt_i32(1, -1) == 0
#: all_u8(3, 3) == 41
#: all_u8(1, 200) == 14
#: all_u8(200, 1) == 50
#: all_i8(-56, 1) == 14
#: all_i8(1, -56) == 50
#: literal_cmp(0) == 1
#: literal_cmp(-1) == 0
#: u64_top(0x8000000000000000) == 1
#: u64_top(5) == 0
