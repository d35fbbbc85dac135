"""The trap benchmark guest: times the guest-visible cost of the hypervisor's hot trap paths.

Booted as the management VM's kernel (two vCPUs, the virtual PLIC or APLIC) or natively under OpenSBI alone (the
baseline), it starts its second hart with HSM, then runs each operation BENCH_N times in a timed loop (start.S) and
prints one line per operation with the `instret` and `time` deltas; the host (qemu/pyshyper_host/bench/trap.py)
subtracts the empty loop (`nop`) and divides: instructions per operation under `-icount shift=0` (where instret
counts every instruction QEMU runs, the hypervisor's and the firmware's included), wall time per operation without.

    bench: irq plic hart 0 other 1
    bench: registers kept
    bench: nop n 100000 instret 700000 time 3000
    bench: sbi_null n 100000 instret ... time ...
    ...
    bench: done

The operations: an SBI null call (sbi_get_spec_version), a 32-bit load and a store of an interrupt-controller
register (PLIC source 1's priority, or the APLIC's sourcecfg[1] in AIA mode), an SBI set_timer (on a hart without
Sstc when QEMU runs `-cpu rv64,sstc=false`) and an SBI IPI to the other hart. Before them, bench_regs_check
(start.S) checks that the registers the hypervisor saves only when it needs them (gp, tp, s1..s11) come back as
the guest left them, across an SBI call and around emulated accesses that name each of them.
"""

from compiler.prelude import TIME, Array, Final, Ptr, addr_of, csr_read, cstr, export, extern, static, u8, u32, u64
from hypervisor.arch.riscv.sbi_call import SBI_EXT_HSM, SBI_EXT_TIME
from tests.guests.common.gio import flush, put_dec, put_hex, puts, sbi, shutdown

BENCH_N: Final = u64(100000)

# The interrupt controllers' register addresses: boards/qemu-virt/mvm.toml [[emulated]] "plic" and "aplic" bases
# (the virt board's own; the benchmark's test checks the two agree).
PLIC_BASE: Final = u64(0x0C00_0000)
PLIC_PRIORITY_1: Final = PLIC_BASE + 4  # RISC-V PLIC spec 1.0.0, 3: source 1's priority at 0x000004
APLIC_BASE: Final = u64(0x0D00_0000)
APLIC_SOURCECFG_1: Final = APLIC_BASE + 4  # RISC-V AIA 1.0, 4.5.2: sourcecfg[1] at 0x0004

FDT_MAGIC: Final = u32(0xD00DFEED)
FAR_DEADLINE: Final = u64(1) << 40  # time-CSR ticks: days at 10 MHz, so the timer never fires while timed
SECONDARY_WAIT: Final = u64(100000000)  # time-CSR ticks to wait for the second hart: 10 s at 10 MHz

results = static(Array[u64, 2])


@extern("bench_nop")
def bench_nop(n: u64, arg: u64, out: u64) -> None: ...
@extern("bench_sbi_null")
def bench_sbi_null(n: u64, arg: u64, out: u64) -> None: ...
@extern("bench_mmio_load")
def bench_mmio_load(n: u64, arg: u64, out: u64) -> None: ...
@extern("bench_mmio_store")
def bench_mmio_store(n: u64, arg: u64, out: u64) -> None: ...
@extern("bench_set_timer")
def bench_set_timer(n: u64, arg: u64, out: u64) -> None: ...
@extern("bench_ipi")
def bench_ipi(n: u64, arg: u64, out: u64) -> None: ...
@extern("bench_regs_check")
def bench_regs_check(addr: u64) -> u64: ...


@extern("secondary_entry_address")
def secondary_entry_address() -> u64: ...
@extern("bench_secondary_started")
def bench_secondary_started() -> u64: ...
@extern("bench_ipis_received")
def bench_ipis_received() -> u64: ...


def be32(p: Ptr[u8]) -> u32:
    return (u32(p[0]) << 24) | (u32(p[1]) << 16) | (u32(p[2]) << 8) | u32(p[3])


def fdt_contains(dtb: u64, needle: Ptr[u8]) -> bool:
    """Whether the device tree blob holds the string `needle` anywhere (a compatible string, here)."""
    p = Ptr[u8](dtb)
    if dtb == 0 or be32(p) != FDT_MAGIC:
        return False
    size = u64(be32(Ptr[u8](dtb + 4)))
    n = u64(0)
    while needle[n] != 0:
        n += 1
    i = u64(0)
    while i + n <= size:
        j = u64(0)
        while j < n and p[i + j] == needle[j]:
            j += 1
        if j == n:
            return True
        i += 1
    return False


def report(name: Ptr[u8]) -> None:
    puts(cstr(b"bench: "))
    puts(name)
    puts(cstr(b" n "))
    put_dec(BENCH_N)
    puts(cstr(b" instret "))
    put_dec(results[0])
    puts(cstr(b" time "))
    put_dec(results[1])
    puts(cstr(b"\n"))


@export("guest_main")
def guest_main(hartid: u64, dtb: u64) -> None:
    other = hartid ^ 1
    aia = fdt_contains(dtb, cstr(b"riscv,aplic"))
    puts(cstr(b"bench: irq "))
    puts(cstr(b"aia") if aia else cstr(b"plic"))
    puts(cstr(b" hart "))
    put_dec(hartid)
    puts(cstr(b" other "))
    put_dec(other)
    puts(cstr(b"\n"))
    if sbi(SBI_EXT_HSM, u64(0), other, secondary_entry_address(), u64(0)) != 0:
        puts(cstr(b"bench: FAILED: HSM hart_start of the other hart\n"))
        flush()
        return
    t0 = csr_read(TIME)
    while bench_secondary_started() == 0:
        if csr_read(TIME) - t0 > SECONDARY_WAIT:
            puts(cstr(b"bench: FAILED: the other hart did not start\n"))
            flush()
            return
    out = addr_of(results[0]).addr()
    reg = APLIC_SOURCECFG_1 if aia else PLIC_PRIORITY_1
    bad = bench_regs_check(reg)
    if bad != 0:
        puts(cstr(b"bench: FAILED: registers not kept across a trap (bit n: xn) "))
        put_hex(bad)
        puts(cstr(b"\n"))
        flush()
        return
    puts(cstr(b"bench: registers kept\n"))
    bench_nop(BENCH_N, u64(0), out)
    report(cstr(b"nop"))
    bench_sbi_null(BENCH_N, u64(0), out)
    report(cstr(b"sbi_null"))
    bench_mmio_load(BENCH_N, reg, out)
    report(cstr(b"mmio_load"))
    bench_mmio_store(BENCH_N, reg, out)
    report(cstr(b"mmio_store"))
    bench_set_timer(BENCH_N, csr_read(TIME) + FAR_DEADLINE, out)
    report(cstr(b"set_timer"))
    sbi(SBI_EXT_TIME, u64(0), ~u64(0), u64(0), u64(0))
    bench_ipi(BENCH_N, u64(1) << other, out)
    report(cstr(b"ipi"))
    puts(cstr(b"bench: ipis received "))
    put_dec(bench_ipis_received())
    puts(cstr(b"\nbench: done\n"))
    flush()
    shutdown(u64(0))


@export("pyshyper_panic")
def guest_panic(kind: u64, a: u64, b: u64) -> None:
    flush()
    puts(cstr(b"bench: FAILED: panic kind "))
    put_dec(kind)
    puts(cstr(b"\n"))
    flush()
    shutdown(u64(1))
