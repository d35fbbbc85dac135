"""Nested structs, arrays of structs, Ptr fields (linked list), struct field of aggregate type as a place."""
from compiler.prelude import Array, Ptr, addr_of, null, offsetof, sizeof, static, struct, u8, u32, u64


@struct
class Inner:
    tag: u8
    value: u64


@struct
class Outer:
    id: u32
    inner: Inner
    pair: Array[Inner, 2]
    next: Ptr["Outer"]


nodes = static(Array[Outer, 4])


def layout() -> u64:
    return sizeof(Inner) * 1000000 + sizeof(Outer) * 1000 + offsetof(Outer, "next")


def nested_fields(v: u64) -> u64:
    o = Outer()
    o.inner.value = v
    o.inner.tag = 3
    o.pair[1].value = v * 2
    return o.inner.value + o.pair[1].value + u64(o.inner.tag)


def inner_ptr() -> u64:
    o = Outer()
    p: Ptr[Inner] = addr_of(o.inner)
    p.value = 77
    q: Ptr[Inner] = addr_of(o.pair[0])
    q.tag = 1
    return o.inner.value + u64(o.pair[0].tag)


def linked_list() -> u32:
    for i in range(u32(4)):
        nodes[i].id = i + 1
        if i < 3:
            nodes[i].next = addr_of(nodes[i + 1])
        else:
            nodes[i].next = null(Outer)
    total: u32 = 0
    p: Ptr[Outer] = addr_of(nodes[0])
    while p.addr() != 0:
        total = total * 10 + p.id
        p = p.next
    return total


def ptr_to_ptr() -> u32:
    o = Outer()
    o.id = 9
    holder = Array[Ptr[Outer], 1]()
    holder[0] = addr_of(o)
    pp: Ptr[Ptr[Outer]] = addr_of(holder[0])
    return pp[0].id


#: layout() == 16064056
#: nested_fields(5) == 18
#: inner_ptr() == 78
#: linked_list() == 1234
#: ptr_to_ptr() == 9
