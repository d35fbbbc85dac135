"""E209: static align must be a power of two."""
# ruff: noqa
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of

buf = static(Array[u8, 64], align=48)

#! E209 5:35
