"""`pyshyper gdb`: Debian's gdb-multiarch on the hypervisor's ELF, attached to the gdb stub of a running QEMU.

`pyshyper run --gdb` starts QEMU halted with its stub on port 1234 (`--gdb-port N` for another) and prints the
command this module builds. The ELF carries DWARF for the typed-Python sources (compiler/debuginfo.py), so
`break hypervisor/arch/riscv/vsbi.py:447`, `bt`, `list` and `info locals` speak Python files and lines; the
file names are relative to the project root, which is the compile unit's directory, so gdb finds the sources.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from pathlib import Path

from qemu.build import DEFAULT_OUT, _rel

GDB = "gdb-multiarch"
GDB_PORT = 1234


def gdb_command(elf: Path, port: int = GDB_PORT, extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """gdb on `elf`, connected to QEMU's stub on localhost:`port`; `extra` goes to gdb after the connection
    (for example `-batch -ex bt`)."""
    return [GDB, "-q", "-ex", "set pagination off", "-ex", f"target remote 127.0.0.1:{port}", *extra, str(elf)]


def attach_hint(elf: Path, port: int = GDB_PORT) -> str:
    """What `pyshyper run --gdb` prints: the pyshyper command and the gdb command line it runs."""
    mine = "pyshyper gdb" + (f" --port {port}" if port != GDB_PORT else "")
    out = elf.parent
    if out.resolve() != DEFAULT_OUT.resolve():
        mine += f" --out {shlex.quote(_rel(out))}"
    return f"{mine}   (that is: {shlex.join(gdb_command(Path(_rel(elf)), port))})"


def port_number(text: str) -> int:
    try:
        port = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a TCP port number, not {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a TCP port is 1..65535, not {port}")
    return port


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=port_number, default=GDB_PORT, help=f"QEMU's gdb stub port (default {GDB_PORT})")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR", help="where pyshyper.elf is (build/)")
    p.add_argument("--print-command", action="store_true", help="print the gdb command line and exit")
    p.add_argument("gdb_args", nargs="*", metavar="-- GDB_ARG", help="extra arguments passed to gdb after --")


def run_gdb(args: argparse.Namespace) -> int:
    elf = args.out / "pyshyper.elf"
    cmd = gdb_command(elf, args.port, args.gdb_args)
    if args.print_command:
        print(shlex.join(cmd))
        return 0
    if not elf.is_file():
        print(f"pyshyper gdb: error: {_rel(elf)} not found (pyshyper build makes it)", file=sys.stderr)
        return 2
    path = shutil.which(GDB)
    if path is None:
        print(f"pyshyper gdb: {GDB} not found: run qemu/setup-host.sh (Debian package {GDB})", file=sys.stderr)
        return 127
    sys.stdout.flush()
    # gdb takes the terminal and Ctrl-C (which stops the target): nothing of this process may stay in between.
    os.execv(path, cmd)
    return 127  # not reached
