"""The tiny guest: the smallest guest VM the MVM's `shyper` boots (the soak of tests/boot/test_gvm.py).

Loaded by the `shyper` daemon as a `VM_T_BARE_METAL` kernel at its memory's first byte (the config
tests/guests/tiny/tiny.json), it says one line on its console (SBI DBCN: the GVM's console stream, the MVM's
/dev/hvcN) with its hart and the device tree's address, then waits in WFI until the VM is stopped. A trap it did
not ask for ends the VM (SRST shutdown, reason 1) after a line naming it.
"""

from compiler.prelude import cstr, export, u64, wfi
from tests.guests.common.gio import flush, put_hex, puts, shutdown


@export("guest_main")
def guest_main(hartid: u64, dtb: u64, instance: u64) -> None:
    puts(cstr(b"tiny: up on vCPU "))
    put_hex(hartid)
    puts(cstr(b", device tree at "))
    put_hex(dtb)
    puts(cstr(b"\n"))
    while True:
        wfi()


@export("guest_trap")
def guest_trap(scause: u64, sepc: u64, stval: u64) -> None:
    flush()
    puts(cstr(b"tiny: unexpected trap, scause "))
    put_hex(scause)
    puts(cstr(b" sepc "))
    put_hex(sepc)
    puts(cstr(b"\n"))
    shutdown(u64(1))


@export("pyshyper_panic")
def guest_panic(kind: u64, a: u64, b: u64) -> None:
    flush()
    puts(cstr(b"tiny: PANIC kind "))
    put_hex(kind)
    puts(cstr(b"\n"))
    shutdown(u64(1))
