"""The project's import graph, read from the sources with `ast`: every import statement, those inside functions too
(`from a.b import c` imports a.b, or a.b.c when that is a module; the packages a and a.b that Python runs first are
not counted, so a package that re-exports its modules, like compiler.prelude, is no cycle). The rules:

1. The compiler (compiler/) imports nothing of the host side (pyshyper_host, the directory qemu/), the board data
   (boards/), the linker scripts (linker/), the hypervisor (hypervisor/) or the tests: it compiles them, they do not
   shape it.
2. boards/ and linker/ import nothing of the host side, the hypervisor or the tests: board data is read by the
   build, it does not run QEMU or the build (boards/ may not import linker/ either; linker/ reads boards/).
3. No module imports `qemu`: that is QEMU's own Python package (qemu.qmp); the host side is `pyshyper_host`.
4. No import cycles: among the modules of compiler/, boards/, linker/ and pyshyper_host, and among the host packages
   as wholes (boards, linker, and each subpackage of pyshyper_host: build, images, run, bench; a module directly in
   pyshyper_host is a node of its own).
5. hypervisor/core/ reaches the hart's registers only through arch's interface: no core module imports a CSR name
   (compiler/csrs.py's table: TIME, SIP, HVIP, HGATP, ...) or a csr_* intrinsic from compiler.prelude, and the
   arch modules core may import are the ones in CORE_MAY_IMPORT below.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from compiler.csrs import CSRS

ROOT = Path(__file__).resolve().parents[1]
HOST_DIR = ROOT / "qemu" / "pyshyper_host"

# The arch modules core code may import, and why each is arch's interface rather than its registers.
CORE_MAY_IMPORT = {
    "hypervisor.arch.riscv.encoding": "CSR field and interrupt-bit constants (values, not register accesses)",
    "hypervisor.arch.riscv.fpu": "a vCPU's FP and vector state (fpu_reset, fpu_enter, fpu_leave, fpu_forget)",
    "hypervisor.arch.riscv.hart": "the running hart's time, IPI acknowledge and VSEIP line",
    "hypervisor.arch.riscv.ipi": "an IPI to another hart (hart_ipi: the ACLINT SSWI or the firmware)",
    "hypervisor.arch.riscv.irqc": "the interrupt-controller interface (irqc_*)",
    "hypervisor.arch.riscv.plic": "the physical PLIC's functions behind the virtual PLIC",
    "hypervisor.arch.riscv.aplic": "the physical APLIC's register map and accessors behind the virtual APLIC",
    "hypervisor.arch.riscv.sbi_call": "calls to the firmware (SBI)",
    "hypervisor.arch.riscv.stage2": "the G-stage page tables of a VM",
    "hypervisor.arch.riscv.vcpu": "entering a vCPU and parking its hart",
}


def _module_name(path: Path) -> str:
    if path.is_relative_to(HOST_DIR):
        rel = Path("pyshyper_host") / path.relative_to(HOST_DIR)
    else:
        rel = path.relative_to(ROOT)
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    files = [p for d in ("compiler", "boards", "linker", "hypervisor") for p in (ROOT / d).rglob("*.py")]
    files += list(HOST_DIR.rglob("*.py"))
    # The tests' own modules; the compiler's test programs (some not Python on purpose) are inputs, not the project.
    inputs = [ROOT / "tests" / "compiler" / d for d in ("cases", "errors", "examples")]
    files += [p for p in (ROOT / "tests").rglob("*.py") if not any(p.is_relative_to(d) for d in inputs)]
    return {_module_name(p): p for p in files if "__pycache__" not in p.parts}


SOURCES = _sources()


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) for each import statement of the file: `import a.b` is ("a.b", []), `from a import b, c`
    is ("a", ["b", "c"])."""
    tree = ast.parse(path.read_bytes())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            assert node.module is not None
            out.append((node.module, [alias.name for alias in node.names]))
    return out


def _targets(module: str, names: list[str]) -> set[str]:
    """The modules an import statement names: the module, and the submodules of `from package import submodule`."""
    return {module} | {f"{module}.{n}" for n in names if f"{module}.{n}" in SOURCES}


def _graph() -> dict[str, set[str]]:
    """module -> the modules it imports (any module named, known to the project or not)."""
    graph: dict[str, set[str]] = {}
    for name, path in SOURCES.items():
        deps: set[str] = set()
        for module, names in _imports(path):
            deps |= _targets(module, names)
        deps.discard(name)
        graph[name] = deps
    return graph


GRAPH = _graph()


def _in(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def _violations(sources: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{m} imports {d}" for m, deps in GRAPH.items() if _in(m, *sources) for d in deps if _in(d, *forbidden)
    )


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph (as a path that returns to its start), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        path.append(n)
        for d in sorted(graph.get(n, ())):
            if state.get(d) == 1:
                return path[path.index(d) :] + [d]
            if d not in state and (found := visit(d)) is not None:
                return found
        path.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)) is not None:
            return found
    return None


def test_the_graph_sees_the_project():
    """The rules below check something: the host side, boards and the compiler are read, with their imports."""
    assert {"pyshyper_host.cli", "pyshyper_host.build.pipeline", "boards.mvm", "compiler.checker"} <= set(GRAPH)
    assert "boards.mvm" in GRAPH["pyshyper_host.build.pipeline"]
    assert "hypervisor.arch.riscv.hart" in GRAPH["hypervisor.core.vm"]


def test_compiler_imports_nothing_above_it():
    assert _violations(("compiler",), ("pyshyper_host", "boards", "linker", "hypervisor", "tests")) == []


def test_boards_and_linker_import_nothing_of_the_host_side():
    assert _violations(("boards", "linker"), ("pyshyper_host", "hypervisor", "tests")) == []
    assert _violations(("boards",), ("linker",)) == []


def test_nothing_imports_qemus_own_package():
    assert _violations(("compiler", "boards", "linker", "hypervisor", "pyshyper_host", "tests"), ("qemu",)) == []


HOST_MODULES = ("compiler", "boards", "linker", "pyshyper_host")


def test_no_module_cycles():
    graph = {m: {d for d in deps if _in(d, *HOST_MODULES)} for m, deps in GRAPH.items() if _in(m, *HOST_MODULES)}
    assert _cycle(graph) is None


def _host_package(module: str) -> str:
    """boards.mvm -> boards; pyshyper_host.build.pipeline -> pyshyper_host.build; pyshyper_host.cli stays."""
    parts = module.split(".")
    if parts[0] != "pyshyper_host":
        return parts[0]
    if len(parts) >= 2 and (HOST_DIR / parts[1]).is_dir():
        return ".".join(parts[:2])
    return module


def test_no_host_package_cycles():
    packages: dict[str, set[str]] = {}
    for m, deps in GRAPH.items():
        if _in(m, "boards", "linker", "pyshyper_host"):
            node = _host_package(m)
            targets = {_host_package(d) for d in deps if _in(d, "boards", "linker", "pyshyper_host")}
            packages.setdefault(node, set()).update(targets - {node})
    assert {"pyshyper_host.build", "pyshyper_host.images", "pyshyper_host.run", "pyshyper_host.bench"} <= set(packages)
    assert _cycle(packages) is None


def test_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


CORE = sorted(m for m in SOURCES if _in(m, "hypervisor.core"))


@pytest.mark.parametrize("module", CORE)
def test_core_reaches_registers_only_through_arch(module):
    bad = []
    for imported, names in _imports(SOURCES[module]):
        if imported == "compiler.prelude":
            bad += [n for n in names if n in CSRS or n.startswith("csr_")]
        elif _in(imported, "hypervisor.arch") and imported not in CORE_MAY_IMPORT:
            bad.append(imported)
    assert bad == [], f"{module}: {bad}"


def test_core_rule_catches_a_csr_import(tmp_path):
    p = tmp_path / "m.py"
    p.write_text("from compiler.prelude import TIME, Ptr, csr_read\nfrom hypervisor.arch.riscv.trap import x\n")
    names = [n for m, ns in _imports(p) if m == "compiler.prelude" for n in ns]
    assert [n for n in names if n in CSRS or n.startswith("csr_")] == ["TIME", "csr_read"]
    assert "hypervisor.arch.riscv.trap" not in CORE_MAY_IMPORT
