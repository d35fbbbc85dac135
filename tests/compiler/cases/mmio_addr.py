"""`r.addr()` of an Mmio register gives its address as a u64, as `p.addr()` of a Ptr does (LANGUAGE.md 6); it reads
nothing from the device."""
from compiler.prelude import Final, Mmio, u8, u32, u64

UART: Final = 0x10000000


def register_addresses() -> u64:
    r = Mmio[u32](UART)
    lsr = Mmio[u8](UART + 5)
    return (r.offset(2).addr() - r.addr()) * 100 + lsr.addr() - UART


def base() -> u64:
    return Mmio[u64](UART).addr()


#: register_addresses() == 805
#: base() == 0x10000000
