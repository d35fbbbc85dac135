"""The self-test guest: a bare-metal VS-mode program that checks the hypervisor's guest interface.

Instance 0 runs the self-test: one `selftest: <name>: ok` or `selftest: <name>: FAILED (...)` line per test, then
`selftest: N passed, M failed`, and powers its VM off with SBI SRST (reason 0 if everything passed, else 1).
Instance 1 is the fault probe: it loads from an unmapped guest-physical address, which the hypervisor must report
and answer by ending only this VM.

start.S holds the image header, `_start` (stack, .bss, trap vector) and `guest_trap_entry`, which calls
`guest_trap` below with the trap's scause, sepc and stval.
"""

from compiler.prelude import (
    HSTATUS,
    SEPC,
    SIE,
    SIP,
    SSTATUS,
    TIME,
    Array,
    Final,
    Ptr,
    addr_of,
    csr_clear,
    csr_read,
    csr_set,
    csr_write,
    cstr,
    export,
    static,
    u8,
    u64,
    wfi,
)
from hypervisor.arch.riscv.encoding import EXC_ILLEGAL_INST, IRQ_S_TIMER, MIP_STIP, SCAUSE_INTERRUPT, SSTATUS_SIE
from hypervisor.arch.riscv.sbi_call import (
    SBI_ERR_NOT_SUPPORTED,
    SBI_EXT_BASE,
    SBI_EXT_DBCN,
    SBI_EXT_HSM,
    SBI_EXT_IPI,
    SBI_EXT_LEGACY_PUTCHAR,
    SBI_EXT_RFENCE,
    SBI_EXT_SRST,
    SBI_EXT_TIME,
    SBI_SUCCESS,
)
from tests.guests.common.gio import (
    console_write,
    flush,
    put_dec,
    put_hex,
    puts,
    sbi,
    sbi_set_timer,
    sbi_value,
    shutdown,
    strlen,
    volatile_read,
    volatile_write,
)

# The SBI and privileged-architecture constants are the hypervisor's own (one declaration of each).
EXT_UNKNOWN: Final = u64(0x0A0B0C0D)
SPEC_VERSION_2_0: Final = u64(0x2000000)

TICKS_PER_MS: Final = u64(10000)  # the virt board's timebase: 10 MHz
TIMER_DELAY: Final = u64(100000)  # 10 ms
# The interrupt must come within 5 ms of its deadline: QEMU (TCG) takes ~0.2 ms; the margin is for loaded hosts.
TIMER_SLACK: Final = u64(50000)
TIMER_TRIES: Final = 3
FAULT_GPA: Final = u64(0x40000000)  # not in any VM's memory (RAM is at 0x8000_0000)

# What the trap handler saw (read through Mmio so waits see the handler's stores).
timer_hits = static(Array[u64, 1])
timer_at = static(Array[u64, 1])
illegal_hits = static(Array[u64, 1])
illegal_tval = static(Array[u64, 1])
unexpected_traps = static(Array[u64, 1])
sink = static(Array[u64, 1])

passed = static(Array[u64, 1])
failed = static(Array[u64, 1])


# ---------------------------------------------------------------------------------------------------------------
# Results


def test_ok(name: Ptr[u8]) -> None:
    puts(cstr(b"selftest: "))
    puts(name)
    puts(cstr(b": ok\n"))
    passed[0] += 1


def test_ok_note(name: Ptr[u8], note: Ptr[u8], v: u64, hex: bool) -> None:
    puts(cstr(b"selftest: "))
    puts(name)
    puts(cstr(b": ok ("))
    puts(note)
    if hex:
        put_hex(v)
    else:
        put_dec(v)
    puts(cstr(b")\n"))
    passed[0] += 1


def test_failed(name: Ptr[u8], why: Ptr[u8], got: u64) -> None:
    puts(cstr(b"selftest: "))
    puts(name)
    puts(cstr(b": FAILED ("))
    puts(why)
    put_hex(got)
    puts(cstr(b")\n"))
    failed[0] += 1


def check(name: Ptr[u8], cond: bool, why: Ptr[u8], got: u64) -> bool:
    """Count one failure (and print it) when cond is false; the caller prints ok when all checks passed."""
    if not cond:
        test_failed(name, why, got)
    return cond


# ---------------------------------------------------------------------------------------------------------------
# Tests


def test_dbcn() -> None:
    name = cstr(b"dbcn")
    msg = cstr(b"dbcn: console_write works\n")
    n = strlen(msg)
    err = console_write(msg, n)
    if not check(name, err == SBI_SUCCESS, cstr(b"console_write error "), u64(err)):
        return
    if not check(name, sbi_value[0] == n, cstr(b"console_write wrote "), sbi_value[0]):
        return
    byte_msg = cstr(b"dbcn: console_write_byte works\n")
    i = u64(0)
    while byte_msg[i] != 0:
        err = sbi(SBI_EXT_DBCN, u64(2), u64(byte_msg[i]), u64(0), u64(0))
        if not check(name, err == SBI_SUCCESS, cstr(b"console_write_byte error "), u64(err)):
            return
        i += 1
    test_ok(name)


def test_legacy_putchar() -> None:
    msg = cstr(b"legacy: putchar works\n")
    i = u64(0)
    while msg[i] != 0:
        err = sbi(SBI_EXT_LEGACY_PUTCHAR, u64(0), u64(msg[i]), u64(0), u64(0))
        if not check(cstr(b"legacy_putchar"), err == SBI_SUCCESS, cstr(b"a0 "), u64(err)):
            return
        i += 1
    test_ok(cstr(b"legacy_putchar"))


def probe(eid: u64) -> u64:
    if sbi(SBI_EXT_BASE, u64(3), eid, u64(0), u64(0)) != SBI_SUCCESS:
        return u64(0xDEAD)
    return sbi_value[0]


def test_base() -> None:
    name = cstr(b"base")
    err = sbi(SBI_EXT_BASE, u64(0), u64(0), u64(0), u64(0))
    if not check(name, err == SBI_SUCCESS and sbi_value[0] == SPEC_VERSION_2_0, cstr(b"spec version "),
                 sbi_value[0]):
        return
    if not check(name, probe(SBI_EXT_TIME) == 1, cstr(b"probe TIME "), probe(SBI_EXT_TIME)):
        return
    if not check(name, probe(SBI_EXT_IPI) == 1, cstr(b"probe IPI "), probe(SBI_EXT_IPI)):
        return
    if not check(name, probe(SBI_EXT_RFENCE) == 1, cstr(b"probe RFENCE "), probe(SBI_EXT_RFENCE)):
        return
    if not check(name, probe(SBI_EXT_HSM) == 1, cstr(b"probe HSM "), probe(SBI_EXT_HSM)):
        return
    if not check(name, probe(SBI_EXT_SRST) == 1, cstr(b"probe SRST "), probe(SBI_EXT_SRST)):
        return
    if not check(name, probe(SBI_EXT_DBCN) == 1, cstr(b"probe DBCN "), probe(SBI_EXT_DBCN)):
        return
    if not check(name, probe(EXT_UNKNOWN) == 0, cstr(b"probe of an unknown extension "), probe(EXT_UNKNOWN)):
        return
    err = sbi(EXT_UNKNOWN, u64(0), u64(0), u64(0), u64(0))
    if not check(name, err == SBI_ERR_NOT_SUPPORTED, cstr(b"unknown extension call error "), u64(err)):
        return
    test_ok(name)


def test_timer_idle() -> None:
    """Before the guest sets a timer, no timer interrupt is pending (an Sstc hypervisor must start the vCPU with
    vstimecmp = -1: at its reset value 0, VSTIP is pending from the first instruction)."""
    name = cstr(b"timer_idle")
    pending = csr_read(SIP) & MIP_STIP
    if not check(name, pending == 0, cstr(b"timer interrupt pending before any set_timer, sip "), csr_read(SIP)):
        return
    test_ok(name)


def test_timer() -> None:
    """A timer TIMER_DELAY ahead fires once, never early, and within TIMER_SLACK of its deadline. A late one is
    tried again, up to TIMER_TRIES times: one late delivery can be the host's scheduler holding QEMU's thread,
    the same lateness every time is the hypervisor's."""
    name = cstr(b"timer")
    late = u64(0)
    for _attempt in range(TIMER_TRIES):
        volatile_write(addr_of(timer_hits[0]), u64(0))
        now = csr_read(TIME)
        deadline = now + TIMER_DELAY
        err = sbi_set_timer(deadline)
        if not check(name, err == SBI_SUCCESS, cstr(b"set_timer error "), u64(err)):
            return
        csr_set(SIE, MIP_STIP)
        csr_set(SSTATUS, SSTATUS_SIE)
        waits = u64(0)
        while volatile_read(addr_of(timer_hits[0])) == 0:
            wfi()
            waits += 1
            if waits > 1000000:
                break
        csr_clear(SSTATUS, SSTATUS_SIE)
        csr_clear(SIE, MIP_STIP)
        hits = volatile_read(addr_of(timer_hits[0]))
        at = volatile_read(addr_of(timer_at[0]))
        if not check(name, hits == 1, cstr(b"timer interrupts seen "), hits):
            return
        if not check(name, at >= deadline, cstr(b"interrupt before the deadline by ticks "), deadline - at):
            return
        if at - deadline <= TIMER_SLACK:
            test_ok_note(name, cstr(b"latency ticks "), at - deadline, False)
            return
        late = at - deadline
    check(name, False, cstr(b"interrupt late, every try, last by ticks "), late)


def test_hsm() -> None:
    name = cstr(b"hsm")
    err = sbi(SBI_EXT_HSM, u64(2), u64(0), u64(0), u64(0))
    if not check(name, err == SBI_SUCCESS, cstr(b"hart_get_status error "), u64(err)):
        return
    if not check(name, sbi_value[0] == 0, cstr(b"hart 0 status "), sbi_value[0]):
        return
    test_ok(name)


def test_wfi() -> None:
    """wfi with a timer interrupt pending (enabled in sie, masked by sstatus.SIE) returns at once."""
    name = cstr(b"wfi")
    sbi_set_timer(csr_read(TIME))
    csr_set(SIE, MIP_STIP)
    pending = u64(0)
    spins = u64(0)
    while pending == 0 and spins < 1000000:
        pending = csr_read(SIP) & MIP_STIP
        spins += 1
    wfi()
    wfi()
    after = csr_read(SIP) & MIP_STIP
    sbi_set_timer(~u64(0))
    csr_clear(SIE, MIP_STIP)
    cleared = csr_read(SIP) & MIP_STIP
    if not check(name, pending != 0 and after != 0, cstr(b"timer interrupt not pending, sip.STIP "), after):
        return
    if not check(name, cleared == 0, cstr(b"set_timer(-1) did not clear sip.STIP "), cleared):
        return
    test_ok(name)


def test_illegal_csr() -> None:
    """Reading hstatus from VS-mode must come back as an illegal-instruction exception (scause 2)."""
    name = cstr(b"illegal_csr")
    volatile_write(addr_of(illegal_hits[0]), u64(0))
    sink[0] = csr_read(HSTATUS)
    hits = volatile_read(addr_of(illegal_hits[0]))
    if not check(name, hits == 1, cstr(b"illegal-instruction traps seen "), hits):
        return
    tval = volatile_read(addr_of(illegal_tval[0]))
    # stval is the instruction (or 0): csrrs rd, hstatus (0x600), zero
    if not check(name, tval == 0 or tval >> 20 == 0x600, cstr(b"stval is not the csrr hstatus: "), tval):
        return
    test_ok_note(name, cstr(b"stval "), tval, True)


def run_selftest() -> None:
    puts(cstr(b"selftest: starting in VS-mode\n"))
    test_dbcn()
    test_legacy_putchar()
    test_base()
    test_timer_idle()
    test_timer()
    test_hsm()
    test_wfi()
    test_illegal_csr()
    unexpected = volatile_read(addr_of(unexpected_traps[0]))
    if unexpected != 0:
        test_failed(cstr(b"traps"), cstr(b"unexpected traps "), unexpected)
    puts(cstr(b"selftest: "))
    put_dec(passed[0])
    puts(cstr(b" passed, "))
    put_dec(failed[0])
    puts(cstr(b" failed\n"))
    shutdown(u64(0) if failed[0] == 0 else u64(1))


def run_fault_probe() -> None:
    puts(cstr(b"fault probe: loading from guest-physical "))
    put_hex(FAULT_GPA)
    puts(cstr(b"\n"))
    v = volatile_read(Ptr[u64](FAULT_GPA))
    puts(cstr(b"fault probe: FAILED: the load returned "))
    put_hex(v)
    puts(cstr(b"\n"))
    shutdown(u64(1))


@export("guest_main")
def guest_main(hartid: u64, dtb: u64, instance: u64) -> None:
    if instance == 0:
        run_selftest()
    elif instance == 1:
        run_fault_probe()
    else:
        puts(cstr(b"selftest: instance "))
        put_dec(instance)
        puts(cstr(b" has nothing to do\n"))
        shutdown(u64(0))


@export("guest_trap")
def guest_trap(scause: u64, sepc: u64, stval: u64) -> None:
    if scause == SCAUSE_INTERRUPT | IRQ_S_TIMER:
        volatile_write(addr_of(timer_at[0]), csr_read(TIME))
        volatile_write(addr_of(timer_hits[0]), volatile_read(addr_of(timer_hits[0])) + 1)
        sbi_set_timer(~u64(0))
        return
    if scause == EXC_ILLEGAL_INST:
        volatile_write(addr_of(illegal_hits[0]), volatile_read(addr_of(illegal_hits[0])) + 1)
        volatile_write(addr_of(illegal_tval[0]), stval)
        # Skip the instruction: 2 bytes if compressed (low bits != 0b11), else 4.
        size = u64(4)
        if stval != 0 and stval & 3 != 3:
            size = u64(2)
        csr_write(SEPC, sepc + size)
        return
    flush()
    puts(cstr(b"selftest: unexpected trap: scause "))
    put_hex(scause)
    puts(cstr(b" sepc "))
    put_hex(sepc)
    puts(cstr(b" stval "))
    put_hex(stval)
    puts(cstr(b"\n"))
    volatile_write(addr_of(unexpected_traps[0]), volatile_read(addr_of(unexpected_traps[0])) + 1)
    if scause & SCAUSE_INTERRUPT != 0:
        csr_clear(SIE, u64(1) << (scause & 63))
        return
    shutdown(u64(1))


@export("pyshyper_panic")
def guest_panic(kind: u64, a: u64, b: u64) -> None:
    flush()
    puts(cstr(b"selftest: PANIC kind "))
    put_dec(kind)
    puts(cstr(b" a "))
    put_hex(a)
    puts(cstr(b" b "))
    put_hex(b)
    puts(cstr(b"\n"))
    shutdown(u64(1))
