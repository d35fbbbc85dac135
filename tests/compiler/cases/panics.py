"""assert (panic kind 3, line) and panic(code) (kind 4); a panic ends the call."""
from compiler.prelude import panic, u32, u64


def checked(x: u32) -> u32:
    assert x < 10
    return x * 2


def explicit(code: u64) -> u64:
    if code != 0:
        panic(code)
    return 5


def after_work(x: u32) -> u32:
    y: u32 = x + 1
    assert y != 3
    return y


if __name__ == "__main__":
    print(checked(u32(3)))

#: checked(3) == 6
#: checked(10) panics 3, 6, 0
#: explicit(0) == 5
#: explicit(0xBAD) panics 4, 0xBAD, 0
#: after_work(2) panics 3, 18, 0
#: after_work(3) == 4
