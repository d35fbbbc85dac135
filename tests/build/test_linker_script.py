"""The linker script rendered from linker/pyshyper.ld.j2 with board data."""

from __future__ import annotations

import re
from dataclasses import replace

from boards import Region, load_board
from linker import render_linker_script
from pyshyper_host.build import toolchain
from pyshyper_host.build.elfcheck import check_elf


def test_renders_board_addresses():
    board = load_board("qemu-virt")
    text = render_linker_script(board)
    assert "ENTRY(_start)" in text
    assert re.search(r"ORIGIN = 0x80200000, LENGTH = 0x1e00000", text)
    assert ". = 0x80200000;" in text
    assert "{{" not in text and "{%" not in text


def test_separate_rx_and_rw_program_headers():
    text = render_linker_script(load_board("qemu-virt"))
    assert "text PT_LOAD FLAGS(5);" in text
    assert "data PT_LOAD FLAGS(6);" in text
    assert "FLAGS(7)" not in text
    assert not re.search(r"__global_pointer\$\s*=", text)  # no gp-relative addressing, ever


def test_symbols_the_runtime_needs():
    text = render_linker_script(load_board("qemu-virt"))
    for sym in ("__bss_start", "__bss_end", "__stacks_start", "__stack_top", "_end"):
        assert re.search(rf"\b{re.escape(sym)} = \.;", text), sym


def test_stack_region_follows_board_data():
    board = load_board("qemu-virt")
    small = replace(board, max_harts=2, hart_stack_size=0x2000)
    assert f". += {2 * 0x2000:#x};" in render_linker_script(small)
    assert f". += {board.max_harts * board.hart_stack_size:#x};" in render_linker_script(board)


def test_other_board_region_is_used():
    board = replace(load_board("qemu-virt"), hypervisor=Region(0x9000_0000, 0x10_0000))
    text = render_linker_script(board)
    assert "ORIGIN = 0x90000000, LENGTH = 0x100000" in text
    assert "ASSERT(_end <= 0x90100000" in text


MINIMAL = """
    .section .text.boot, "ax"
    .globl _start
_start: j _start
    .text
    .globl f
    .type f, @function
f:  ret
    .size f, . - f
    .section .rodata
    .word 1
    .data
    .word 2
    .bss
    .space 64
"""


def test_rendered_script_links_a_valid_image(tmp_path, asm):
    board = load_board("qemu-virt")
    script = tmp_path / "pyshyper.ld"
    script.write_text(render_linker_script(board))
    elf = toolchain.link([asm("min", MINIMAL)], script, tmp_path / "min.elf")
    assert check_elf(elf, board.load_address, board.hypervisor) == []


def test_image_too_large_for_region_fails_to_link(tmp_path, asm):
    board = replace(load_board("qemu-virt"), hypervisor=Region(0x8020_0000, 0x1000), hart_stack_size=0x1000)
    script = tmp_path / "pyshyper.ld"
    script.write_text(render_linker_script(board))
    try:
        toolchain.link([asm("min", MINIMAL)], script, tmp_path / "min.elf")
    except toolchain.ToolError as e:
        assert "HYP" in str(e) or "does not fit" in str(e)
    else:
        raise AssertionError("linking an image larger than its region must fail")
