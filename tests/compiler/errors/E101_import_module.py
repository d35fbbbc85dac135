"""E101: `import x` is not an import form of the language."""
# ruff: noqa
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of
import os

#! E101 4:1
