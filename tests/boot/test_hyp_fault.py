"""A trap in the hypervisor itself is reported with scause, sepc, stval, the function's name (from the symbol
table embedded at build time) and the Python file and line of sepc (from the embedded line table), and only that
hart stops. The fault is provoked through the PyShyper test SBI
extension, which exists only in a `pyshyper build --debug-faults` image."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

from boards import GUEST_MAGIC
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
LOGS = ROOT / "logs"
GUEST = f"""
    .option norelax
    .text
_start: j 1f
    .balign 8
    .quad {GUEST_MAGIC:#x}    /* "PYSHGUST" */
    .quad end - _start
    .quad 1
1:  li a7, 0x0A505354           /* the PyShyper test extension */
    li a6, 0
    ecall
2:  j 2b
end:
"""

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.usefixtures("host_tools"),
]


@pytest.fixture
def host_tools() -> None:
    require_tool("qemu-system-riscv64", "riscv64-unknown-elf-as")


def _guest(tmp: Path) -> Path:
    (tmp / "g.S").write_text(GUEST)
    subprocess.run(["riscv64-unknown-elf-as", "-march=rv64imac_zicsr", "-o", tmp / "g.o", tmp / "g.S"], check=True)
    subprocess.run(["riscv64-unknown-elf-ld", "-e", "0x80000000", "-Ttext=0x80000000", "-o", tmp / "g.elf",
                    tmp / "g.o"], check=True)
    subprocess.run(["riscv64-unknown-elf-objcopy", "-O", "binary", tmp / "g.elf", tmp / "g.bin"], check=True)
    return tmp / "g.bin"


def _faulting_load_line() -> int:
    """The line of sbi_test_fault's load from address 8, read from the source."""
    tree = ast.parse((ROOT / "hypervisor" / "arch" / "riscv" / "vsbi.py").read_text())
    fn = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "sbi_test_fault")
    loads = [
        n.lineno
        for n in ast.walk(fn)
        if isinstance(n, ast.Subscript)
        and isinstance(n.value, ast.Call)
        and any(isinstance(c, ast.Constant) and c.value == 8 for c in ast.walk(n.value))
    ]
    assert len(loads) == 1, loads
    return loads[0]


def _build(out: Path, *flags: str) -> None:
    r = subprocess.run([sys.executable, "-m", "qemu.cli", "build", "--no-guests", "--out", str(out), *flags],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def _boot(elf: Path, guest: Path) -> pexpect.spawn:
    return pexpect.spawn("qemu-system-riscv64", ["-M", "virt", "-cpu", "rv64", "-smp", "2", "-m", "1G", "-bios",
                                                 "default", "-nographic", "-kernel", str(elf), "-device",
                                                 f"loader,file={guest},addr=0x84000000,force-raw=on"],
                         encoding="utf-8", codec_errors="replace", timeout=60)


def test_hypervisor_fault_is_reported_with_function_name_and_line(tmp_path):
    out = tmp_path / "out"
    _build(out, "--debug-faults")
    child = _boot(out / "pyshyper.elf", _guest(tmp_path))
    try:
        child.expect(r"unexpected trap in the hypervisor: scause (0x[0-9a-f]+) sepc (0x[0-9a-f]+) "
                     r"stval (0x[0-9a-f]+) in (\S+)\+(0x[0-9a-f]+) at (\S+):(\d+)\s")
        scause, sepc, stval, name, _, file, line = child.match.groups()
        assert int(scause, 16) == 5  # load access fault
        assert int(stval, 16) == 8
        assert name.endswith("sbi_test_fault")
        assert (file, int(line)) == ("hypervisor/arch/riscv/vsbi.py", _faulting_load_line())
        assert 0x8020_0000 <= int(sepc, 16) < 0x8200_0000
        child.expect(r"this hart stops")
    except (pexpect.TIMEOUT, pexpect.EOF):
        LOGS.mkdir(exist_ok=True)
        (LOGS / "hyp-fault.log").write_text(str(child.before))
        raise
    finally:
        child.terminate(force=True)


def test_normal_build_refuses_the_test_extension(tmp_path):
    out = tmp_path / "out"
    _build(out)
    child = _boot(out / "pyshyper.elf", _guest(tmp_path))
    try:
        child.expect(r"vm1: guest image")
        i = child.expect([r"unexpected trap in the hypervisor", pexpect.TIMEOUT], timeout=3)
        assert i == 1, "a normal build must not fault: the extension is NOT_SUPPORTED there"
        assert not re.search("PANIC", child.before or "")
    finally:
        child.terminate(force=True)
