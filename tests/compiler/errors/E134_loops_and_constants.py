"""E134: how a function's end is judged reachable: a `while` counts as endless only when its condition is constant
true and no `break` of its own leaves it; constant conditions of `if` run one branch; a `for` never counts."""
# ruff: noqa
from compiler.prelude import Final, u64, panic

FOREVER: Final = True
DEBUG: Final = False


def breaks_out(n: u64) -> u64:
    while True:
        if n == 0:
            break
        n -= 1


def not_constant(n: u64) -> u64:
    while n < 10:
        return n


def for_never_counts(n: u64) -> u64:
    for i in range(n):
        return i


def dead_branch() -> u64:
    if DEBUG:
        return 1


def while_false() -> u64:
    while False:
        return 1


def inner_break_only(n: u64) -> u64:
    while True:
        for i in range(n):
            break
        n += 1


def named_forever(n: u64) -> u64:
    while FOREVER:
        n += 1
        if n > 100:
            return n


def folded_condition(n: u64) -> u64:
    while 1 == 1:
        return n


def live_branch() -> u64:
    if not DEBUG:
        return 2


def asserted(n: u64) -> u64:
    if n == 0:
        return 1
    assert False


def panics(n: u64) -> u64:
    if n == 0:
        return 1
    panic(n)

#! E134 10:1
#! E134 17:1
#! E134 22:1
#! E134 27:1
#! E134 32:1
