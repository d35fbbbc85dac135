"""The language's panic handler (LANGUAGE.md section 9) for the hypervisor: report, then stop this hart."""

from compiler.prelude import cstr, export, u64, wfi
from hypervisor.core.console import console_dec, console_hex, console_lock, console_puts, console_unlock


@export("pyshyper_panic")
def hyp_panic(kind: u64, a: u64, b: u64) -> None:
    console_lock()
    console_puts(cstr(b"pyshyper: PANIC: "))
    if kind == 1:
        console_puts(cstr(b"index "))
        console_dec(a)
        console_puts(cstr(b" out of bounds (length "))
        console_dec(b)
        console_puts(cstr(b")"))
    elif kind == 2:
        console_puts(cstr(b"division by zero"))
    elif kind == 3:
        console_puts(cstr(b"assertion failed at line "))
        console_dec(a)
    else:
        console_puts(cstr(b"code "))
        console_hex(a)
    console_puts(cstr(b"\npyshyper: this hart stops\n"))
    console_unlock()
    while True:
        wfi()
