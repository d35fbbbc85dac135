"""E102: importing a module that is not in the program."""
# ruff: noqa
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of
from hypervisor.nowhere import thing

#! E102 4:1
