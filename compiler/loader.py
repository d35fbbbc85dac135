"""The loader: source files to parsed modules, following `from package.module import name` imports.

A file that does not decode or parse is E100; an expression nested deeper than the checker recurses is E150 and
is cut out before anything else sees it.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

from compiler.symbols import PRELUDE, Module

# Deepest expression nesting (a flat sum of MAX_DEPTH operands): CPython itself compiles about 3000 levels.
MAX_DEPTH = 2000


class TooDeep(ast.expr):
    """Stands for an expression nested deeper than MAX_DEPTH, already reported (E150)."""

    _fields = ()


def decode_source(data: bytes) -> tuple[str, tuple[int, int, str] | None]:
    """A source file's text, decoded as CPython decodes a module it imports (a UTF-8 BOM or a PEP 263 coding line,
    else UTF-8), and the (line, column, message) of the first thing that stops it, if any; bytes that do not
    decode are replaced in the text (it is still shown in diagnostics)."""
    try:
        enc, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as e:  # an unknown encoding, a BOM with another coding line, undecodable first lines
        line = next((i for i, ln in enumerate(data.split(b"\n", 2)[:2], 1) if _CODING.match(ln)), None)
        if line is not None:
            return data.decode("utf-8", errors="replace"), (line, 1, str(e))
        enc = "utf-8"  # no coding line: the strict decode below says where
    try:
        return data.decode(enc), None
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        hint = " (a file in another encoding declares it in a coding line, PEP 263)" if enc == "utf-8" else ""
        msg = f"the file is not valid {enc}: byte {data[e.start]:#04x} cannot be decoded{hint}"
        return data.decode(enc, errors="replace"), (line, col, msg)


def _deepest_line(text: str) -> tuple[int, int]:
    """Where the parser gave up on nesting: the start of the logical line with the most operators."""
    best, where, count, start = -1, (1, 1), 0, None
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if start is None and tok.type not in (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT):
                start = (tok.start[0], tok.start[1] + 1)
            if tok.type == tokenize.OP:
                count += 1
            elif tok.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
                if count > best and start is not None:
                    best, where = count, start
                count, start = 0, None
    except (tokenize.TokenError, SyntaxError):
        pass
    return where


_CODING = re.compile(rb"^[ \t\f]*#.*?coding[:=]")


def find_root(path: Path) -> Path:
    """The project root: the nearest parent holding pyproject.toml, else the file's own folder."""
    for p in [path.parent, *path.parent.parents]:
        if (p / "pyproject.toml").exists():
            return p
    return path.parent


def module_name(path: Path, root: Path) -> str:
    try:
        rel = path.resolve().relative_to(root.resolve())
    except ValueError:
        return path.stem
    parts = list(rel.with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


class Loader:
    """The Checker's first stage: `load` fills `modules`, and `order` with the files that parsed, in the order
    their imports reach them."""

    def load(self, paths: list[Path], extra: dict[str, Path], root: Path | None) -> Module:
        root = root or find_root(paths[0])
        self.root = root
        self.extra = {k: Path(v) for k, v in extra.items()}
        first = None
        for p in paths:
            m = self._load_file(Path(p), module_name(Path(p), root))
            first = first or m
        for name in list(self.extra):
            if name not in self.modules:
                self._load_file(self.extra[name], name)
        return first

    def _load_file(self, path: Path, name: str) -> Module:
        if name in self.modules:
            return self.modules[name]
        try:
            data = path.read_bytes()
        except OSError as e:
            m = Module(name, str(path), ast.Module(body=[], type_ignores=[]), [])
            self.modules[name] = m
            self.err("E100", f"cannot read {path}: {e.strerror}", None, m)
            return m
        text, bad = decode_source(data)
        lines = text.splitlines()
        if bad is None:
            try:
                tree = ast.parse(text, filename=str(path))
            except (SyntaxError, ValueError) as e:  # ValueError: NUL bytes (CPython before 3.11.4)
                msg = getattr(e, "msg", None) or str(e)
                bad = (getattr(e, "lineno", None) or 1, getattr(e, "offset", None) or 1, f"syntax error: {msg}")
            except (RecursionError, MemoryError):  # CPython's parser stops at about 3000 levels of nesting
                line, col = _deepest_line(text)
                bad = (line, col, "expression nested too deeply for CPython's parser: split it")
        if bad is not None:
            m = Module(name, str(path), ast.Module(body=[], type_ignores=[]), lines)
            self.modules[name] = m
            node = ast.Pass(lineno=bad[0], col_offset=max(bad[1], 1) - 1)
            self.err("E100", bad[2], node, m)
            return m
        m = Module(name, str(path), tree, lines)
        self.modules[name] = m
        self.order.append(m)
        self._cut_deep(m)
        for stmt in tree.body:
            if isinstance(stmt, ast.ImportFrom) and stmt.module and stmt.level == 0:
                if stmt.module in (PRELUDE, "__future__") or stmt.module in self.modules:
                    continue
                target = self._find_module(stmt.module, path)
                if target is not None:
                    self._load_file(target, stmt.module)
        return m

    def _cut_deep(self, m: Module) -> None:
        """An expression nested more than MAX_DEPTH levels (a flat sum of more operands) is E150, and is replaced by
        a `TooDeep` node that the checker takes as already rejected; everything below recurses per level."""
        heights: dict[int, int] = {}
        stack: list[tuple[ast.AST, bool]] = [(m.tree, False)]
        while stack:  # post-order, without recursion
            n, seen = stack.pop()
            kids = list(ast.iter_child_nodes(n))
            if not seen:
                stack.append((n, True))
                stack.extend((k, False) for k in kids)
                continue
            h = max((heights[id(k)] for k in kids), default=0)
            heights[id(n)] = h + 1 if isinstance(n, ast.expr) else h
        todo: list[ast.AST] = [m.tree]
        while todo:  # top-down: the first too-deep expression on each path is cut
            n = todo.pop()
            for fname, value in ast.iter_fields(n):
                items = value if isinstance(value, list) else [value]
                for i, k in enumerate(items):
                    if not isinstance(k, ast.AST):
                        continue
                    if isinstance(k, ast.expr) and heights[id(k)] > MAX_DEPTH:
                        self.err("E150", f"expression nested more than {MAX_DEPTH} levels deep: split it", k, m)
                        cut = ast.copy_location(TooDeep(), k)
                        if isinstance(value, list):
                            value[i] = cut
                        else:
                            setattr(n, fname, cut)
                    else:
                        todo.append(k)

    def _find_module(self, dotted: str, importer: Path) -> Path | None:
        if dotted in self.extra:
            return self.extra[dotted]
        rel = Path(*dotted.split("."))
        for base in (self.root, importer.parent):
            for cand in (base / rel.with_suffix(".py"), base / rel / "__init__.py"):
                if cand.exists():
                    return cand
        return None
