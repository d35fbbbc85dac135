"""static(T, init=, align=, section=): aggregate and scalar globals with placement control."""
from compiler.prelude import Array, addr_of, static, struct, u8, u16, u32, u64

stacks = static(Array[u8, 16384], align=4096, section=".bss.stack")
table = static(Array[u32, 4], init=(1, 2, 3, 4))
partial = static(Array[u16, 6], init=(7, 8))
counter = static(u64, init=41)
big_align = static(Array[u64, 2], align=65536)


@struct
class Pair:
    a: u32
    b: u64


pair = static(Pair)


def table_sum() -> u32:
    s: u32 = 0
    for i in range(len(table)):
        s += table[i]
    return s


def partial_sum() -> u32:
    s: u32 = 0
    for i in range(len(partial)):
        s += u32(partial[i])
    return s


def stacks_aligned() -> bool:
    return addr_of(stacks).addr() % 4096 == 0


def big_aligned() -> bool:
    return addr_of(big_align).addr() & 0xFFFF == 0


def stacks_zero() -> u32:
    n: u32 = 0
    for i in range(u64(0), u64(16384), 1024):
        n += u32(stacks[i])
    return n


def stacks_write() -> u8:
    stacks[16383] = 9
    return stacks[16383]


def counter_value() -> u64:
    return counter + 1


def table_write() -> u32:
    table[2] = 30
    return table[0] + table[2]


def pair_fields() -> u64:
    pair.a = 5
    pair.b = 0x100000000
    return u64(pair.a) + pair.b


#: table_sum() == 10
#: partial_sum() == 15
#: stacks_aligned() == 1
#: big_aligned() == 1
#: stacks_zero() == 0
#: stacks_write() == 9
#: counter_value() == 42
#: table_write() == 31
#: pair_fields() == 0x100000005
