"""Checks of the real riscv64 output (issue 2, item 7): what the object file holds after -O2, not just that it builds.

One program (PROGRAM below) is compiled once with compiler.driver.build_riscv_object; the tests read the object with
pyelftools, its disassembly with riscv64-unknown-elf-objdump, the assembly text from driver.riscv_assembly, and the
layout LLVM's TargetData gives for the program's struct types.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from elftools.elf.elffile import ELFFile  # noqa: E402
from elftools.elf.relocation import RelocationSection  # noqa: E402

from compiler import driver, types  # noqa: E402

OBJDUMP = "riscv64-unknown-elf-objdump"


@pytest.fixture(autouse=True)
def gnu_as() -> None:
    require_tool(driver.GNU_AS, hint="binutils-riscv64-unknown-elf")


PROGRAM = """
from compiler.prelude import (HGATP, SSCRATCH, Array, Mmio, Ptr, addr_of, csr_read, csr_write, export, extern, fence_io,
                              hfence_gvma_vmid, hlvx_hu, inline, noinline, null, sbi_ecall, static, struct, u8, u16,
                              u32, u64)

pt = static(Array[u64, 512], section=".bss.pt", align=4096)
xdata = static(Array[u32, 4], init=(1, 2, 3, 4), section=".data.x", align=64)
plain = static(Array[u64, 8])


@struct
class Inner:
    a: u8
    b: u64


@struct
class Outer:
    flag: bool
    h: u16
    inner: Inner
    arr: Array[u16, 3]
    p: Ptr[Inner]
    w: u32


@struct
class Tail:
    x: u64
    y: u8


@struct
class Mixed:
    c: u8
    t: Tail
    d: u16
    inners: Array[Inner, 2]
    flag: bool
    e: u32
    next: Ptr["Mixed"]
    small: Array[u8, 3]


@struct
class Bytes:
    a: u8
    b: bool
    c: u8


@extern("asm_helper")
def asm_helper(x: u64) -> u64: ...


@export("poke3")
def poke3(v: u8) -> None:
    r = Mmio[u8](0x10000000)
    r.write(v)
    r.write(v)
    r.write(v)


@export("spin")
def spin() -> u32:
    r = Mmio[u32](0x10000004)
    n: u32 = 0
    while r.read() & 1 == 0:
        n += 1
    return n


@export("zero_then_scan")
def zero_then_scan(p: Ptr[u8], n: u64) -> u64:
    for i in range(n):
        p[i] = 0
    q = Ptr[u64](p.addr())
    for i in range(n):
        q[i] = 0
    k: u64 = 0
    while p[k] != 0:
        k += 1
    return k + asm_helper(k)


@export("copy_words")
def copy_words(dst: Ptr[u64], src: Ptr[u64], n: u64) -> None:
    for i in range(n):
        dst[i] = src[i]


@export("checked")
def checked(i: u64) -> u64:
    plain[i] = i
    return plain[i] // i


@export("use_globals")
def use_globals() -> u64:
    pt[3] = 7
    return addr_of(pt).addr() + addr_of(xdata).addr()


@export("priv")
def priv(a: u64) -> u64:
    csr_write(SSCRATCH, a)
    x = csr_read(HGATP)
    y = hlvx_hu(a)
    hfence_gvma_vmid(x)
    fence_io()
    return x + y + u64(sbi_ecall(0x10, 0, 0, 0, 0, 0, 0, 0, null(u64)))


@export("values_across_csr_reads")
def values_across_csr_reads(a: u64, b: u64, c: u64) -> u64:
    x = csr_read(SSCRATCH)
    y = a * b + x
    return y + csr_read(SSCRATCH) + c


def plus_one(x: u64) -> u64:
    return x + 1


@noinline
def zero_out(p: Ptr[u8], n: u64) -> u64:
    for i in range(n):
        p[i] = 0
    return plus_one(n)


@export("call_noinline")
def call_noinline(p: Ptr[u8], n: u64) -> u64:
    return zero_out(p, n) + plus_one(n)


@export("use_structs")
def use_structs(o: Ptr[Outer], m: Ptr[Mixed], b: Ptr[Bytes]) -> u64:
    return u64(o.w) + o.inner.b + u64(m.e) + m.next.t.x + u64(b.c)
"""

# A body far above LLVM's own inlining threshold (40 multiply-xorshift steps), called from two functions:
# test_inline_function_is_inlined_at_every_call.
PROGRAM += (
    "\n\n@inline\ndef mix_long(x: u64) -> u64:\n    acc = x\n"
    + "".join(
        f"    acc = (acc ^ (acc >> {7 + k % 23})) * u64({0x9E3779B97F4A7C15 ^ k * 0x1F1F:#x}) + u64({k})\n"
        for k in range(40)
    )
    + "    return acc\n\n\n"
    + '@export("inline_a")\ndef inline_a(x: u64) -> u64:\n    return mix_long(x) + 1\n\n\n'
    + '@export("inline_b")\ndef inline_b(x: u64) -> u64:\n    return mix_long(x ^ 5) * 3\n'
)

STRUCTS = ["Inner", "Outer", "Tail", "Mixed", "Bytes"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("rv")
    src = d / "rvprobe.py"
    src.write_text(PROGRAM)
    c = driver.compile_program([src], "riscv64")
    asm_text = driver.riscv_assembly(c)
    res = driver.build_riscv_object([src], d / "rvprobe.o")
    return c, asm_text, res


@pytest.fixture(scope="module")
def elf(built):
    f = open(built[2].obj, "rb")
    yield ELFFile(f)
    f.close()


@pytest.fixture(scope="module")
def disasm(built):
    require_tool(OBJDUMP, hint="binutils-riscv64-unknown-elf")
    out = subprocess.run([OBJDUMP, "-d", str(built[2].obj)], capture_output=True, text=True, check=True).stdout
    funcs: dict[str, list[str]] = {}
    cur = None
    for line in out.splitlines():
        m = re.match(r"^[0-9a-f]+ <([^>]+)>:$", line)
        if m:
            name = m.group(1)
            if not name.startswith(".L"):  # a local label stays in the function it is in
                cur = name
                funcs[cur] = []
            continue
        m = re.match(r"^\s+[0-9a-f]+:\s+[0-9a-f]+\s+(\S+)\s*(.*)$", line)
        if m and cur is not None:
            funcs[cur].append(f"{m.group(1)} {m.group(2)}".strip())
    return funcs


def _insns(funcs, name):
    assert name in funcs, f"{name} not in disassembly: {sorted(funcs)}"
    return funcs[name]


# (a) volatile MMIO survives -O2 ------------------------------------------------------------------------------------


def test_three_mmio_stores_are_three_sb(disasm, built):
    insns = _insns(disasm, "poke3")
    assert [i.split()[0] for i in insns].count("sb") == 3, insns
    # and in the assembly text too
    body = built[1].split("poke3:", 1)[1].split(".size", 1)[0] if "poke3:" in built[1] else ""
    assert len(re.findall(r"^\s+sb\s", body, re.M)) == 3, body


def test_mmio_read_in_loop_not_hoisted(disasm):
    insns = _insns(disasm, "spin")
    # a load inside the loop: some lw precedes the backward branch, i.e. the loop re-reads the register
    loads = [k for k, i in enumerate(insns) if i.split()[0] == "lw"]
    branches = [k for k, i in enumerate(insns) if i.split()[0] in ("beqz", "bnez", "beq", "bne")]
    assert loads and branches, insns
    assert loads[0] < branches[-1], insns


# (b) no relaxation relocations ------------------------------------------------------------------------------------


def test_no_relax_relocations(elf):
    names = []
    for sec in elf.iter_sections():
        if isinstance(sec, RelocationSection):
            for rel in sec.iter_relocations():
                names.append(rel["r_info_type"])
    assert names, "expected some relocations (branches, the extern call)"
    R_RISCV_RELAX = 51
    assert R_RISCV_RELAX not in names


# (c) sections and alignment ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("section,align,sym", [(".bss.pt", 4096, "pt"), (".data.x", 64, "xdata")])
def test_requested_sections(elf, section, align, sym):
    sec = elf.get_section_by_name(section)
    assert sec is not None, [s.name for s in elf.iter_sections()]
    assert sec["sh_addralign"] == align
    idx = [i for i, s in enumerate(elf.iter_sections()) if s.name == section][0]
    symtab = elf.get_section_by_name(".symtab")
    syms = [s for s in symtab.iter_symbols() if s.name.endswith("." + sym) or s.name == sym]
    assert syms, f"no symbol for {sym}"
    assert all(s["st_shndx"] == idx for s in syms)
    if section == ".bss.pt":
        assert sec["sh_type"] == "SHT_NOBITS" and syms[0]["st_size"] == 4096
    else:
        assert sec["sh_type"] == "SHT_PROGBITS" and sec.data()[:16] == bytes.fromhex("01000000020000000300000004000000")


# (d) struct layout equals LLVM's TargetData -------------------------------------------------------------------------


def _structs(c):
    return {s.name: s for s in c.program.structs}


@pytest.mark.parametrize("name", STRUCTS)
def test_struct_layout_matches_target_data(built, name):
    c = built[0]
    st = _structs(c)[name]
    td = c.tm.target_data
    ty = c.module.get_struct_type(f"struct.{st.module}.{name}")
    assert st.size == td.get_abi_size(ty) == types.sizeof(st)
    assert st.align == td.get_abi_alignment(ty)
    for i, (fname, _) in enumerate(st.fields):
        assert st.offsets[fname] == td.get_element_offset(ty, i), (name, fname)


def test_struct_layout_known_values(built):
    s = _structs(built[0])
    assert s["Outer"].offsets == {"flag": 0, "h": 2, "inner": 8, "arr": 24, "p": 32, "w": 40}
    assert s["Outer"].size == 48
    assert (s["Tail"].size, s["Bytes"].size, s["Bytes"].align) == (16, 3, 1)


def test_noinline_function_is_freestanding_and_inlines_its_callees(disasm):
    """A @noinline function gets "no-builtins" like every other: its zeroing loop stays a loop (no memset, which
    test_undefined_symbols would see undefined) and a small helper is inlined into it (LLVM inlines only between
    functions whose "no-builtins" agree)."""
    insns = _insns(disasm, "rvprobe.zero_out")
    calls = [i for i in insns if i.split()[0] in ("jal", "jalr", "call", "tail")]
    assert not calls, insns


def test_inline_function_is_inlined_at_every_call(disasm):
    """@inline is LLVM's alwaysinline: a body far too big for the inliner's own threshold, called from two
    functions, is one frame with each of them (the trap path relies on it: arch/riscv/trap.py hyp_guest_mmio)."""
    for name in ("inline_a", "inline_b"):
        insns = _insns(disasm, name)
        calls = [i for i in insns if i.split()[0] in ("jal", "jalr", "call", "tail", "j", "jr")]
        assert not calls and len(insns) > 100, insns
    assert not [f for f in disasm if "mix_long" in f]


# (e) freestanding: no undefined symbols but the program's externs and the panic handler -----------------------------


def test_undefined_symbols(elf):
    symtab = elf.get_section_by_name(".symtab")
    undef = {s.name for s in symtab.iter_symbols() if s["st_shndx"] == "SHN_UNDEF" and s.name}
    assert undef <= {"asm_helper", "pyshyper_panic"}, undef
    assert "asm_helper" in undef and "pyshyper_panic" in undef


# (f) privileged intrinsics are the instructions -------------------------------------------------------------------


def test_privileged_instructions(disasm, built, elf):
    ops = [i.split()[0] for i in _insns(disasm, "priv")]
    for want in ("csrw", "csrr", "hlvx.hu", "hfence.gvma", "ecall"):
        assert want in ops, (want, ops)
    assert "fence" in _insns(disasm, "priv")  # fence_io: `fence iorw,iorw`, which objdump writes bare
    assert "__pys_" not in built[1]
    symtab = elf.get_section_by_name(".symtab")
    assert not [s.name for s in symtab.iter_symbols() if "__pys_" in s.name]


def test_values_stay_in_their_registers_across_csr_instructions(disasm):
    """A CSR intrinsic's marker call uses LLVM's preserve_most convention (the instruction writes a0 at most):
    a, b, c and y stay where they are across the two csrr, and no callee-saved register is saved for them (with
    the C convention the function saved s0..s2 and moved them there)."""
    insns = _insns(disasm, "values_across_csr_reads")
    ops = [i.split()[0] for i in insns]
    assert ops.count("csrr") == 2, insns
    saved = [i for i in insns if i.split()[0] == "sd" and re.match(r"s\d+,", i.split()[1])]
    assert not saved, insns
    assert not [i for i in insns if re.search(r"\bs\d+\b", i)], insns


# (g) generated offsets include -------------------------------------------------------------------------------------


def test_offsets_include_matches_layout(built):
    text = built[2].offsets_asm.read_text()
    equ = {m.group(1): int(m.group(2), 0) for m in re.finditer(r"^\.equ\s+(\w+),\s*(-?\w+)\s*$", text, re.M)}
    for st in built[0].program.structs:
        for fname, off in st.offsets.items():
            assert equ[f"{st.name.upper()}_{fname.upper()}"] == off
        assert equ[f"{st.name.upper()}_SIZE"] == st.size


# (h) static(..., export="sym"): a global definition under exactly that symbol --------------------------------------

EXPORTED = {  # symbol: (section, size)
    "boot_hart_id": (".bss", 8),
    "zeroed_word": (".bss", 4),
    "boot_table": (".data.boot", 16),
    "boot_stack": (".bss.boot_stack", 4096),
    "boot_pair": (".bss", 16),
    "boot_where": (".bss", 8),
    "boot_handler": (".data", 8),
    "boot_ready": (".data", 1),
}


def test_exported_statics(tmp_path):
    case = ROOT / "tests" / "compiler" / "cases" / "statics_export.py"
    res = driver.build_riscv_object([case], tmp_path / "exported.o")
    with open(res.obj, "rb") as f:
        elf = ELFFile(f)
        sections = list(elf.iter_sections())
        syms = {s.name: s for s in elf.get_section_by_name(".symtab").iter_symbols()}
        for name, (section, size) in EXPORTED.items():
            s = syms.get(name)
            assert s is not None, f"no symbol {name}: {sorted(syms)}"
            assert s["st_info"]["bind"] == "STB_GLOBAL" and s["st_info"]["type"] == "STT_OBJECT", (name, s["st_info"])
            assert sections[s["st_shndx"]].name == section, (name, sections[s["st_shndx"]].name)
            assert s["st_size"] == size, name
        table = syms["boot_table"]
        data = sections[table["st_shndx"]]
        assert data["sh_addralign"] == 64
        assert data.data()[table["st_value"] : table["st_value"] + 16] == bytes.fromhex("0100000002000000" + "00" * 8)
        assert sections[syms["boot_stack"]["st_shndx"]]["sh_addralign"] == 4096
        ready = syms["boot_ready"]
        assert sections[ready["st_shndx"]].data()[ready["st_value"]] == 1
