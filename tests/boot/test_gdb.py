"""Source-level debugging of the hypervisor: `pyshyper run --guest selftest --gdb-port P` starts QEMU halted and
prints how to attach; `pyshyper gdb --port P -- -batch ...` drives gdb-multiarch on the ELF's DWARF. A breakpoint
on a Python line of the SBI handler is hit when the self-test guest makes that call; `bt` names the Python
functions and files (inlined ones included), `list` shows the Python source, `info args`/`info locals` and
`p v->regs[17]` read the vCPU through its struct type. The lines are found in the source, never written here.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pexpect = pytest.importorskip("pexpect")

pytestmark = pytest.mark.qemu

ROOT = Path(__file__).resolve().parents[2]
SBI = ROOT / "hypervisor" / "arch" / "riscv" / "vsbi.py"
SBI_REL = "hypervisor/arch/riscv/vsbi.py"
LOGS = ROOT / "logs"
SBI_EXT_BASE = 0x10  # SBI 2.0 chapter 4


def _need_tools() -> None:
    for tool in ("qemu-system-riscv64", "riscv64-unknown-elf-ld"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (qemu/setup-host.sh)")
    if shutil.which("gdb-multiarch") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("gdb-multiarch is missing in CI: qemu/setup-host.sh installs it")
        pytest.skip("gdb-multiarch is not installed (qemu/setup-host.sh)")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _first_body_line(fn: str) -> tuple[int, str]:
    """The line of a function's first statement after its docstring, and its text, from vsbi.py."""
    source = SBI.read_text()
    tree = ast.parse(source)
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == fn)
    body = node.body
    if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    line = body[0].lineno
    return line, source.splitlines()[line - 1].strip()


def _section(out: str, name: str) -> str:
    m = re.search(rf"=={name}==\n(.*?)(?===\w+==\n|\Z)", out, re.S)
    assert m, f"no {name} section in gdb's output:\n{out}"
    return m.group(1)


def _start(out: Path, port: int, *flags: str) -> pexpect.spawn:
    """`pyshyper run --guest selftest --gdb-port P`: it builds into OUT, says how to attach, starts QEMU halted."""
    run = pexpect.spawn(
        sys.executable,
        [
            "-m",
            "pyshyper_host.cli",
            "run",
            "--guest",
            "selftest",
            "--smp",
            "2",
            "--out",
            str(out),
            "--gdb-port",
            str(port),
        ]
        + list(flags),
        cwd=str(ROOT),
        encoding="utf-8",
        codec_errors="replace",
        timeout=300,
    )
    run.expect(r"\[run\]   (pyshyper gdb [^\r\n]*?)\s+\(that is: (gdb-multiarch [^\r\n]*)\)")
    hint, gdb_line = run.match.group(1), run.match.group(2)
    assert f"--port {port}" in hint and f"--out {out}" in hint
    assert f"target remote 127.0.0.1:{port}" in gdb_line and gdb_line.endswith(f"{out}/pyshyper.elf")
    run.expect(r"\[run\] qemu-system-riscv64 .*-S")
    return run


def _gdb(out: Path, port: int, commands: list[str]) -> str:
    """`pyshyper gdb --port P --out OUT -- -batch -ex ...`: gdb's whole output."""
    args = [a for c in commands for a in ("-ex", c)]
    gdb = subprocess.run(
        [
            sys.executable,
            "-m",
            "pyshyper_host.cli",
            "gdb",
            "--port",
            str(port),
            "--out",
            str(out),
            "--",
            "-batch",
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    print(gdb.stdout + gdb.stderr)
    return gdb.stdout + gdb.stderr


def _line_of(fn: str, text: str) -> int:
    """The line in vsbi.py's function `fn` that reads `text`."""
    source = SBI.read_text()
    node = next(n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef) and n.name == fn)
    lines = source.splitlines()
    found = [i for i in range(node.lineno, node.end_lineno + 1) if lines[i - 1].strip() == text]
    assert len(found) == 1, (fn, text, found)
    return found[0]


def test_breakpoint_on_a_python_line_backtrace_and_list(tmp_path):
    _need_tools()
    port = _free_port()
    out = tmp_path / "out"
    ecall_line, ecall_text = _first_body_line("sbi_handle_ecall")
    base_line, base_text = _first_body_line("sbi_base")
    run = _start(out, port)
    gdb_out = ""
    try:
        commands = [
            f"break {SBI_REL}:{ecall_line}",
            "continue",
            "echo ==bt1==\\n",
            "bt",
            "delete",
            f"break {SBI_REL}:{base_line}",
            "continue",
            "echo ==bt2==\\n",
            "bt",
            "echo ==list==\\n",
            "list",
            "echo ==vars==\\n",
            "info args",
            "info locals",
            "p/x v->regs[17]",
            "echo ==end==\\n",
            "kill",
        ]
        gdb_out = _gdb(out, port, commands)

        # Breakpoint 1: hyp_guest_ecall calls sbi_handle_ecall directly (the hot causes skip the handler table);
        # gdb shows both, with their Python files.
        bt1 = _section(gdb_out, "bt1")
        frames = re.findall(r"^#(\d+)\s+(?:0x[0-9a-f]+ in )?(\w+) \(.*?\) at (\S+):(\d+)$", bt1, re.M)
        assert frames[0] == ("0", "sbi_handle_ecall", SBI_REL, str(ecall_line)), bt1
        names = [(f[1], f[2]) for f in frames]
        assert ("hyp_guest_ecall", "hypervisor/arch/riscv/trap.py") in names, bt1
        # The trap vector is the outermost frame (its CFI says the return address is undefined): the backtrace
        # ends there, without "Backtrace stopped: frame did not save the PC".
        assert re.search(r"^#\d+\s+0x[0-9a-f]+ in hyp_trap_vector \(\) at runtime/trap\.S:\d+$", bt1, re.M), bt1
        assert "Backtrace stopped" not in bt1, bt1

        # Breakpoint 2: the first line of sbi_base, reached only by an SBI BASE call, which the self-test makes.
        bt2 = _section(gdb_out, "bt2")
        frames = re.findall(r"^#(\d+)\s+(?:0x[0-9a-f]+ in )?(\w+) \((.*?)\) at (\S+):(\d+)$", bt2, re.M)
        assert frames[0][1:2] + frames[0][3:] == ("sbi_base", SBI_REL, str(base_line)), bt2
        assert re.fullmatch(r"v=0x[0-9a-f]+ <.*>", frames[0][2]) and "v=0x0 " not in frames[0][2], bt2
        assert any(f[1] == "hyp_guest_ecall" for f in frames[1:]), bt2

        listing = _section(gdb_out, "list")
        shown = dict(re.findall(r"^(\d+)\t(.*)$", listing, re.M))
        assert shown.get(str(base_line), "").strip() == base_text, listing
        assert "def sbi_base(v: Ptr[Vcpu]) -> None:" in listing, listing

        values = _section(gdb_out, "vars")
        assert re.search(r"^v = 0x[0-9a-f]+", values, re.M), values
        assert re.search(r"^fid = ", values, re.M), values  # a local: a value, or <optimized out>
        assert re.search(rf"^\$\d+ = {SBI_EXT_BASE:#x}$", values, re.M), values  # a7 holds the BASE extension
        # Where a breakpoint stops gdb prints the Python line itself.
        assert re.search(rf"^{ecall_line}\t\s*{re.escape(ecall_text)}$", gdb_out, re.M), gdb_out
        run.expect(pexpect.EOF, timeout=30)  # gdb's kill ends QEMU, and with it `pyshyper run`
    except BaseException:
        LOGS.mkdir(exist_ok=True)
        (LOGS / "gdb.log").write_text(f"{run.before}\n--- gdb ---\n{gdb_out}")
        raise
    finally:
        run.terminate(force=True)


def test_debug_build_steps_every_line_with_every_local(tmp_path):
    """`pyshyper run --debug` (-O0): nothing is inlined, so the backtrace has a frame per Python call, and the
    local `e` of sbi_dispatch (the extensions sbi_handle_ecall does not call directly) has its value on the line
    after its assignment: the guests' SBI extension whose ID the guest put in a7."""
    _need_tools()
    port = _free_port()
    out = tmp_path / "out"
    line = _line_of("sbi_dispatch", "if e.addr() != 0:")
    run = _start(out, port, "--debug")
    gdb_out = ""
    try:
        commands = [
            f"break {SBI_REL}:{line}",
            "continue",
            "echo ==bt==\\n",
            "bt",
            "echo ==vars==\\n",
            "info locals",
            "p/x v->regs[17]",
            "p/x e->eid",
            "echo ==end==\\n",
            "kill",
        ]
        gdb_out = _gdb(out, port, commands)
        bt = _section(gdb_out, "bt")
        frames = re.findall(r"^#(\d+)\s+0x[0-9a-f]+ in (\w+) \(.*?\) at (\S+):(\d+)$|^#0\s+(\w+) \(", bt, re.M)
        names = [f[1] or f[4] for f in frames]
        assert names[:4] == ["sbi_dispatch", "sbi_handle_ecall", "hyp_guest_ecall", "hyp_trap_vector"], bt
        assert "inlined" not in bt  # gdb marks no frame as inlined: at -O0 each is a real call
        values = _section(gdb_out, "vars")
        local = re.search(r"^e = (0x[0-9a-f]+)", values, re.M)  # a pointer into SBI_EXTENSIONS
        eids = re.findall(r"^\$\d+ = (0x[0-9a-f]+)$", values, re.M)  # a7, then e->eid through e's DWARF type
        assert local and len(eids) == 2, values
        assert int(local.group(1), 16) != 0 and eids[0] == eids[1], values
        run.expect(pexpect.EOF, timeout=30)
    except BaseException:
        LOGS.mkdir(exist_ok=True)
        (LOGS / "gdb-debug.log").write_text(f"{run.before}\n--- gdb ---\n{gdb_out}")
        raise
    finally:
        run.terminate(force=True)
