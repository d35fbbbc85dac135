"""Fixed-width integers: every type wraps modulo 2**bits (LANGUAGE.md 3)."""
from compiler.prelude import i8, i16, i32, i64, u8, u16, u32, u64, usize


def add_u8(a: u8, b: u8) -> u8:
    return a + b


def sub_u16(a: u16, b: u16) -> u16:
    return a - b


def mul_u32(a: u32, b: u32) -> u32:
    return a * b


def add_u64(a: u64, b: u64) -> u64:
    return a + b


def add_i8(a: i8, b: i8) -> i8:
    return a + b


def sub_i16(a: i16, b: i16) -> i16:
    return a - b


def mul_i32(a: i32, b: i32) -> i32:
    return a * b


def mul_i64(a: i64, b: i64) -> i64:
    return a * b


def neg_u8() -> u8:
    return -u8(1)


def neg_i8_min() -> i8:
    x: i8 = -128
    return -x


def invert_u16() -> u16:
    return ~u16(0x00F0)


def invert_i32() -> i32:
    return ~i32(5)


def plus_i16() -> i16:
    return +i16(-3)


def bitops_u32(a: u32, b: u32) -> u32:
    return (a & b) | ((a ^ b) & u32(0xFF00))


def usize_is_u64(a: usize) -> u64:
    b: u64 = a
    return b + 1


def counter_u8() -> u32:
    x: u8 = 250
    n: u32 = 0
    while x != 3:
        x += 1
        n += 1
    return n


#: add_u8(200, 100) == 44
#: add_u8(255, 1) == 0
#: sub_u16(0, 1) == 65535
#: mul_u32(0x10000, 0x10000) == 0
#: mul_u32(0xFFFFFFFF, 0xFFFFFFFF) == 1
#: add_u64(0xFFFFFFFFFFFFFFFF, 2) == 1
#: add_i8(127, 1) == -128
#: add_i8(-100, -100) == 56
#: sub_i16(-32768, 1) == 32767
#: mul_i32(0x10000, 0x8000) == -2147483648
#: mul_i64(0x100000000, 0x100000000) == 0
#: mul_i64(-3, 7) == -21
#: neg_u8() == 255
#: neg_i8_min() == -128
#: invert_u16() == 0xFF0F
#: invert_i32() == -6
#: plus_i16() == -3
#: bitops_u32(0x12345678, 0x0F0F0F0F) == 0x02045F08
#: usize_is_u64(0xFFFFFFFFFFFFFFFF) == 0
#: counter_u8() == 9
