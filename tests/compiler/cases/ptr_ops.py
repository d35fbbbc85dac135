"""Ptr[T](addr), p.addr(), p[i], p.offset(n) (signed n goes backwards), addr_of, null, store through p[0]."""
from compiler.prelude import Array, Ptr, addr_of, i64, null, sizeof, static, u8, u16, u32, u64

buf = static(Array[u32, 8], init=(10, 11, 12, 13, 14, 15, 16, 17))


def index(i: u32) -> u32:
    p: Ptr[u32] = addr_of(buf[0])
    return p[i]


def offset_fwd(n: u64) -> u32:
    p: Ptr[u32] = addr_of(buf[0])
    return p.offset(n)[0]


def offset_back(n: i64) -> u32:
    p: Ptr[u32] = addr_of(buf[7])
    return p.offset(n)[0]


def addr_roundtrip() -> u32:
    a: u64 = addr_of(buf[2]).addr()
    q = Ptr[u32](a + 4)
    return q[0]


def addr_diff() -> u64:
    return addr_of(buf[5]).addr() - addr_of(buf[1]).addr()


def store_through(v: u32) -> u32:
    p: Ptr[u32] = addr_of(buf[3])
    p[0] = v
    p[1] = v + 1
    return buf[3] + buf[4]


def bytes_view() -> u32:
    buf[0] = 0x11223344
    b = Ptr[u8](addr_of(buf[0]).addr())
    return u32(b[0]) + u32(b[3]) * 0x100


def halves() -> u16:
    buf[1] = 0xAAAABBBB
    h = Ptr[u16](addr_of(buf).addr() + sizeof(u32))
    return h[1]


def null_addr() -> u64:
    return null(u32).addr() + null(Array[u8, 4]).addr()


def ptr_index_negative() -> u32:
    p: Ptr[u32] = addr_of(buf[4])
    return p[i64(-2)]


#: index(0) == 10
#: index(7) == 17
#: offset_fwd(3) == 13
#: offset_back(-7) == 10
#: offset_back(-1) == 16
#: addr_roundtrip() == 13
#: addr_diff() == 16
#: store_through(100) == 201
#: bytes_view() == 0x1144
#: halves() == 0xAAAA
#: null_addr() == 0
#: ptr_index_negative() == 12
