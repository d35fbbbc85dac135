"""range(start, stop, step) over unsigned and signed bounds: the step is a constant of any sign and any type, not
converted to the bounds' type; the loop runs exactly Python's range and never wraps (LANGUAGE.md 7)."""
from compiler.prelude import i8, u8, u32, u64


def down_u64() -> u64:
    s: u64 = 0
    for i in range(u64(10), u64(0), -1):
        s += i
    return s


def down_u8_by_two() -> u32:
    d: u32 = 0
    for i in range(u8(5), u8(0), -2):
        d = d * 10 + u32(i)
    return d


def down_to_zero_u8() -> u32:
    d: u32 = 0
    for i in range(u8(255), u8(0), -100):
        d = d * 1000 + u32(i)
    return d


def down_past_zero(n: u8) -> u32:
    k: u32 = 0
    for _i in range(n, u8(0), -3):
        k += 1
    return k


def up_near_max() -> u32:
    k: u32 = 0
    for i in range(u8(200), u8(255), 50):
        k = k * 1000 + u32(i)
    return k


def step_wider_than_type() -> u32:
    k: u32 = 0
    for _i in range(u8(0), u8(255), 300):
        k += 1
    for _j in range(u8(255), u8(0), -300):
        k += 10
    return k


def signed_up() -> u32:
    k: u32 = 0
    for i in range(i8(-100), i8(127), 100):  # -100, 0, 100: the next value, 200, is no i8
        k = k * 10 + 1
        if i == 100:
            k += 500
    return k


def empty_down() -> u32:
    k: u32 = 0
    for _i in range(u64(3), u64(5), -1):
        k += 1
    return k


def typed_step() -> u32:
    d: u32 = 0
    for i in range(u8(3), u8(0), i8(-1)):
        d = d * 10 + u32(i)
    return d


#: down_u64() == 55
#: down_u8_by_two() == 531
#: down_to_zero_u8() == 255155055
#: down_past_zero(7) == 3
#: down_past_zero(0) == 0
#: up_near_max() == 200250
#: step_wider_than_type() == 11
#: signed_up() == 611
#: empty_down() == 0
#: typed_step() == 321
