"""Explicit conversions: zero-extend unsigned/bool, sign-extend signed, truncate to narrower (LANGUAGE.md 3)."""
from compiler.prelude import i8, i16, i32, i64, u8, u16, u32, u64


def trunc_u8(a: u64) -> u8:
    return u8(a)


def sext_i8_to_u32(a: i8) -> u32:
    return u32(a)


def zext_u8_to_i32(a: u8) -> i32:
    return i32(a)


def i16_to_i64(a: i16) -> i64:
    return i64(a)


def u32_to_i32(a: u32) -> i32:
    return i32(a)


def i64_to_u16(a: i64) -> u16:
    return u16(a)


def bool_to_u64(a: u32) -> u64:
    return u64(a > 10)


def int_to_bool(a: u16) -> u8:
    b: bool = bool(a)
    return u8(b)


def neg_literal_mask() -> u64:
    return u64(-1)


def neg_literal_u32() -> u32:
    return u32(-2)


def chain(a: i32) -> u64:
    return u64(u8(i16(a)))


#: trunc_u8(0x1234) == 0x34
#: sext_i8_to_u32(-1) == 0xFFFFFFFF
#: sext_i8_to_u32(127) == 127
#: zext_u8_to_i32(255) == 255
#: i16_to_i64(-32768) == -32768
#: u32_to_i32(0xFFFFFFFE) == -2
#: i64_to_u16(-1) == 65535
#: i64_to_u16(0x123456789) == 0x6789
#: bool_to_u64(11) == 1
#: bool_to_u64(10) == 0
#: int_to_bool(256) == 1
#: int_to_bool(0) == 0
#: neg_literal_mask() == 0xFFFFFFFFFFFFFFFF
#: neg_literal_u32() == 0xFFFFFFFE
#: chain(-255) == 1
