"""E112: a @struct body holds only annotated fields."""
# ruff: noqa
from compiler.prelude import u8, u32, u64, i32, Final, Array, Ptr, struct, static, addr_of


@struct
class S:
    a: u32

    def m(self) -> u32:
        return 1

#! E112 10:5
