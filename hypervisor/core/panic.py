"""The language's panic handler (LANGUAGE.md section 9) for the hypervisor: report, then stop this hart."""

from compiler.prelude import cstr, export, u64
from hypervisor.core.log import LOG_ERROR, hart_halt, log0, log1, log2


@export("pyshyper_panic")
def hyp_panic(kind: u64, a: u64, b: u64) -> None:
    if kind == 1:
        log2(LOG_ERROR, cstr(b"pyshyper: PANIC: index %d out of bounds (length %d)\n"), a, b)
    elif kind == 2:
        log0(LOG_ERROR, cstr(b"pyshyper: PANIC: division by zero\n"))
    elif kind == 3:
        log1(LOG_ERROR, cstr(b"pyshyper: PANIC: assertion failed at line %d\n"), a)
    else:
        log1(LOG_ERROR, cstr(b"pyshyper: PANIC: code %x\n"), a)
    log0(LOG_ERROR, cstr(b"pyshyper: this hart stops\n"))
    hart_halt()
