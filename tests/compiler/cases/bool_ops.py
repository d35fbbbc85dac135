"""and/or/not take and give bool and short-circuit; conditions are bool."""
from compiler.prelude import u32, u64

calls: u32 = 0


def bump(result: bool) -> bool:
    global calls
    calls += 1
    return result


def short_and(a: u32) -> u32:
    global calls
    calls = 0
    if a != 0 and bump(True):
        return calls + 10
    return calls


def short_or(a: u32) -> u32:
    global calls
    calls = 0
    if a != 0 or bump(False):
        return calls + 10
    return calls


def logic(a: u32, b: u32) -> bool:
    x: bool = a > b
    y: bool = not x
    return (x or y) and not (x and y)


def bool_eq(a: u32, b: u32) -> u32:
    p: bool = a == 1
    q: bool = b == 1
    if p == q:
        return 1
    return 0


def flag_store(a: u64) -> u64:
    f: bool = False
    if a > 5:
        f = True
    return u64(f) + u64(not f) * 100


#: short_and(0) == 0
#: short_and(1) == 11
#: short_or(1) == 10
#: short_or(0) == 1
#: logic(3, 2) == 1
#: logic(2, 3) == 1
#: bool_eq(1, 1) == 1
#: bool_eq(1, 2) == 0
#: bool_eq(2, 3) == 1
#: flag_store(6) == 1
#: flag_store(5) == 100
