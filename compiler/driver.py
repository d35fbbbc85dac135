"""The compiler's entry points: check, emit LLVM/assembly/object for riscv64, and run on the host JIT.

Stages (each timed in `Timings`): load+check (compiler.checker), lower (compiler.lower), optimize
(LLVM new pass manager, -O2), emit (LLVM codegen; for riscv64 the assembly is then expanded by
compiler.asm and assembled by GNU as).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import llvmlite.binding as llvm

from compiler import asm as asmtools
from compiler.checker import Program, check_program, find_root
from compiler.diagnostics import CompileError, Diagnostic
from compiler.lower import lower_program

RISCV_TRIPLE = "riscv64-unknown-none-elf"
# No F/D: the hypervisor never touches the guest's FP registers. -relax: see DESIGN.md section 3.
RISCV_FEATURES = "+m,+a,+c,+zicsr,+zifencei,-relax"
GNU_AS = "riscv64-unknown-elf-as"
GNU_AS_FLAGS = ["-march=rv64imac_zicsr_zifencei_h", "-mabi=lp64", "-mno-relax"]
# With debug info: the line program GNU as makes from the `.loc` directives gets the compiler's DWARF version.
GNU_AS_DEBUG_FLAGS = ["--gdwarf-4"]

_initialized = False


def _init() -> None:
    global _initialized
    if not _initialized:
        llvm.initialize_all_targets()
        llvm.initialize_all_asmprinters()
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        _initialized = True


@dataclass
class Timings:
    stages: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, t0: float) -> float:
        now = time.perf_counter()
        self.stages[name] = self.stages.get(name, 0.0) + now - t0
        return now


def target_machine(target: str, opt: int = 2) -> llvm.TargetMachine:
    _init()
    if target == "riscv64":
        t = llvm.Target.from_triple(RISCV_TRIPLE)
        return t.create_target_machine(
            cpu="generic-rv64", features=RISCV_FEATURES, opt=opt, reloc="static", codemodel="medium"
        )
    if target == "host":
        t = llvm.Target.from_default_triple()
        return t.create_target_machine(opt=opt, reloc="default", codemodel="jitdefault")
    raise ValueError(f"unknown target {target!r} (riscv64 or host)")


@dataclass
class Compiled:
    program: Program
    tm: llvm.TargetMachine
    module: llvm.ModuleRef
    timings: Timings
    lines: int

    @property
    def llvm_ir(self) -> str:
        return str(self.module)


def compile_program(
    paths: list[str | Path],
    target: str = "riscv64",
    opt: int = 2,
    extra_modules: dict[str, Path] | None = None,
    root: Path | None = None,
    debug: bool = False,
) -> Compiled:
    """Check, lower and optimize; raises CompileError with every diagnostic. `debug`: with debug info (DWARF),
    its file names relative to the project root."""
    timings = Timings()
    t0 = time.perf_counter()
    prog = check_program([Path(p) for p in paths], extra_modules, root)
    t0 = timings.add("check", t0)
    debug_root = (root or find_root(Path(prog.main.path).resolve())).resolve() if debug else None
    irmod = lower_program(prog, target, debug_root)
    tm = target_machine(target, opt)
    irmod.triple = tm.triple
    irmod.data_layout = str(tm.target_data)
    text = str(irmod)
    if target == "riscv64":
        # Freestanding (like -fno-builtin): loops must not become calls to strlen/memset/memcpy.
        # runtime/libc.S still provides memset/memcpy/memmove for what codegen itself emits. Every definition,
        # whatever other attributes it has (`noinline` ones too: without it such a function could have a loop
        # turned into a memset call and, LLVM's inliner requiring caller and callee to agree on it, nothing could
        # be inlined into it).
        text = re.sub(r"^(define .*?\bnounwind\b)", r'\1 "no-builtins"', text, flags=re.M)
    t0 = timings.add("lower", t0)
    mod = llvm.parse_assembly(text)
    mod.verify()
    t0 = timings.add("verify", t0)
    if opt:
        pto = llvm.create_pipeline_tuning_options(speed_level=opt)
        pb = llvm.create_pass_builder(tm, pto)
        pb.getModulePassManager().run(mod, pb)
        if target == "riscv64":  # with and without debug info alike: the round trip itself may change codegen
            mod = _drop_constant_address_locations(mod)
    timings.add("optimize", t0)
    lines = sum(len(m.lines) for m in prog.order)
    return Compiled(prog, tm, mod, timings, lines)


# A variable's location that is a global's address (a pointer parameter of an inlined function, bound to a
# global): the RISC-V backend then keeps the address in a register for the DBG_VALUE, so `auipc; addi; lw 0` stays
# where the plain build folds it into `auipc; lw %pcrel_lo`, and -g would change the loaded code. Such a location
# is dropped (the debugger shows the variable as optimized out; the global itself has its own DWARF).
_CONSTANT_ADDRESS_LOCATION = re.compile(r"#dbg_value\(ptr (?:@[^,\s]+|getelementptr [^()]*\([^()]*\)),")


def _drop_constant_address_locations(mod):
    text = _CONSTANT_ADDRESS_LOCATION.sub("#dbg_value(ptr poison,", str(mod))
    out = llvm.parse_assembly(text)
    out.verify()
    return out


def check(paths: list[str | Path], extra_modules: dict[str, Path] | None = None) -> list[Diagnostic]:
    try:
        check_program([Path(p) for p in paths], extra_modules)
    except CompileError as e:
        return e.diagnostics
    return []


def riscv_assembly(c: Compiled) -> str:
    t0 = time.perf_counter()
    text = c.tm.emit_assembly(c.module)
    out = asmtools.expand_markers(text)
    c.timings.add("codegen", t0)
    return out


def assemble(asm_text: str, out_obj: Path, timings: Timings | None = None, debug: bool = False) -> None:
    if shutil.which(GNU_AS) is None:
        raise RuntimeError(f"{GNU_AS} not found: install binutils-riscv64-unknown-elf (make setup does it)")
    t0 = time.perf_counter()
    src = out_obj.with_suffix(".s")
    src.write_text(asm_text)
    flags = GNU_AS_FLAGS + (GNU_AS_DEBUG_FLAGS if debug else [])
    r = subprocess.run([GNU_AS, *flags, "-o", str(out_obj), str(src)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{GNU_AS} failed on {src}:\n{r.stderr}")
    if timings:
        timings.add("assemble", t0)


@dataclass
class BuildResult:
    obj: Path
    offsets_asm: Path
    asm: Path
    stubs_asm: Path | None  # privileged instructions are expanded inline: no stubs are needed
    timings: Timings
    lines: int
    program: Program


def build_riscv_object(
    paths: list[str | Path],
    out_obj: Path,
    extra_modules: dict[str, Path] | None = None,
    root: Path | None = None,
    debug: bool = True,
    opt: int = 2,
) -> BuildResult:
    """Compile a program to one riscv64 object, plus the `.equ` include of its struct offsets and constants.
    With DWARF (`debug`, the default: it is not part of the loaded image, only of the ELF)."""
    out_obj = Path(out_obj)
    out_obj.parent.mkdir(parents=True, exist_ok=True)
    c = compile_program(paths, "riscv64", opt, extra_modules, root, debug)
    text = riscv_assembly(c)
    assemble(text, out_obj, c.timings, debug)
    offsets = out_obj.with_name(out_obj.stem + "_offsets.S")
    offsets.write_text(asmtools.offsets_include(c.program))
    return BuildResult(out_obj, offsets, out_obj.with_suffix(".s"), None, c.timings, c.lines, c.program)


def compile_host(paths: list[str | Path], opt: int = 2, extra_modules: dict[str, Path] | None = None):
    from compiler.host import HostProgram

    c = compile_program(paths, "host", opt, extra_modules)
    return HostProgram(c)


def run_host(paths: list[str | Path], entry: str = "main", args: tuple[int, ...] = ()) -> int:
    return compile_host(paths).call(entry, *args)
