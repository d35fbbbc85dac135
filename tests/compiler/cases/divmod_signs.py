"""// and % follow Python: floor division, remainder with the divisor's sign; MIN // -1 == MIN (LANGUAGE.md 3)."""
from compiler.prelude import i8, i16, i32, i64, u8, u32, u64


def fdiv_i32(a: i32, b: i32) -> i32:
    return a // b


def fmod_i32(a: i32, b: i32) -> i32:
    return a % b


def fdiv_i8(a: i8, b: i8) -> i8:
    return a // b


def fmod_i8(a: i8, b: i8) -> i8:
    return a % b


def fdiv_i64(a: i64, b: i64) -> i64:
    return a // b


def fmod_i64(a: i64, b: i64) -> i64:
    return a % b


def fdiv_i16(a: i16, b: i16) -> i16:
    return a // b


def div_u8(a: u8, b: u8) -> u8:
    return a // b


def mod_u32(a: u32, b: u32) -> u32:
    return a % b


def div_u64(a: u64, b: u64) -> u64:
    return a // b


def identity_i32(a: i32, b: i32) -> bool:
    return (a // b) * b + a % b == a


#: fdiv_i32(-7, 2) == -4
#: fmod_i32(-7, 2) == 1
#: fdiv_i32(7, -2) == -4
#: fmod_i32(7, -2) == -1
#: fdiv_i32(-7, -2) == 3
#: fmod_i32(-7, -2) == -1
#: fdiv_i32(7, 2) == 3
#: fmod_i32(7, 2) == 1
#: fdiv_i32(-2147483648, -1) == -2147483648
#: fmod_i32(-2147483648, -1) == 0
#: fdiv_i8(-128, -1) == -128
#: fmod_i8(-128, -1) == 0
#: fdiv_i8(-1, 127) == -1
#: fmod_i8(-1, 127) == 126
#: fdiv_i64(-9223372036854775808, -1) == -9223372036854775808
#: fmod_i64(-9223372036854775808, -1) == 0
#: fdiv_i64(-1, 3) == -1
#: fmod_i64(-1, 3) == 2
#: fdiv_i16(-32768, 3) == -10923
#: div_u8(255, 2) == 127
#: mod_u32(0xFFFFFFFF, 10) == 5
#: div_u64(0xFFFFFFFFFFFFFFFF, 3) == 0x5555555555555555
#: identity_i32(-13, 5) == 1
#: identity_i32(13, -5) == 1
#: fdiv_i32(5, 0) panics 2, 5, 0
#: fmod_i32(-5, 0) panics 2, 0xFFFFFFFFFFFFFFFB, 0
#: div_u8(200, 0) panics 2, 200, 0
