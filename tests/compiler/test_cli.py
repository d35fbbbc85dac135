"""`pyshyper cc` as a user runs it: subprocesses of `python -m qemu.cli cc ...` (the `pyshyper` entry point) and
`python -m compiler.cli ...`, checking exit codes, diagnostics (never a traceback) and the files `emit` writes."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = Path(__file__).parent / "examples"
DEMO = EXAMPLES / "demo.py"

# main() of examples/demo.py, worked out by hand (see the comments in that file for the program):
#   VM k starts with acc = k + 1 and runs step i = 0..5 with opcode program[(i + k) % 6] and argument args[i],
#   program = (0 add, 1 mul, 2 xor a<<4, 3 sub, 1 mul, 0 add), args = (5, 3, 7, 2, 10, 1).
#   VM0: 1 +5=6 *3=18 ^112=98 -2=96 *10=960 +1=961          history 0,1,2,3,1,0   weighted 0+2+6+12+5+0 = 25
#   VM1: 2 *5=10 ^48=58 -7=51 *2=102 +10=112 +1=113        history 1,2,3,1,0,0   weighted 1+4+9+4+0+0 = 18
#   VM2: 3 ^80=83 -3=80 *7=560 +2=562 +10=572 *1=572       history 2,3,1,0,0,1   weighted 2+6+3+0+0+6 = 17
#   checksum (walking the `next` ring from VM0) = 961113572, weighted = 60, total_steps = 18
#   main() = (961113572 << 16) ^ (60 << 8) ^ 18 = 62987539054592 ^ 15360 ^ 18
DEMO_VALUE = 62987539069970
assert DEMO_VALUE == (961113572 << 16) ^ (60 << 8) ^ 18

GOOD = """\
from compiler.prelude import u32, u64


def add(a: u32, b: u32) -> u32:
    return a + b


def main() -> u64:
    return u64(add(40, 2))


def other() -> i64:
    return -7


@export("good_entry")
def entry(x: u32) -> u32:
    return add(x, 1)
""".replace("u32, u64", "export, i64, u32, u64")

BAD = """\
from compiler.prelude import u32, u64


def f(a: u32, b: u64) -> u64:
    x = a + b
    if a:
        return b
    y: u32 = b
    return u64(y)
"""


def cc(*args, module="qemu.cli", cwd=ROOT):
    argv = [sys.executable, "-m", module] + (["cc"] if module == "qemu.cli" else []) + [str(a) for a in args]
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=120)


def no_traceback(r):
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr


@pytest.fixture
def files(tmp_path):
    (tmp_path / "good.py").write_text(GOOD)
    (tmp_path / "bad.py").write_text(BAD)
    (tmp_path / "syntax.py").write_text("def f(:\n    return 1\n")
    return tmp_path


@pytest.mark.parametrize("module", ["qemu.cli", "compiler.cli"])
def test_check_good(files, module):
    r = cc("check", files / "good.py", module=module)
    assert r.returncode == 0, r.stderr
    no_traceback(r)


def test_check_bad_reports_every_error(files):
    r = cc("check", files / "bad.py")
    assert r.returncode == 1
    no_traceback(r)
    err = r.stderr
    for code, line, col in (("E202", 5, 9), ("E203", 6, 8), ("E201", 8, 14)):
        assert f"error[{code}]" in err, err
        assert f"--> {files / 'bad.py'}:{line}:{col}" in err, err
    lines = err.splitlines()
    i = lines.index(next(x for x in lines if x.startswith("error[E202]")))
    # the source line, then a caret line under `a + b`
    assert "x = a + b" in lines[i + 3]
    caret = lines[i + 4]
    assert caret.split("|", 1)[1] == "         ^^^^^", caret


def test_check_several_files(files):
    r = cc("check", files / "good.py", files / "bad.py")
    assert r.returncode == 1 and "error[E202]" in r.stderr


@pytest.mark.parametrize("args", [("check",), ("run",), ("run", "--cpython"), ("emit", "-o", "OUT.o")])
def test_missing_file(files, args):
    args = tuple(str(files / a) if a == "OUT.o" else a for a in args)
    r = cc(*args, files / "missing.py")
    assert r.returncode == 1
    no_traceback(r)
    assert "missing.py" in r.stderr


@pytest.mark.parametrize("args", [("check",), ("run",), ("run", "--cpython"), ("emit", "-o", "OUT.o")])
def test_syntax_error(files, args):
    args = tuple(str(files / a) if a == "OUT.o" else a for a in args)
    r = cc(*args, files / "syntax.py")
    assert r.returncode == 1
    no_traceback(r)
    assert "error[E100]" in r.stderr and f"{files / 'syntax.py'}:1:" in r.stderr


UNDECODABLE = {
    "random.py": bytes((i * 167 + 91) % 256 for i in range(600)),  # bytes that are no text at all
    "latin1.py": b"def f() -> None:\n    pass  # caf\xe9\n",  # latin-1 without a coding line
    "nosuch.py": b"# coding: nosuch\nx = 1\n",
}


@pytest.mark.parametrize("name", sorted(UNDECODABLE))
@pytest.mark.parametrize("args", [("check",), ("run",), ("run", "--cpython"), ("emit", "-o", "OUT.o")])
def test_undecodable_file(files, args, name):
    (files / name).write_bytes(UNDECODABLE[name])
    args = tuple(str(files / a) if a == "OUT.o" else a for a in args)
    r = cc(*args, files / name)
    assert r.returncode == 1
    no_traceback(r)
    assert "error[E100]" in r.stderr and f"{files / name}:" in r.stderr


DEEP = """\
from compiler.prelude import u64


def f(x: u64) -> u64:
    return {}


def main() -> u64:
    return f(1)
"""


@pytest.mark.parametrize("args", [("check",), ("run",), ("run", "--cpython")])
@pytest.mark.parametrize("n,code", [(330, None), (2001, "E150"), (100000, "E100")])
def test_long_flat_sum(files, args, n, code):
    """A flat sum of n operands on one line: runs, or is reported at the expression (E150 past 2000 levels, E100
    where CPython's parser itself gives up), never 'maximum recursion depth exceeded' without a code."""
    (files / "deep.py").write_text(DEEP.format(" + ".join(["x"] * n)))
    r = cc(*args, files / "deep.py")
    no_traceback(r)
    if code is None:
        out = r.stdout.strip().splitlines()
        assert r.returncode == 0 and (out[-1] if out else "") == ("" if args == ("check",) else "330")
    else:
        assert r.returncode == 1 and f"error[{code}]" in r.stderr and f"{files / 'deep.py'}:5:" in r.stderr, r.stderr


@pytest.mark.parametrize("cpython", [False, True])
def test_run(files, cpython):
    flags = ["--cpython"] if cpython else []
    r = cc("run", *flags, files / "good.py")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "42"
    r = cc("run", *flags, files / "good.py", "--entry", "other")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "-7"


@pytest.mark.parametrize("cpython", [False, True])
def test_run_unknown_entry(files, cpython):
    r = cc("run", *(["--cpython"] if cpython else []), files / "good.py", "--entry", "nope")
    assert r.returncode == 1
    no_traceback(r)
    assert "nope" in r.stderr


def test_demo_same_value_both_ways():
    host = cc("run", DEMO)
    cpy = cc("run", "--cpython", DEMO)
    assert host.returncode == 0, host.stderr
    assert cpy.returncode == 0, cpy.stderr
    assert host.stdout.splitlines()[-1] == cpy.stdout.splitlines()[-1] == str(DEMO_VALUE)


def test_demo_compiled_module_cli():
    r = cc("run", DEMO, module="compiler.cli")
    assert r.returncode == 0 and r.stdout.splitlines()[-1] == str(DEMO_VALUE)


def test_emit_llvm(files, tmp_path):
    out = tmp_path / "good.ll"
    r = cc("emit", files / "good.py", "--target", "riscv64", "--emit", "llvm", "-o", out)
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert 'target triple = "riscv64-unknown-none-elf"' in text
    assert 'define dso_local i32 @"good_entry"' in text or "@good_entry" in text


def test_emit_asm(files, tmp_path):
    out = tmp_path / "good.s"
    r = cc("emit", files / "good.py", "--target", "riscv64", "--emit", "asm", "-o", out)
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert "good_entry:" in text and "ret" in text
    assert "\x7fELF" not in text


@pytest.mark.parametrize("src", ["good", "demo"])
def test_emit_obj(files, tmp_path, src):
    from elftools.elf.elffile import ELFFile

    out = tmp_path / "out.o"
    r = cc("emit", files / "good.py" if src == "good" else DEMO, "--target", "riscv64", "--emit", "obj", "-o", out)
    assert r.returncode == 0, r.stderr
    with open(out, "rb") as f:
        assert f.read(4) == b"\x7fELF"
        f.seek(0)
        elf = ELFFile(f)
        assert elf["e_machine"] == "EM_RISCV"
        assert elf.elfclass == 64 and elf["e_type"] == "ET_REL"
        if src == "good":
            assert "good_entry" in {s.name for s in elf.get_section_by_name(".symtab").iter_symbols()}


def test_emit_bad_file(files, tmp_path):
    r = cc("emit", files / "bad.py", "--target", "riscv64", "--emit", "obj", "-o", tmp_path / "x.o")
    assert r.returncode == 1
    no_traceback(r)
    assert "error[E202]" in r.stderr


@pytest.mark.parametrize("sub", [[], ["check"], ["run"], ["emit"]])
@pytest.mark.parametrize("module", ["qemu.cli", "compiler.cli"])
def test_help(sub, module):
    r = cc(*sub, "--help", module=module)
    assert r.returncode == 0, r.stderr
    assert "usage:" in r.stdout
