"""`pyshyper build`: board data -> generated sources -> compiled hypervisor -> runtime -> two-pass link -> checks.

Stages (each prints a progress line with its time):
  1. generate  OUT/gen/hypervisor/board.py (module `hypervisor.board`), OUT/gen/board.S, OUT/gen/pyshyper.ld
  2. compile   hypervisor/**/*.py with compiler.driver.build_riscv_object -> object, CSR stubs .S, offsets .S
  3. assemble  runtime/*.S and the compiler's stubs with GNU as (includes from OUT/gen)
  4. link      pass 1 with an empty symbol table, then pass 2 with the function symbols of pass 1 embedded
  5. image     objcopy -O binary, post-link checks, size report
     mvm-dtb   OUT/mvm-plic.dtb or OUT/mvm-aia.dtb: the management VM's device tree for the build's IRQ mode,
               with the initrd range of the cached initramfs (~/.cache/pyshyper/mvm-initramfs.cpio) if present
  6. guests    every test guest tests/guests/NAME/ (guest.py, *.S, linker/guest.ld.j2 or its own guest.ld[.j2])
               compiled, assembled and linked the same way -> OUT/guests/NAME.elf and NAME.bin
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from boards import (
    GUEST_GPA,
    GUEST_HDR_INSTANCES,
    GUEST_HDR_MAGIC,
    GUEST_HDR_SIZE,
    GUEST_MAGIC,
    GUEST_MEM_SIZE,
    STAGE2_LEAF_SIZES,
    BuildConfig,
    make_config,
)
from boards.constants import render_asm_include, render_hypervisor_module
from boards.mvm import load_mvm
from boards.mvm_fdt import QEMU_CBO_BLOCK_SIZE, QEMU_RV64_ISA, mvm_device_tree
from linker import render_guest_linker_script, render_linker_script
from pyshyper_host import PROJECT_ROOT
from pyshyper_host.build import toolchain
from pyshyper_host.build.elfcheck import SizeReport, check_elf, size_report
from pyshyper_host.build.qemu_machine import host_cpu_from_qemu
from pyshyper_host.build.symtab import function_symbols, line_rows, render_symtab_asm
from pyshyper_host.images.initramfs import default_cache

ROOT = PROJECT_ROOT
HYPERVISOR_DIR = ROOT / "hypervisor"
RUNTIME_DIR = ROOT / "runtime"
DEFAULT_OUT = ROOT / "build"
BOARD_MODULE = "hypervisor.board"
STAMP = "build.json"
GUESTS_DIR = ROOT / "tests" / "guests"

# The test-guest contract (hypervisor/main.py): a flat image linked at guest-physical 0x8000_0000 whose first
# instruction jumps over a header: magic at 8, image size at 16, number of VM instances at 24.
GUEST_BASE = GUEST_GPA
GUEST_STACK_SIZE = 0x4000

# What a build reads: `pyshyper run` rebuilds when any of these is newer than the ELF.
SOURCE_TREES = ("hypervisor", "runtime", "linker", "boards", "compiler", "tests/guests")
SOURCE_SUFFIXES = (".py", ".S", ".j2", ".toml")


class BuildError(RuntimeError):
    """A stage failed; the message says which and why."""


class CompileResult(Protocol):
    """What the link needs of a compiled hypervisor (compiler.driver's BuildResult, or a PrebuiltObject)."""

    @property
    def obj(self) -> Path: ...
    @property
    def stubs_asm(self) -> Path | None: ...
    @property
    def offsets_asm(self) -> Path | None: ...


Compiler = Callable[[list[Path], Path, dict[str, Path]], CompileResult]


@dataclass(frozen=True)
class PrebuiltObject:
    """A hand-made hypervisor object (bring-up and tests): linked as if the compiler had produced it."""

    obj: Path
    stubs_asm: Path | None = None
    offsets_asm: Path | None = None


@dataclass(frozen=True)
class GuestOutput:
    name: str
    elf: Path
    bin: Path
    size: int  # bytes of the image (the header's size field)
    instances: int


@dataclass(frozen=True)
class BuildOutput:
    config: BuildConfig
    elf: Path
    bin: Path
    size: SizeReport
    seconds: float
    guests: tuple[GuestOutput, ...] = ()
    mvm_dtb: Path | None = None


@dataclass(frozen=True)
class MvmDtb:
    path: Path
    initrd_size: int  # 0: made without a linux,initrd-* range (no cached initramfs)
    initrd: Path  # the initramfs whose size it carries (or would carry)


def mvm_dtb_path(cfg: BuildConfig, out: Path = DEFAULT_OUT) -> Path:
    """`OUT/mvm-plic.dtb` or `OUT/mvm-aia.dtb`: the MVM's device tree for the build's IRQ mode."""
    return out / f"mvm-{cfg.irq}.dtb"


def mvm_initrd(cache: Path | None = None) -> Path:
    return (cache if cache is not None else default_cache()) / "mvm-initramfs.cpio"


def write_mvm_dtb(
    cfg: BuildConfig, out: Path = DEFAULT_OUT, cache: Path | None = None, cpu: str | None = None
) -> MvmDtb:
    """Generate the MVM's device tree from boards/<board>/mvm.toml into OUT, with the initrd range of the cached
    initramfs when there is one (`pyshyper run --guest mvm` makes the images and calls this again). For a QEMU
    `-cpu` model other than the board's (`pyshyper run --cpu rv64,sstc=false`), the MVM's `riscv,isa` starts from
    what QEMU itself reports for that model, so the guest is never told of an extension its harts lack."""
    initrd = mvm_initrd(cache)
    host_isa, cbo = QEMU_RV64_ISA, QEMU_CBO_BLOCK_SIZE
    if cpu is not None and cpu != cfg.board.qemu_cpu:
        try:
            host = host_cpu_from_qemu(machine=cfg.qemu_machine, cpu=cpu)
        except subprocess.CalledProcessError as e:
            why = (e.stderr or b"").decode(errors="replace").strip().splitlines()
            raise BuildError(f"QEMU does not take -cpu {cpu}: {why[-1] if why else f'exit {e.returncode}'}") from None
        except (OSError, subprocess.TimeoutExpired) as e:
            raise BuildError(f"cannot ask QEMU what -cpu {cpu} has: {e}") from None
        host_isa, cbo = host.isa, host.cbo_block_size
    mvm = load_mvm(cfg.board)  # bad board data: a BoardError, which `pyshyper` reports as one line
    try:
        size = initrd.stat().st_size if initrd.is_file() else 0
    except OSError as e:
        raise BuildError(f"MVM device tree: {e}") from None
    blob = mvm_device_tree(mvm, cfg.irq, cfg.aia_guests, host_isa, initrd_size=size, cbo_block_size=cbo)
    path = mvm_dtb_path(cfg, out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)
    return MvmDtb(path, size, initrd)


def compile_with_driver(
    paths: list[Path], out_obj: Path, extra_modules: dict[str, Path], opt: int = 2
) -> CompileResult:
    from compiler.driver import build_riscv_object

    sources: list[str | Path] = list(paths)
    return build_riscv_object(sources, out_obj, extra_modules, opt=opt)


class Progress:
    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet

    def say(self, msg: str) -> None:
        if not self.quiet:
            print(f"[build] {msg}", flush=True)

    @contextmanager
    def stage(self, name: str, what: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        self.say(f"{name:<9} {what}  ({time.perf_counter() - t0:.2f} s)")


def hypervisor_sources(root: Path = HYPERVISOR_DIR) -> list[Path]:
    """Every module of the hypervisor; a checked-in hypervisor/board.py is replaced by the generated one."""
    generated = root / "board.py"
    return sorted(p for p in root.rglob("*.py") if p != generated and "__pycache__" not in p.parts)


def runtime_sources(root: Path = RUNTIME_DIR) -> list[Path]:
    return sorted(root.glob("*.S"))


def guest_dirs(root: Path = GUESTS_DIR) -> list[Path]:
    """Every test guest: a folder tests/guests/NAME/ with a guest.py."""
    if not root.is_dir():
        return []
    return sorted(d for d in root.iterdir() if d.is_dir() and (d / "guest.py").is_file())


def _elf_symbol(elf: Path, name: str) -> int | None:
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    with open(elf, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        found = symtab.get_symbol_by_name(name) if isinstance(symtab, SymbolTableSection) else None
        return int(found[0]["st_value"]) if found else None


# What runtime/*.S needs of the hypervisor's own constants (each declared once, in these modules), as `.equ`.
RUNTIME_CONSTANTS = {
    "hypervisor/arch/riscv/encoding.py": ("SSTATUS_SIE", "SSTATUS_FS"),
    "hypervisor/arch/riscv/sbi_call.py": ("SBI_EXT_HSM", "SBI_HSM_HART_STOP"),
}


def final_values(path: Path) -> dict[str, int]:
    """The integer `Final` constants of a typed-subset module whose values are constant expressions (literals,
    `u64(...)`-style conversions, earlier names of the module, + - * << >> | & ~)."""
    import ast
    import operator

    binops = {
        ast.Add: operator.add,
        ast.Sub: operator.sub,
        ast.Mult: operator.mul,
        ast.LShift: operator.lshift,
        ast.RShift: operator.rshift,
        ast.BitOr: operator.or_,
        ast.BitAnd: operator.and_,
    }
    values: dict[str, int] = {}

    def ev(node: ast.expr) -> int:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name) and node.id in values:
            return values[node.id]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and len(node.args) == 1:
            return ev(node.args[0])
        if isinstance(node, ast.BinOp) and type(node.op) in binops:
            return binops[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Invert, ast.USub)):
            return ~ev(node.operand) if isinstance(node.op, ast.Invert) else -ev(node.operand)
        raise ValueError(ast.unparse(node))

    for stmt in ast.parse(path.read_text()).body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
            if "Final" in ast.unparse(stmt.annotation):
                try:
                    values[stmt.target.id] = ev(stmt.value)
                except ValueError:
                    pass
    return values


def runtime_constants_include() -> str:
    """`runtime.S`: RUNTIME_CONSTANTS taken from their modules."""
    lines = ["/* The hypervisor's constants runtime/*.S uses; generated by pyshyper build from their modules. */"]
    for rel, names in RUNTIME_CONSTANTS.items():
        values = final_values(ROOT / rel)
        for name in names:
            lines.append(f".equ {name}, {values[name] & (2**64 - 1):#x}  /* {rel} */")
    return "\n".join(lines) + "\n"


def guest_image_include() -> str:
    """`guest_image.S`: the test-guest image header's constants for a guest's assembly (boards/__init__.py)."""
    values = {
        "GUEST_MAGIC": GUEST_MAGIC,
        "GUEST_HDR_MAGIC": GUEST_HDR_MAGIC,
        "GUEST_HDR_SIZE": GUEST_HDR_SIZE,
        "GUEST_HDR_INSTANCES": GUEST_HDR_INSTANCES,
    }
    lines = ["/* The test-guest image header; generated by pyshyper build from boards/__init__.py. */"]
    lines += [f".equ {k}, {v:#x}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def build_guest(src: Path, out: Path, compiler: Compiler | None = None) -> GuestOutput:
    """Compile, assemble and link one test guest into OUT/guests/NAME.elf and NAME.bin, then check its header.

    The guest's linker script is its own guest.ld (plain) or guest.ld.j2, else linker/guest.ld.j2; the template
    gets base, stack_size and max_size. The .bin is padded with zeros to the header's size field (the symbol
    `_image_size`), so that the hypervisor copies exactly the file."""
    name = src.name
    compiler = compiler or compile_with_driver
    objdir = out / "obj" / "guests" / name
    gdir = out / "guests"
    for d in (objdir, gdir):
        d.mkdir(parents=True, exist_ok=True)
    try:
        compiled = compiler([src / "guest.py"], objdir / "guest.o", {})
    except BuildError:
        raise
    except Exception as e:
        kind = "" if type(e).__name__ == "CompileError" else f"{type(e).__name__}: "
        raise BuildError(f"guest {name}: compile failed: {kind}{e}") from e
    include_dirs = [objdir, src, src.parent / "common", out / "gen"]  # common/: what every test guest includes
    if compiled.offsets_asm is not None:
        shutil.copyfile(compiled.offsets_asm, objdir / "offsets.S")
    (objdir / "guest_image.S").write_text(guest_image_include())
    objs = [Path(compiled.obj)]
    try:
        for s in sorted(src.glob("*.S")):
            objs.append(toolchain.assemble(s, objdir / f"{s.stem}.o", include_dirs))
        # The memory routines code generation may call (the compiler emits no libc calls for loops itself).
        objs.append(toolchain.assemble(RUNTIME_DIR / "libc.S", objdir / "runtime-libc.o", include_dirs))
        script = objdir / "guest.ld"
        if (src / "guest.ld").is_file():
            shutil.copyfile(src / "guest.ld", script)
        else:
            template = "guest.ld.j2"
            script.write_text(
                render_guest_linker_script(
                    GUEST_BASE,
                    GUEST_STACK_SIZE,
                    GUEST_MEM_SIZE,
                    template,
                    search=src if (src / template).is_file() else None,
                )
            )
        elf = gdir / f"{name}.elf"
        toolchain.link(objs, script, elf, map_file=objdir / f"{name}.map")
        binary = gdir / f"{name}.bin"
        toolchain.objcopy_binary(elf, binary)
    except toolchain.ToolError as e:
        raise BuildError(f"guest {name}: {e}") from None
    return check_guest_image(name, elf, binary)


def check_guest_image(name: str, elf: Path, binary: Path) -> GuestOutput:
    """Pad the image to `_image_size` and check the header the hypervisor reads."""
    size = _elf_symbol(elf, "_image_size")
    if size is None:
        raise BuildError(f"guest {name}: no _image_size symbol (the linker script must define it)")
    data = binary.read_bytes()
    if len(data) > size:
        raise BuildError(f"guest {name}: the image is {len(data)} bytes but _image_size is {size}")
    if len(data) < size:
        data += bytes(size - len(data))
        binary.write_bytes(data)
    errors = []
    instances = 0
    if len(data) < 32:
        errors.append("the image is shorter than its header")
    else:
        offsets = (GUEST_HDR_MAGIC, GUEST_HDR_SIZE, GUEST_HDR_INSTANCES)
        magic, hdr_size, instances = (int.from_bytes(data[off : off + 8], "little") for off in offsets)
        if magic != GUEST_MAGIC:
            errors.append(f"no magic at offset {GUEST_HDR_MAGIC} (start.S must put the header first)")
        if hdr_size != size:
            errors.append(f"header size {hdr_size} is not the image size {size}")
        if not 1 <= instances <= 4:
            errors.append(f"header instances {instances} is not 1..4")
    entry = _elf_symbol(elf, "_start")
    if entry != GUEST_BASE:
        errors.append(f"_start is at {entry:#x}, not {GUEST_BASE:#x}" if entry is not None else "no _start")
    end = _elf_symbol(elf, "_end")
    if end is not None and end - GUEST_BASE > GUEST_MEM_SIZE:
        errors.append(f"the guest needs {end - GUEST_BASE:#x} bytes, more than its {GUEST_MEM_SIZE:#x} of memory")
    if errors:
        raise BuildError(f"guest {name}: image check failed:\n  " + "\n  ".join(errors))
    return GuestOutput(name, elf, binary, size, instances)


def build_guests(
    out: Path, dirs: list[Path] | None = None, compiler: Compiler | None = None, quiet: bool = False
) -> tuple[GuestOutput, ...]:
    progress = Progress(quiet)
    results = []
    for src in guest_dirs() if dirs is None else dirs:
        with progress.stage("guest", f"{src.name} -> {_rel(out / 'guests' / src.name)}.bin"):
            g = build_guest(src, out.resolve(), compiler)
        progress.say(f"size      guest {g.name}: {g.size} bytes, {g.instances} instance(s)")
        results.append(g)
    return tuple(results)


def _rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def build(
    cfg: BuildConfig,
    out: Path = DEFAULT_OUT,
    *,
    compiler: Compiler = compile_with_driver,
    prebuilt: PrebuiltObject | None = None,
    sources: list[Path] | None = None,
    runtime: list[Path] | None = None,
    guests: list[Path] | None = None,
    quiet: bool = False,
    image_cache: Path | None = None,
) -> BuildOutput:
    """Build the hypervisor, then the test guests: `guests` folders, or by default every tests/guests/NAME/
    when the real hypervisor is compiled (none for a prebuilt object or an explicit source list). The MVM's
    device tree takes its initrd size from `image_cache` (default: `pyshyper_host.images.initramfs.default_cache()`)."""
    t_start = time.perf_counter()
    progress = Progress(quiet)
    board = cfg.board
    out = out.resolve()
    gen = out / "gen"
    objdir = out / "obj"
    for d in (gen / "hypervisor", objdir):
        d.mkdir(parents=True, exist_ok=True)
    progress.say(
        f"board {board.name}, irq {cfg.irq}"
        + (f", {cfg.aia_guests} AIA guests" if cfg.aia else "")
        + (f", -O{cfg.opt} (--debug)" if cfg.opt != 2 else "")
        + f", out {_rel(out)}"
    )

    with progress.stage("generate", f"{_rel(gen)}/hypervisor/board.py, board.S, pyshyper.ld"):
        board_py = gen / "hypervisor" / "board.py"
        board_py.write_text(render_hypervisor_module(cfg))
        (gen / "board.S").write_text(render_asm_include(cfg))
        (gen / "runtime.S").write_text(runtime_constants_include())
        script = gen / "pyshyper.ld"
        script.write_text(render_linker_script(board))
    with progress.stage("mvm-dtb", f"{_rel(mvm_dtb_path(cfg, out))}"):
        dtb = write_mvm_dtb(cfg, out, image_cache)
    if dtb.initrd_size:
        progress.say(f"mvm-dtb   initrd range {dtb.initrd_size} bytes from {dtb.initrd}")
    else:
        progress.say(
            f"mvm-dtb   made WITHOUT an initrd range: {dtb.initrd} is missing "
            "(`pyshyper images` makes it; `pyshyper run` does that and rewrites the device tree)"
        )

    if compiler is compile_with_driver and cfg.opt != 2:
        compiler = functools.partial(compile_with_driver, opt=cfg.opt)
    if prebuilt is not None:
        compiled: CompileResult = prebuilt
        progress.say(f"compile   skipped: linking the prebuilt object {_rel(prebuilt.obj)}")
    else:
        paths = hypervisor_sources() if sources is None else sources
        if not paths:
            raise BuildError(f"no hypervisor sources under {_rel(HYPERVISOR_DIR)}")
        plural = "s" if len(paths) != 1 else ""
        with progress.stage("compile", f"{len(paths)} module{plural} -> {_rel(objdir)}/hypervisor.o"):
            try:
                compiled = compiler(paths, objdir / "hypervisor.o", {BOARD_MODULE: board_py})
            except BuildError:
                raise
            except Exception as e:  # a CompileError carries the diagnostics in its message
                kind = "" if type(e).__name__ == "CompileError" else f"{type(e).__name__}: "
                raise BuildError(f"compile failed: {kind}{e}") from e

    include_dirs = [gen]
    if compiled.offsets_asm is not None:
        # runtime/*.S include the struct offsets as "offsets.S" whatever the driver named the file.
        offsets = Path(compiled.offsets_asm)
        if offsets.resolve() != (gen / "offsets.S").resolve():
            shutil.copyfile(offsets, gen / "offsets.S")
    asm = list(runtime_sources() if runtime is None else runtime)
    if compiled.stubs_asm is not None:
        asm.append(Path(compiled.stubs_asm))
    objs = [Path(compiled.obj)]
    try:
        names = ", ".join(p.name for p in asm)
        with progress.stage("assemble", f"{len(asm)} file{'s' if len(asm) != 1 else ''} ({names})"):
            for src in asm:
                stem = src.stem if src.parent == RUNTIME_DIR else f"gen-{src.stem}"
                objs.append(toolchain.assemble(src, objdir / f"{stem}.o", include_dirs))

        elf = out / "pyshyper.elf"
        symtab_s = gen / "symtab.S"
        symtab_o = objdir / "symtab.o"
        with progress.stage("link", "pass 1 (empty symbol and line tables)"):
            symtab_s.write_text(render_symtab_asm([]))
            toolchain.assemble(symtab_s, symtab_o)
            toolchain.link([*objs, symtab_o], script, out / "pyshyper.pass1.elf")
            symbols = function_symbols(out / "pyshyper.pass1.elf")
            lines = line_rows(out / "pyshyper.pass1.elf")
        what = f"{len(symbols)} function symbols, {len(lines)} line rows embedded"
        with progress.stage("link", f"pass 2 ({what}) -> {_rel(elf)}"):
            symtab_s.write_text(render_symtab_asm(symbols, lines))
            toolchain.assemble(symtab_s, symtab_o)
            toolchain.link([*objs, symtab_o], script, elf, map_file=out / "pyshyper.map")
            moved = sorted(set(function_symbols(elf)) ^ set(symbols))
            if moved:
                raise BuildError(f"functions moved between link passes: {', '.join(s.name for s in moved[:5])}")
            if line_rows(elf) != lines:
                raise BuildError("the line table changed between link passes")
        binary = out / "pyshyper.bin"
        with progress.stage("image", f"{_rel(binary)}, post-link checks"):
            toolchain.objcopy_binary(elf, binary)
            errors = check_elf(elf, board.load_address, board.hypervisor)
            if errors:
                raise BuildError("post-link check failed:\n  " + "\n  ".join(errors))
            size = size_report(elf)
    except toolchain.ToolError as e:
        raise BuildError(str(e)) from None

    for line in size.lines(board.hypervisor):
        progress.say(f"size      {line}")
    if guests is None:
        guests = guest_dirs() if prebuilt is None and sources is None else []
    guest_outputs = build_guests(out, guests, quiet=quiet)
    seconds = time.perf_counter() - t_start
    stamp = {**cfg.key(), "elf": elf.name, "seconds": round(seconds, 3), "guests": [g.name for g in guest_outputs]}
    (out / STAMP).write_text(json.dumps(stamp, indent=2))
    progress.say(f"done      {_rel(elf)} in {seconds:.2f} s")
    return BuildOutput(cfg, elf, binary, size, seconds, guest_outputs, dtb.path)


def stale_reason(cfg: BuildConfig, out: Path = DEFAULT_OUT, guest: str | None = None) -> str | None:
    """Why the image in `out` must be rebuilt for `cfg`, or None when it is up to date. The test guests the last
    build made count as part of the image, and so does `guest` (a tests/guests/ name) when given."""
    elf = out / "pyshyper.elf"
    if not elf.is_file():
        return f"{_rel(elf)} is missing"
    try:
        stamp = json.loads((out / STAMP).read_text())
    except (OSError, ValueError):
        return "no build stamp"
    if any(stamp.get(k) != v for k, v in cfg.key().items()):
        return f"configuration changed ({stamp.get('irq')} -> {cfg.irq})"
    dtb = mvm_dtb_path(cfg, out)
    if not dtb.is_file():
        return f"{_rel(dtb)} is missing"
    built = elf.stat().st_mtime
    names = set(stamp.get("guests", ()))
    if guest is not None and (GUESTS_DIR / guest / "guest.py").is_file():
        names.add(guest)
    for name in sorted(names):
        image = out / "guests" / f"{name}.bin"
        if not image.is_file():
            return f"{_rel(image)} is missing"
        built = min(built, image.stat().st_mtime)
    for tree in SOURCE_TREES:
        for p in (ROOT / tree).rglob("*"):
            if p.suffix in SOURCE_SUFFIXES and "__pycache__" not in p.parts and p.stat().st_mtime > built:
                return f"{_rel(p)} changed"
    for p in (ROOT / "qemu").glob("*.py"):
        if p.stat().st_mtime > built:
            return f"{_rel(p)} changed"
    return None


def positive_int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, not {text!r}") from None


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    """The options that choose a build configuration (shared by `build` and `run`)."""
    p.add_argument("--board", default="qemu-virt", help="board data from boards/<BOARD>/board.toml (qemu-virt)")
    p.add_argument("--irq", default="plic", help="interrupt controller: plic or aia (APLIC + IMSIC)")
    p.add_argument(
        "--aia-guests",
        type=positive_int,
        default=None,
        metavar="N",
        help="guest interrupt files per hart with --irq aia (1..7, default 3)",
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR", help="output directory (build/)")
    p.add_argument(
        "--debug",
        action="store_true",
        help="compile the hypervisor without optimization (-O0): in gdb every Python line has code and every "
        "local a value (debug info is always there; -O2 inlines and keeps locals in registers)",
    )
    p.add_argument(
        "--stage2-leaf",
        choices=tuple(STAGE2_LEAF_SIZES),
        default="max",
        help="the largest leaf of the VMs' stage-2 tables: max (1 GiB, 2 MiB and, when the harts have Svnapot, "
        "64 KiB pages wherever a region is aligned; the default), 2m (no 1 GiB pages), or 4k (4 KiB pages only, "
        "to measure what large pages bring: just bench-boot --stage2)",
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("--no-guests", action="store_true", help="do not build the test guests under tests/guests/")
    p.add_argument(
        "--debug-faults",
        action="store_true",
        help="test builds only: let a guest make the hypervisor take a fault (checks the fault report)",
    )
    p.add_argument(
        "--mmio-decode",
        choices=("htinst", "fetch"),
        default="htinst",
        help="how a trapped MMIO access is decoded: from htinst when the hart gives it (default), or always from "
        "the guest's instruction read back with hlvx.hu (test builds: covers the path real hardware without "
        "htinst takes)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")


def config_from_args(args: argparse.Namespace) -> BuildConfig:
    """Raises BoardError with a one-line message for any bad choice."""
    cfg = make_config(args.board, args.irq, args.aia_guests)
    cfg = dataclasses.replace(cfg, stage2_leaf=getattr(args, "stage2_leaf", "max"))
    return dataclasses.replace(cfg, opt=0) if getattr(args, "debug", False) else cfg


def run_build(args: argparse.Namespace) -> int:
    """`pyshyper build`; a BoardError (bad options or board data) goes up to the CLI, which reports it."""
    cfg = config_from_args(args)
    if getattr(args, "debug_faults", False):
        cfg = dataclasses.replace(cfg, debug_faults=True)
    cfg = dataclasses.replace(cfg, mmio_decode=getattr(args, "mmio_decode", "htinst"))
    try:
        build(cfg, args.out, guests=[] if args.no_guests else None, quiet=args.quiet)
    except BuildError as e:
        print(f"pyshyper build: {e}", file=sys.stderr)
        return 1
    return 0
