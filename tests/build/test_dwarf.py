"""The DWARF of build/pyshyper.elf (compiler/debuginfo.py): every function of the hypervisor is a subprogram named
as in Python, declared in its .py file at its `def` line; the line program maps the code to Python files and
lines; parameters and locals have types; every function has call-frame information; the embedded panic line
table is the line program's; and debug info changes no byte of the loaded code or data."""

from __future__ import annotations

import ast
import shutil
import struct
from collections import defaultdict
from pathlib import Path

import pytest
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile

from boards import make_config
from compiler.checker import check_program
from compiler.driver import build_riscv_object
from qemu import toolchain
from qemu.build import BOARD_MODULE, build, hypervisor_sources
from qemu.symtab import file_names, line_rows

ROOT = Path(__file__).resolve().parents[2]
DW_LANG_PYTHON = 0x14


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if shutil.which(toolchain.PREFIX + "as") is None:
        pytest.skip("binutils-riscv64-unknown-elf is not installed (qemu/setup-host.sh)")
    out = tmp_path_factory.mktemp("dwarf-out")
    return build(make_config("qemu-virt", "plic"), out, guests=[], quiet=True)


@pytest.fixture(scope="module")
def program(built):
    board = built.elf.parent / "gen" / "hypervisor" / "board.py"
    return check_program(hypervisor_sources(), {BOARD_MODULE: board})


def _rel(path: str) -> str:
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)


def _dies(elf_path: Path):
    """(die, name, decl_file, decl_line) for every DIE of the compiler's compile unit (not GNU as's), with the
    declaration taken from the abstract origin for a concrete instance of an inlined function."""
    with open(elf_path, "rb") as f:
        dwarf = ELFFile(f).get_dwarf_info()
        for cu in dwarf.iter_CUs():
            if cu.get_top_DIE().attributes["DW_AT_language"].value != DW_LANG_PYTHON:
                continue
            names = file_names(cu, dwarf.line_program_for_CU(cu))
            for die in cu.iter_DIEs():
                decl = (
                    die.get_DIE_from_attribute("DW_AT_abstract_origin")
                    if "DW_AT_abstract_origin" in die.attributes
                    else die
                )
                a = decl.attributes
                name = a["DW_AT_name"].value.decode() if "DW_AT_name" in a else None
                file = names.get(a["DW_AT_decl_file"].value) if "DW_AT_decl_file" in a else None
                line = a["DW_AT_decl_line"].value if "DW_AT_decl_line" in a else None
                yield die, name, file, line


def _pc_ranges(dwarf, die) -> list[tuple[int, int]]:
    """The [low, high) address ranges of a DIE: low_pc/high_pc, or a DWARF 4 range list (from the unit's base)."""
    a = die.attributes
    if "DW_AT_low_pc" in a:
        low, high = a["DW_AT_low_pc"].value, a["DW_AT_high_pc"]
        return [(low, high.value if high.form == "DW_FORM_addr" else low + high.value)]
    top = die.cu.get_top_DIE().attributes
    base = top["DW_AT_low_pc"].value if "DW_AT_low_pc" in top else 0
    entries = dwarf.range_lists().get_range_list_at_offset(a["DW_AT_ranges"].value)
    return [(base + e.begin_offset, base + e.end_offset) for e in entries if hasattr(e, "begin_offset")]


def _span(node: ast.FunctionDef) -> range:
    return range(node.lineno, (node.end_lineno or node.lineno) + 1)


def _symbols(elf_path: Path) -> dict[str, tuple[int, int]]:
    with open(elf_path, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        return {
            s.name: (s["st_value"], s["st_size"])
            for s in symtab.iter_symbols()
            if s["st_info"]["type"] == "STT_FUNC" and s["st_shndx"] != "SHN_UNDEF"
        }


def test_compile_unit_is_dwarf4_rooted_at_the_project(built):
    with open(built.elf, "rb") as f:
        dwarf = ELFFile(f).get_dwarf_info()
        cus = list(dwarf.iter_CUs())
        python = [cu for cu in cus if cu.get_top_DIE().attributes["DW_AT_language"].value == DW_LANG_PYTHON]
        assert len(python) == 1
        top = python[0].get_top_DIE()
        assert python[0]["version"] == 4
        assert {dwarf.line_program_for_CU(cu).header.version for cu in cus} == {4}
        assert top.attributes["DW_AT_comp_dir"].value.decode() == str(ROOT)
        assert top.attributes["DW_AT_producer"].value.decode().startswith("pyshyper compiler")
        # GNU as adds a unit per runtime/*.S, named relative to the root as well.
        names = {cu.get_top_DIE().attributes["DW_AT_name"].value.decode() for cu in cus if cu not in python}
        assert {"runtime/boot.S", "runtime/trap.S"} <= names


def test_every_function_is_a_subprogram_at_its_def_line(built, program):
    symbols = _symbols(built.elf)
    concrete: dict[int, tuple[str, str, int]] = {}
    abstract: dict[str, set[tuple[str, int]]] = defaultdict(set)
    for die, name, file, line in _dies(built.elf):
        if die.tag != "DW_TAG_subprogram":
            continue
        if "DW_AT_low_pc" in die.attributes:
            concrete[die.attributes["DW_AT_low_pc"].value] = (name, file, line)
        else:
            abstract[name].add((file, line))
    emitted = inlined = 0
    for f in program.funcs:
        if f.extern:
            continue
        want = (f.name, _rel(f.module.path), f.node.lineno)
        assert want[1].endswith(".py")
        if f.symbol in symbols:
            assert concrete.get(symbols[f.symbol][0]) == want, f.symbol
            emitted += 1
        elif want[1:] in abstract.get(f.name, set()):
            inlined += 1  # inlined everywhere: an abstract subprogram, with DW_TAG_inlined_subroutine instances
    # Every function symbol of the compiled code has its subprogram (the rest are runtime/*.S and the tables).
    compiled = {f.symbol for f in program.funcs if not f.extern}
    assert emitted == len(compiled & symbols.keys()) > 40
    assert inlined > 40
    assert "sbi_handle_ecall" in abstract


def test_line_program_maps_sbi_code_to_sbi_py(built, program):
    rows = line_rows(built.elf)
    symbols = _symbols(built.elf)
    fn = next(f for f in program.funcs if f.name == "sbi_base")
    lo, size = symbols[fn.symbol]
    inside = [r for r in rows if lo <= r.addr < lo + size]
    assert inside and {r.file for r in inside} == {"hypervisor/arch/riscv/vsbi.py"}
    # Each row is a line of sbi_base or of a vsbi.py function it calls (inlined); -O2 merges the rest.
    defs = {f.name: f.node for f in program.funcs if f.module is fn.module}
    called = {n.func.id for n in ast.walk(fn.node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    allowed = {ln for name in {"sbi_base"} | (called & defs.keys()) for ln in _span(defs[name])}
    lines = {r.line for r in inside}
    assert lines <= allowed and fn.node.body[0].lineno in lines

    # sbi_handle_ecall is inlined into trap_ecall: its instances' code is vsbi.py's.
    ecall = next(f for f in program.funcs if f.name == "sbi_handle_ecall")
    span = _span(ecall.node)
    ranges = []
    with open(built.elf, "rb") as f:
        dwarf = ELFFile(f).get_dwarf_info()
        for die, name, _, _ in _dies(built.elf):
            if die.tag == "DW_TAG_inlined_subroutine" and name == "sbi_handle_ecall":
                ranges += _pc_ranges(dwarf, die)
    assert ranges
    own = [r for r in rows if any(a <= r.addr < b for a, b in ranges) and r.line in span]
    assert own and {r.file for r in own} == {"hypervisor/arch/riscv/vsbi.py"}


def test_parameters_and_locals_have_types(built):
    found = {}
    for die, name, _, _ in _dies(built.elf):
        if die.tag == "DW_TAG_subprogram" and name == "sbi_base" and "DW_AT_abstract_origin" not in die.attributes:
            for child in die.iter_children():
                if child.tag in ("DW_TAG_formal_parameter", "DW_TAG_variable"):
                    ty = child.get_DIE_from_attribute("DW_AT_type")
                    target = ty.get_DIE_from_attribute("DW_AT_type") if ty.tag == "DW_TAG_pointer_type" else ty
                    found[child.attributes["DW_AT_name"].value.decode()] = (child.tag, ty.tag, target)
    assert found["v"][:2] == ("DW_TAG_formal_parameter", "DW_TAG_pointer_type")
    vcpu = found["v"][2]
    assert vcpu.tag == "DW_TAG_structure_type" and vcpu.attributes["DW_AT_name"].value == b"Vcpu"
    members = {m.attributes["DW_AT_name"].value.decode() for m in vcpu.iter_children()}
    assert {"regs", "sepc", "sbi_calls"} <= members
    assert found["fid"][0] == "DW_TAG_variable"
    assert found["fid"][2].attributes["DW_AT_name"].value == b"u64"


def test_every_function_has_call_frame_information(built, program):
    with open(built.elf, "rb") as f:
        elf = ELFFile(f)
        assert elf.get_section_by_name(".debug_frame") is not None
        assert elf.get_section_by_name(".eh_frame") is None  # never loaded: the image has no unwind tables
        fdes = [
            (e.header["initial_location"], e.header["address_range"])
            for e in elf.get_dwarf_info().CFI_entries()
            if hasattr(e, "header") and "initial_location" in e.header
        ]
    symbols = _symbols(built.elf)
    for f in program.funcs:
        if not f.extern and f.symbol in symbols:
            addr = symbols[f.symbol][0]
            assert any(lo <= addr < lo + n for lo, n in fdes), f.symbol


def test_embedded_line_table_is_the_line_program(built):
    rows = line_rows(built.elf)
    with open(built.elf, "rb") as f:
        elf = ELFFile(f)
        syms = {s.name: s for s in elf.get_section_by_name(".symtab").iter_symbols()}

        def read(name: str, size: int, offset: int = 0) -> bytes:
            addr = syms[name]["st_value"] + offset
            for seg in elf.iter_segments():
                if seg["p_type"] == "PT_LOAD" and seg["p_vaddr"] <= addr < seg["p_vaddr"] + seg["p_filesz"]:
                    return seg.data()[addr - seg["p_vaddr"] : addr - seg["p_vaddr"] + size]
            raise KeyError(name)

        def cstr(addr: int) -> str:
            for seg in elf.iter_segments():
                if seg["p_type"] == "PT_LOAD" and seg["p_vaddr"] <= addr < seg["p_vaddr"] + seg["p_filesz"]:
                    data = seg.data()[addr - seg["p_vaddr"] :]
                    return data[: data.index(0)].decode()
            raise KeyError(hex(addr))

        base = struct.unpack("<Q", read("pyshyper_lines_base", 8))[0]
        count = struct.unpack("<Q", read("pyshyper_lines_count", 8))[0]
        raw = read("pyshyper_lines", 8 * count)
        embedded = []
        for i in range(count):
            off, file, line = struct.unpack_from("<IHH", raw, 8 * i)
            name = cstr(struct.unpack("<Q", read("pyshyper_line_files", 8, 8 * file))[0]) if file else ""
            embedded.append((base + off, name, line))
    assert embedded == [(r.addr, r.file, r.line) for r in rows]
    assert rows[-1].file == ""  # the table ends with a row of no line


def _alloc_contents(obj: Path) -> dict[str, object]:
    """The loaded sections' bytes and the relocations applied to them: what the image is made of."""
    out: dict[str, object] = {}
    with open(obj, "rb") as f:
        elf = ELFFile(f)
        alloc = {i for i, s in enumerate(elf.iter_sections()) if s["sh_flags"] & SH_FLAGS.SHF_ALLOC}
        symtab = elf.get_section_by_name(".symtab")
        for i, sec in enumerate(elf.iter_sections()):
            if i in alloc:
                out[sec.name] = sec.data() if sec["sh_type"] != "SHT_NOBITS" else sec["sh_size"]
            elif sec["sh_type"] == "SHT_RELA" and sec["sh_info"] in alloc:
                out[sec.name] = [
                    (r["r_offset"], r["r_info_type"], symtab.get_symbol(r["r_info_sym"]).name, r["r_addend"])
                    for r in sec.iter_relocations()
                ]
    return out


def test_debug_info_changes_no_loaded_byte(built, tmp_path):
    board = built.elf.parent / "gen" / "hypervisor" / "board.py"
    with_debug = build_riscv_object(hypervisor_sources(), tmp_path / "g.o", {BOARD_MODULE: board}, debug=True)
    without = build_riscv_object(hypervisor_sources(), tmp_path / "plain.o", {BOARD_MODULE: board}, debug=False)
    a, b = _alloc_contents(with_debug.obj), _alloc_contents(without.obj)
    assert a.keys() == b.keys() and ".text" in a
    for name in a:
        assert a[name] == b[name], name
    with open(without.obj, "rb") as f:
        assert not any(s.name.startswith(".debug") for s in ELFFile(f).iter_sections())


def test_cc_emit_g(tmp_path, binutils):
    from compiler.cli import main

    src = tmp_path / "m.py"
    src.write_text(
        "from compiler.prelude import export, u64\n\n\n"
        '@export("f")\ndef f(a: u64) -> u64:\n    b = a * 3\n    return b + 1\n'
    )
    for flag, has in (([], False), (["-g"], True)):
        out = tmp_path / f"m{len(flag)}.o"
        assert main(["emit", *flag, "--emit", "obj", "-o", str(out), str(src)]) == 0
        with open(out, "rb") as f:
            assert (ELFFile(f).get_section_by_name(".debug_info") is not None) == has
