"""Structs: C layout, sizeof/alignof/offsetof, field access on places and through pointers, zeroed constructor."""
from compiler.prelude import Array, Ptr, addr_of, alignof, i32, offsetof, sizeof, struct, u8, u16, u32, u64


@struct
class Small:
    a: u8
    b: u32
    c: u16


@struct
class TrapFrame:
    regs: Array[u64, 32]
    sepc: u64
    hstatus: u64
    flag: bool
    mode: u8


@struct
class Packed:
    x: u8
    y: u8
    z: u16


def small_size() -> u64:
    return sizeof(Small)


def small_align() -> u64:
    return alignof(Small)


def small_offsets() -> u64:
    return offsetof(Small, "a") * 100 + offsetof(Small, "b") * 10 + offsetof(Small, "c")


def frame_size() -> u64:
    return sizeof(TrapFrame)


def frame_offsets() -> u64:
    return offsetof(TrapFrame, "sepc") * 1000 + offsetof(TrapFrame, "mode")


def packed_size() -> u64:
    return sizeof(Packed) * 10 + alignof(Packed)


def local_struct(v: u32) -> u32:
    s = Small()
    s.a = 7
    s.b = v
    s.c = 0xFFFF
    s.c += 2
    return u32(s.a) + s.b + u32(s.c)


def zeroed() -> u64:
    f = TrapFrame()
    return f.regs[5] + f.sepc + u64(f.mode)


def through_ptr(x: u64) -> u64:
    f = TrapFrame()
    p: Ptr[TrapFrame] = addr_of(f)
    p.sepc = x
    p.regs[10] = x + 1
    p.flag = True
    if f.flag:
        return f.sepc + f.regs[10]
    return 0


def wrap_on_store() -> u32:
    s = Small()
    s.a = 255
    s.a += 2
    return u32(s.a)


def signed_field() -> i32:
    f = TrapFrame()
    f.regs[0] = u64(-1)
    return i32(f.regs[0])


#: small_size() == 12
#: small_align() == 4
#: small_offsets() == 48
#: frame_size() == 280
#: frame_offsets() == 256273
#: packed_size() == 42
#: local_struct(100) == 108
#: zeroed() == 0
#: through_ptr(20) == 41
#: wrap_on_store() == 1
#: signed_field() == -1
