"""Every ```python block of compiler/LANGUAGE.md is checked by the compiler (compiler.driver.check).

A block gets `from compiler.prelude import ...` for the prelude names it uses but does not import or define itself;
modules it imports from the program (`from hypervisor.core.vm import ...`) are supplied as small stub modules
(STUBS). A line ending in `# error: E123` (optionally followed by text) must be reported with that code on that
line; a block with no such line must check clean. Blocks that are not tagged `python` (the diagnostic sample) are
not code.
"""

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from compiler import driver, prelude  # noqa: E402

DOC = ROOT / "compiler" / "LANGUAGE.md"
BLOCK_RE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
ERROR_RE = re.compile(r"#\s*error:\s*(E\d{3})\b")

STUBS = {
    "hypervisor.core.vm": "from compiler.prelude import Final\n\nVM_MAX: Final = 8\n\n\ndef vm_start() -> None:\n"
                          "    pass\n",
}


def blocks():
    text = DOC.read_text()
    out = []
    for m in BLOCK_RE.finditer(text):
        line = text.count("\n", 0, m.start()) + 2  # the block's first line in LANGUAGE.md
        out.append(pytest.param(m.group(1), id=f"LANGUAGE.md:{line}"))
    return out


def _prelude_header(src: str) -> str:
    tree = ast.parse(src)
    defined, used = set(), set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Name):
            (defined if isinstance(n.ctx, ast.Store) else used).add(n.id)
        elif isinstance(n, (ast.FunctionDef, ast.ClassDef)):
            defined.add(n.name)
        elif isinstance(n, ast.ImportFrom):
            defined.update(a.name for a in n.names)
        elif isinstance(n, ast.arg):
            defined.add(n.arg)
    names = sorted((used - defined) & set(prelude.__all__) - {"len"})
    return f"from compiler.prelude import {', '.join(names)}\n" if names else ""


def test_doc_has_examples():
    assert len(blocks()) >= 8


@pytest.mark.parametrize("src", blocks())
def test_doc_example(src, tmp_path):
    header = _prelude_header(src)
    path = tmp_path / "doc_example.py"
    path.write_text(header + src)
    extra = {}
    for mod, text in STUBS.items():
        if f"from {mod} import" in src:
            p = tmp_path / (mod.replace(".", "_") + ".py")
            p.write_text(text)
            extra[mod] = p
    shift = header.count("\n")
    expected = {(m.group(1), i + 1 + shift) for i, line in enumerate(src.splitlines())
                for m in [ERROR_RE.search(line)] if m}
    diags = driver.check([path], extra)
    got = {(d.code, d.line) for d in diags}
    assert got == expected, "\n\n".join(d.render() for d in diags) or "no diagnostics"
