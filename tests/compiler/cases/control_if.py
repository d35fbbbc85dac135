"""if / elif / else, nested, and the conditional expression."""
from compiler.prelude import i32, u32


def classify(x: i32) -> u32:
    if x < 0:
        return 1
    elif x == 0:
        return 2
    elif x < 10:
        if x % 2 == 0:
            return 3
        else:
            return 4
    else:
        return 5


def no_else(x: u32) -> u32:
    r: u32 = 7
    if x > 3:
        r = 8
    return r


def ternary(x: u32) -> u32:
    return x * 2 if x < 5 else x + 100


def ternary_nested(x: i32) -> i32:
    return -1 if x < 0 else (0 if x == 0 else 1)


def pass_stmt(x: u32) -> u32:
    if x == 0:
        pass
    else:
        x -= 1
    return x


#: classify(-5) == 1
#: classify(0) == 2
#: classify(4) == 3
#: classify(7) == 4
#: classify(10) == 5
#: no_else(3) == 7
#: no_else(4) == 8
#: ternary(4) == 8
#: ternary(5) == 105
#: ternary_nested(-9) == -1
#: ternary_nested(0) == 0
#: ternary_nested(9) == 1
#: pass_stmt(0) == 0
#: pass_stmt(5) == 4
