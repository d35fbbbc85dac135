"""E209: static align must be a power of two."""
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of

buf = static(Array[u8, 64], align=48)

#! E209 4:35
