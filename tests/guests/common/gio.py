"""What every test guest needs: SBI calls, a line-buffered console over SBI DBCN, volatile reads and writes.
Imported by tests/guests/NAME/guest.py (`from tests.guests.common.gio import ...`)."""

from compiler.prelude import Array, Final, Mmio, Ptr, addr_of, cstr, i64, sbi_ecall, static, u8, u64, wfi
from hypervisor.arch.riscv.sbi_call import SBI_EXT_DBCN, SBI_EXT_SRST, SBI_EXT_TIME

LINE_MAX: Final = 200

line = static(Array[u8, 256])
line_len = static(Array[u64, 1])
sbi_value = static(Array[u64, 1])


def volatile_read(p: Ptr[u64]) -> u64:
    return Mmio[u64](p.addr()).read()


def volatile_write(p: Ptr[u64], v: u64) -> None:
    Mmio[u64](p.addr()).write(v)


# ---------------------------------------------------------------------------------------------------------------
# SBI


def sbi(eid: u64, fid: u64, a0: u64, a1: u64, a2: u64) -> i64:
    """An SBI call; its value (a1) is left in sbi_value[0]."""
    sbi_value[0] = u64(0)
    return sbi_ecall(eid, fid, a0, a1, a2, u64(0), u64(0), u64(0), addr_of(sbi_value[0]))


def sbi_set_timer(deadline: u64) -> i64:
    return sbi(SBI_EXT_TIME, u64(0), deadline, u64(0), u64(0))


def shutdown(reason: u64) -> None:
    sbi(SBI_EXT_SRST, u64(0), u64(0), reason, u64(0))
    while True:
        wfi()


# ---------------------------------------------------------------------------------------------------------------
# Output: a line buffer written with DBCN console_write


def strlen(s: Ptr[u8]) -> u64:
    n = u64(0)
    while s[n] != 0:
        n += 1
    return n


def console_write(p: Ptr[u8], n: u64) -> i64:
    return sbi(SBI_EXT_DBCN, u64(0), n, p.addr(), u64(0))


def flush() -> None:
    n = line_len[0]
    if n != 0:
        console_write(addr_of(line[0]), n)
        line_len[0] = u64(0)


def putc(c: u8) -> None:
    n = line_len[0]
    line.unchecked[n] = c
    line_len[0] = n + 1
    if c == 10 or n + 1 >= LINE_MAX:
        flush()


def puts(s: Ptr[u8]) -> None:
    i = u64(0)
    while s[i] != 0:
        putc(s[i])
        i += 1


def put_dec(v: u64) -> None:
    digits = Array[u8, 24]()
    n = u64(0)
    x = v
    while True:
        digits[n] = u8(48 + x % 10)
        n += 1
        x = x // 10
        if x == 0:
            break
    while n > 0:
        n -= 1
        putc(digits[n])


def put_signed(v: i64) -> None:
    if v < 0:
        putc(u8(45))
        put_dec(u64(-v))
    else:
        put_dec(u64(v))


def put_hex(v: u64) -> None:
    puts(cstr(b"0x"))
    started = False
    for i in range(16):
        d = (v >> u64(60 - 4 * i)) & 15
        if d != 0 or started or i == 15:
            started = True
            putc(u8(48 + d) if d < 10 else u8(87 + d))
