"""`x = T()` makes a zeroed T every time it runs (LANGUAGE.md 5): in a loop, and a second `x = T()` of the same
local, which zeroes the local's one place again (a Ptr taken to it earlier sees the zeroed value)."""
from compiler.prelude import Array, Ptr, addr_of, struct, u8, u32, u64


@struct
class Acc:
    v: u64


@struct
class Frame:
    regs: Array[u64, 4]
    acc: Acc
    tag: u8


def loop_total() -> u64:
    total: u64 = 0
    dirty: u64 = 0
    for i in range(u64(0), u64(3)):
        s = Acc()
        if s.v != 0:
            dirty += 1
        s.v += i + 1
        total += s.v
    return total * 100 + dirty


def loop_array() -> u32:
    dirty: u32 = 0
    k: u32 = 0
    while k < 4:
        a = Array[u32, 8]()
        for j in range(len(a)):
            if a[j] != 0:
                dirty += 1
            a[j] = k + 1
        k += 1
    return dirty


def loop_nested() -> u64:
    dirty: u64 = 0
    for i in range(u64(0), u64(5)):
        f: Frame = Frame()
        if f.regs[3] != 0 or f.acc.v != 0 or f.tag != 0:
            dirty += 1
        f.regs[3] = i + 1
        f.acc.v = i + 7
        f.tag = 9
    return dirty


def second_constructor() -> u64:
    s = Acc()
    s.v = 5
    first = s.v
    s = Acc()
    return first * 10 + s.v


def pointer_sees_zero() -> u64:
    s = Acc()
    s.v = 5
    p: Ptr[Acc] = addr_of(s)
    s = Acc()
    s.v += 2
    return p.v


def conditional_remake(c: u64) -> u64:
    s = Acc()
    s.v = 3
    if c != 0:
        s = Acc()
    return s.v


#: loop_total() == 600
#: loop_array() == 0
#: loop_nested() == 0
#: second_constructor() == 50
#: pointer_sees_zero() == 2
#: conditional_remake(1) == 0
#: conditional_remake(0) == 3
