"""Direct tests of compiler/prelude/: the CPython side of LANGUAGE.md."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from compiler import prelude as P  # noqa: E402
from compiler.csrs import CSRS  # noqa: E402
from compiler.prelude import (  # noqa: E402
    Array,
    Callable,
    Mmio,
    Panic,
    Ptr,
    addr_of,
    alignof,
    i8,
    i16,
    i32,
    i64,
    mock,
    null,
    offsetof,
    sizeof,
    static,
    struct,
    u8,
    u16,
    u32,
    u64,
    usize,
)


@pytest.fixture(autouse=True)
def clean():
    P.reset()
    yield
    P.reset()


# -- integers -----------------------------------------------------------------------------------------------------

def test_constructors_wrap():
    assert u8(300) == 44 and type(u8(300)) is u8
    assert i8(200) == -56
    assert u32(True) == 1
    assert u16(-1) == 0xFFFF
    assert i16(0x8000) == -32768
    assert u64(-1) == 2**64 - 1
    assert i64(2**63) == -(2**63)
    assert u32(u64(0x1_2345_6789)) == 0x2345_6789
    assert u32(i8(-1)) == 0xFFFF_FFFF  # sign-extension from signed
    assert i32(u8(255)) == 255  # zero-extension from unsigned
    assert usize is u64
    with pytest.raises(TypeError):
        u32(1.5)


@pytest.mark.parametrize("t", P.INT_TYPES)
def test_edges_per_type(t):
    bits = t.BITS
    mx, mn = t.MAX, t.MIN
    assert t(mx) + 1 == mn
    assert t(mn) - 1 == mx
    assert type(t(mx) + 1) is t
    assert -t(mn) == mn  # MIN negates to itself (or 0 for unsigned)
    assert ~t(0) == (-1 if t.SIGNED else mx)
    assert t(1) << bits == 1  # count masked to log2(bits) bits
    assert t(1) << (bits - 1) == (mn if t.SIGNED else 1 << (bits - 1))
    assert t(mx) * t(mx) == t(mx * mx)
    assert 1 + t(mx) == mn  # plain int literal on the left: reflected op, same type
    assert type(2 * t(3)) is t


def test_mixed_types_raise():
    with pytest.raises(TypeError):
        u32(1) + u64(1)
    with pytest.raises(TypeError):
        i8(1) * u8(1)
    with pytest.raises(TypeError):
        _ = u32(1) < u64(2)
    with pytest.raises(TypeError):
        _ = u32(1) == i32(1)
    with pytest.raises(TypeError):
        u32(1) + True
    with pytest.raises(TypeError):
        u32(4) / u32(2)
    with pytest.raises(TypeError):
        u32(4) ** 2


def test_floor_division_signs():
    assert i32(-7) // i32(2) == -4
    assert i32(-7) % i32(2) == 1
    assert i32(7) // i32(-2) == -4
    assert i32(7) % i32(-2) == -1
    assert i32(-7) // -2 == 3 and i32(-7) % -2 == -1
    for t in (i8, i16, i32, i64):
        assert t(t.MIN) // -1 == t.MIN
        assert t(t.MIN) % -1 == 0
    assert u8(255) // 2 == 127
    assert 7 // u8(2) == 3 and type(7 // u8(2)) is u8
    assert 7 % u8(4) == 3


def test_division_by_zero_panics():
    with pytest.raises(Panic) as e:
        u32(5) // 0
    assert (e.value.kind, e.value.a, e.value.b) == (2, 5, 0)
    with pytest.raises(Panic) as e:
        i32(-5) % i32(0)
    assert (e.value.kind, e.value.a, e.value.b) == (2, 2**64 - 5, 0)


def test_shifts():
    assert u32(1) << u32(33) == 2
    assert u32(1) << i8(-1) == 1 << 31  # low 5 bits of -1 are 31
    assert i8(-128) >> 7 == -1  # arithmetic
    assert u8(0x80) >> 7 == 1  # logical
    assert i64(-16) >> u8(2) == -4
    assert u64(2**64 - 1) >> 64 == 2**64 - 1
    assert type(u16(1) << u64(3)) is u16
    with pytest.raises(TypeError):
        u32(1) << True
    # a plain literal on the left stays untyped: a literal form, whose context decides its type (LANGUAGE.md 3)
    form = 1 << u32(40)
    assert form == 1 << 40 and isinstance(form, int) and not isinstance(form, P.INT_TYPES)
    # met by a u16, the literal is a u16 first: only the count's low 4 bits count, as compiled
    assert (1 << u8(17)) & u16(0xFFFF) == 2 and type((1 << u8(17)) & u16(0xFFFF)) is u16
    assert u16(2) == (1 << u8(17)) and (1 << u8(7)) == i8(-128) and (1 << u8(7)) < i8(0)
    assert ((1 << u8(3)) | (1 << u8(1))) + u8(250) == 4
    # a compound form is computed again in its type, without recursion however long it is
    assert ((1 << u8(17)) + 1) + u16(0) == 3 and -(1 << u8(17)) + u16(0) == 0xFFFE
    form = 1 << u8(3)
    for _ in range(5000):
        form = form + 1
    assert form + u8(0) == (8 + 5000) % 256 and P._lit_to(u16, form) == 5008


def test_unary_and_comparisons():
    assert -u8(1) == 255
    assert +i16(-3) == -3
    assert ~u16(0xF0) == 0xFF0F
    assert (u32(1) < u32(0xFFFFFFFF)) is True
    assert (i32(1) < i32(-1)) is False
    assert u32(5) == 5 and 5 == u32(5)
    assert {u32(5): 1}[5] == 1
    assert bool(u32(2)) is True and bool(u8(0)) is False
    assert repr(u32(7)) == "u32(7)" and str(i8(-1)) == "-1" and f"{u16(255):#x}" == "0xff"


# -- layout ---------------------------------------------------------------------------------------------------------

@struct
class S1:
    a: u8
    b: u32
    c: u16


@struct
class S2:
    x: u8
    inner: S1
    flag: bool
    arr: Array[u16, 3]
    p: Ptr[S1]
    cb: Callable[[u32], u32]
    m: Mmio[u32]
    last: i8


@struct
class Node:
    value: u64
    next: Ptr["Node"]


def test_layout_by_hand():
    # S1: a@0, pad, b@4, c@8, size 10 -> 12, align 4
    lay = S1.__layout__
    assert {n: o for n, (o, _) in lay.fields.items()} == {"a": 0, "b": 4, "c": 8}
    assert (lay.size, lay.align) == (12, 4)
    assert sizeof(S1) == 12 and type(sizeof(S1)) is u64
    assert alignof(S1) == 4
    # S2: x@0, inner@4 (align 4, 12 bytes), flag@16, arr@18 (6 bytes), p@24, cb@32, m@40, last@48 -> 49 -> 56
    assert [offsetof(S2, f) for f in ("x", "inner", "flag", "arr", "p", "cb", "m", "last")] == \
        [0, 4, 16, 18, 24, 32, 40, 48]
    assert sizeof(S2) == 56 and alignof(S2) == 8
    assert sizeof(Node) == 16
    assert sizeof(Array[S1, 3]) == 36 and alignof(Array[S1, 3]) == 4
    assert sizeof(bool) == 1 and sizeof(Ptr[u8]) == 8 and sizeof(Mmio[u16]) == 8 and sizeof(i16) == 2


# -- memory views ----------------------------------------------------------------------------------------------------

def test_struct_views_and_pointers():
    s = S2()
    assert s.inner.b == 0 and s.flag is False
    s.inner.b = 0x1_0000_0005  # a literal stores wrapped to the field type
    assert s.inner.b == 5 and type(s.inner.b) is u32
    s.arr[2] = 7
    s.p = addr_of(s.inner)
    assert s.p.b == 5
    s.p.c = 9
    assert s.inner.c == 9
    assert addr_of(s.arr[2]).addr() == addr_of(s).addr() + 18 + 4
    raw = Ptr[u16](addr_of(s).addr() + offsetof(S2, "arr"))
    assert raw[2] == 7
    assert raw.offset(2)[0] == 7 and raw.offset(i64(-1)).addr() == raw.addr() - 2
    with pytest.raises(TypeError):
        s.inner.b = u64(1)  # another fixed type: E206
    with pytest.raises(TypeError):
        s.inner = S1()  # aggregates are places: E310
    # little-endian, exact widths
    s.inner.b = 0x11223344
    b = Ptr[u8](addr_of(s.inner).addr() + 4)
    assert [int(b[i]) for i in range(4)] == [0x44, 0x33, 0x22, 0x11]
    assert P.memory.load(addr_of(s.inner).addr() + 4, 4) == 0x11223344


def test_arrays_bounds_and_unchecked():
    a = Array[u32, 4]()
    a[3] = 1
    with pytest.raises(Panic) as e:
        a[4]
    assert (e.value.kind, e.value.a, e.value.b) == (1, 4, 4)
    with pytest.raises(Panic) as e:
        a[i32(-1)] = 0
    assert (e.value.kind, e.value.a, e.value.b) == (1, 2**64 - 1, 4)
    a.unchecked[4] = 99  # no check: writes past the end
    assert a.unchecked[4] == 99
    assert len(a) == 4 and P.len(a) == 4 and type(P.len(a)) is u64
    with pytest.raises(TypeError):
        for _ in a:
            pass


def test_static_alignment_init_section():
    t = static(Array[u32, 4], init=(1, 2, 3))
    assert [int(t[i]) for i in range(4)] == [1, 2, 3, 0]
    big = static(Array[u8, 100], align=4096, section=".bss.stack")
    assert addr_of(big).addr() % 4096 == 0
    c = static(u64, init=41)
    assert c == 41 and type(c) is u64
    assert addr_of(c).addr() % 8 == 0 and Ptr[u64](addr_of(c).addr())[0] == 41
    assert any(sec == ".bss.stack" for _, _, sec in P._statics)
    with pytest.raises(ValueError):
        static(u32, align=3)


def test_addr_of_scalar_element_and_linked_list():
    nodes = static(Array[Node, 3])
    for i in range(3):
        nodes[i].value = i * 10
        nodes[i].next = addr_of(nodes[i + 1]) if i < 2 else null(Node)
    p = addr_of(nodes[0])
    seen = []
    while p.addr() != 0:
        seen.append(int(p.value))
        p = p.next
    assert seen == [0, 10, 20]
    q = addr_of(nodes[1].value)
    q[0] = 55
    assert nodes[1].value == 55


def test_function_pointers():
    def f(x):
        return x + 1

    tbl = Array[Callable[[u32], u32], 2]()
    tbl[1] = f
    assert tbl[1](u32(1)) == 2
    assert tbl[0] is None
    ident = P.memory.load(addr_of(tbl).addr() + 8, 8)
    assert ident == P.fn_id(f) != 0


def test_null_page_faults():
    with pytest.raises(P.MemoryFault):
        null(u32)[0]


# -- mock ----------------------------------------------------------------------------------------------------------

def test_csrs_table():
    assert CSRS["HSTATUS"] == 0x600 and CSRS["HGATP"] == 0x680 and CSRS["VSSTATUS"] == 0x200
    assert CSRS["STIMECMP"] == 0x14D and CSRS["VSTIMECMP"] == 0x24D and CSRS["STOPEI"] == 0x15C
    assert CSRS["HGEIP"] == 0xE12 and CSRS["VSTOPI"] == 0xEB0 and CSRS["HVICTL"] == 0x609
    assert P.HSTATUS == 0x600 and P.SATP == 0x180


def test_mock_csrs():
    P.csr_write(P.HSTATUS, 0x80)
    P.csr_set(P.HSTATUS, 0x3)
    P.csr_clear(P.HSTATUS, u64(1))
    assert P.csr_read(P.HSTATUS) == 0x82 and type(P.csr_read(P.HSTATUS)) is u64
    assert P.csr_swap(P.HSTATUS, 5) == 0x82 and mock.csr[P.HSTATUS] == 5
    assert mock.ops("csrw") == [("csrw", 0x600, 0x80)]
    mock.csr_read_hook = lambda n: 1234 if n == P.TIME else None
    assert P.csr_read(P.TIME) == 1234
    writes = []
    mock.csr_write_hook = lambda n, v: writes.append((n, v))
    P.csr_write(P.SIE, 2)
    assert writes == [(P.SIE, 2)]
    with pytest.raises(TypeError):
        P.csr_write(P.SIE, u32(1))
    mock.reset()
    assert mock.csr == {} and mock.log == []


def test_mock_mmio_and_instrs():
    got = []
    mock.map_mmio(0x1000_0000, 0x100, read=lambda off, w: 0x60 if off == 5 else 0,
                  write=lambda off, w, v: got.append((off, w, v)))
    uart = Mmio[u8](0x1000_0000)
    uart.write(65)
    assert uart.offset(5).read() == 0x60 and got == [(0, 1, 65)]
    r = Mmio[u32](0x2000_0000)
    r.write(0x1_0000_0007)  # literal wraps to the width
    assert r.read() == 7 and mock.mmio[0x2000_0000] == 7
    assert ("w", 0x2000_0000, 4, 7) in mock.mmio_log
    P.fence()
    P.wfi()
    P.hfence_gvma_vmid(3)
    assert [e[0] for e in mock.log[-3:]] == ["fence", "wfi", "hfence_gvma_vmid"] and mock.log[-1][1] == 3


def test_mock_hlv_hsv_sbi():
    P.hsv_w(0x8000_0000, 0xFFFF_FFFE)
    assert P.hlv_wu(0x8000_0000) == 0xFFFF_FFFE
    assert P.hlv_w(0x8000_0000) == 2**64 - 2  # sign-extended
    mock.guest_read_hook = lambda a, w, x: 0x13 if x else 0
    assert P.hlvx_hu(0x1000) == 0x13
    out = Array[u64, 1]()
    assert P.sbi_ecall(0x10, 0, 0, 0, 0, 0, 0, 0, addr_of(out[0])) == -2
    mock.sbi_handler = lambda eid, fid, *a: (0, eid + fid + a[0])
    assert P.sbi_ecall(0x10, 3, 4, 0, 0, 0, 0, 0, addr_of(out[0])) == 0 and out[0] == 0x17
    assert mock.sbi_calls[-1] == (0x10, 3, 4, 0, 0, 0, 0, 0)
    assert P.sbi_ecall(1, 0, 0, 0, 0, 0, 0, 0, null(u64)) == 0


def test_atomics_and_reservation():
    w = Array[u32, 1]()
    p = addr_of(w[0])
    assert P.amoadd_w(p, 0xFFFF_FFFF) == 0 and w[0] == 0xFFFF_FFFF
    assert P.amoswap_w(p, 3) == 0xFFFF_FFFF and w[0] == 3
    assert P.lr_w(p) == 3 and P.sc_w(p, 4) == 0 and w[0] == 4
    assert P.sc_w(p, 5) == 1 and w[0] == 4  # no reservation
    P.lr_w(p)
    mock.sc_fail_next = True
    assert P.sc_w(p, 6) == 1
    with pytest.raises(TypeError):
        P.amoadd_d(p, 1)  # needs a Ptr[u64]


def test_panic_and_export():
    with pytest.raises(Panic) as e:
        P.panic(7)
    assert (e.value.kind, e.value.a, e.value.b) == (4, 7, 0)

    @P.export("sym")
    def f():
        return 1

    assert f.__export__ == "sym" and P.inline(f) is f and P.noinline(f) is f


# -- the typing import hook -------------------------------------------------------------------------------------------

def test_load_module_typing(tmp_path):
    src = tmp_path / "m.py"
    src.write_text(
        "from compiler.prelude import u8, u32, i64\n"
        "def dec(x: u32) -> u32:\n"
        "    return x - 1\n"
        "def lit() -> u8:\n"
        "    y: u8 = 255\n"
        "    return y + 1\n"
        "def loop() -> u32:\n"
        "    s: u32 = 0\n"
        "    for i in range(u32(3)):\n"
        "        s = s + i\n"
        "    return s\n"
        "def check(x: u32) -> u32:\n"
        "    assert x != 0\n"
        "    return x\n"
        "def plain():\n"
        "    for i in range(3):\n"
        "        pass\n"
        "    return i\n"
    )
    m = P.load_module(str(src), "prelude_hook_test_m")
    assert m.dec(0) == 0xFFFF_FFFF and type(m.dec(0)) is u32
    assert m.lit() == 0
    assert m.loop() == 3
    assert type(m.plain()) is i64
    with pytest.raises(Panic) as e:
        m.check(0)
    assert (e.value.kind, e.value.a) == (3, 13)
    with pytest.raises(AssertionError):
        m.check(0)
    with pytest.raises(TypeError):
        m.dec(u64(1))
