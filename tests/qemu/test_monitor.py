"""The stall diagnosis (qemu/monitor.py) on its own: parsing QEMU's register dump and naming a pc (function and
source line)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from qemu import monitor
from tests.conftest import require_tool

DUMP = """info registers -a

CPU#0
 V      =   1
 pc       ffffffff80a0c3e2
 mhartid  0000000000000000
 hstatus  0000000200000080
 mip      0000000000000020
 sepc     ffffffff80a0c3de
 scause   0000000000000014
CPU#1
 V      =   0
 pc       0000000080201234
 mip      0000000000000000
 sepc     0000000000010a20
 scause   8000000000000005
(qemu)
"""


def test_parse_registers_reads_each_cpu():
    harts = monitor.parse_registers(DUMP)
    assert [(h.cpu, h.virt, h.pc) for h in harts] == [(0, True, 0xFFFFFFFF80A0C3E2), (1, False, 0x80201234)]
    assert harts[0].scause == 0x14 and harts[1].scause == 0x8000000000000005 and harts[0].mip == 0x20
    assert monitor.parse_registers("nothing here") == []


def test_where_names_guest_firmware_and_hypervisor_function(tmp_path):
    require_tool("riscv64-unknown-elf-as", hint="binutils-riscv64-unknown-elf")
    (tmp_path / "a.S").write_text(
        ".text\n.globl first\n.type first,@function\nfirst: nop\nnop\n.size first,4\n"
        ".globl second\n.type second,@function\nsecond: nop\nnop\nnop\n.size second,6\n"
    )
    subprocess.run(
        ["riscv64-unknown-elf-as", "-march=rv64imac", "--gdwarf-4", "-o", tmp_path / "a.o", tmp_path / "a.S"],
        check=True,
    )
    subprocess.run(
        ["riscv64-unknown-elf-ld", "-Ttext=0x80200000", "-e", "first", "-o", tmp_path / "a.elf", tmp_path / "a.o"],
        check=True,
    )
    syms = monitor.Symbols(tmp_path / "a.elf")
    at = lambda pc, virt=False: monitor.where(monitor.HartState(0, virt, pc, 0, 0, 0), syms)  # noqa: E731
    # The source line comes from the DWARF line table (here GNU as's for a.S; the compiler's for Python).
    assert at(0x80200002) == f"hypervisor, pc 0x80200002 in first+0x2 at {tmp_path}/a.S:5"
    assert at(0x80200008) == f"hypervisor, pc 0x80200008 in second+0x4 at {tmp_path}/a.S:11"
    assert at(0x80000100) == "OpenSBI (M-mode), pc 0x80000100"
    assert at(0xFFFFFFFF80001000, True) == "guest, pc 0xffffffff80001000 (kernel)"
    assert at(0x10A20, True) == "guest, pc 0x10a20 (user)"
    assert monitor.Symbols(Path(tmp_path / "missing.elf")).name(0x80200000) is None


def test_diagnose_says_when_the_monitor_is_gone(tmp_path):
    text = monitor.diagnose(tmp_path / "no.sock", None, samples=2, interval=0.0)
    assert text.count("the monitor does not answer") == 2
