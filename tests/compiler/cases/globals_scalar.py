"""Scalar globals: zero-initialized and constant-initialized, read by name, assigned with `global`."""
from compiler.prelude import Ptr, i16, null, u8, u32, u64

ticks: u64 = 0
boot_magic: u32 = 0x5348
level: i16 = -3
flag: bool = False
small: u8 = 255
head: Ptr[u64] = null(u64)


def tick(n: u32) -> u64:
    global ticks
    for _i in range(n):
        ticks += 1
    return ticks


def magic() -> u32:
    return boot_magic + 1


def dec_level() -> i16:
    global level
    level -= 1
    return level


def set_flag() -> bool:
    global flag
    flag = not flag
    return flag


def wrap_small() -> u8:
    global small
    small += 1
    return small


def read_then_write() -> u32:
    before: u32 = boot_magic
    change_magic()
    return boot_magic - before


def change_magic() -> None:
    global boot_magic
    boot_magic = 0x5350


def head_is_null() -> bool:
    return head.addr() == 0


#: tick(5) == 5
#: magic() == 0x5349
#: dec_level() == -4
#: set_flag() == 1
#: wrap_small() == 0
#: read_then_write() == 8
#: head_is_null() == 1
