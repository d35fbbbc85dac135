"""Shifts: the left operand gives the type, the count is masked to log2(bits) bits, >> is arithmetic for signed."""
from compiler.prelude import i8, i16, i32, i64, u8, u16, u32, u64


def shl_u32(a: u32, n: u32) -> u32:
    return a << n


def shr_u32(a: u32, n: u32) -> u32:
    return a >> n


def shl_u8_count_u64(a: u8, n: u64) -> u8:
    return a << n


def shr_i8(a: i8, n: u8) -> i8:
    return a >> n


def shr_i64(a: i64, n: i64) -> i64:
    return a >> n


def shr_u64(a: u64, n: u8) -> u64:
    return a >> n


def shl_i16(a: i16, n: i32) -> i16:
    return a << n


def shl_literal_count() -> u16:
    x: u16 = 0x0101
    return x << 4


def shl_literal_left(n: u32) -> u64:
    x: u64 = 1 << n
    return x


def shift_aug(a: u32) -> u32:
    a <<= 3
    a >>= u8(1)
    return a


#: shl_u32(1, 33) == 2
#: shl_u32(1, 31) == 0x80000000
#: shl_u32(0xFFFFFFFF, 4) == 0xFFFFFFF0
#: shr_u32(0x80000000, 31) == 1
#: shr_u32(0x80000000, 32) == 0x80000000
#: shl_u8_count_u64(1, 9) == 2
#: shl_u8_count_u64(0x81, 1) == 2
#: shr_i8(-128, 7) == -1
#: shr_i8(-128, 8) == -128
#: shr_i8(64, 3) == 8
#: shr_i64(-16, 2) == -4
#: shr_i64(-1, 63) == -1
#: shr_i64(1, -1) == 0
#: shr_u64(0xFFFFFFFFFFFFFFFF, 63) == 1
#: shr_u64(0xFFFFFFFFFFFFFFFF, 64) == 0xFFFFFFFFFFFFFFFF
#: shl_i16(1, 15) == -32768
#: shl_i16(3, 17) == 6
#: shl_literal_count() == 0x1010
#: shl_literal_left(40) == 0x10000000000
#: shift_aug(0x20000001) == 4
