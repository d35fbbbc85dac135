"""Literals take the type of their context: other operand, annotated target, parameter, result, field."""
from compiler.prelude import Array, i8, i64, static, u8, u16, u32, u64

vals = static(Array[u16, 2])


def takes_u8(x: u8) -> u8:
    return x + 1


def from_param() -> u8:
    return takes_u8(255)


def from_result() -> i8:
    return -128


def from_target() -> u64:
    x: u64 = 0xFFFFFFFFFFFFFFFF
    return x


def from_operand(a: u16) -> u16:
    return 0xFFFF + a


def from_store() -> u16:
    vals[0] = 65535
    vals[0] += 1
    return vals[0]


def untyped_local() -> i64:
    x = 5
    y = x - 10
    return y


def hex_bin_oct() -> u32:
    return 0x10 + 0b101 + 0o17 + 1_000


#: from_param() == 0
#: from_result() == -128
#: from_target() == 0xFFFFFFFFFFFFFFFF
#: from_operand(1) == 0
#: from_store() == 0
#: untyped_local() == -5
#: hex_bin_oct() == 1036
