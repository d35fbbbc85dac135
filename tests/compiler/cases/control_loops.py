"""while, for over range(stop) / range(start, stop) / range(start, stop, step) with positive and negative constant
steps, break, continue; the loop variable takes the type of the bounds."""
from compiler.prelude import i32, u8, u32, u64


def while_sum(n: u32) -> u32:
    s: u32 = 0
    i: u32 = 0
    while i < n:
        s += i
        i += 1
    return s


def range1(n: u64) -> u64:
    s: u64 = 0
    for i in range(n):
        s += i
    return s


def range2(a: i32, b: i32) -> i32:
    s: i32 = 0
    for i in range(a, b):
        s += i
    return s


def range3(a: u32, b: u32) -> u32:
    s: u32 = 0
    for i in range(a, b, 3):
        s = s * 10 + i
    return s


def range_neg_step(n: i32) -> i32:
    s: i32 = 0
    for i in range(n, -1, -2):
        s = s * 10 + i
    return s


def range_empty(a: u32, b: u32) -> u32:
    s: u32 = 77
    for i in range(a, b):
        s = i
    return s


def loop_var_type() -> u8:
    last: u8 = 0
    for i in range(u8(250), u8(255)):
        last = i + 10
    return last


def break_continue(n: u32) -> u32:
    s: u32 = 0
    for i in range(n):
        if i % 2 == 0:
            continue
        if i > 10:
            break
        s += i
    return s


def while_break() -> u32:
    i: u32 = 0
    while True:
        i += 1
        if i == 17:
            break
    return i


def nested_loops() -> u32:
    count: u32 = 0
    for i in range(u32(5)):
        for j in range(u32(5)):
            if j > i:
                break
            if j == 2:
                continue
            count += 1
    return count


def while_continue() -> u64:
    i: u64 = 0
    s: u64 = 0
    while i < 10:
        i += 1
        if i % 3 != 0:
            continue
        s += i
    return s


def early_exit_loop(x: u32) -> u32:
    for i in range(u32(100)):
        if i * i >= x:
            return i
    return 1000


#: while_sum(10) == 45
#: range1(5) == 10
#: range2(-3, 3) == -3
#: range3(1, 10) == 147
#: range_neg_step(6) == 6420
#: range_empty(5, 5) == 77
#: range_empty(6, 5) == 77
#: loop_var_type() == 8
#: break_continue(100) == 25
#: while_break() == 17
#: nested_loops() == 12
#: while_continue() == 18
#: early_exit_loop(50) == 8
#: early_exit_loop(100000) == 1000
