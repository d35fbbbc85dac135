"""Compiler cases: every file in tests/compiler/cases/ runs under CPython (through compiler.prelude) and compiled
for the host (compiler.driver.run_host), and both must meet the file's expectations; every file in
tests/compiler/errors/ must make compiler.driver.check report exactly the diagnostics it expects.

Expectation format (one per line, anywhere in the file, usually at the end):

    #: f(1, -2) == 42              calling f with these integer arguments returns 42
    #: f(5) panics 1, 5, 4         calling f raises Panic(kind=1, a=5, b=4)   (a, b as u64 values, see LANGUAGE.md 9)

Arguments are integer literals (signed literals for signed parameters); the expected value is an integer literal
(a function returning bool gives 1 or 0).  Each expectation runs on a fresh program: new module objects, a clean
prelude memory and mock under CPython; a new compilation on the host.

A case is a single .py file or a directory (a multi-module program, e.g. cases/imports/) whose expectations are in
its main.py; the compiled side gets every .py file of the directory, main.py first, and the entry is looked up in
the first path.

Error files (tests/compiler/errors/*.py) carry one or more lines

    #! E202 12:17                  the checker reports code E202 at line 12, column 17

(columns 1-based: the first character of the offending node, as LANGUAGE.md 12 says for each code).  The set of
(code, line, col) reported must equal the set expected.
"""

import ast
import importlib
import os
import pickle
import re
import signal
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from compiler import prelude  # noqa: E402

CASES = Path(__file__).parent / "cases"
ERRORS = Path(__file__).parent / "errors"
CASE_PKG = "tests.compiler.cases"

EXPECT_RE = re.compile(
    r"^#:\s*(?P<fn>[A-Za-z_]\w*)\((?P<args>.*)\)\s*(?:==\s*(?P<value>.+?)|panics\s+(?P<panic>.+?))\s*$")
ERROR_RE = re.compile(r"^#!\s*(?P<code>E\d{3})\s+(?P<line>\d+):(?P<col>\d+)\s*$")


def _int_literal(text: str) -> int:
    v = ast.literal_eval(text.strip())
    if isinstance(v, bool):
        return int(v)
    if not isinstance(v, int):
        raise ValueError(f"not an integer literal: {text!r}")
    return v


def _int_tuple(text: str) -> tuple:
    text = text.strip()
    if not text:
        return ()
    v = ast.literal_eval(f"({text},)")
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        raise ValueError(f"arguments must be integer literals: {text!r}")
    return tuple(v)


class Expect:
    def __init__(self, path: Path, lineno: int, fn: str, args: tuple, value, panic):
        self.path, self.lineno, self.fn, self.args, self.value, self.panic = path, lineno, fn, args, value, panic

    def __repr__(self):
        want = f"== {self.value}" if self.panic is None else f"panics {self.panic}"
        return f"{self.fn}{self.args} {want}"


def _lines(path: Path) -> list:
    """The file's lines for its `#:` / `#!` lines, which are ASCII: any file decodes (a case may be in latin-1, an
    error file may not decode at all)."""
    return path.read_bytes().decode("latin-1").splitlines()


def parse_expectations(path: Path) -> list:
    out = []
    for n, line in enumerate(_lines(path), 1):
        if not line.startswith("#:"):
            continue
        m = EXPECT_RE.match(line)
        if m is None:
            raise ValueError(f"{path}:{n}: bad expectation line {line!r}")
        panic = None
        value = None
        if m["panic"] is not None:
            panic = _int_tuple(m["panic"])
            if len(panic) != 3:
                raise ValueError(f"{path}:{n}: `panics kind, a, b` needs three integers")
        else:
            value = _int_literal(m["value"])
        out.append(Expect(path, n, m["fn"], _int_tuple(m["args"]), value, panic))
    return out


def case_programs() -> list:
    """(case id, paths with the expectations' file first)"""
    progs = []
    for p in sorted(CASES.iterdir()):
        if p.name.startswith(("_", ".")):
            continue
        if p.is_dir():
            main = p / "main.py"
            if main.exists():
                others = sorted(q for q in p.glob("*.py") if q != main and q.name != "__init__.py")
                progs.append((p.name, [main] + others))
        elif p.suffix == ".py":
            progs.append((p.stem, [p]))
    return progs


def module_name(path: Path) -> str:
    return ".".join(path.resolve().relative_to(ROOT).with_suffix("").parts)


def _params():
    params = []
    for cid, paths in case_programs():
        for e in parse_expectations(paths[0]):
            params.append(pytest.param(paths, e, id=f"{cid}:{e.lineno}:{e.fn}"))
    return params


PARAMS = _params()


def _fresh_import(paths: list):
    prelude.install_import_hook([CASE_PKG])
    for name in [n for n in sys.modules if n == CASE_PKG or n.startswith(CASE_PKG + ".")]:
        del sys.modules[name]
    importlib.invalidate_caches()
    prelude.reset()
    return importlib.import_module(module_name(paths[0]))


def _check(e: Expect, call):
    if e.panic is not None:
        with pytest.raises(prelude.Panic) as info:
            call()
        got = (info.value.kind, info.value.a, info.value.b)
        want = (e.panic[0], e.panic[1] & (2**64 - 1), e.panic[2] & (2**64 - 1))
        assert got == want, f"{e}: got Panic{got}"
    else:
        got = call()
        assert isinstance(got, int), f"{e}: returned {got!r}"
        assert int(got) == e.value, f"{e}: got {int(got)} ({int(got):#x})"


def test_case_files_have_expectations():
    for cid, paths in case_programs():
        assert parse_expectations(paths[0]), f"case {cid} has no `#:` expectation"


@pytest.mark.parametrize("paths,e", PARAMS)
def test_cpython(paths, e):
    mod = _fresh_import(paths)
    fn = getattr(mod, e.fn)
    _check(e, lambda: fn(*e.args))


def isolated(fn, timeout: float = 120.0):
    """Run fn() in a forked child so that a crash of JIT-compiled code fails one test, not the whole session.
    Returns fn's result; re-raises a Panic or other exception it raised (as Panic / RuntimeError)."""
    if not hasattr(os, "fork"):
        return fn()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        try:
            try:
                res = ("ok", int(fn()))
            except prelude.Panic as p:
                res = ("panic", (p.kind, p.a, p.b))
            except BaseException as x:  # noqa: BLE001 - reported to the parent
                res = ("error", f"{type(x).__name__}: {x}")
            os.write(w, pickle.dumps(res))
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    while True:
        b = os.read(r, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        raise RuntimeError(f"compiled code crashed: {signal.Signals(sig).name}")
    kind, val = pickle.loads(b"".join(chunks))
    if kind == "ok":
        return val
    if kind == "panic":
        raise prelude.Panic(*val)
    raise RuntimeError(val)


@pytest.mark.parametrize("paths,e", PARAMS)
def test_compiled(paths, e, compiler_driver):
    prelude.reset()
    _check(e, lambda: isolated(lambda: compiler_driver.run_host([str(p) for p in paths], e.fn, e.args)))


# ---------------------------------------------------------------------------------------------------------------
# error files


def parse_errors(path: Path) -> set:
    out = set()
    for n, line in enumerate(_lines(path), 1):
        if line.startswith("#!"):
            m = ERROR_RE.match(line)
            if m is None:
                raise ValueError(f"{path}:{n}: bad error expectation {line!r}")
            out.add((m["code"], int(m["line"]), int(m["col"])))
    return out


ERROR_FILES = sorted(p for p in ERRORS.glob("*.py"))


def test_error_files_have_expectations():
    for p in ERROR_FILES:
        assert parse_errors(p), f"{p.name} has no `#!` expectation"
        code = p.name.split("_")[0]
        assert any(c == code for c, _, _ in parse_errors(p)), f"{p.name}: expects no {code}"


@pytest.mark.parametrize("path", ERROR_FILES, ids=[p.stem for p in ERROR_FILES])
def test_error(path, compiler_driver):
    want = parse_errors(path)
    diags = compiler_driver.check([str(path)])
    got = {(d.code, d.line, d.col) for d in diags}
    for d in diags:
        assert os.path.samefile(d.path, path), f"diagnostic for another file: {d.path}"
    detail = "\n".join(f"  {d.code} {d.line}:{d.col} {d.message}" for d in diags)
    assert got == want, f"{path.name}: expected {sorted(want)}, got:\n{detail}"
