"""Fences, guest loads/stores (hlv/hlvx/hsv), atomics (amo*, lr/sc) on memory, sbi_ecall through prelude.mock."""
from compiler.prelude import (
    Array,
    Ptr,
    addr_of,
    amoadd_d,
    amoadd_w,
    amoswap_d,
    amoswap_w,
    fence,
    fence_i,
    fence_io,
    hfence_gvma,
    hfence_gvma_gpa,
    hfence_gvma_vmid,
    hfence_vvma,
    hfence_vvma_asid,
    hlv_b,
    hlv_bu,
    hlv_d,
    hlv_h,
    hlv_hu,
    hlv_w,
    hlv_wu,
    hlvx_hu,
    hlvx_wu,
    hsv_b,
    hsv_d,
    hsv_h,
    hsv_w,
    i64,
    lr_d,
    lr_w,
    null,
    sbi_ecall,
    sc_d,
    sc_w,
    sfence_vma,
    static,
    u32,
    u64,
    wfi,
)

words = static(Array[u32, 2])
dwords = static(Array[u64, 2])


def fences() -> u32:
    fence()
    fence_i()
    fence_io()
    wfi()
    sfence_vma()
    hfence_gvma()
    hfence_vvma()
    hfence_gvma_vmid(3)
    hfence_vvma_asid(u64(4))
    hfence_gvma_gpa(0x80200000)
    return 1


def guest_mem() -> u64:
    hsv_d(0x80000000, 0x8877665544332211)
    hsv_w(0x80000010, 0xFFFFFFF0)
    hsv_h(0x80000020, 0x8001)
    hsv_b(0x80000030, 0x80)
    a: u64 = hlv_d(0x80000000)
    b: u64 = hlv_wu(0x80000010) + hlv_w(0x80000010)
    c: u64 = hlv_hu(0x80000020) + hlv_h(0x80000020)
    d: u64 = hlv_bu(0x80000030) + hlv_b(0x80000030)
    e: u64 = hlvx_hu(0x80000000) + hlvx_wu(0x80000004)
    return a + b + c + d + e


def atomics_w() -> u32:
    p: Ptr[u32] = addr_of(words[1])
    words[1] = 10
    old: u32 = amoadd_w(p, 5)
    old2: u32 = amoswap_w(p, u32(100))
    return old * 1000 + old2 + words[1] * 100000


def atomics_d() -> u64:
    p: Ptr[u64] = addr_of(dwords[0])
    dwords[0] = 0xFFFFFFFFFFFFFFFF
    old: u64 = amoadd_d(p, 2)
    old2: u64 = amoswap_d(p, 7)
    return old + old2 + dwords[0]


def lr_sc() -> u64:
    p: Ptr[u64] = addr_of(dwords[1])
    v: u64 = lr_d(p)
    ok: u64 = sc_d(p, v + 5)
    fail: u64 = sc_d(p, 99)
    q: Ptr[u32] = addr_of(words[0])
    w: u32 = lr_w(q)
    ok2: u64 = sc_w(q, w + 1)
    return dwords[1] * 1000 + ok * 100 + u64(fail != 0) * 10 + ok2 + u64(words[0]) * 10000


def sbi_default() -> i64:
    out = Array[u64, 1]()
    out[0] = 123
    err: i64 = sbi_ecall(0x10, 0, 0, 0, 0, 0, 0, 0, addr_of(out[0]))
    return err * 1000 + i64(out[0])


def sbi_null_value() -> i64:
    return sbi_ecall(0x54494D45, 0, 1000, 0, 0, 0, 0, 0, null(u64))


#: fences() == 1
#: guest_mem() == 0x88776656CCAAAA59
#: atomics_w() == 10010015
#: atomics_d() == 7
#: lr_sc() == 15010
#: sbi_default() == -2000
#: sbi_null_value() == -2
