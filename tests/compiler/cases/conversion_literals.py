"""A conversion of a literal takes any literal that fits the target's width read signed or unsigned, modulo 2**bits
(LANGUAGE.md 3): negative literals into unsigned types and large ones into signed types wrap the same way."""
from compiler.prelude import i8, i16, i64, u8, u16, u32, u64


def unsigned_from_negative() -> u64:
    return u64(u8(-1)) + u64(u8(-128)) + u64(u16(-32768)) + u64(u32(-2))


def signed_from_large() -> i64:
    return i64(i8(0xFF)) + i64(i8(128)) + i64(i16(0xFFFF)) + i64(0xFFFFFFFFFFFFFFFF)


def edges() -> u64:
    return u64(-0x8000000000000000)


def constant_expression() -> u8:
    return u8(-1 - 127)  # folded to -128 first


#: unsigned_from_negative() == 4295000445
#: signed_from_large() == -131
#: edges() == 0x8000000000000000
#: constant_expression() == 128
