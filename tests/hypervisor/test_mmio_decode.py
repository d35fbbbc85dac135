"""hypervisor/arch/riscv/mmio_decode.py (decoding of trapped guest loads/stores) under CPython and compiled for the
host. Instructions come from a tiny assembler below (Unprivileged spec 2.6 / 16.3 encodings), with a few
hand-checked encodings (from GNU as) pinning the assembler itself."""

from __future__ import annotations

import ctypes
import importlib
import sys
from pathlib import Path

import pytest

from compiler import prelude

ROOT = Path(__file__).resolve().parents[2]
MODULE = "hypervisor.arch.riscv.mmio_decode"
SRC = ROOT / "hypervisor" / "arch" / "riscv" / "mmio_decode.py"
SIM_OUT = 0x6000_0000
U64 = (1 << 64) - 1

# ---------------------------------------------------------------------------------------------------------------
# a tiny assembler

LOADS = {"lb": 0, "lh": 1, "lw": 2, "ld": 3, "lbu": 4, "lhu": 5, "lwu": 6}
STORES = {"sb": 0, "sh": 1, "sw": 2, "sd": 3}
WIDTH = {"b": 1, "h": 2, "w": 4, "d": 8}


def load(name: str, rd: int, rs1: int, imm: int = 0) -> int:
    return ((imm & 0xFFF) << 20) | (rs1 << 15) | (LOADS[name] << 12) | (rd << 7) | 0x03


def store(name: str, rs2: int, rs1: int, imm: int = 0) -> int:
    imm &= 0xFFF
    return ((imm >> 5) << 25) | (rs2 << 20) | (rs1 << 15) | (STORES[name] << 12) | ((imm & 0x1F) << 7) | 0x23


def c_lw(rd: int, rs1: int, off: int) -> int:  # CL: uimm[5:3] at 12:10, uimm[2|6] at 6:5
    assert 8 <= rd < 16 and 8 <= rs1 < 16 and off % 4 == 0 and off < 128
    return (
        (2 << 13)
        | (((off >> 3) & 7) << 10)
        | ((rs1 - 8) << 7)
        | (((off >> 2) & 1) << 6)
        | (((off >> 6) & 1) << 5)
        | ((rd - 8) << 2)
    )


def c_ld(rd: int, rs1: int, off: int) -> int:  # uimm[5:3] at 12:10, uimm[7:6] at 6:5
    assert 8 <= rd < 16 and 8 <= rs1 < 16 and off % 8 == 0 and off < 256
    return (3 << 13) | (((off >> 3) & 7) << 10) | ((rs1 - 8) << 7) | (((off >> 6) & 3) << 5) | ((rd - 8) << 2)


def c_sw(rs2: int, rs1: int, off: int) -> int:
    return c_lw(rs2, rs1, off) | (4 << 13)  # funct3 110


def c_sd(rs2: int, rs1: int, off: int) -> int:
    return c_ld(rs2, rs1, off) | (4 << 13)  # funct3 111


def c_lwsp(rd: int, off: int) -> int:  # CI: uimm[5] at 12, uimm[4:2|7:6] at 6:2
    return (2 << 13) | (((off >> 5) & 1) << 12) | (rd << 7) | (((off >> 2) & 7) << 4) | (((off >> 6) & 3) << 2) | 2


def c_ldsp(rd: int, off: int) -> int:  # uimm[5] at 12, uimm[4:3|8:6] at 6:2
    return (3 << 13) | (((off >> 5) & 1) << 12) | (rd << 7) | (((off >> 3) & 3) << 5) | (((off >> 6) & 7) << 2) | 2


def c_swsp(rs2: int, off: int) -> int:  # CSS: uimm[5:2|7:6] at 12:7
    return (6 << 13) | (((off >> 2) & 0xF) << 9) | (((off >> 6) & 3) << 7) | (rs2 << 2) | 2


def c_sdsp(rs2: int, off: int) -> int:  # uimm[5:3|8:6] at 12:7
    return (7 << 13) | (((off >> 3) & 7) << 10) | (((off >> 6) & 7) << 7) | (rs2 << 2) | 2


def transformed(insn32: int, compressed: bool) -> int:
    """htinst for a guest-page fault of a load/store (Priv 18.6.3): imm and rs1 (address offset) zeroed, bit 1
    clear when the trapping instruction was compressed."""
    if insn32 & 0x7F == 0x23:
        t = insn32 & ~((0x7F << 25) | (0x1F << 15) | (0x1F << 7))
    else:
        t = insn32 & ~((0xFFF << 20) | (0x1F << 15))
    return t & ~2 if compressed else t


def test_assembler_matches_gnu_as():
    assert load("lw", 10, 11, 4) == 0x0045A503  # lw a0, 4(a1)
    assert load("lbu", 5, 6, -1) == 0xFFF34283  # lbu t0, -1(t1)
    assert store("sd", 10, 2, 8) == 0x00A13423  # sd a0, 8(sp)
    assert store("sb", 0, 10, 0x7FF) == 0x7E050FA3  # sb zero, 2047(a0)
    assert c_lw(10, 11, 4) == 0x41C8  # c.lw a0, 4(a1)
    assert c_ld(8, 9, 8) == 0x6480  # c.ld s0, 8(s1)
    assert c_sw(15, 8, 64) == 0xC03C  # c.sw a5, 64(s0)
    assert c_sd(9, 10, 248) == 0xFD64  # c.sd s1, 248(a0)
    assert c_lwsp(1, 12) == 0x40B2  # c.lwsp ra, 12(sp)
    assert c_ldsp(31, 504) == 0x7FFE  # c.ldsp t6, 504(sp)
    assert c_swsp(10, 252) == 0xDFAA  # c.swsp a0, 252(sp)
    assert c_sdsp(8, 16) == 0xE822  # c.sdsp s0, 16(sp)


# ---------------------------------------------------------------------------------------------------------------
# the two environments


class CPythonEnv:
    kind = "cpython"

    def __init__(self) -> None:
        prelude.install_import_hook(["hypervisor"])
        sys.modules.pop(MODULE, None)
        importlib.invalidate_caches()
        prelude.reset()
        self.mod = importlib.import_module(MODULE)
        self.Acc = self.mod.MmioAccess

    def call(self, name: str, *args):
        r = getattr(self.mod, name)(*args)
        return r if isinstance(r, bool) else int(r)

    def out(self) -> int:
        prelude.memory.fill(SIM_OUT, int(prelude.sizeof(self.Acc)), 0xAA)
        return SIM_OUT

    def ptr(self, addr: int):
        return prelude.Ptr[self.Acc](prelude.u64(addr))

    def read(self, addr: int, n: int) -> int:
        return prelude.memory.load(addr, n)


class HostEnv:
    kind = "host"
    _program = None

    def __init__(self) -> None:
        from compiler import driver

        if HostEnv._program is None:
            HostEnv._program = driver.compile_host([str(SRC)])
        self.prog = HostEnv._program
        prelude.install_import_hook(["hypervisor"])
        sys.modules.pop(MODULE, None)
        self.Acc = importlib.import_module(MODULE).MmioAccess  # for the layout only
        self.buf = ctypes.create_string_buffer(64)

    def call(self, name: str, *args):
        return self.prog.call(name, *[int(a) for a in args])

    def out(self) -> int:
        ctypes.memset(self.buf, 0xAA, 64)
        return ctypes.addressof(self.buf)

    def ptr(self, addr: int) -> int:
        return addr

    def read(self, addr: int, n: int) -> int:
        return int.from_bytes(ctypes.string_at(addr, n), "little")


@pytest.fixture(params=["cpython", "host"])
def env(request):
    return CPythonEnv() if request.param == "cpython" else HostEnv()


def decode(env, htinst: int, insn: int):
    """(is_store, width, sign_extend, reg, insn_len), or None when refused."""
    out = env.out()
    if not env.call("mmio_decode", htinst, insn, env.ptr(out)):
        return None
    off = {f: int(prelude.offsetof(env.Acc, f)) for f in ("is_store", "width", "sign_extend", "reg", "insn_len")}
    return (
        env.read(out + off["is_store"], 1) == 1,
        env.read(out + off["width"], 8),
        env.read(out + off["sign_extend"], 1) == 1,
        env.read(out + off["reg"], 8),
        env.read(out + off["insn_len"], 8),
    )


def load_value(env, width: int, sign: bool, raw: int) -> int:
    out = env.out()
    # any load of that width/sign fills the struct
    name = {
        (1, True): "lb",
        (2, True): "lh",
        (4, True): "lw",
        (8, False): "ld",
        (1, False): "lbu",
        (2, False): "lhu",
        (4, False): "lwu",
    }[(width, sign)]
    assert env.call("mmio_decode", 0, load(name, 5, 6), env.ptr(out))
    return env.call("mmio_load_value", env.ptr(out), raw)


# ---------------------------------------------------------------------------------------------------------------
# 32-bit forms


def test_insn_len(env):
    assert env.call("mmio_insn_len", 0x41C8) == 2
    assert env.call("mmio_insn_len", 0xA503) == 4
    assert env.call("mmio_insn_len", 0x0001) == 2
    assert env.call("mmio_insn_len", 0xFFFE) == 2


@pytest.mark.parametrize("name", list(LOADS))
def test_loads_every_width_and_register(env, name):
    width = WIDTH[name[1]]
    signed = name in ("lb", "lh", "lw")
    for rd in range(32):
        rs1 = (rd * 7 + 3) % 32
        for imm in (0, 4, -8, 2047, -2048):
            assert decode(env, 0, load(name, rd, rs1, imm)) == (False, width, signed, rd, 4), (name, rd, imm)


@pytest.mark.parametrize("name", list(STORES))
def test_stores_every_width_and_register(env, name):
    width = WIDTH[name[1]]
    for rs2 in range(32):
        rs1 = (rs2 * 5 + 1) % 32
        for imm in (0, 1, -1, 2047, -2048):
            assert decode(env, 0, store(name, rs2, rs1, imm)) == (True, width, False, rs2, 4), (name, rs2, imm)


def test_upper_bits_of_insn_are_ignored(env):
    assert decode(env, 0, (0xDEADBEEF << 32) | load("lh", 9, 2, 6)) == (False, 2, True, 9, 4)
    assert decode(env, 0, (0xFFFF << 16) | c_lw(12, 13, 0)) == (False, 4, True, 12, 2)


# ---------------------------------------------------------------------------------------------------------------
# compressed forms


def test_c_lw_c_ld_c_sw_c_sd_each_register(env):
    for r in range(8, 16):
        base = 8 + (r + 3) % 8
        for off in (0, 4, 64, 124):
            assert decode(env, 0, c_lw(r, base, off)) == (False, 4, True, r, 2)
            assert decode(env, 0, c_sw(r, base, off)) == (True, 4, False, r, 2)
        for off in (0, 8, 128, 248):
            assert decode(env, 0, c_ld(r, base, off)) == (False, 8, False, r, 2)
            assert decode(env, 0, c_sd(r, base, off)) == (True, 8, False, r, 2)


def test_sp_forms_each_register(env):
    for r in range(32):
        for off in (0, 4, 60, 252):
            exp = None if r == 0 else (False, 4, True, r, 2)  # rd = x0 is reserved for C.LWSP
            assert decode(env, 0, c_lwsp(r, off)) == exp, (r, off)
            assert decode(env, 0, c_swsp(r, off)) == (True, 4, False, r, 2)
        for off in (0, 8, 256, 504):
            exp = None if r == 0 else (False, 8, False, r, 2)
            assert decode(env, 0, c_ldsp(r, off)) == exp, (r, off)
            assert decode(env, 0, c_sdsp(r, off)) == (True, 8, False, r, 2)


# ---------------------------------------------------------------------------------------------------------------
# transformed htinst


def test_transformed_32bit(env):
    for name in LOADS:
        for rd in (0, 1, 10, 31):
            t = transformed(load(name, rd, 11, 40), compressed=False)
            assert t & 3 == 3
            exp = (False, WIDTH[name[1]], name in ("lb", "lh", "lw"), rd, 4)
            assert decode(env, t, 0) == exp
            assert decode(env, t, 0xFFFF) == exp  # insn ignored when htinst is given
    for name in STORES:
        for rs2 in (0, 2, 15, 31):
            assert decode(env, transformed(store(name, rs2, 8, -16), False), 0) == (True, WIDTH[name[1]], False, rs2, 4)


def test_transformed_compressed(env):
    """A compressed access is reported as its 32-bit equivalent with bit 1 clear (Priv 18.6.3)."""
    assert decode(env, transformed(load("lw", 10, 0, 0), True), 0) == (False, 4, True, 10, 2)  # C.LW / C.LWSP
    assert decode(env, transformed(load("ld", 1, 0, 0), True), 0) == (False, 8, False, 1, 2)
    assert decode(env, transformed(store("sw", 15, 0, 0), True), 0) == (True, 4, False, 15, 2)
    assert decode(env, transformed(store("sd", 31, 0, 0), True), 0) == (True, 8, False, 31, 2)
    assert transformed(load("lw", 10, 0, 0), True) == 0x00002501


def test_transformed_misaligned_offset_in_rs1_field(env):
    """For a misaligned access the rs1 field holds the address offset; it is ignored."""
    t = transformed(load("lhu", 7, 0), False) | (1 << 15)
    assert decode(env, t, 0) == (False, 2, False, 7, 4)


def test_pseudoinstructions_and_non_access_htinst_refused(env):
    for pseudo in (0x00002000, 0x00003000, 0x00002020, 0x00003020):  # implicit VS-stage walk, Priv table 18.7
        assert decode(env, pseudo, load("lw", 10, 11)) is None
    assert decode(env, 0x2F | (2 << 12) | (10 << 7) | (3 << 27), 0) is None  # amoswap.w transformed: AMO
    assert decode(env, 0x07 | (2 << 12) | (10 << 7), 0) is None  # flw transformed: FP


# ---------------------------------------------------------------------------------------------------------------
# refused encodings


def test_rejects(env):
    refused = [
        0x0000,  # illegal all-zero
        0x0040 | 0x0000,  # c.addi4spn
        0x2000 | c_ld(8, 9, 8) & 0x1FFF,  # c.fld (funct3 001)
        0xA000 | c_ld(8, 9, 8) & 0x1FFF,  # c.fsd (funct3 101)
        0x8000,  # quadrant 0 funct3 100: reserved
        0x4501,  # c.li a0, 0 (quadrant 1)
        0x0001,  # c.nop
        0x2002 | (10 << 7),  # c.fldsp
        0xA002 | (10 << 2),  # c.fsdsp
        0x8082,  # c.ret (c.jr ra)
        0x050A,  # c.slli a0, 2
        0x0000_0013,  # addi x0, x0, 0
        0x00C5_8533,  # add a0, a1, a2
        load("lw", 10, 11) & ~(7 << 12) | (7 << 12),  # LOAD funct3 111: reserved
        store("sd", 10, 11) | (4 << 12),  # STORE funct3 1xx
        0x0005_A507,  # flw fa0, 0(a1)
        0x00A5_A027,  # fsw fa0, 0(a1)
        0x0005_B507,  # fld
        0x0805_A52F,  # amoswap.w a0, zero, (a1)
        0x1005_B52F,  # lr.d a0, (a1)
        0x0000_0073,  # ecall
        0x0000_001F,  # 48-bit encoding prefix
        0x0000_003F,  # 64-bit encoding prefix
    ]
    for insn in refused:
        assert decode(env, 0, insn) is None, hex(insn)


# ---------------------------------------------------------------------------------------------------------------
# values


@pytest.mark.parametrize(
    "width,sign,raw,value",
    [
        (1, True, 0x7F, 0x7F),
        (1, True, 0x80, U64 - 0x7F),
        (1, True, 0xFFFF_FF12, 0x12),
        (1, True, 0x1234_56F0, U64 - 0xF),
        (1, False, 0x1234_56F0, 0xF0),
        (2, True, 0x8000, 0xFFFF_FFFF_FFFF_8000),
        (2, True, 0xABCD_7FFF, 0x7FFF),
        (2, False, 0xABCD_8001, 0x8001),
        (4, True, 0x8000_0000, 0xFFFF_FFFF_8000_0000),
        (4, True, 0xFFFF_FFFF_7FFF_FFFF, 0x7FFF_FFFF),
        (4, False, 0xFFFF_FFFF_8000_0000, 0x8000_0000),
        (8, False, U64, U64),
        (8, False, 0x8000_0000_0000_0001, 0x8000_0000_0000_0001),
    ],
)
def test_load_value(env, width, sign, raw, value):
    assert load_value(env, width, sign, raw) == value


def test_compressed_load_values_sign_extend(env):
    out = env.out()
    assert env.call("mmio_decode", 0, c_lwsp(5, 8), env.ptr(out))
    assert env.call("mmio_load_value", env.ptr(out), 0xFFFF_FFFF) == U64
    assert env.call("mmio_decode", 0, c_ld(8, 9, 0), env.ptr(out))
    assert env.call("mmio_load_value", env.ptr(out), 0xFFFF_FFFF) == 0xFFFF_FFFF


def test_store_value(env):
    out = env.out()
    for name, expect in (("sb", 0xEF), ("sh", 0xBEEF), ("sw", 0xDEADBEEF), ("sd", 0x1234_5678_DEAD_BEEF)):
        assert env.call("mmio_decode", 0, store(name, 3, 4), env.ptr(out))
        assert env.call("mmio_store_value", env.ptr(out), 0x1234_5678_DEAD_BEEF) == expect
