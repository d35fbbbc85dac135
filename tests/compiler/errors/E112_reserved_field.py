"""E112: struct fields named like the methods of a Ptr to the struct (`addr`, `offset`) or like `.unchecked`."""
# ruff: noqa
from compiler.prelude import Array, Ptr, struct, u64


@struct
class Region:
    addr: u64
    size: u64
    offset: u64
    unchecked: Array[u64, 2]


def size_of(p: Ptr[Region]) -> u64:
    return p.size + p.addr()

#! E112 8:5
#! E112 10:5
#! E112 11:5
