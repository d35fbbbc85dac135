"""CSR intrinsics through prelude.mock: csr_read/write/set/clear/swap on u64 values."""
from compiler.prelude import (
    HGATP,
    HSTATUS,
    HVIP,
    SATP,
    SIE,
    SSCRATCH,
    VSSTATUS,
    csr_clear,
    csr_read,
    csr_set,
    csr_swap,
    csr_write,
    u64,
)


def write_read(v: u64) -> u64:
    csr_write(SSCRATCH, v)
    return csr_read(SSCRATCH)


def set_clear() -> u64:
    csr_write(HSTATUS, 0)
    csr_set(HSTATUS, 1 << 7)
    csr_set(HSTATUS, u64(0x300))
    csr_clear(HSTATUS, u64(0x100))
    return csr_read(HSTATUS)


def swap() -> u64:
    csr_write(HGATP, 0x8000000000012345)
    old: u64 = csr_swap(HGATP, 0)
    return old + csr_read(HGATP)


def several() -> u64:
    csr_write(SIE, 0x222)
    csr_write(VSSTATUS, 3)
    csr_set(HVIP, 1 << 10)
    return csr_read(SIE) + csr_read(VSSTATUS) + csr_read(HVIP) + csr_read(SATP)


#: write_read(0xFFFFFFFFFFFFFFFF) == 0xFFFFFFFFFFFFFFFF
#: set_clear() == 0x280
#: swap() == 0x8000000000012345
#: several() == 0x625
