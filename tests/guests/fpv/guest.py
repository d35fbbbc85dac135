"""The FP/vector guest: the hypervisor's save and restore of a vCPU's FP and vector state (arch/riscv/fpu.py),
driven without a scheduler through the PyShyper test SBI extension (FID 4, vsbi.py).

Each instance (vm1, vm2, on their own harts) runs FPV_ROUNDS rounds. A round fills f0..f31, fcsr, v0..v31, vl,
vtype (a different SEW/LMUL each round, one round in FPV_CONFIGS with vill set), vcsr and vstart with values that
depend on the round (start.S fpv_fill), then asks the hypervisor for three switches:
  1. out and back in with every register clobbered in between: it must save FP and vector state (both Dirty)
     and load both (answer FPV_SAVED_FP | FPV_SAVED_V | FPV_LOADED_FP | FPV_LOADED_V);
  2. the same again with nothing touched since: nothing to save (FS/VS Clean), both loaded;
  3. out and back in with nothing clobbered: the hart still holds this vCPU's registers, nothing saved or loaded;
and then reads every register and CSR back (start.S fpv_dump) and checks each value. It prints
`fpv: N rounds ok, VLEN V` or `fpv: FAIL round N: WHAT = X, expected Y`, and powers its VM off with reason 0 or 1.
"""

from compiler.prelude import Array, Final, Ptr, addr_of, cstr, export, extern, i64, static, struct, u8, u64
from tests.guests.common.gio import flush, put_dec, put_hex, puts, shutdown

FPV_ROUNDS: Final = 12
FPV_VLENB_MAX: Final = 128  # VLEN 1024: the dump buffer's size
FPV_SAVED_FP: Final = u64(1)  # the hypervisor's answer (arch/riscv/fpu.py FPU_TEST_*)
FPV_SAVED_V: Final = u64(2)
FPV_LOADED_FP: Final = u64(4)
FPV_LOADED_V: Final = u64(8)
VTYPE_VILL: Final = u64(1) << 63
# vtype of each round (V 1.0 section 3.4: vlmul 2:0, vsew 5:3, vta 6, vma 7), the last one unsupported (vill)
FPV_CONFIGS: Final = 6
CONFIGS = static(Array[u64, FPV_CONFIGS], init=(0x00, 0x49, 0x92, 0xDB, 0x17, VTYPE_VILL))


@struct
class FpvState:
    f: Array[u64, 32]
    fcsr: u64
    vstart: u64
    vl: u64  # fpv_fill: the AVL asked for; fpv_dump: vl
    vtype: u64
    vcsr: u64
    vbase: u64  # fpv_fill: byte j of the group v<g>.. is j + vbase + g


want = static(FpvState)
got = static(FpvState)
vregs = static(Array[u8, 32 * FPV_VLENB_MAX])
answer = static(Array[u64, 1])


@extern("fpv_enable")
def fpv_enable() -> None: ...


@extern("fpv_vlenb")
def fpv_vlenb() -> u64: ...


@extern("fpv_fill")
def fpv_fill(st: Ptr[FpvState]) -> u64: ...


@extern("fpv_dump")
def fpv_dump(st: Ptr[FpvState], buf: Ptr[u8]) -> None: ...


@extern("fpv_switch")
def fpv_switch(pattern: u64, clobber: u64, out: Ptr[u64]) -> i64: ...


def fail(round: u64, what: Ptr[u8], value: u64, expected: u64) -> None:
    puts(cstr(b"fpv: FAIL round "))
    put_dec(round)
    puts(cstr(b": "))
    puts(what)
    puts(cstr(b" = "))
    put_hex(value)
    puts(cstr(b", expected "))
    put_hex(expected)
    puts(cstr(b"\n"))
    shutdown(u64(1))


def check(round: u64, what: Ptr[u8], value: u64, expected: u64) -> None:
    if value != expected:
        fail(round, what, value, expected)


def switch(round: u64, pattern: u64, clobber: u64, expected: u64, what: Ptr[u8]) -> None:
    err = fpv_switch(pattern, clobber, addr_of(answer[0]))
    check(round, cstr(b"SBI error of the switch"), u64(err), u64(0))
    check(round, what, answer[0], expected)


def fpv_round(round: u64, vlenb: u64) -> None:
    seed = round * u64(0x9E37_79B9) + u64(0x5EED)
    for n in range(32):
        want.f[n] = seed * u64(0x9E37_79B9_7F4A_7C15) + u64(n) * u64(0x0101_0101_0101_0101)
    want.fcsr = ((seed % 5) << 5) | (seed & 0x1F)
    want.vstart = seed % 4
    want.vl = 1 + (round * 7) % 40
    want.vtype = CONFIGS[round % FPV_CONFIGS]
    want.vcsr = seed & 7
    want.vbase = seed & 0xFF
    vl = fpv_fill(addr_of(want))
    if want.vtype == VTYPE_VILL:
        check(round, cstr(b"vl set with vill"), vl, u64(0))
    all4 = FPV_SAVED_FP | FPV_SAVED_V | FPV_LOADED_FP | FPV_LOADED_V
    switch(round, ~seed, u64(1), all4, cstr(b"switch 1 (dirty, clobbered) did"))
    switch(round, seed * 3, u64(1), FPV_LOADED_FP | FPV_LOADED_V, cstr(b"switch 2 (clean, clobbered) did"))
    switch(round, u64(0), u64(0), u64(0), cstr(b"switch 3 (clean, kept) did"))
    fpv_dump(addr_of(got), addr_of(vregs[0]))
    for n in range(32):
        if got.f[n] != want.f[n]:
            fail_f(round, u64(n), got.f[n], want.f[n])
    check(round, cstr(b"fcsr"), got.fcsr, want.fcsr)
    check(round, cstr(b"vstart"), got.vstart, want.vstart)
    check(round, cstr(b"vl"), got.vl, vl)
    check(round, cstr(b"vtype"), got.vtype, want.vtype)
    check(round, cstr(b"vcsr"), got.vcsr, want.vcsr)
    for i in range(32 * vlenb):
        g = (i // (8 * vlenb)) * 8
        expected = u64((i % (8 * vlenb)) + want.vbase + g) & 0xFF
        if u64(vregs[i]) != expected:
            puts(cstr(b"fpv: vector register "))
            put_dec(i // vlenb)
            puts(cstr(b" byte "))
            put_dec(i % vlenb)
            puts(cstr(b"\n"))
            fail(round, cstr(b"vector byte"), u64(vregs[i]), expected)


def fail_f(round: u64, n: u64, value: u64, expected: u64) -> None:
    puts(cstr(b"fpv: f"))
    put_dec(n)
    puts(cstr(b"\n"))
    fail(round, cstr(b"f register bits"), value, expected)


@export("guest_main")
def guest_main(hartid: u64, dtb: u64, instance: u64) -> None:
    fpv_enable()
    vlenb = fpv_vlenb()
    if vlenb == 0 or vlenb > FPV_VLENB_MAX:
        fail(u64(0), cstr(b"vlenb"), vlenb, u64(FPV_VLENB_MAX))
    for r in range(FPV_ROUNDS):
        fpv_round(u64(r + 1), vlenb)
    puts(cstr(b"fpv: "))
    put_dec(u64(FPV_ROUNDS))
    puts(cstr(b" rounds ok, VLEN "))
    put_dec(vlenb * 8)
    puts(cstr(b"\n"))
    shutdown(u64(0))


@export("guest_trap")
def guest_trap(scause: u64, sepc: u64, stval: u64) -> None:
    flush()
    puts(cstr(b"fpv: FAIL: unexpected trap, scause "))
    put_hex(scause)
    puts(cstr(b" sepc "))
    put_hex(sepc)
    puts(cstr(b"\n"))
    shutdown(u64(1))


@export("pyshyper_panic")
def guest_panic(kind: u64, a: u64, b: u64) -> None:
    flush()
    puts(cstr(b"fpv: FAIL: PANIC kind "))
    put_hex(kind)
    puts(cstr(b"\n"))
    shutdown(u64(1))
