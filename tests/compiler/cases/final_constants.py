"""Final constants: typed, typed by annotation, untyped (adapt like literals), built from other constants."""
from compiler.prelude import Final, i32, u8, u32, u64

PAGE_SIZE: Final = u64(4096)
PAGE_SHIFT: Final[u64] = 12
VM_MAX: Final = 8
MASK: Final = PAGE_SIZE - 1
BIG: Final = VM_MAX * 1000 + 7
NEG: Final[i32] = -5


def page_of(addr: u64) -> u64:
    return addr >> PAGE_SHIFT


def offset_in_page(addr: u64) -> u64:
    return addr & MASK


def vm_max_u8() -> u8:
    return VM_MAX + u8(250)


def vm_max_u32() -> u32:
    x: u32 = VM_MAX
    return x * 3


def big() -> u32:
    return u32(BIG)


def neg() -> i32:
    return NEG * 2


def round_up(addr: u64) -> u64:
    return (addr + PAGE_SIZE - 1) & ~MASK


#: page_of(0x80201234) == 0x80201
#: offset_in_page(0x80201234) == 0x234
#: vm_max_u8() == 2
#: vm_max_u32() == 24
#: big() == 8007
#: neg() == -10
#: round_up(0x1001) == 0x2000
#: round_up(0x1000) == 0x1000
