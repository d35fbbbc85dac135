"""The panic handler's tables: function symbols and source lines of a first link, rendered as a `.S` data blob.

Layout (read by the hypervisor's panic path), in section `.pyshyper.symtab`, placed last in .rodata so its size
moves no function between the first and the second link:

    pyshyper_symtab:        { u64 addr; u64 size; u64 name; }[count] sorted by addr, then a zero entry
    pyshyper_symtab_count:  u64 count
    pyshyper_lines_base:    u64 address the rows' offsets count from
    pyshyper_lines:         { u32 offset; u16 file; u16 line; }[lines_count] sorted by offset: each row holds
                            from its offset to the next row's; file 0 is "no source line" (the last row is one)
    pyshyper_lines_count:   u64 lines_count
    pyshyper_line_files:    u64 name address per file index (index 0: 0)
    names:                  NUL-terminated strings (`name` is the absolute address of one)

The rows come from the first link's DWARF line program (`.debug_line`: the compiler's DWARF for the Python
modules, GNU as's for runtime/*.S), with runs of one file and line merged.

`pyshyper_symtab_lookup(pc) -> (a0 = name address or 0, a1 = pc - function start)`, `pyshyper_line_file(pc) ->
name address or 0` and `pyshyper_line_number(pc) -> line or 0` are assembly in .text, of the same size in both
links; they use only a0, a1 and t0..t6.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from elftools.elf.elffile import ELFFile

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, order=True)
class FunctionSymbol:
    addr: int
    size: int
    name: str


def function_symbols(elf_path: Path) -> list[FunctionSymbol]:
    """Defined STT_FUNC symbols with a size, one per address (a global name wins over a local one)."""
    by_addr: dict[int, tuple[bool, FunctionSymbol]] = {}
    with open(elf_path, "rb") as f:
        elf = ELFFile(f)
        symtab = elf.get_section_by_name(".symtab")
        if symtab is None:
            return []
        for sym in symtab.iter_symbols():
            if sym["st_info"]["type"] != "STT_FUNC" or sym["st_shndx"] == "SHN_UNDEF" or sym["st_size"] == 0:
                continue
            is_global = sym["st_info"]["bind"] != "STB_LOCAL"
            fs = FunctionSymbol(sym["st_value"], sym["st_size"], sym.name)
            old = by_addr.get(fs.addr)
            if old is None or (is_global and not old[0]):
                by_addr[fs.addr] = (is_global, fs)
    return sorted(fs for _, fs in by_addr.values())


@dataclass(frozen=True, order=True)
class LineRow:
    addr: int
    file: str  # "" for no source line: a gap between sequences, or the end of the last one
    line: int


def _display_name(path: str, comp_dir: str) -> str:
    """A file name as the panic prints it: relative to the project root when inside it."""
    p = Path(comp_dir) / path if comp_dir and not Path(path).is_absolute() else Path(path)
    try:
        return str(p.resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


def _text(v: object) -> str:
    return v.decode(errors="replace") if isinstance(v, bytes) else str(v)


def file_names(cu, lp) -> dict[int, str]:
    """File index -> name (relative to the project root when inside it) of a unit's line program."""
    top = cu.get_top_DIE()
    comp_dir = _text(top.attributes["DW_AT_comp_dir"].value) if "DW_AT_comp_dir" in top.attributes else ""
    v5 = lp.header.version >= 5
    dirs = [_text(d) for d in lp.header.include_directory]
    names: dict[int, str] = {}
    for i, fe in enumerate(lp.header.file_entry):
        index = i if v5 else i + 1  # DWARF 5 numbers files (and directories) from 0, DWARF 4 from 1
        d = fe.dir_index if v5 else fe.dir_index - 1
        name = _text(fe.name)
        if 0 <= d < len(dirs) and not (v5 and d == 0):
            name = str(Path(dirs[d]) / name)
        names[index] = _display_name(name, comp_dir)
    return names


def line_rows(elf_path: Path) -> list[LineRow]:
    """The address -> file:line map of an ELF's DWARF line programs, one row where the file or line changes.
    Line 0 (code the compiler made with no line of its own) counts as no line."""
    ranges: list[tuple[int, int, str, int]] = []  # start, end, file, line
    with open(elf_path, "rb") as f:
        elf = ELFFile(f)
        if not elf.has_dwarf_info():
            return []
        dwarf = elf.get_dwarf_info()
        for cu in dwarf.iter_CUs():
            lp = dwarf.line_program_for_CU(cu)
            if lp is None:
                continue
            names = file_names(cu, lp)
            prev = None
            for entry in lp.get_entries():
                st = entry.state
                if st is None:
                    continue
                if prev is not None and st.address > prev.address and prev.line != 0:
                    ranges.append((prev.address, st.address, names.get(prev.file, "?"), prev.line))
                prev = None if st.end_sequence else st
    rows: list[LineRow] = []
    end = None
    for start, stop, file, line in sorted(ranges):
        if end is not None and start > end:
            rows.append(LineRow(end, "", 0))  # a gap with no line
        if end is not None and start < end:
            start = end  # overlapping sequences: the first one keeps its addresses
            if start >= stop:
                continue
        if not rows or (rows[-1].file, rows[-1].line) != (file, line) or rows[-1].file == "" or start != end:
            rows.append(LineRow(start, file, line))
        end = stop
    if end is not None:
        rows.append(LineRow(end, "", 0))
    return rows


_LOOKUP = """
    .text
    .option norelax
    .globl pyshyper_symtab_lookup
    .type pyshyper_symtab_lookup, @function
pyshyper_symtab_lookup:
    lla     t0, pyshyper_symtab
1:  ld      t1, 0(t0)
    ld      t2, 8(t0)
    ld      t3, 16(t0)
    beqz    t3, 3f
    bltu    a0, t1, 2f
    add     t4, t1, t2
    bgeu    a0, t4, 2f
    sub     a1, a0, t1
    mv      a0, t3
    ret
2:  addi    t0, t0, 24
    j       1b
3:  li      a0, 0
    li      a1, 0
    ret
    .size pyshyper_symtab_lookup, . - pyshyper_symtab_lookup

    .globl pyshyper_line_number
    .type pyshyper_line_number, @function
pyshyper_line_number:
    li      t6, 0
    j       1f
    .size pyshyper_line_number, . - pyshyper_line_number
    .globl pyshyper_line_file
    .type pyshyper_line_file, @function
pyshyper_line_file:
    li      t6, 1
1:  lla     t0, pyshyper_lines_base
    ld      t1, 0(t0)
    sub     a0, a0, t1                  /* offset of pc (below the base: huge, so the last row, no line) */
    lla     t0, pyshyper_lines_count
    ld      t2, 0(t0)
    lla     t0, pyshyper_lines
    li      t3, 0                       /* the last row starting at or below the offset */
2:  beqz    t2, 3f
    lwu     t4, 0(t0)
    bltu    a0, t4, 3f
    mv      t3, t0
    addi    t0, t0, 8
    addi    t2, t2, -1
    j       2b
3:  li      a0, 0
    beqz    t3, 5f
    lhu     t4, 4(t3)                   /* file index, 0: no line */
    beqz    t4, 5f
    bnez    t6, 4f
    lhu     a0, 6(t3)
    ret
4:  slli    t4, t4, 3
    lla     t5, pyshyper_line_files
    add     t5, t5, t4
    ld      a0, 0(t5)
5:  ret
    .size pyshyper_line_file, . - pyshyper_line_file
"""


def _asm_string(s: str) -> str:
    return '"' + "".join(c if c.isalnum() or c in "_.$@ -:<>[]()," else f"\\{ord(c):03o}" for c in s) + '"'


def render_symtab_asm(symbols: list[FunctionSymbol], lines: list[LineRow] | None = None) -> str:
    lines = lines or []
    out = ["/* Symbol and line tables for the panic handler; generated by pyshyper build, do not edit. */", _LOOKUP]
    out += [
        '    .section .pyshyper.symtab, "a", @progbits',
        "    .balign 8",
        "    .globl pyshyper_symtab",
        "    .type pyshyper_symtab, @object",
        "pyshyper_symtab:",
    ]
    for i, s in enumerate(symbols):
        out.append(f"    .quad {s.addr:#x}, {s.size:#x}, .Lsymtab_name{i}")
    out += [
        "    .quad 0, 0, 0",
        "    .size pyshyper_symtab, . - pyshyper_symtab",
        "    .globl pyshyper_symtab_count",
        "    .type pyshyper_symtab_count, @object",
        "pyshyper_symtab_count:",
        f"    .quad {len(symbols)}",
        "    .size pyshyper_symtab_count, 8",
    ]
    files = sorted({r.file for r in lines if r.file})
    index = {f: i + 1 for i, f in enumerate(files)}
    base = lines[0].addr if lines else 0
    if lines and lines[-1].addr - base >= 1 << 32:
        raise ValueError("the line table spans more than 4 GiB")
    if any(r.line > 0xFFFF for r in lines) or len(files) >= 0xFFFF:
        raise ValueError("a line number or file count does not fit the line table's 16 bits")
    out += [
        "    .balign 8",
        "    .globl pyshyper_lines_base",
        "pyshyper_lines_base:",
        f"    .quad {base:#x}",
        "    .globl pyshyper_lines_count",
        "pyshyper_lines_count:",
        f"    .quad {len(lines)}",
        "    .globl pyshyper_line_files",
        "pyshyper_line_files:",
        "    .quad 0",
        *(f"    .quad .Lline_file{i + 1}" for i in range(len(files))),
        "    .globl pyshyper_lines",
        "    .type pyshyper_lines, @object",
        "pyshyper_lines:",
        *(f"    .word {r.addr - base:#x}; .hword {index.get(r.file, 0)}, {r.line}" for r in lines),
        "    .size pyshyper_lines, . - pyshyper_lines",
    ]
    for i, s in enumerate(symbols):
        out.append(f".Lsymtab_name{i}: .asciz {_asm_string(s.name)}")
    for i, f in enumerate(files):
        out.append(f".Lline_file{i + 1}: .asciz {_asm_string(f)}")
    return "\n".join(out) + "\n"
