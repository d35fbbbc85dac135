"""Functions E134 accepts without a final return (LANGUAGE.md 7), run both ways: a `while` on a constant true
condition (a literal, a Final, a folded comparison) left only by `return`, a `break` that leaves an inner loop only,
a constant `if` whose live branch returns, and `assert False`."""
from compiler.prelude import Final, u64

FOREVER: Final = True
DEBUG: Final = False


def named_forever(n: u64) -> u64:
    while FOREVER:
        n += 1
        if n > 100:
            return n


def folded_condition(n: u64) -> u64:
    while 1 == 1:
        n = n * 2
        if n > 1000:
            return n


def inner_break_only(n: u64) -> u64:
    while True:
        for i in range(n):
            if i == 3:
                break
        n += 7
        if n % 5 == 0:
            return n


def live_branch() -> u64:
    if not DEBUG:
        return 2


def asserted(n: u64) -> u64:
    if n == 0:
        return 1
    assert False  # noqa: B011 - the language's assert panics (section 9), never removed


#: named_forever(5) == 101
#: folded_condition(3) == 1536
#: inner_break_only(1) == 15
#: live_branch() == 2
#: asserted(0) == 1
#: asserted(1) panics 3, 42, 0
