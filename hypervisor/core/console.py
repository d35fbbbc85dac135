"""The hypervisor's console: text out through the SBI debug console (DBCN) of the firmware below, and a copy in the
log ring the management VM reads on its /dev/hvc0 (core/cons_ring.py).

Lines from several harts do not interleave: a caller holds `console_lock` for a whole line. A line about a guest
VM made through the control protocol goes to the log ring only (core/log.py log_vm).
"""

from compiler.prelude import Array, Ptr, addr_of, static, u8, u64
from hypervisor.arch.riscv.sbi_call import sbi_console_write
from hypervisor.core.cons_ring import log_tee
from hypervisor.core.spinlock import Spinlock, spin_lock, spin_unlock

# Any hart prints; a line is written under this lock (the SBI console below is one device).
console_spin = static(Spinlock)
# Whether console_write reaches the firmware's console too, or the log ring only: set for one line, under the lock.
console_serial: bool = True


def console_lock() -> None:
    spin_lock(addr_of(console_spin))


def console_unlock() -> None:
    spin_unlock(addr_of(console_spin))


def console_serial_set(on: bool) -> None:
    """The console lock held: whether what is written until the next call reaches the firmware's console."""
    global console_serial
    console_serial = on


def cstr_len(s: Ptr[u8]) -> u64:
    n = u64(0)
    while s[n] != 0:
        n += 1
    return n


def console_write(addr: u64, length: u64) -> None:
    """Write length bytes at addr; DBCN may write fewer per call, so loop until all are out. A failed call, or
    one that writes nothing, drops the rest rather than spin. A copy goes to the log ring (the management VM's
    /dev/hvc0), the only copy while `console_serial` is off."""
    log_tee(addr, length)
    if not console_serial:
        return
    done = u64(0)
    while done < length:
        n = sbi_console_write(addr + done, length - done)
        if n == 0 or n > length - done:
            return
        done += n


def console_puts(s: Ptr[u8]) -> None:
    console_write(s.addr(), cstr_len(s))


def console_hex(v: u64) -> None:
    """0x-prefixed lower-case hexadecimal, no leading zeros."""
    buf = Array[u8, 18]()
    buf[0] = u8(48)
    buf[1] = u8(120)
    digits = u64(1)
    while digits < 16 and (v >> (digits * 4)) != 0:
        digits += 1
    for i in range(digits):
        nib = u8((v >> ((digits - 1 - u64(i)) * 4)) & 15)
        buf[2 + i] = nib + 48 if nib < 10 else nib + 87
    console_write(addr_of(buf[0]).addr(), digits + 2)


def console_dec(v: u64) -> None:
    buf = Array[u8, 20]()
    n = u64(20)
    while True:
        n -= 1
        buf[n] = u8(v % 10) + 48
        v = v // 10
        if v == 0:
            break
    console_write(addr_of(buf[n]).addr(), 20 - n)


def console_field(label: Ptr[u8], value: u64) -> None:
    """A label and a decimal number (a statistics line is made of these)."""
    console_puts(label)
    console_dec(value)
