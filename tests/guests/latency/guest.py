"""The latency guest: a small guest VM that measures its own timer-interrupt latency (`just bench-latency`).

Loaded by the MVM's `shyper` as a `VM_T_BARE_METAL` kernel (tests/guests/latency/latency.json; the harness
qemu/pyshyper_host/bench/latency.py writes the config it boots), it reads its parameters from its device tree's
/chosen/bootargs (the config's `cmdline`, `key=value` words) and its timebase from /cpus timebase-frequency, says
so on its console (SBI DBCN: the GVM's console stream, the MVM's /dev/hvcN), then runs one of two modes:

- `mode=timer` (the default): `n` timer rounds. Each arms the timer at a deadline a pseudo-random `min_us` ..
  `max_us` microseconds ahead (xorshift64 from `seed`), with `stimecmp` when the device tree lists Sstc (the
  hypervisor gives a guest Sstc when its harts have it: the guest's `stimecmp` is `vstimecmp`) or with SBI TIME
  set_timer otherwise (`timer=sbi` forces it), and waits in WFI with interrupts masked, as an OS's idle loop does;
  the sample is `time` at the trap vector's first instructions (start.S) minus the deadline, in timebase ticks.
- `mode=switch`: the context-switch recorder (start.S `switch_record`): up to `slices` intervals during which
  this guest ran without a break of more than `gap` instructions, within `until_ms` milliseconds.

Then it prints its figures, `per_line` to a line, waiting `pace_us` after each line so that the MVM's console
ring (4 KiB per GVM) never drops any, and waits in WFI until its VM is stopped (or, started with no device tree
by `pyshyper run --guest latency`, with the defaults and the SBI timer, powers its VM off):

    latency: up timebase 10000000 timer sstc mode timer n 2000 min 2000 max 6000 seed 1
    latency: s 0 1c 2f 1a ...                                (sample index, then samples in hex ticks)
    latency: done n 2000 sum 61234 min 17 max 913 early 0    (decimal; the host checks nothing was lost)

    latency: up timebase 10000000 timer sstc mode switch slices 64 gap 64 until 2000
    latency: i 0 1f00a 2e4c1 ...                             (interval index, then start end pairs in hex)
    latency: done intervals 64

A trap it did not ask for ends the VM (SRST shutdown, reason 1) after a line naming it.
"""

from compiler.prelude import (
    SIE,
    SSCRATCH,
    SSTATUS,
    STIMECMP,
    STVEC,
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
    extern,
    static,
    u8,
    u64,
    wfi,
)
from hypervisor.arch.riscv.encoding import IRQ_S_TIMER, MIP_STIP, SCAUSE_INTERRUPT, SSTATUS_SIE
from hypervisor.core.fdt import (
    fdt_chosen_prop,
    fdt_cpu_has_extension,
    fdt_prop_data,
    fdt_prop_len,
    fdt_timebase,
)
from tests.guests.common.gio import (
    flush,
    put_dec,
    put_hex,
    putc,
    puts,
    sbi_set_timer,
    shutdown,
    volatile_read,
    volatile_write,
)

MAX_SAMPLES: Final = u64(8192)
MAX_SLICES: Final = u64(1024)
NEVER: Final = ~u64(0)  # a deadline that never comes (SBI TIME 1.0: set_timer(-1) clears the pending interrupt)
US_PER_S: Final = u64(1000000)
FALLBACK_TIMEBASE: Final = u64(10000000)  # used only when the device tree has none (the line then says 0)

samples = static(Array[u64, MAX_SAMPLES])
intervals = static(Array[u64, 2 * MAX_SLICES])
deadline = static(Array[u64, 1])
fired = static(Array[u64, 1])  # the handler's count of timer interrupts
bootargs = static(Array[u64, 2])  # address and length of /chosen/bootargs (0, 0: none)
use_sbi = static(Array[u64, 1])


@extern("latency_trap_entry_address")
def latency_trap_entry_address() -> u64: ...
@extern("latency_trap_time_address")
def latency_trap_time_address() -> u64: ...
@extern("switch_record")
def switch_record(max_intervals: u64, gap: u64, out: u64, until: u64) -> u64: ...


# ---------------------------------------------------------------------------------------------------------------
# Parameters: `key=value` words of /chosen/bootargs


def word_is(at: u64, end: u64, key: Ptr[u8]) -> u64:
    """If the bytes at `at` are `key` followed by '=', the address of the value after it; else 0."""
    p = Ptr[u8](at)
    i = u64(0)
    while key[i] != 0:
        if at + i >= end or p[i] != key[i]:
            return 0
        i += 1
    if at + i >= end or p[i] != 61:  # '='
        return 0
    return at + i + 1


def arg_value(key: Ptr[u8]) -> u64:
    """The address of `key`'s value in bootargs (after `key=`), or 0 when the word is absent."""
    at = bootargs[0]
    end = at + bootargs[1]
    start_of_word = True
    while at < end:
        c = Ptr[u8](at)[0]
        if c == 0:
            return 0
        if start_of_word:
            v = word_is(at, end, key)
            if v != 0:
                return v
        start_of_word = c == 32
        at += 1
    return 0


def arg_u64(key: Ptr[u8], default: u64) -> u64:
    """`key=N` (decimal) from bootargs, or default."""
    v = arg_value(key)
    if v == 0:
        return default
    p = Ptr[u8](v)
    end = bootargs[0] + bootargs[1]
    n = u64(0)
    digits = u64(0)
    while v + digits < end and p[digits] >= 48 and p[digits] <= 57:
        n = n * 10 + u64(p[digits] - 48)
        digits += 1
    return n if digits != 0 else default


def arg_is(key: Ptr[u8], value: Ptr[u8]) -> bool:
    """bootargs has the word `key=value`."""
    v = arg_value(key)
    if v == 0:
        return False
    p = Ptr[u8](v)
    end = bootargs[0] + bootargs[1]
    i = u64(0)
    while value[i] != 0:
        if v + i >= end or p[i] != value[i]:
            return False
        i += 1
    return v + i >= end or p[i] == 32 or p[i] == 0


# ---------------------------------------------------------------------------------------------------------------
# Output


def put_field(name: Ptr[u8], v: u64) -> None:
    putc(u8(32))
    puts(name)
    putc(u8(32))
    put_dec(v)


def put_hex_bare(v: u64) -> None:
    """v in lowercase hex without the 0x (the samples' lines are mostly digits)."""
    started = False
    for i in range(16):
        d = (v >> u64(60 - 4 * i)) & 15
        if d != 0 or started or i == 15:
            started = True
            putc(u8(48 + d) if d < 10 else u8(87 + d))


def pace(ticks: u64) -> None:
    """Wait `ticks` of `time` (the console's reader in the MVM drains its ring meanwhile)."""
    t0 = csr_read(TIME)
    while csr_read(TIME) - t0 < ticks:
        pass


def print_values(tag: Ptr[u8], values: Ptr[u64], count: u64, per_line: u64, pace_ticks: u64) -> None:
    """`latency: TAG index v v v ...` lines of `per_line` values in hex, one `pace_ticks` wait after each."""
    i = u64(0)
    while i < count:
        puts(cstr(b"latency: "))
        puts(tag)
        putc(u8(32))
        put_dec(i)
        k = u64(0)
        while k < per_line and i < count:
            putc(u8(32))
            put_hex_bare(values[i])
            i += 1
            k += 1
        puts(cstr(b"\n"))
        pace(pace_ticks)


# ---------------------------------------------------------------------------------------------------------------
# Timer rounds


def xorshift64(x: u64) -> u64:
    """Marsaglia's xorshift64 (13, 7, 17): a full-period sequence of nonzero 64-bit values."""
    x ^= x << 13
    x ^= x >> 7
    x ^= x << 17
    return x


def arm(at: u64) -> None:
    if use_sbi[0] != 0:
        sbi_set_timer(at)
    else:
        csr_write(STIMECMP, at)


def timer_rounds(n: u64, min_ticks: u64, span_ticks: u64, seed: u64) -> None:
    """n rounds: arm, wait with interrupts masked in WFI, take the interrupt, keep its sample."""
    x = seed if seed != 0 else u64(1)
    trap_time = Ptr[u64](latency_trap_time_address())
    csr_set(SIE, MIP_STIP)
    for i in range(n):
        x = xorshift64(x)
        at = csr_read(TIME) + min_ticks + (x % span_ticks if span_ticks != 0 else u64(0))
        seen = volatile_read(addr_of(fired[0]))
        volatile_write(addr_of(deadline[0]), at)
        arm(at)
        while volatile_read(addr_of(fired[0])) == seen:
            wfi()  # returns once the timer interrupt is pending (sie.STIE), taken when sstatus.SIE opens
            csr_set(SSTATUS, SSTATUS_SIE)
            csr_clear(SSTATUS, SSTATUS_SIE)
        samples[i] = volatile_read(trap_time) - at
    csr_clear(SIE, MIP_STIP)


def run_timer(timebase: u64) -> None:
    n = arg_u64(cstr(b"n"), u64(2000))
    if n > MAX_SAMPLES:
        n = MAX_SAMPLES
    min_us = arg_u64(cstr(b"min_us"), u64(200))
    max_us = arg_us_at_least(cstr(b"max_us"), u64(600), min_us)
    seed = arg_u64(cstr(b"seed"), u64(1))
    min_ticks = min_us * timebase // US_PER_S
    span_ticks = max_us * timebase // US_PER_S - min_ticks
    puts(cstr(b" mode timer"))
    put_field(cstr(b"n"), n)
    put_field(cstr(b"min"), min_ticks)
    put_field(cstr(b"max"), min_ticks + span_ticks)
    put_field(cstr(b"seed"), seed)
    puts(cstr(b"\n"))
    timer_rounds(n, min_ticks, span_ticks, seed)
    total = u64(0)
    lo = NEVER
    hi = u64(0)
    early = u64(0)
    for i in range(n):
        v = samples[i]
        if v >> 63 != 0:  # the handler ran before its deadline: counted, the host refuses the run
            early += 1
        total += v
        lo = v if v < lo else lo
        hi = v if v > hi else hi
    print_values(cstr(b"s"), addr_of(samples[0]), n, arg_u64(cstr(b"per_line"), u64(16)), pace_ticks(timebase))
    puts(cstr(b"latency: done"))
    put_field(cstr(b"n"), n)
    put_field(cstr(b"sum"), total)
    put_field(cstr(b"min"), lo if n != 0 else u64(0))
    put_field(cstr(b"max"), hi)
    put_field(cstr(b"early"), early)
    puts(cstr(b"\n"))


def arg_us_at_least(key: Ptr[u8], default: u64, floor: u64) -> u64:
    v = arg_u64(key, default)
    return v if v >= floor else floor


def pace_ticks(timebase: u64) -> u64:
    return arg_u64(cstr(b"pace_us"), u64(3000)) * timebase // US_PER_S


# ---------------------------------------------------------------------------------------------------------------
# Switch recorder


def run_switch(timebase: u64) -> None:
    slices = arg_u64(cstr(b"slices"), u64(64))
    if slices > MAX_SLICES:
        slices = MAX_SLICES
    gap = arg_u64(cstr(b"gap"), u64(64))
    until_ms = arg_u64(cstr(b"until_ms"), u64(2000))
    puts(cstr(b" mode switch"))
    put_field(cstr(b"slices"), slices)
    put_field(cstr(b"gap"), gap)
    put_field(cstr(b"until"), until_ms)
    puts(cstr(b"\n"))
    flush()
    until = csr_read(TIME) + until_ms * (timebase // 1000)
    count = switch_record(slices, gap, addr_of(intervals[0]).addr(), until)
    print_values(cstr(b"i"), addr_of(intervals[0]), 2 * count, u64(8), pace_ticks(timebase))
    puts(cstr(b"latency: done"))
    put_field(cstr(b"intervals"), count)
    puts(cstr(b"\n"))


# ---------------------------------------------------------------------------------------------------------------


@export("guest_main")
def guest_main(hartid: u64, dtb: u64, instance: u64) -> None:
    prop = fdt_chosen_prop(dtb, cstr(b"bootargs"))
    if prop != 0:
        bootargs[0] = fdt_prop_data(prop)
        bootargs[1] = fdt_prop_len(prop)
    found = fdt_timebase(dtb)
    timebase = found if found != 0 else FALLBACK_TIMEBASE
    sstc = fdt_cpu_has_extension(dtb, u64(0), cstr(b"sstc"))
    use_sbi[0] = u64(1) if arg_is(cstr(b"timer"), cstr(b"sbi")) or not sstc else u64(0)
    if use_sbi[0] == 0:
        csr_write(STIMECMP, NEVER)
    csr_write(SSCRATCH, latency_trap_time_address())
    csr_write(STVEC, latency_trap_entry_address())
    puts(cstr(b"latency: up"))
    put_field(cstr(b"timebase"), found)
    puts(cstr(b" timer sbi") if use_sbi[0] != 0 else cstr(b" timer sstc"))
    if arg_is(cstr(b"mode"), cstr(b"switch")):
        run_switch(timebase)
    else:
        run_timer(timebase)
    flush()
    if dtb == 0:  # no device tree: started by the hypervisor itself (`pyshyper run --guest latency`), not by shyper
        shutdown(u64(0))
    while True:
        wfi()


@export("guest_trap")
def guest_trap(scause: u64, sepc: u64, stval: u64) -> None:
    if scause == SCAUSE_INTERRUPT | IRQ_S_TIMER:
        arm(NEVER)
        volatile_write(addr_of(fired[0]), volatile_read(addr_of(fired[0])) + 1)
        return
    flush()
    puts(cstr(b"latency: unexpected trap, scause "))
    put_hex(scause)
    puts(cstr(b" sepc "))
    put_hex(sepc)
    puts(cstr(b" stval "))
    put_hex(stval)
    puts(cstr(b"\n"))
    shutdown(u64(1))


@export("pyshyper_panic")
def guest_panic(kind: u64, a: u64, b: u64) -> None:
    flush()
    puts(cstr(b"latency: PANIC kind "))
    put_hex(kind)
    puts(cstr(b"\n"))
    shutdown(u64(1))
