"""Early return from nested blocks; functions without a result; calls as statements."""
from compiler.prelude import Array, static, u32, u64

log = static(Array[u32, 4])


def first_set_bit(x: u64) -> u32:
    if x == 0:
        return 64
    for i in range(u32(64)):
        if (x >> i) & 1 == 1:
            return i
    return 65


def record(slot: u32, v: u32) -> None:
    if slot >= 4:
        return
    log[slot] = v


def no_annotation_result(slot: u32):
    log[slot] = 5


def use_records() -> u32:
    record(0, 10)
    record(9, 99)
    record(3, 30)
    no_annotation_result(u32(1))
    return log[0] + log[1] + log[3]


def nested_return(a: u32, b: u32) -> u32:
    while True:
        if a > b:
            if a > 100:
                return 1
            return 2
        else:
            return 3


#: first_set_bit(0) == 64
#: first_set_bit(0x80) == 7
#: first_set_bit(0x8000000000000000) == 63
#: use_records() == 45
#: nested_return(200, 1) == 1
#: nested_return(50, 1) == 2
#: nested_return(1, 50) == 3
