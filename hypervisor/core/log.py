"""The hypervisor's log: one formatted line per call, written whole under the console lock, with a level.

`log2(LOG_INFO, cstr(b"pyshyper: vm%d: memory %x+%x\n"), a, b)`: the name says how many u64 arguments follow
the format (the language has no variadic functions). Conversions: `%d` decimal, `%x` 0x-prefixed hexadecimal,
`%s` a C string given by its address (`s.addr()`), `%c` one byte, `%%` a percent sign; anything else is printed
as it stands. Lines above `log_level` (LOG_INFO unless changed) are not printed.

`log_vm(level, vm.dynamic, fmt, vm.id, b, c, d)`: a line about one VM. A guest VM's (made through the control
protocol, core/gvm.py) goes to the management VM's log port only (/dev/hvc0, core/cons_ring.py), never the serial
console: that console is the MVM's shell's, and a line printed there whenever a guest VM changed state landed in
the middle of what the shell was printing, or was cut by it. Guest VMs exist only through the MVM's control port,
so there is an MVM to read them. The lines of the MVM and of the test guests a build boots stay on the console.
"""

from compiler.prelude import Array, Final, Ptr, addr_of, u8, u64, wfi
from hypervisor.core.console import (
    console_dec,
    console_hex,
    console_lock,
    console_puts,
    console_serial_set,
    console_unlock,
    console_write,
)

LOG_ERROR: Final = u64(0)
LOG_WARN: Final = u64(1)
LOG_INFO: Final = u64(2)
LOG_DEBUG: Final = u64(3)
LOG_ARGS: Final = 6

log_level: u64 = LOG_INFO


def log_format(fmt: Ptr[u8], args: Ptr[u64], nargs: u64) -> None:
    """Write fmt with its conversions filled from args (the console lock held)."""
    i = u64(0)
    n = u64(0)
    while fmt[i] != 0:
        start = i
        while fmt[i] != 0 and fmt[i] != 37:  # '%'
            i += 1
        if i > start:
            console_write(fmt.addr() + start, i - start)
        if fmt[i] == 0:
            return
        conv = fmt[i + 1]
        if conv == 0:
            console_write(fmt.addr() + i, u64(1))
            return
        i += 2
        if conv == 37:
            console_write(fmt.addr() + i - 1, u64(1))
            continue
        value = args[n] if n < nargs else u64(0)
        if conv == 100:  # 'd'
            console_dec(value)
        elif conv == 120:  # 'x'
            console_hex(value)
        elif conv == 115:  # 's'
            console_puts(Ptr[u8](value))
        elif conv == 99:  # 'c'
            b = Array[u8, 1]()
            b[0] = u8(value & 255)
            console_write(addr_of(b[0]).addr(), u64(1))
        else:
            console_write(fmt.addr() + i - 2, u64(2))
            continue
        n += 1


def log_line(level: u64, fmt: Ptr[u8], a: u64, b: u64, c: u64, d: u64, e: u64, f: u64, nargs: u64) -> None:
    log_to(level, True, fmt, a, b, c, d, e, f, nargs)


def log_to(level: u64, serial: bool, fmt: Ptr[u8], a: u64, b: u64, c: u64, d: u64, e: u64, f: u64, nargs: u64) -> None:
    """One line: to the log ring, and to the firmware's console when `serial`."""
    if level > log_level:
        return
    args = Array[u64, LOG_ARGS]()
    args[0] = a
    args[1] = b
    args[2] = c
    args[3] = d
    args[4] = e
    args[5] = f
    console_lock()
    console_serial_set(serial)
    log_format(fmt, addr_of(args[0]), nargs)
    console_serial_set(True)
    console_unlock()


def log_vm(level: u64, gvm: bool, fmt: Ptr[u8], id: u64, b: u64, c: u64, d: u64) -> None:
    """A line about VM `id` (fmt's first conversion) and up to three more values: a guest VM's (`gvm`: made through
    the control protocol) to the MVM's log port only, any other VM's to the console too."""
    log_to(level, not gvm, fmt, id, b, c, d, u64(0), u64(0), u64(4))


def log0(level: u64, fmt: Ptr[u8]) -> None:
    log_line(level, fmt, u64(0), u64(0), u64(0), u64(0), u64(0), u64(0), u64(0))


def log1(level: u64, fmt: Ptr[u8], a: u64) -> None:
    log_line(level, fmt, a, u64(0), u64(0), u64(0), u64(0), u64(0), u64(1))


def log2(level: u64, fmt: Ptr[u8], a: u64, b: u64) -> None:
    log_line(level, fmt, a, b, u64(0), u64(0), u64(0), u64(0), u64(2))


def log3(level: u64, fmt: Ptr[u8], a: u64, b: u64, c: u64) -> None:
    log_line(level, fmt, a, b, c, u64(0), u64(0), u64(0), u64(3))


def log4(level: u64, fmt: Ptr[u8], a: u64, b: u64, c: u64, d: u64) -> None:
    log_line(level, fmt, a, b, c, d, u64(0), u64(0), u64(4))


def log5(level: u64, fmt: Ptr[u8], a: u64, b: u64, c: u64, d: u64, e: u64) -> None:
    log_line(level, fmt, a, b, c, d, e, u64(0), u64(5))


def log6(level: u64, fmt: Ptr[u8], a: u64, b: u64, c: u64, d: u64, e: u64, f: u64) -> None:
    log_line(level, fmt, a, b, c, d, e, f, u64(6))


def hart_halt() -> None:
    """Stop this hart for good: nothing is enabled to wake it for long, and it never leaves the loop."""
    while True:
        wfi()
