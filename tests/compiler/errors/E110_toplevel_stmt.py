"""E110: only imports, constants, globals, @struct classes and functions at module level."""
# ruff: noqa
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of

x: u32 = 0
print(x)

#! E110 6:1
