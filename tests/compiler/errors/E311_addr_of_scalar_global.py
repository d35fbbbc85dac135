"""E311: a scalar global has no address (under CPython it is a Python variable, not memory): annotated globals and
scalar statics alike; aggregate globals and their elements and fields do have one."""
# ruff: noqa
from compiler.prelude import Array, Ptr, addr_of, null, static, struct, u32, u64

ticks: u64 = 0
counter = static(u32, init=5)
head: Ptr[u64] = null(u64)
cell = static(Array[u64, 1])


@struct
class Pair:
    a: u64


pair = static(Pair)


def f() -> u64:
    p = addr_of(ticks)
    q = addr_of(counter)
    r = addr_of(head)
    fine = addr_of(cell[0]).addr() + addr_of(cell).addr() + addr_of(pair.a).addr() + addr_of(pair).addr()
    return fine

#! E311 21:17
#! E311 22:17
#! E311 23:17
