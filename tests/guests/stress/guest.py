"""The stress guest: a hostile but well-defined VS-mode program, and a bystander.

Instance 0 (`stress:`) boots STRESS_BOOTS times. On each boot it makes SBI_CASES SBI calls with random extension,
function and arguments (everything but what would end or reboot it: SRST, HSM hart_stop, legacy shutdown; and
but console writes, whose random bytes would only litter the log) and checks each answer is an SBI error code;
then MMIO_CASES random accesses to the statistics page, an emulated device (mvm.toml `stats`): every aligned
load and store must be emulated, every access the page cannot do (a misaligned one, an AMO) must come back to
this guest as an access (or misaligned) fault at exactly the address it used. Then it reboots itself through SBI
SRST. At boots 1, 2 and STRESS_BOOTS it prints the hypervisor's free pages and this hart's stack high-water mark
(PyShyper test SBI extension), which the test compares: nothing may be lost across reboots.
Instance 1 (`heartbeat:`) prints a numbered line every HEARTBEAT_TICKS while instance 0 runs, checking its own
memory is untouched, and powers off after HEARTBEATS of them.
"""

from compiler.prelude import (
    SEPC,
    TIME,
    Array,
    Final,
    Ptr,
    addr_of,
    csr_read,
    csr_write,
    cstr,
    export,
    extern,
    i64,
    sbi_ecall,
    static,
    u8,
    u64,
)
from hypervisor.arch.riscv.encoding import (
    EXC_LOAD_ACCESS,
    EXC_LOAD_MISALIGNED,
    EXC_STORE_ACCESS,
    EXC_STORE_MISALIGNED,
)
from hypervisor.arch.riscv.sbi_call import (
    SBI_EXT_BASE,
    SBI_EXT_DBCN,
    SBI_EXT_HSM,
    SBI_EXT_IPI,
    SBI_EXT_PMU,
    SBI_EXT_RFENCE,
    SBI_EXT_SRST,
    SBI_EXT_TIME,
    SBI_SRST_COLD_REBOOT,
)
from tests.guests.common.gio import put_dec, put_hex, puts, sbi, sbi_value, shutdown, volatile_read, volatile_write

STRESS_BOOTS: Final = u64(200)
SBI_CASES: Final = 300
MMIO_CASES: Final = 300
HEARTBEATS: Final = 40
HEARTBEAT_TICKS: Final = u64(1000000)  # 100 ms of the virt board's 10 MHz timebase

STATS_GPA: Final = u64(0x0F00_0000)  # boards/qemu-virt/mvm.toml [[emulated]] "stats" (tests check the two agree)
STATS_SIZE: Final = u64(0x1000)
STATS_FREE_PAGES: Final = u64(0x800)
SBI_EXT_PYSHYPER_TEST: Final = u64(0x0A505354)
TEST_FREE_PAGES: Final = u64(1)
TEST_STACK_HIGH_WATER: Final = u64(2)
TEST_BOOTS: Final = u64(3)
RAM_GPA: Final = u64(0x8000_0000)
SBI_LAST_ERROR: Final = i64(-13)  # SBI 3.0 section 3.2: the standard error codes are -1 .. -13

OP_COUNT: Final = 14

rng = static(Array[u64, 1])
faults = static(Array[u64, 1])  # access or misaligned faults the handler took (read and written volatile)
fault_cause = static(Array[u64, 1])
fault_tval = static(Array[u64, 1])
failures = static(Array[u64, 1])
canary = static(Array[u64, 64])  # the heartbeat's own memory, checked on every beat


@extern("mmio_lb")
def mmio_lb(addr: u64) -> u64: ...
@extern("mmio_lbu")
def mmio_lbu(addr: u64) -> u64: ...
@extern("mmio_lh")
def mmio_lh(addr: u64) -> u64: ...
@extern("mmio_lhu")
def mmio_lhu(addr: u64) -> u64: ...
@extern("mmio_lw")
def mmio_lw(addr: u64) -> u64: ...
@extern("mmio_lwu")
def mmio_lwu(addr: u64) -> u64: ...
@extern("mmio_ld")
def mmio_ld(addr: u64) -> u64: ...
@extern("mmio_sb")
def mmio_sb(addr: u64, value: u64) -> u64: ...
@extern("mmio_sh")
def mmio_sh(addr: u64, value: u64) -> u64: ...
@extern("mmio_sw")
def mmio_sw(addr: u64, value: u64) -> u64: ...
@extern("mmio_sd")
def mmio_sd(addr: u64, value: u64) -> u64: ...
@extern("mmio_amoadd_w")
def mmio_amoadd_w(addr: u64, value: u64) -> u64: ...
@extern("mmio_amoswap_d")
def mmio_amoswap_d(addr: u64, value: u64) -> u64: ...
@extern("mmio_amoor_w")
def mmio_amoor_w(addr: u64, value: u64) -> u64: ...


def random() -> u64:
    """xorshift64* (Vigna): repeatable from the seed, which is the boot number."""
    x = rng[0]
    x ^= x >> 12
    x ^= x << 25
    x ^= x >> 27
    rng[0] = x
    return x * u64(0x2545F4914F6CDD1D)


def random_arg() -> u64:
    """An argument a careless or hostile kernel might pass: edges, addresses in and around its RAM, noise."""
    k = random() % 8
    if k == 0:
        return u64(0)
    if k == 1:
        return ~u64(0)
    if k == 2:
        return random() % 8
    if k == 3:
        return RAM_GPA + random() % 0x800000  # its 4 MiB and as much again past the end
    if k == 4:
        return STATS_GPA + random() % STATS_SIZE
    if k == 5:
        return u64(1) << (random() % 64)
    return random()


def test_call(fid: u64) -> u64:
    sbi(SBI_EXT_PYSHYPER_TEST, fid, u64(0), u64(0), u64(0))
    return sbi_value[0]


def fail(what: Ptr[u8], value: u64) -> None:
    puts(cstr(b"stress: FAILED: "))
    puts(what)
    put_hex(value)
    puts(cstr(b"\n"))
    failures[0] += 1


# ---------------------------------------------------------------------------------------------------------------
# SBI


def random_eid() -> u64:
    k = random() % 12
    if k == 0:
        return SBI_EXT_BASE
    if k == 1:
        return SBI_EXT_TIME
    if k == 2:
        return SBI_EXT_IPI
    if k == 3:
        return SBI_EXT_RFENCE
    if k == 4:
        return SBI_EXT_HSM
    if k == 5:
        return SBI_EXT_DBCN
    if k == 6:
        return SBI_EXT_PMU
    if k == 7:
        return SBI_EXT_PYSHYPER_TEST
    if k == 8:
        return random() % 9  # the legacy extensions 0x00 .. 0x08
    return random()


def sbi_case_allowed(eid: u64, fid: u64) -> bool:
    """What would end, reboot or suspend this VM, or only print noise, is left out."""
    if eid == SBI_EXT_SRST or eid == u64(8) or eid == u64(1):  # SRST, legacy shutdown, legacy putchar
        return False
    if eid == SBI_EXT_HSM and (fid == 1 or fid == 3):  # hart_stop, hart_suspend
        return False
    if eid == SBI_EXT_DBCN and (fid == 0 or fid == 2):  # console writes
        return False
    return not (eid == SBI_EXT_PYSHYPER_TEST and fid == 0)  # the hypervisor-fault probe of --debug-faults builds


def fuzz_sbi() -> u64:
    calls = u64(0)
    value = Array[u64, 1]()
    while calls < SBI_CASES:
        eid = random_eid()
        fid = random() % 8 if random() % 4 != 0 else random()
        if not sbi_case_allowed(eid, fid):
            continue
        err = sbi_ecall(
            eid,
            fid,
            random_arg(),
            random_arg(),
            random_arg(),
            random_arg(),
            random_arg(),
            random_arg(),
            addr_of(value[0]),
        )
        calls += 1
        if eid > 8 and (err > 0 or err < SBI_LAST_ERROR):  # legacy calls return a value, not an error
            fail(cstr(b"SBI call answered with no error code, eid "), eid)
    return calls


# ---------------------------------------------------------------------------------------------------------------
# MMIO


def mmio_op(op: u64, addr: u64, value: u64) -> u64:
    if op == 0:
        return mmio_lb(addr)
    if op == 1:
        return mmio_lbu(addr)
    if op == 2:
        return mmio_lh(addr)
    if op == 3:
        return mmio_lhu(addr)
    if op == 4:
        return mmio_lw(addr)
    if op == 5:
        return mmio_lwu(addr)
    if op == 6:
        return mmio_ld(addr)
    if op == 7:
        return mmio_sb(addr, value)
    if op == 8:
        return mmio_sh(addr, value)
    if op == 9:
        return mmio_sw(addr, value)
    if op == 10:
        return mmio_sd(addr, value)
    if op == 11:
        return mmio_amoadd_w(addr, value)
    if op == 12:
        return mmio_amoswap_d(addr, value)
    return mmio_amoor_w(addr, value)


def op_width(op: u64) -> u64:
    if op == 0 or op == 1 or op == 7:
        return u64(1)
    if op == 2 or op == 3 or op == 8:
        return u64(2)
    if op == 6 or op == 10 or op == 12:
        return u64(8)
    return u64(4)


def fuzz_mmio() -> u64:
    """Random accesses to the statistics page; returns how many faulted (as they must)."""
    faulted = u64(0)
    for _ in range(MMIO_CASES):
        op = random() % OP_COUNT
        width = op_width(op)
        offset = random() % STATS_SIZE
        if random() % 2 == 0:
            offset -= offset % width
        if offset + width > STATS_SIZE:
            offset = STATS_SIZE - width
        addr = STATS_GPA + offset
        is_load = op < 7
        must_fault = op >= 11 or offset % width != 0
        before = volatile_read(addr_of(faults[0]))
        mmio_op(op, addr, random())
        took = volatile_read(addr_of(faults[0])) != before
        if took != must_fault:
            fail(cstr(b"emulated access to the statistics page faulted wrongly, offset "), offset | (op << 32))
            continue
        if not took:
            continue
        faulted += 1
        cause = volatile_read(addr_of(fault_cause[0]))
        ok_cause = cause == EXC_LOAD_ACCESS or cause == EXC_LOAD_MISALIGNED
        if not is_load:
            ok_cause = cause == EXC_STORE_ACCESS or cause == EXC_STORE_MISALIGNED
        if not ok_cause:
            fail(cstr(b"wrong fault cause for the statistics page, cause "), cause)
        if volatile_read(addr_of(fault_tval[0])) != addr:
            fail(cstr(b"fault address differs from the access, stval "), volatile_read(addr_of(fault_tval[0])))
    return faulted


# ---------------------------------------------------------------------------------------------------------------
# The two instances


def report(boot: u64) -> None:
    puts(cstr(b"stress: boot "))
    put_dec(boot)
    puts(cstr(b": free pages "))
    put_dec(test_call(TEST_FREE_PAGES))
    puts(cstr(b", stack high-water "))
    put_dec(test_call(TEST_STACK_HIGH_WATER))
    puts(cstr(b" bytes\n"))


def run_stress() -> None:
    boot = test_call(TEST_BOOTS)
    rng[0] = boot * u64(0x9E3779B97F4A7C15) + u64(1)
    calls = fuzz_sbi()
    faulted = fuzz_mmio()
    if mmio_ld(STATS_GPA + STATS_FREE_PAGES) != test_call(TEST_FREE_PAGES):
        fail(cstr(b"the statistics page and SBI disagree on free pages: "), mmio_ld(STATS_GPA + STATS_FREE_PAGES))
    if boot == 1 or boot == 2 or boot == STRESS_BOOTS:
        report(boot)
    if failures[0] != 0:
        shutdown(u64(1))
    if boot < STRESS_BOOTS:
        sbi(SBI_EXT_SRST, u64(0), u64(SBI_SRST_COLD_REBOOT), u64(0), u64(0))
        fail(cstr(b"SRST reboot returned, error "), u64(0))
        shutdown(u64(1))
    puts(cstr(b"stress: "))
    put_dec(boot)
    puts(cstr(b" boots, each "))
    put_dec(calls)
    puts(cstr(b" SBI calls and "))
    put_dec(u64(MMIO_CASES))
    puts(cstr(b" emulated accesses (the last boot's faulted: "))
    put_dec(faulted)
    puts(cstr(b"): ok\n"))
    shutdown(u64(0))


def run_heartbeat() -> None:
    for i in range(64):
        volatile_write(addr_of(canary[i]), u64(0xC0FFEE00) + u64(i))
    start = csr_read(TIME)
    for beat in range(HEARTBEATS):
        n = u64(beat) + 1
        while csr_read(TIME) - start < n * HEARTBEAT_TICKS:
            pass
        for i in range(64):
            if volatile_read(addr_of(canary[i])) != u64(0xC0FFEE00) + u64(i):
                puts(cstr(b"heartbeat: FAILED: memory changed\n"))
                shutdown(u64(1))
        puts(cstr(b"heartbeat: "))
        put_dec(n)
        puts(cstr(b"\n"))
    shutdown(u64(0))


@export("guest_main")
def guest_main(hartid: u64, dtb: u64, instance: u64) -> None:
    if instance == 0:
        run_stress()
    else:
        run_heartbeat()


@export("guest_trap")
def guest_trap(scause: u64, sepc: u64, stval: u64) -> None:
    if (
        scause == EXC_LOAD_ACCESS
        or scause == EXC_STORE_ACCESS
        or scause == EXC_LOAD_MISALIGNED
        or scause == (EXC_STORE_MISALIGNED)
    ):
        volatile_write(addr_of(fault_cause[0]), scause)
        volatile_write(addr_of(fault_tval[0]), stval)
        volatile_write(addr_of(faults[0]), volatile_read(addr_of(faults[0])) + 1)
        csr_write(SEPC, sepc + 4)  # every access in start.S is a 4-byte instruction
        return
    puts(cstr(b"stress: unexpected trap: scause "))
    put_hex(scause)
    puts(cstr(b" sepc "))
    put_hex(sepc)
    puts(cstr(b" stval "))
    put_hex(stval)
    puts(cstr(b"\n"))
    shutdown(u64(1))


@export("pyshyper_panic")
def guest_panic(kind: u64, a: u64, b: u64) -> None:
    puts(cstr(b"stress: panic "))
    put_dec(kind)
    puts(cstr(b"\n"))
    shutdown(u64(1))
