"""GNU binutils for riscv64 (Debian's binutils-riscv64-unknown-elf), called with fixed flags."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "riscv64-unknown-elf-"
# No F/D: the hypervisor has no floating point (guest FP state is saved with integer loads of the FP CSRs'
# owners' choosing, not by hypervisor code). H needs the explicit _h extension in GNU as 2.40.
MARCH = "rv64imac_zicsr_zifencei_h"
MABI = "lp64"


class ToolError(RuntimeError):
    """A binutils tool failed or is missing; the message is its stderr, ready to print."""


def tool(name: str) -> str:
    path = shutil.which(PREFIX + name)
    if path is None:
        raise ToolError(f"{PREFIX}{name} not found: run qemu/setup-host.sh (package binutils-riscv64-unknown-elf)")
    return path


def _run(args: list[str], cwd: Path | None = None) -> None:
    proc = subprocess.run(args, capture_output=True, text=True, cwd=cwd)
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip()
        raise ToolError(f"{Path(args[0]).name} failed:\n{msg}")


def assemble(src: Path, obj: Path, include_dirs: Sequence[Path] = ()) -> Path:
    obj.parent.mkdir(parents=True, exist_ok=True)
    # --gdwarf-4: line info for the assembly source too (runtime/*.S in gdb and in the panic's line table); the
    # same DWARF version as the compiler's (compiler/debuginfo.py). Not loaded: the image does not change.
    args = [tool("as"), f"-march={MARCH}", f"-mabi={MABI}", "--gdwarf-4"]
    for d in include_dirs:
        args += ["-I", str(d.resolve())]
    # A source inside the project is named relative to its root (the DWARF's directory, as the compiler's), so
    # gdb and the panic say runtime/trap.S, not the checkout's absolute path.
    cwd, name = None, str(src)
    try:
        name, cwd = str(src.resolve().relative_to(ROOT)), ROOT
    except ValueError:
        pass
    _run([*args, "-o", str(obj.resolve()), name], cwd)
    return obj


def link(objs: list[Path], script: Path, elf: Path, map_file: Path | None = None) -> Path:
    elf.parent.mkdir(parents=True, exist_ok=True)
    args = [tool("ld"), "--no-relax", "-nostdlib", "-static", "--fatal-warnings", "-T", str(script)]
    if map_file is not None:
        args += ["-Map", str(map_file)]
    _run([*args, "-o", str(elf), *map(str, objs)])
    return elf


def objcopy_binary(elf: Path, out: Path) -> Path:
    _run([tool("objcopy"), "-O", "binary", str(elf), str(out)])
    return out
