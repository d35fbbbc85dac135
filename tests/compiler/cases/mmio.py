"""Mmio[T](addr): read()/write(v) of exactly T's width, offset(n) by registers; unmapped registers keep the last
value written (prelude.mock)."""
from compiler.prelude import Array, Final, Mmio, static, struct, u8, u16, u32, u64

UART: Final = 0x10000000


@struct
class Dev:
    base: Mmio[u32]
    width: u32


devs = static(Array[Dev, 2])


def uart_echo(c: u8) -> u8:
    thr = Mmio[u8](UART)
    thr.write(c)
    return thr.read()


def regs() -> u32:
    r = Mmio[u32](0x10001000)
    r.offset(1).write(0x1234)
    r.offset(2).write(r.offset(1).read() + 1)
    return r.offset(2).read()


def width_truncates() -> u16:
    r = Mmio[u16](0x10002000)
    r.write(0xFFFF)
    return r.read() + 2


def untouched() -> u64:
    return Mmio[u64](0x10003000).read()


def mmio_in_struct() -> u32:
    devs[1].base = Mmio[u32](0x10004000)
    devs[1].base.write(55)
    r: Mmio[u32] = devs[1].base
    return r.read() + 1


#: uart_echo(65) == 65
#: regs() == 0x1235
#: width_truncates() == 1
#: untouched() == 0
#: mmio_in_struct() == 56
