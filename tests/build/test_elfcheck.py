"""Post-link checks: each check fails on a purpose-built bad ELF and passes on a good one."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from boards import Region
from pyshyper_host.build import toolchain
from pyshyper_host.build.elfcheck import check_elf, size_report

BASE = 0x8020_0000
REGION = Region(BASE, 0x10_0000)

CODE = """
    .section .text.boot, "ax"
    .globl _start
_start: j _start
    .section .rodata
    .quad 7
    .data
    .quad 8
    .bss
    .space 256
"""

GOOD_LD = """
ENTRY(_start)
PHDRS { text PT_LOAD FLAGS(5); data PT_LOAD FLAGS(6); }
SECTIONS {
    . = {base};
    .text : {{ *(.text.boot) *(.text .text.*) }} :text
    .rodata : {{ *(.rodata*) }} :text
    . = ALIGN(0x1000);
    .data : {{ *(.data*) }} :data
    .bss (NOLOAD) : {{ *(.bss*) }} :data
}}
"""


def link(tmp_path: Path, obj: Path, script: str, name: str = "t", extra: tuple[str, ...] = (), **fmt) -> Path:
    ld = tmp_path / f"{name}.ld"
    ld.write_text(script.replace("{base}", hex(fmt.get("base", BASE))).replace("{{", "{").replace("}}", "}"))
    out = tmp_path / f"{name}.elf"
    args = [toolchain.tool("ld"), "--no-relax", "-nostdlib", "-static", *extra, "-T", str(ld), "-o", str(out), str(obj)]
    subprocess.run(args, check=True, capture_output=True)
    return tmp_path / f"{name}.elf"


@pytest.fixture
def code(asm):
    return asm("code", CODE)


def test_good_image_passes(tmp_path, code):
    assert check_elf(link(tmp_path, code, GOOD_LD), BASE, REGION) == []


def test_wrong_entry(tmp_path, code):
    errors = check_elf(link(tmp_path, code, GOOD_LD), BASE + 4, REGION)
    assert len(errors) == 1 and "entry point 0x80200000 is not the board load address 0x80200004" in errors[0]


def test_outside_region(tmp_path, code):
    elf = link(tmp_path, code, GOOD_LD, base=0x8000_0000)
    errors = check_elf(elf, 0x8000_0000, REGION)
    assert errors and all("outside the hypervisor region" in e for e in errors)


def test_region_end_is_exclusive(tmp_path, code):
    elf = link(tmp_path, code, GOOD_LD)
    report = size_report(elf)
    tight = Region(BASE, report.image)
    assert check_elf(elf, BASE, tight) == []
    assert any("outside" in e for e in check_elf(elf, BASE, Region(BASE, report.image - 1)))


def test_rwx_segment(tmp_path, code):
    rwx = GOOD_LD.replace("text PT_LOAD FLAGS(5)", "text PT_LOAD FLAGS(7)")
    errors = check_elf(link(tmp_path, code, rwx), BASE, REGION)
    assert any("writable and executable" in e for e in errors)
    assert any("no read-execute PT_LOAD" in e for e in errors)


def test_single_segment_lacks_rw(tmp_path, code):
    one = """
ENTRY(_start)
PHDRS { text PT_LOAD FLAGS(5); }
SECTIONS { . = {base}; .text : {{ *(.text.boot) *(.rodata*) }} :text /DISCARD/ : {{ *(.data*) *(.bss*) }} }
"""
    errors = check_elf(link(tmp_path, code, one), BASE, REGION)
    assert errors == ["no read-write PT_LOAD segment"]


def test_undefined_symbol(tmp_path, asm):
    # A link told to ignore unresolved symbols (as a broken build could be) leaves them undefined.
    obj = asm("undef", CODE + "\n    .data\n    .quad missing_fn\n")
    elf = link(tmp_path, obj, GOOD_LD, extra=("--unresolved-symbols=ignore-all", "--emit-relocs"))
    errors = check_elf(elf, BASE, REGION)
    assert errors == ["undefined symbols: missing_fn"]


def test_size_report(tmp_path, code):
    report = size_report(link(tmp_path, code, GOOD_LD))
    assert report.text == 4 or report.text == 2  # `j` may be compressed
    assert report.rodata == 8
    assert report.data == 8
    assert report.bss == 256
    assert report.stacks == 0
    assert report.image == 0x1000 + 8 + 256
    assert report.file == 0x1000 + 8
