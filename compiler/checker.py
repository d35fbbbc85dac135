"""Loader, gate, symbols and type checker: from source files to a typed, resolved program.

Every expression node gets `.ty` (its type) and `.cv` (its constant value, or None); names get `.sym`.
Lowering (compiler/lower.py) reads only these annotations. All errors of a program are collected
before `CompileError` is raised.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import sys
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

from compiler import intrinsics as intr
from compiler.diagnostics import Reporter
from compiler.types import (
    BOOL,
    I64,
    INTS,
    LIT,
    U64,
    VOID,
    ArrayT,
    BoolT,
    FnT,
    IntT,
    LitT,
    MmioT,
    PtrT,
    StructT,
    Type,
    VoidT,
    alignof,
    is_int,
    layout_struct,
    sizeof,
)

PRELUDE = "compiler.prelude"


def _csrs() -> dict[str, int]:
    from compiler.csrs import CSRS

    return CSRS


PRELUDE_FUNCS = {
    "static",
    "cstr",
    "extern_addr",
    "len",
    "sizeof",
    "alignof",
    "offsetof",
    "addr_of",
    "null",
    "panic",
    "fence",
    "sbi_ecall",
    *intr.CSR_OPS,
    *intr.PRIV,
    *intr.ATOMICS,
    *intr.LRSC,
}
PRELUDE_TYPES = {"Ptr", "Array", "Mmio", "Callable", "Final"}
PRELUDE_DECOS = {"struct", "export", "extern", "inline", "noinline"}
# Field names that a Ptr or an array already uses (LANGUAGE.md 5): `p.addr()`, `p.offset(n)` and `a.unchecked[i]`
# would be ambiguous compiled and, under CPython, name the method instead of the field.
RESERVED_FIELDS = {
    "addr": "a field cannot be named `addr`: `p.addr()` of a Ptr to the struct is the pointer's address",
    "offset": "a field cannot be named `offset`: `p.offset(n)` of a Ptr to the struct moves the pointer",
    "unchecked": "a field cannot be named `unchecked`: `x.unchecked[i]` is unchecked indexing",
}
PY_BUILTINS = {"range", "len", "bool", "True", "False", "None"}


# ---------------------------------------------------------------- symbols


@dataclass(eq=False)
class Module:
    name: str
    path: str
    tree: ast.Module
    lines: list[str]
    scope: dict[str, object] = field(default_factory=dict)


@dataclass(eq=False)
class BuiltinSym:
    name: str


@dataclass(eq=False)
class TypeSym:
    ty: Type


@dataclass(eq=False)
class ConstSym:
    name: str
    module: Module
    node: ast.AST
    ty: Type | None = None
    value: int | None = None
    state: int = 0  # 0 new, 1 evaluating, 2 done


@dataclass(eq=False)
class GlobalSym:
    name: str
    module: Module
    node: ast.AST
    ty: Type | None = None
    init: object = None  # int, tuple of ints, or None
    align: int | None = None
    section: str | None = None
    export: str | None = None
    assigned: bool = False

    @property
    def symbol(self) -> str:
        return self.export or f"{self.module.name}.{self.name}"


@dataclass(eq=False)
class FuncSym:
    name: str
    module: Module
    node: ast.FunctionDef
    params: list[tuple[str, Type]] = field(default_factory=list)
    ret: Type = VOID
    export: str | None = None
    extern: str | None = None  # declared here, defined in assembly: the body is `...`
    inline: str | None = None
    calls: set = field(default_factory=set)
    locals: dict[str, LocalSym] = field(default_factory=dict)

    @property
    def symbol(self) -> str:
        return self.extern or self.export or f"{self.module.name}.{self.name}"

    @property
    def fnty(self) -> FnT:
        return FnT(tuple(t for _, t in self.params), self.ret)


@dataclass(eq=False)
class LocalSym:
    name: str
    ty: Type
    is_param: bool = False


# ---------------------------------------------------------------- loader

# Deepest expression nesting (a flat sum of MAX_DEPTH operands): CPython itself compiles about 3000 levels.
MAX_DEPTH = 2000


class TooDeep(ast.expr):
    """Stands for an expression nested deeper than MAX_DEPTH, already reported (E150)."""

    _fields = ()


@dataclass
class Program:
    modules: dict[str, Module]
    order: list[Module]
    funcs: list[FuncSym]
    globals: list[GlobalSym]
    structs: list[StructT]
    consts: list[ConstSym]
    main: Module


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


class Checker:
    def __init__(self) -> None:
        self.rep = Reporter()
        self.modules: dict[str, Module] = {}
        self.order: list[Module] = []
        self.funcs: list[FuncSym] = []
        self.globals: list[GlobalSym] = []
        self.structs: list[StructT] = []
        self.consts: list[ConstSym] = []
        self.mod: Module | None = None
        self.fn: FuncSym | None = None
        self.loop_depth = 0
        self.global_decls: set[str] = set()
        self.poisoned: set[str] = set()

    # -- errors
    def err(self, code: str, msg: str, node: ast.AST | None, mod: Module | None = None) -> None:
        m = mod or self.mod
        assert m is not None
        self.rep.error(code, msg, m.path, m.lines, node)

    # -- loading
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

    # -- declarations
    def declare_all(self) -> None:
        for m in self.order:
            self.mod = m
            self._declare(m)
        for m in self.order:
            self.mod = m
            self._resolve_imports(m)
        for s in self.structs:
            self._resolve_struct(s)
        for s in self.structs:
            self._layout(s, set())
        for c in self.consts:
            self._eval_const(c)
        for f in self.funcs:
            self._resolve_signature(f)
        for g in self.globals:
            self._resolve_global(g)
        self._check_symbols()

    def _check_symbols(self) -> None:
        """Every symbol of the object is defined once: `export=` statics, `@export` functions and the internal
        `module.name` symbols must all differ; `@extern` declarations of one symbol must agree on its signature."""
        seen: dict[str, object] = {}
        decls = sorted(
            [*self.funcs, *self.globals],
            key=lambda x: (self.order.index(x.module), x.node.lineno, x.node.col_offset),
        )
        for d in decls:
            sym = d.symbol
            first = seen.setdefault(sym, d)
            if first is d or not any(x.export or getattr(x, "extern", None) for x in (d, first)):
                continue  # two internal symbols meet only for a name defined twice in a module (E111 already)
            if isinstance(d, FuncSym) and isinstance(first, FuncSym) and d.extern and first.extern:
                if d.fnty == first.fnty:
                    continue
                what = f'`@extern("{sym}")` is declared with another signature ({first.fnty})'
            else:
                what = f"the symbol `{sym}` is defined twice in the program"
            node = d.node.decorator_list[0] if isinstance(d, FuncSym) and d.node.decorator_list else d.node
            self.err("E111", what, node, d.module)

    def _declare(self, m: Module) -> None:
        body = m.tree.body
        for i, stmt in enumerate(body):
            if (
                i == 0
                and isinstance(stmt, ast.Expr)
                and isinstance(stmt.value, ast.Constant)
                and isinstance(stmt.value.value, str)
            ):
                continue
            if isinstance(stmt, ast.ImportFrom):
                if stmt.level != 0 or not stmt.module:
                    self.err("E101", "only `from package.module import name` imports are allowed", stmt)
                    continue
                for a in stmt.names:
                    if a.name == "*" or a.asname:
                        self.err("E101", "imports must name each imported name, without `*` or `as`", stmt)
            elif isinstance(stmt, ast.Import):
                self.err("E101", "only `from package.module import name` imports are allowed", stmt)
            elif isinstance(stmt, ast.FunctionDef):
                self._bind(m, stmt.name, FuncSym(stmt.name, m, stmt), stmt)
                self.funcs.append(m.scope[stmt.name])  # type: ignore[arg-type]
            elif isinstance(stmt, ast.ClassDef):
                if not any(self._deco_name(d) == "struct" for d in stmt.decorator_list):
                    self.err("E110", "classes must be `@struct` classes", stmt)
                    continue
                st = StructT(stmt.name, m.name)
                st.node = stmt  # type: ignore[attr-defined]
                st.mod = m  # type: ignore[attr-defined]
                self._bind(m, stmt.name, TypeSym(st), stmt)
                self.structs.append(st)
            elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                name = stmt.target.id
                if self._is_final(stmt.annotation):
                    if stmt.value is None:
                        self.err("E209", f"Final constant `{name}` needs a value", stmt)
                        continue
                    c = ConstSym(name, m, stmt)
                    self._bind(m, name, c, stmt)
                    self.consts.append(c)
                else:
                    g = GlobalSym(name, m, stmt)
                    self._bind(m, name, g, stmt)
                    self.globals.append(g)
            elif (
                isinstance(stmt, ast.Assign)
                and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)
                and isinstance(stmt.value, ast.Call)
                and isinstance(stmt.value.func, ast.Name)
                and stmt.value.func.id == "static"
            ):
                g = GlobalSym(stmt.targets[0].id, m, stmt)
                self._bind(m, g.name, g, stmt)
                self.globals.append(g)
            elif isinstance(stmt, ast.If) and self._is_main_guard(stmt.test):
                continue
            elif isinstance(stmt, ast.Pass):
                continue
            elif isinstance(stmt, ast.Assign):
                self.err(
                    "E110",
                    "a module-level assignment must be a `Final` constant, an annotated global or `static(...)`",
                    stmt,
                )
            else:
                self.err("E110", f"`{type(stmt).__name__}` is not allowed at module level", stmt)

    @staticmethod
    def _is_main_guard(test: ast.expr) -> bool:
        return isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"

    def _bind(self, m: Module, name: str, sym: object, node: ast.AST) -> None:
        if name in m.scope:
            self.err("E111", f"`{name}` is defined twice in this module", node)
        m.scope[name] = sym

    @staticmethod
    def _deco_name(d: ast.expr) -> str:
        if isinstance(d, ast.Call):
            d = d.func
        return d.id if isinstance(d, ast.Name) else ""

    @staticmethod
    def _is_final(ann: ast.expr) -> bool:
        if isinstance(ann, ast.Subscript):
            ann = ann.value
        return isinstance(ann, ast.Name) and ann.id == "Final"

    def _resolve_imports(self, m: Module) -> None:
        for stmt in m.tree.body:
            if not isinstance(stmt, ast.ImportFrom) or stmt.level != 0 or not stmt.module:
                continue
            if stmt.module == "__future__":
                continue
            for a in stmt.names:
                if a.name == "*" or a.asname:
                    continue
                if stmt.module == PRELUDE:
                    sym = self._prelude_sym(a.name)
                    if sym is None:
                        self.err("E103", f"`{PRELUDE}` has no name `{a.name}`", stmt)
                        continue
                else:
                    src = self.modules.get(stmt.module)
                    if src is None:
                        self.err("E102", f"no module `{stmt.module}` in this program", stmt)
                        break
                    sym = src.scope.get(a.name)
                    if sym is None:
                        self.err("E103", f"module `{stmt.module}` has no name `{a.name}`", stmt)
                        continue
                m.scope.setdefault(a.name, sym)

    def _prelude_sym(self, name: str) -> object | None:
        if name in INTS:
            return TypeSym(INTS[name])
        if name in PRELUDE_TYPES or name in PRELUDE_FUNCS or name in PRELUDE_DECOS:
            return BuiltinSym(name)
        if name in ("Panic", "mock"):
            return BuiltinSym(name)
        csrs = _csrs()
        if name in csrs:
            c = ConstSym(name, self.mod, None, U64, csrs[name], 2)  # type: ignore[arg-type]
            c.is_csr = True  # type: ignore[attr-defined]
            return c
        return None

    def lookup(self, name: str) -> object | None:
        if self.fn is not None and name in self.fn.locals:
            return self.fn.locals[name]
        assert self.mod is not None
        if name in self.mod.scope:
            return self.mod.scope[name]
        if name in PY_BUILTINS:
            return BuiltinSym(name)
        return None

    # -- type expressions
    def type_expr(self, e: ast.expr, allow_void: bool = False) -> Type | None:
        if isinstance(e, ast.Constant) and e.value is None:
            if allow_void:
                return VOID
        elif isinstance(e, ast.Constant) and isinstance(e.value, str):
            try:
                inner = ast.parse(e.value, mode="eval").body
            except SyntaxError:
                inner = None
            if inner is not None:
                ast.copy_location(inner, e)
                for n in ast.walk(inner):
                    ast.copy_location(n, e)
                return self.type_expr(inner, allow_void)
        elif isinstance(e, ast.Name):
            sym = self.lookup(e.id)
            if isinstance(sym, TypeSym):
                return sym.ty
            if isinstance(sym, BuiltinSym) and sym.name == "bool":
                return BOOL
            if sym is None:
                self.err("E151", f"unknown name `{e.id}`", e)
                return None
        elif isinstance(e, ast.Subscript) and isinstance(e.value, ast.Name):
            head = e.value.id
            sym = self.lookup(head)
            args = e.slice.elts if isinstance(e.slice, ast.Tuple) else [e.slice]
            if isinstance(sym, BuiltinSym):
                if head == "Ptr" and len(args) == 1:
                    t = self.type_expr(args[0])
                    return PtrT(t) if t else None
                if head == "Mmio" and len(args) == 1:
                    t = self.type_expr(args[0])
                    if t is not None and not isinstance(t, IntT):
                        self.err("E153", f"Mmio registers are integers, not {t}", args[0])
                        return None
                    return MmioT(t) if t else None
                if head == "Array" and len(args) == 2:
                    t = self.type_expr(args[0])
                    n = self.const_int(args[1])
                    if n is not None and n <= 0:
                        self.err("E153", "an array length must be positive", args[1])
                        return None
                    return ArrayT(t, n) if t is not None and n is not None else None
                if head == "Callable" and len(args) == 2 and isinstance(args[0], ast.List):
                    ps = [self.type_expr(a) for a in args[0].elts]
                    r = self.type_expr(args[1], allow_void=True)
                    if None in ps or r is None:
                        return None
                    for a, p in zip(args[0].elts, ps, strict=True):
                        if p.is_aggregate:
                            self.err("E310", "aggregates are places, not values: pass a Ptr", a)
                    return FnT(tuple(ps), r)  # type: ignore[arg-type]
                if head == "Final" and len(args) == 1:
                    return self.type_expr(args[0])
        self.err("E153", "not a type of this language", e)
        return None

    # -- structs
    def _resolve_struct(self, s: StructT) -> None:
        node: ast.ClassDef = s.node  # type: ignore[attr-defined]
        self.mod = s.mod  # type: ignore[attr-defined]
        for stmt in node.body:
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                continue
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is None:
                if stmt.target.id in RESERVED_FIELDS:
                    self.err("E112", RESERVED_FIELDS[stmt.target.id], stmt.target)
                    continue
                t = self.type_expr(stmt.annotation)
                if t is not None:
                    s.fields.append((stmt.target.id, t))
            elif isinstance(stmt, ast.Pass):
                continue
            else:
                self.err("E112", "a @struct body holds only annotated fields", stmt)
        if not s.fields:
            self.err("E112", f"struct `{s.name}` has no fields", node)

    def _layout(self, s: StructT, seen: set) -> None:
        if s.size or s in seen:
            if s in seen and not s.size:
                self.err("E112", f"struct `{s.name}` contains itself", s.node, s.mod)  # type: ignore[attr-defined]
            return
        seen.add(s)
        for _, t in s.fields:
            while isinstance(t, ArrayT):
                t = t.elem
            if isinstance(t, StructT):
                self._layout(t, seen)
        if not s.size:
            layout_struct(s)
        s.size = s.size or 1

    # -- constants
    def const_int(self, e: ast.expr) -> int | None:
        t = self.expr(e)
        if t is None:
            return None
        if e.cv is None or not is_int(t):  # type: ignore[attr-defined]
            self.err("E209", "a constant integer expression is needed here", e)
            return None
        return e.cv  # type: ignore[attr-defined]

    def _eval_const(self, c: ConstSym) -> None:
        if c.state == 2:
            return
        if c.state == 1:
            self.err("E209", f"constant `{c.name}` depends on itself", c.node, c.module)
            c.state, c.ty, c.value = 2, LIT, 0
            return
        c.state = 1
        saved, self.mod, saved_fn = self.mod, c.module, self.fn
        self.fn = None
        node: ast.AnnAssign = c.node  # type: ignore[assignment]
        want = None
        if isinstance(node.annotation, ast.Subscript):
            want = self.type_expr(node.annotation.slice)
        t = self.expr(node.value, want)
        if t is not None and node.value.cv is None:  # type: ignore[attr-defined]
            self.err("E209", f"constant `{c.name}` must be a constant expression", node.value)
        elif t is not None and not (is_int(t) or isinstance(t, BoolT)):
            self.err("E209", f"constant `{c.name}` must be an integer or bool", node.value)
        c.ty = t or LIT
        c.value = getattr(node.value, "cv", 0) or 0
        c.state = 2
        self.mod, self.fn = saved, saved_fn

    # -- globals
    def _resolve_global(self, g: GlobalSym) -> None:
        self.mod = g.module
        node = g.node
        if isinstance(node, ast.AnnAssign):
            g.ty = self.type_expr(node.annotation)
            if g.ty is None:
                return
            if g.ty.is_aggregate:
                self.err("E310", "an aggregate global is made with `static(T, ...)`", node)
                return
            if node.value is not None:
                t = self.expr(node.value, g.ty)
                if t is not None and getattr(node.value, "builtin", None) == "null":
                    if t != g.ty:
                        self.err("E205", f"initial value must be a {g.ty}, not {t}", node.value)
                    return
                if t is not None and node.value.cv is None:  # type: ignore[attr-defined]
                    self.err("E209", "a global's initial value must be a constant", node.value)
                elif t is not None:
                    self.coerce(node.value, g.ty)
                    g.init = node.value.cv  # type: ignore[attr-defined]
            return
        call: ast.Call = node.value  # type: ignore[attr-defined]
        if not call.args:
            self.err("E152", "static(T, init=..., align=N, section=S) needs a type", call)
            return
        g.ty = self.type_expr(call.args[0])
        if len(call.args) > 1:
            self.err("E152", "static takes its options as keywords", call.args[1])
        for kw in call.keywords:
            if kw.arg == "align":
                a = self.const_int(kw.value)
                if a is not None and (a <= 0 or a & (a - 1)):
                    self.err("E209", "align must be a power of two", kw.value)
                g.align = a
            elif kw.arg in ("section", "export"):
                if not (isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str)):
                    self.err("E209", f"{kw.arg} must be a string literal", kw.value)
                else:
                    setattr(g, kw.arg, kw.value.value)
            elif kw.arg == "init":
                if g.ty is None:
                    continue
                g.init = self._static_init(kw.value, g.ty)
            else:
                self.err("E152", f"static has no option `{kw.arg}`", kw.value)

    def _static_init(self, e: ast.expr, t: Type) -> object:
        if isinstance(t, ArrayT) and isinstance(e, ast.Tuple):
            if len(e.elts) > t.n:
                self.err("E204", f"{len(e.elts)} initial values for {t}", e)
                return None
            return tuple(self._static_init(x, t.elem) for x in e.elts)
        if t.is_aggregate:
            self.err("E209", f"init of {t} must be a tuple of constants", e)
            return None
        tt = self.expr(e, t)
        if tt is None:
            return None
        if isinstance(t, FnT) and isinstance(getattr(e, "sym", None), FuncSym):
            if tt != t:
                self.err("E205", f"init value must be a {t}, not {tt}", e)
            return e.sym  # type: ignore[attr-defined]
        if e.cv is None:  # type: ignore[attr-defined]
            self.err("E209", "init values must be constants", e)
            return None
        self.coerce(e, t)
        return e.cv  # type: ignore[attr-defined]

    # -- functions
    def _resolve_signature(self, f: FuncSym) -> None:
        self.mod = f.module
        node = f.node
        a = node.args
        if a.vararg or a.kwarg or a.kwonlyargs or a.defaults or a.kw_defaults or a.posonlyargs:
            self.err("E131", "functions take plain positional parameters only", node)
        for arg in a.args:
            if arg.annotation is None:
                self.err("E130", f"parameter `{arg.arg}` needs a type annotation", arg)
                continue
            t = self.type_expr(arg.annotation)
            if t is None:
                continue
            if t.is_aggregate:
                self.err("E310", "aggregates are places, not values: take a Ptr parameter", arg.annotation)
                continue
            f.params.append((arg.arg, t))
        if node.returns is not None:
            r = self.type_expr(node.returns, allow_void=True)
            if r is not None and r.is_aggregate:
                self.err("E310", "aggregates are places, not values: return a Ptr", node.returns)
            else:
                f.ret = r or VOID
        for d in node.decorator_list:
            name = self._deco_name(d)
            if (
                name in ("export", "extern")
                and isinstance(d, ast.Call)
                and len(d.args) == 1
                and isinstance(d.args[0], ast.Constant)
                and isinstance(d.args[0].value, str)
            ):
                setattr(f, name, d.args[0].value)
                if name == "extern" and not self._is_ellipsis_body(node.body):
                    self.err("E135", "an @extern function's body is `...`: it is defined in assembly", node)
            elif name in ("inline", "noinline") and isinstance(d, ast.Name):
                f.inline = name
            else:
                self.err("E131", 'decorators are @export("symbol"), @inline and @noinline', d)

    @staticmethod
    def _is_ellipsis_body(body: list[ast.stmt]) -> bool:
        body = [
            s
            for s in body
            if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) and isinstance(s.value.value, str))
        ]
        return (
            len(body) == 1
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and body[0].value.value is Ellipsis
        )

    def check_bodies(self) -> None:
        for f in self.funcs:
            if f.extern:
                continue
            self.mod, self.fn = f.module, f
            self.global_decls = set()
            self.poisoned: set[str] = set()
            for name, t in f.params:
                f.locals[name] = LocalSym(name, t, True)
            self.loop_depth = 0
            self.block(f.node.body)
            if not isinstance(f.ret, VoidT) and not self.terminates(f.node.body):
                self.err("E134", f"`{f.name}` can reach its end without returning a {f.ret}", f.node)
        self.fn = None
        self._check_recursion()

    def _check_recursion(self) -> None:
        """E140 once per set of mutually recursive functions (a strongly connected component of the call graph with
        a cycle), at the def of its function that comes first in the program: modules in load order, functions in
        source order (LANGUAGE.md 7)."""
        order = {f: i for i, f in enumerate(self.funcs)}
        index: dict[FuncSym, int] = {}
        low: dict[FuncSym, int] = {}
        stack: list[FuncSym] = []
        on_stack: set[FuncSym] = set()
        sccs: list[list[FuncSym]] = []
        for root in self.funcs:  # Tarjan's algorithm, without recursion
            if root in index:
                continue
            work = [(root, iter(sorted(root.calls, key=order.__getitem__)))]
            index[root] = low[root] = len(index)
            stack.append(root)
            on_stack.add(root)
            while work:
                f, it = work[-1]
                g = next(it, None)
                if g is not None:
                    if g not in index:
                        index[g] = low[g] = len(index)
                        stack.append(g)
                        on_stack.add(g)
                        work.append((g, iter(sorted(g.calls, key=order.__getitem__))))
                    elif g in on_stack:
                        low[f] = min(low[f], index[g])
                    continue
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[f])
                if low[f] == index[f]:
                    comp = []
                    while True:
                        h = stack.pop()
                        on_stack.discard(h)
                        comp.append(h)
                        if h is f:
                            break
                    if len(comp) > 1 or f in f.calls:
                        sccs.append(sorted(comp, key=order.__getitem__))
        for comp in sccs:
            first = comp[0]
            names = " -> ".join(x.name for x in self._cycle_from(first, set(comp), order))
            self.err("E140", f"recursion is not allowed (bounded stacks): {names}", first.node, first.module)

    @staticmethod
    def _cycle_from(first: FuncSym, comp: set, order: dict) -> list[FuncSym]:
        """A shortest call cycle through `first` inside its component, for the message."""
        prev: dict[FuncSym, FuncSym | None] = {first: None}
        queue = [first]
        for f in queue:
            for g in sorted(f.calls & comp, key=order.__getitem__):
                if g is first:
                    path = [f]
                    while prev[path[-1]] is not None:
                        path.append(prev[path[-1]])  # type: ignore[arg-type]
                    return path[::-1] + [first]
                if g not in prev:
                    prev[g] = f
                    queue.append(g)
        return [first, first]

    def terminates(self, body: list[ast.stmt]) -> bool:
        """Whether control cannot leave the end of body (E134, LANGUAGE.md 7): one of its statements is a `return`,
        a `panic(...)` call, an `if` whose branches that can run all terminate (a constant condition runs one), a
        `while` whose condition is constant true and which has no `break` of its own, or an `assert` of a constant
        false condition. A `for` loop never counts, nor does a condition that is not constant."""
        for s in body:
            if isinstance(s, ast.Return):
                return True
            if isinstance(s, ast.If):
                cv = getattr(s.test, "cv", None)
                if cv is not None and self.terminates(s.body if cv else s.orelse):
                    return True
                if cv is None and s.orelse and self.terminates(s.body) and self.terminates(s.orelse):
                    return True
            if isinstance(s, ast.While) and getattr(s.test, "cv", None) == 1:
                if not any(isinstance(n, ast.Break) for n in self._loop_level_nodes(s.body)):
                    return True
            if isinstance(s, ast.Assert) and getattr(s.test, "cv", None) == 0:
                return True
            if (
                isinstance(s, ast.Expr)
                and isinstance(s.value, ast.Call)
                and isinstance(s.value.func, ast.Name)
                and s.value.func.id == "panic"
            ):
                return True
        return False

    def _loop_level_nodes(self, body: list[ast.stmt]):
        for s in body:
            yield s
            if isinstance(s, (ast.While, ast.For)):
                continue
            for child in ast.iter_child_nodes(s):
                if isinstance(child, ast.stmt):
                    yield from self._loop_level_nodes([child])

    # ------------------------------------------------------------ statements
    def block(self, body: list[ast.stmt]) -> None:
        for i, s in enumerate(body):
            if (
                i == 0
                and isinstance(s, ast.Expr)
                and isinstance(s.value, ast.Constant)
                and isinstance(s.value.value, str)
            ):
                continue
            self.stmt(s)

    def stmt(self, s: ast.stmt) -> None:
        m = getattr(self, "s_" + type(s).__name__, None)
        if m is None:
            code = "E131" if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) else "E150"
            what = {"FunctionDef": "nested functions", "ClassDef": "classes inside functions"}.get(
                type(s).__name__, f"`{type(s).__name__}` statements"
            )
            self.err(code, f"{what} are not part of the language", s)
            return
        m(s)
        # A literal form that nothing gave a type (e.g. `(1 << n) == (1 << m)` folded away) is i64.
        for child in ast.iter_child_nodes(s):
            if isinstance(child, ast.expr):
                for n in ast.walk(child):
                    if isinstance(getattr(n, "ty", None), LitT) and getattr(n, "cv", 0) is None:
                        self.coerce(n, I64)

    def s_Pass(self, s: ast.Pass) -> None:
        pass

    def s_Global(self, s: ast.Global) -> None:
        for n in s.names:
            sym = self.mod.scope.get(n)  # type: ignore[union-attr]
            if not isinstance(sym, GlobalSym):
                self.err("E121", f"`global {n}` names no global of this module", s)
            self.global_decls.add(n)

    def s_Expr(self, s: ast.Expr) -> None:
        if not isinstance(s.value, ast.Call):
            self.err("E150", "an expression statement must be a call", s)
            return
        self.expr(s.value, want_void_ok=True)

    def s_Return(self, s: ast.Return) -> None:
        f = self.fn
        assert f is not None
        if s.value is None:
            if not isinstance(f.ret, VoidT):
                self.err("E206", f"`{f.name}` must return a {f.ret}", s)
            return
        if isinstance(f.ret, VoidT):
            self.err("E206", f"`{f.name}` returns no value", s.value)
            return
        t = self.expr(s.value, f.ret)
        if t is not None:
            self.expect(s.value, f.ret, "E206", "return value")

    def s_Assert(self, s: ast.Assert) -> None:
        self.cond(s.test)

    def s_If(self, s: ast.If) -> None:
        self.cond(s.test)
        self.block(s.body)
        self.block(s.orelse)

    def s_While(self, s: ast.While) -> None:
        self.cond(s.test)
        if s.orelse:
            self.err("E132", "`while ... else` is not part of the language", s.orelse[0])
        self.loop_depth += 1
        self.block(s.body)
        self.loop_depth -= 1

    def s_For(self, s: ast.For) -> None:
        if s.orelse:
            self.err("E132", "`for ... else` is not part of the language", s.orelse[0])
        it = s.iter
        if not (
            isinstance(it, ast.Call)
            and isinstance(it.func, ast.Name)
            and it.func.id == "range"
            and 1 <= len(it.args) <= 3
            and not it.keywords
        ):
            self.err(
                "E133", "`for` loops only over `range(stop)`, `range(start, stop)` or `range(start, stop, step)`", it
            )
            return
        if not isinstance(s.target, ast.Name):
            self.err("E133", "the loop variable must be a plain name", s.target)
            return
        args = it.args
        if len(args) == 3:
            step = self.const_int(args[2])
            if step == 0:
                self.err("E133", "range step must not be zero", args[2])
            s.step = step or 1  # type: ignore[attr-defined]
            bounds = args[:2]
        else:
            s.step = 1  # type: ignore[attr-defined]
            bounds = args if len(args) == 2 else [ast.copy_location(ast.Constant(0), args[0]), args[0]]
        s.bounds = bounds  # type: ignore[attr-defined]
        name = s.target.id
        existing = self.fn.locals.get(name)  # type: ignore[union-attr]
        want = existing.ty if existing else None
        ts = [self.expr(b, want) for b in bounds]
        if None in ts:
            return
        typed = [t for t in ts if isinstance(t, IntT)]
        ty = want or (typed[0] if typed else I64)
        for b in bounds:
            if not self.expect(b, ty, "E202", "range bound"):
                return
        if existing is None:
            self.fn.locals[name] = LocalSym(name, ty)  # type: ignore[union-attr]
        s.target.sym = self.fn.locals[name]  # type: ignore[union-attr,attr-defined]
        s.target.ty = ty  # type: ignore[attr-defined]
        self.loop_depth += 1
        self.block(s.body)
        self.loop_depth -= 1

    def s_Break(self, s: ast.stmt) -> None:
        if self.loop_depth == 0:
            self.err("E150", "`break` outside a loop", s)

    s_Continue = s_Break

    def s_AnnAssign(self, s: ast.AnnAssign) -> None:
        if not isinstance(s.target, ast.Name):
            self.err("E312", "only a plain local can be annotated", s.target)
            return
        t = self.type_expr(s.annotation)
        if t is None:
            return
        name = s.target.id
        if name in self.fn.locals:  # type: ignore[union-attr]
            old = self.fn.locals[name].ty  # type: ignore[union-attr]
            if old != t:
                self.err("E201", f"`{name}` is a {old}; it cannot become a {t}", s.target)
                return
        if s.value is None:
            if t.is_aggregate:
                self.err("E310", "an aggregate local is made by its constructor: `x = T()`", s)
            self.fn.locals[name] = LocalSym(name, t)  # type: ignore[union-attr]
            s.target.sym = self.fn.locals[name]  # type: ignore[attr-defined]
            return
        self._assign_name(s.target, s.value, t)

    def s_Assign(self, s: ast.Assign) -> None:
        if len(s.targets) != 1:
            self.err("E312", "one target per assignment", s)
            return
        tgt = s.targets[0]
        if isinstance(tgt, ast.Name):
            self._assign_name(tgt, s.value, None)
        elif isinstance(tgt, (ast.Attribute, ast.Subscript)):
            t = self.place(tgt)
            if t is None:
                self.expr(s.value)
                return
            if t.is_aggregate:
                self.err("E310", "aggregates are places, not values: they cannot be assigned", s)
                return
            if self.expr(s.value, t) is not None:
                self.expect(s.value, t, "E205", "assigned value")
        else:
            self.err("E312", "cannot assign to this", tgt)

    def _assign_name(self, tgt: ast.Name, value: ast.expr, declared: Type | None) -> None:
        f = self.fn
        assert f is not None
        name = tgt.id
        local = f.locals.get(name)
        if local is None and declared is None:
            sym = self.mod.scope.get(name)  # type: ignore[union-attr]
            if isinstance(sym, ConstSym):
                self.err("E120", f"`{name}` is a Final constant", tgt)
                return
            if isinstance(sym, GlobalSym):
                if name not in self.global_decls:
                    self.err("E121", f"assigning the global `{name}` needs `global {name}` first", tgt)
                    return
                if sym.ty is None:
                    return
                if sym.ty.is_aggregate:
                    self.err("E310", "aggregates are places, not values: they cannot be assigned", tgt)
                    return
                tgt.sym = sym  # type: ignore[attr-defined]
                if self.expr(value, sym.ty) is not None:
                    self.expect(value, sym.ty, "E205", "assigned value")
                return
        want = local.ty if local else declared
        if want is None or want.is_aggregate:
            ctor = self._constructor_type(value)
            if ctor is not None:
                if want is not None and want != ctor:
                    self.err("E201", f"`{name}` is a {want}; it cannot become a {ctor}", value)
                    return
                if local is None:  # a later `x = T()` makes the same local zeroed again (LANGUAGE.md 5)
                    f.locals[name] = LocalSym(name, ctor)
                tgt.sym = f.locals[name]  # type: ignore[attr-defined]
                value.ty, value.cv, value.ctor = ctor, None, True  # type: ignore[attr-defined]
                return
            if want is not None:
                self.err("E310", "an aggregate local is made by its constructor: `x = T()`", value)
                return
        t = self.expr(value, want)
        if t is None:
            if local is None:
                if want is not None:
                    f.locals[name] = LocalSym(name, want)
                    tgt.sym = f.locals[name]  # type: ignore[attr-defined]
                else:
                    self.poisoned.add(name)  # its type is unknown: later uses report nothing more
            return
        if t.is_aggregate:
            self.err("E310", "aggregates are places, not values: take addr_of(...)", value)
            return
        if isinstance(t, VoidT):
            self.err("E205", "this call has no value", value)
            return
        if want is None:
            want = I64 if isinstance(t, LitT) else t
            self.coerce(value, want)
            f.locals[name] = LocalSym(name, want)
        elif not self.expect(value, want, "E201", f"`{name}`"):
            if local is None:
                f.locals[name] = LocalSym(name, want)
                tgt.sym = f.locals[name]  # type: ignore[attr-defined]
            return
        if local is None and declared is not None:
            f.locals[name] = LocalSym(name, want)
        tgt.sym = f.locals[name]  # type: ignore[attr-defined]

    def _constructor_type(self, e: ast.expr) -> Type | None:
        if not isinstance(e, ast.Call) or e.args or e.keywords:
            return None
        if isinstance(e.func, ast.Name):
            sym = self.lookup(e.func.id)
            if isinstance(sym, TypeSym) and isinstance(sym.ty, StructT):
                return sym.ty
        if isinstance(e.func, ast.Subscript) and isinstance(e.func.value, ast.Name) and e.func.value.id == "Array":
            t = self.type_expr(e.func)
            return t
        return None

    def s_AugAssign(self, s: ast.AugAssign) -> None:
        tgt = s.target
        if isinstance(tgt, ast.Name):
            sym = self.lookup(tgt.id)
            if isinstance(sym, GlobalSym) and tgt.id not in self.global_decls:
                self.err("E121", f"assigning the global `{tgt.id}` needs `global {tgt.id}` first", tgt)
                return
            if isinstance(sym, ConstSym):
                self.err("E120", f"`{tgt.id}` is a Final constant", tgt)
                return
        t = self.place(tgt)
        if t is None:
            return
        fake = ast.BinOp(left=tgt, op=s.op, right=s.value)
        ast.copy_location(fake, s)
        fake.end_col_offset = s.end_col_offset
        s.binop = fake  # type: ignore[attr-defined]
        saved = tgt.ty  # type: ignore[attr-defined]
        fake.cv = None  # type: ignore[attr-defined]
        r = self.binop_types(fake, t)
        fake.ty = r  # type: ignore[attr-defined]
        fake.cv = None  # type: ignore[attr-defined]
        tgt.ty = saved  # type: ignore[attr-defined]
        if r is not None and r != t:
            self.err("E205", f"`{ast.unparse(tgt)}` is a {t}; the result is a {r}", s)

    # ------------------------------------------------------------ expressions
    def cond(self, e: ast.expr) -> None:
        t = self.expr(e, BOOL)
        if t is not None and not isinstance(t, BoolT):
            self.err("E203", f"a condition must be a bool, not {t} (write `x != 0`)", e)

    def expect(self, e: ast.expr, want: Type, code: str, what: str) -> bool:
        t = e.ty  # type: ignore[attr-defined]
        if isinstance(t, LitT) and isinstance(want, (IntT, BoolT)):
            if isinstance(want, BoolT):
                self.err(code, f"{what} must be a bool, not an integer", e)
                return False
            return self.coerce(e, want)
        if t != want:
            self.err(code, f"{what} must be a {want}, not {t}", e)
            return False
        return True

    def coerce(self, e: ast.expr, t: Type) -> bool:
        """Give an untyped literal expression the type t, checking that its value fits. A literal form that is not
        constant (`1 << n`, `4 if c else 8`, and arithmetic of such forms) takes t down to its literals."""
        if not isinstance(e.ty, LitT) or not isinstance(t, IntT):  # type: ignore[attr-defined]
            return True
        v = e.cv  # type: ignore[attr-defined]
        if v is None:
            e.ty = t  # type: ignore[attr-defined]
            if isinstance(e, ast.BinOp):
                ok = self.coerce(e.left, t)
                return ok and (isinstance(e.op, (ast.LShift, ast.RShift)) or self.coerce(e.right, t))
            if isinstance(e, ast.IfExp):
                return self.coerce(e.body, t) and self.coerce(e.orelse, t)
            if isinstance(e, ast.UnaryOp):
                return self.coerce(e.operand, t)
            return True
        if v is None or not (t.min <= v <= t.max):
            self.err("E204", f"{v} does not fit in {t} ({t.min}..{t.max})", e)
            e.ty = t  # type: ignore[attr-defined]
            e.cv = t.wrap(v or 0)  # type: ignore[attr-defined]
            return False
        e.ty = t  # type: ignore[attr-defined]
        return True

    def expr(self, e: ast.expr, want: Type | None = None, want_void_ok: bool = False) -> Type | None:
        e.cv = None  # type: ignore[attr-defined]
        m = getattr(self, "e_" + type(e).__name__, None)
        if m is None:
            self.err("E150", f"`{type(e).__name__}` expressions are not part of the language", e)
            t = None
        else:
            t = m(e, want)
        if isinstance(t, VoidT) and not want_void_ok:
            self.err("E205", "this call has no value", e)
            t = None
        e.ty = t  # type: ignore[attr-defined]
        return t

    def e_Constant(self, e: ast.Constant, want: Type | None) -> Type | None:
        v = e.value
        if isinstance(v, bool):
            e.cv = int(v)  # type: ignore[attr-defined]
            return BOOL
        if isinstance(v, int):
            e.cv = v  # type: ignore[attr-defined]
            return LIT
        self.err("E150", f"{type(v).__name__} values are not part of the language", e)
        return None

    def e_Name(self, e: ast.Name, want: Type | None) -> Type | None:
        sym = self.lookup(e.id)
        e.sym = sym  # type: ignore[attr-defined]
        if sym is None and self.fn is not None and e.id in self.poisoned:
            return None
        if sym is None:
            self.err("E151", f"unknown name `{e.id}`", e)
            return None
        if isinstance(sym, LocalSym):
            return sym.ty
        if isinstance(sym, GlobalSym):
            if sym.ty is None:
                self._resolve_global(sym)
            return sym.ty
        if isinstance(sym, ConstSym):
            if sym.state != 2:
                saved = self.mod
                self._eval_const(sym)
                self.mod = saved
            e.cv = sym.value  # type: ignore[attr-defined]
            return sym.ty
        if isinstance(sym, FuncSym):
            if self.fn is not None:
                self.fn.calls.add(sym)
            return sym.fnty
        if isinstance(sym, BuiltinSym) and sym.name in ("True", "False"):
            e.cv = int(sym.name == "True")  # type: ignore[attr-defined]
            return BOOL
        self.err("E151", f"`{e.id}` is not a value", e)
        return None

    def e_UnaryOp(self, e: ast.UnaryOp, want: Type | None) -> Type | None:
        if isinstance(e.op, ast.Not):
            t = self.expr(e.operand, BOOL)
            if t is None:
                return None
            if not isinstance(t, BoolT):
                self.err("E203", f"`not` takes a bool, not {t}", e.operand)
                return None
            if e.operand.cv is not None:  # type: ignore[attr-defined]
                e.cv = int(not e.operand.cv)  # type: ignore[attr-defined]
            return BOOL
        t = self.expr(e.operand, want)
        if t is None:
            return None
        if not is_int(t):
            self.err("E208", f"unary `{ast.unparse(e)[0]}` needs an integer, not {t}", e)
            return None
        v = e.operand.cv  # type: ignore[attr-defined]
        if v is not None:
            r = {ast.USub: -v, ast.UAdd: v, ast.Invert: ~v}[type(e.op)]
            e.cv = t.wrap(r) if isinstance(t, IntT) else r  # type: ignore[attr-defined]
        return t

    def binop_types(self, e: ast.BinOp, want: Type | None) -> Type | None:
        lt = self.expr(e.left, want)
        shift = isinstance(e.op, (ast.LShift, ast.RShift))
        rt = self.expr(e.right, None if shift else (lt if isinstance(lt, IntT) else want))
        if lt is None or rt is None:
            return None
        opname = type(e.op).__name__
        if type(e.op) not in _FOLD:
            self.err("E208", f"operator `{opname}` is not part of the language", e)
            return None
        for side, t in ((e.left, lt), (e.right, rt)):
            if not is_int(t):
                self.err("E208", f"arithmetic needs integers, not {t}", side)
                return None
        if shift:
            t = lt
            if isinstance(rt, LitT) and e.right.cv is None:  # type: ignore[attr-defined]
                self.coerce(e.right, I64)  # a literal form as a count has no context: i64
        elif isinstance(lt, LitT) and isinstance(rt, IntT):
            self.coerce(e.left, rt)
            t = rt
        elif isinstance(rt, LitT) and isinstance(lt, IntT):
            self.coerce(e.right, lt)
            t = lt
        elif lt != rt:
            self.err("E202", f"operands have types {lt} and {rt}", e)
            return None
        else:
            t = lt
        a, b = e.left.cv, e.right.cv  # type: ignore[attr-defined]
        if isinstance(e.op, (ast.FloorDiv, ast.Mod)) and b == 0:
            self.err("E210", "division by a constant zero", e)
            return t
        if a is not None and b is not None:
            e.cv = _fold(e.op, a, b, t)  # type: ignore[attr-defined]
        elif isinstance(t, LitT) and isinstance(want, IntT):
            # a literal form that is not constant takes the context's type; with no context yet it stays a
            # literal form (LIT, no value) until the other operand or its consumer gives one (else i64)
            e.ty = LIT  # type: ignore[attr-defined]
            self.coerce(e, want)
            t = want
        return t

    def e_BinOp(self, e: ast.BinOp, want: Type | None) -> Type | None:
        return self.binop_types(e, want)

    def e_BoolOp(self, e: ast.BoolOp, want: Type | None) -> Type | None:
        ok = True
        for v in e.values:
            t = self.expr(v, BOOL)
            if t is not None and not isinstance(t, BoolT):
                self.err("E203", f"`{'and' if isinstance(e.op, ast.And) else 'or'}` takes bools, not {t}", v)
                ok = False
        cvs = [v.cv for v in e.values]  # type: ignore[attr-defined]
        if ok and None not in cvs:
            e.cv = int(all(cvs) if isinstance(e.op, ast.And) else any(cvs))  # type: ignore[attr-defined]
        return BOOL

    def e_Compare(self, e: ast.Compare, want: Type | None) -> Type | None:
        if len(e.ops) != 1:
            self.err("E207", "chained comparisons are not part of the language", e)
            return None
        op = e.ops[0]
        right = e.comparators[0]
        if isinstance(op, (ast.Is, ast.IsNot, ast.In, ast.NotIn)):
            self.err("E208", "comparisons are == != < <= > >=", e)
            return None
        lt = self.expr(e.left)
        rt = self.expr(right, lt if isinstance(lt, (IntT, BoolT)) else None)
        if lt is None or rt is None:
            return None
        if isinstance(lt, LitT) and isinstance(rt, IntT):
            self.coerce(e.left, rt)
            lt = rt
        elif isinstance(rt, LitT) and isinstance(lt, IntT):
            self.coerce(right, lt)
            rt = lt
        elif isinstance(lt, LitT) and isinstance(rt, LitT) and None in (e.left.cv, right.cv):  # type: ignore
            self.coerce(e.left, I64)  # literal forms with no typed side compare as i64
            self.coerce(right, I64)
            lt = rt = I64
        if lt != rt:
            self.err("E202", f"operands have types {lt} and {rt}", e)
            return None
        if isinstance(lt, BoolT) and not isinstance(op, (ast.Eq, ast.NotEq)):
            self.err("E208", "bools compare only with == and !=", e)
            return None
        if not (is_int(lt) or isinstance(lt, BoolT)):
            self.err("E208", f"{lt} values do not compare; compare their .addr()", e)
            return None
        a, b = e.left.cv, right.cv  # type: ignore[attr-defined]
        if a is not None and b is not None:
            e.cv = int(_CMP[type(op)](a, b))  # type: ignore[attr-defined]
        return BOOL

    def e_IfExp(self, e: ast.IfExp, want: Type | None) -> Type | None:
        self.cond(e.test)
        a = self.expr(e.body, want)
        b = self.expr(e.orelse, a if isinstance(a, (IntT, BoolT)) else want)
        if a is None or b is None:
            return None
        if isinstance(a, LitT) and isinstance(b, IntT):
            self.coerce(e.body, b)
            a = b
        elif isinstance(b, LitT) and isinstance(a, IntT):
            self.coerce(e.orelse, a)
            b = a
        if a != b:
            self.err("E202", f"both branches must have one type, not {a} and {b}", e)
            return None
        if a.is_aggregate:
            self.err("E310", "aggregates are places, not values", e)
            return None
        tv, av, bv = e.test.cv, e.body.cv, e.orelse.cv  # type: ignore[attr-defined]
        if tv is not None and av is not None and bv is not None:
            e.cv = av if tv else bv  # type: ignore[attr-defined]
        elif isinstance(a, LitT) and isinstance(want, IntT):
            e.ty = LIT  # type: ignore[attr-defined]
            self.coerce(e, want)
            a = want
        return a

    def e_Attribute(self, e: ast.Attribute, want: Type | None) -> Type | None:
        return self.place(e)

    def e_Subscript(self, e: ast.Subscript, want: Type | None) -> Type | None:
        return self.place(e)

    def place(self, e: ast.expr) -> Type | None:
        """Type a place: a name, a field, an element. Aggregate places may only be used as places."""
        t = self._place(e)
        e.ty = t  # type: ignore[attr-defined]
        if not hasattr(e, "cv"):
            e.cv = None  # type: ignore[attr-defined]
        return t

    def _place(self, e: ast.expr) -> Type | None:
        if isinstance(e, ast.Name):
            t = self.expr(e)
            if t is not None and not isinstance(e.sym, (LocalSym, GlobalSym)):  # type: ignore[attr-defined]
                self.err("E312", f"`{e.id}` is not a variable", e)
                return None
            return t
        if isinstance(e, ast.Attribute):
            bt = self.expr(e.value)
            e.cv = None  # type: ignore[attr-defined]
            if bt is None:
                return None
            st = bt.target if isinstance(bt, PtrT) else bt
            if isinstance(st, StructT):
                i = st.field_index(e.attr)
                if i < 0:
                    self.err("E154", f"struct {st.name} has no field `{e.attr}`", e)
                    return None
                e.deref = isinstance(bt, PtrT)  # type: ignore[attr-defined]
                e.ty = st.fields[i][1]  # type: ignore[attr-defined]
                return e.ty  # type: ignore[attr-defined]
            self.err("E154", f"{bt} has no field `{e.attr}`", e)
            return None
        if isinstance(e, ast.Subscript):
            unchecked = False
            base = e.value
            if isinstance(base, ast.Attribute) and base.attr == "unchecked":
                bt = self.expr(base.value)
                if bt is not None and not isinstance(bt, ArrayT):
                    self.err("E154", f"`.unchecked` is for arrays, not {bt}", base)
                    return None
                base.ty = bt  # type: ignore[attr-defined]
                unchecked = True
                e.base = base.value  # type: ignore[attr-defined]
            else:
                bt = self.expr(base)
                e.base = base  # type: ignore[attr-defined]
            e.unchecked = unchecked  # type: ignore[attr-defined]
            e.cv = None  # type: ignore[attr-defined]
            if isinstance(e.slice, ast.Slice):
                self.err("E150", "slices are not part of the language", e.slice)
                return None
            it = self.expr(e.slice, I64)
            if bt is None or it is None:
                return None
            if not is_int(it):
                self.err("E205", f"an index must be an integer, not {it}", e.slice)
                return None
            if isinstance(it, LitT):
                if isinstance(bt, ArrayT) and not (0 <= e.slice.cv < bt.n):  # type: ignore[attr-defined]
                    self.err("E204", f"index {e.slice.cv} is outside {bt}", e.slice)  # type: ignore[attr-defined]
                self.coerce(e.slice, I64)
            if isinstance(bt, ArrayT):
                return bt.elem
            if isinstance(bt, PtrT):
                return bt.target
            self.err("E154", f"{bt} cannot be indexed", e)
            return None
        t = self.expr(e)
        if t is not None:
            self.err("E312", "this is a value, not a place", e)
        return None

    # -- calls
    def e_Call(self, e: ast.Call, want: Type | None) -> Type | None:
        e.kind = None  # type: ignore[attr-defined]
        if e.keywords and not (isinstance(e.func, ast.Name) and e.func.id == "static"):
            self.err("E152", "keyword arguments are not part of the language", e.keywords[0].value)
            return None
        f = e.func
        if isinstance(f, ast.Name):
            sym = self.lookup(f.id)
            if sym is None:
                self.err("E151", f"unknown name `{f.id}`", f)
                for a in e.args:
                    self.expr(a)
                return None
            if isinstance(sym, FuncSym):
                if self.fn is not None:
                    self.fn.calls.add(sym)
                e.kind, e.target = "direct", sym  # type: ignore[attr-defined]
                return self.args(e, list(sym.fnty.params), sym.ret, f.id)
            if isinstance(sym, TypeSym):
                if isinstance(sym.ty, IntT):
                    return self.conversion(e, sym.ty)
                self.err("E310", f"`{f.id}()` makes a place: use it only as `x = {f.id}()`", e)
                return None
            if isinstance(sym, BuiltinSym):
                return self.builtin_call(e, sym.name, want)
            if isinstance(sym, (LocalSym, GlobalSym)):
                return self.indirect(e)
            self.err("E152", f"`{f.id}` is not callable", f)
            return None
        if isinstance(f, ast.Subscript) and isinstance(f.value, ast.Name) and f.value.id in ("Ptr", "Mmio"):
            t = self.type_expr(f)
            e.kind = "make_ptr"  # type: ignore[attr-defined]
            if len(e.args) != 1:
                self.err("E152", f"{f.value.id}[T](addr) takes one address", e)
                return None
            at = self.expr(e.args[0], U64)
            if at is not None:
                self.expect(e.args[0], U64, "E205", "an address")
            return t
        if isinstance(f, ast.Subscript) and isinstance(f.value, ast.Name) and f.value.id == "Array":
            self.err("E310", "`Array[T, N]()` makes a place: use it only as `x = Array[T, N]()`", e)
            return None
        if isinstance(f, ast.Attribute):
            bt = None
            if not (isinstance(f.value, ast.Name) and isinstance(self.lookup(f.value.id), (TypeSym, BuiltinSym))):
                bt = self.expr(f.value)
            if isinstance(bt, PtrT) and f.attr in ("addr", "offset"):
                return self.method(e, bt, f.attr)
            if isinstance(bt, MmioT) and f.attr in ("read", "write", "offset", "addr"):
                return self.method(e, bt, f.attr)
            if bt is not None and isinstance(bt.target if isinstance(bt, PtrT) else bt, StructT):
                return self.indirect(e)
            if bt is not None:
                self.err("E154", f"{bt} has no method `{f.attr}`", f)
            elif not hasattr(f.value, "ty"):
                self.err("E152", "not callable", f)
            return None
        if isinstance(f, ast.Subscript):
            return self.indirect(e)
        self.err("E152", "not callable", f)
        return None

    def indirect(self, e: ast.Call) -> Type | None:
        ft = self.expr(e.func)
        if ft is None:
            return None
        if not isinstance(ft, FnT):
            self.err("E152", f"a {ft} is not callable", e.func)
            return None
        e.kind = "indirect"  # type: ignore[attr-defined]
        return self.args(e, list(ft.params), ft.ret, "function pointer")

    def args(self, e: ast.Call, params: list[Type], ret: Type, what: str) -> Type | None:
        if len(e.args) != len(params):
            self.err("E152", f"{what} takes {len(params)} arguments, not {len(e.args)}", e)
            for a in e.args:
                self.expr(a)
            return ret
        for a, p in zip(e.args, params, strict=True):
            t = self.expr(a, p)
            if t is not None:
                if t.is_aggregate:
                    self.err("E310", "aggregates are places, not values: pass addr_of(...)", a)
                    continue
                self.expect(a, p, "E205", "argument")
        return ret

    def conversion(self, e: ast.Call, t: IntT | BoolT) -> Type | None:
        e.kind = "convert"  # type: ignore[attr-defined]
        if len(e.args) != 1:
            self.err("E152", f"{t}(x) converts one value", e)
            return None
        a = e.args[0]
        at = self.expr(a, None)
        if at is None:
            return None
        if not (is_int(at) or isinstance(at, BoolT)):
            self.err("E205", f"cannot convert {at} to {t}", a)
            return None
        v = a.cv  # type: ignore[attr-defined]
        if isinstance(at, LitT) and v is None:  # a literal form: a conversion gives it no context, so i64
            self.coerce(a, I64)
        elif isinstance(at, LitT):
            # A literal converts if it fits the width read signed or unsigned, and is taken modulo 2**bits
            # (LANGUAGE.md 3): u8(-1) == 255, i8(0xFF) == -1, u8(-129) and i8(256) are E204.
            lo, hi = -(1 << (t.bits - 1)) if isinstance(t, IntT) else 0, (1 << t.bits) - 1 if isinstance(t, IntT) else 0
            if isinstance(t, IntT) and not lo <= v <= hi:
                self.err("E204", f"{v} does not fit in the {t.bits} bits of {t} ({lo}..{hi})", a)
                return t
            a.ty = I64 if -(1 << 63) <= v < (1 << 63) else U64  # type: ignore[attr-defined]
            a.cv = a.ty.wrap(v)  # type: ignore[attr-defined]
        if v is not None:
            e.cv = int(v != 0) if isinstance(t, BoolT) else t.wrap(v)  # type: ignore[attr-defined]
        return t

    def method(self, e: ast.Call, bt: Type, name: str) -> Type | None:
        e.kind, e.method = "method", name  # type: ignore[attr-defined]
        if name == "addr":
            return self.args(e, [], U64, ".addr()")
        if name == "offset":
            if len(e.args) != 1:
                self.err("E152", ".offset(n) takes one count", e)
                return None
            t = self.expr(e.args[0], I64)
            if t is not None and not is_int(t):
                self.err("E205", f"an offset must be an integer, not {t}", e.args[0])
            elif isinstance(t, LitT):
                self.coerce(e.args[0], I64)
            return bt
        if name == "read":
            return self.args(e, [], bt.elem, ".read()")  # type: ignore[attr-defined]
        return self.args(e, [bt.elem], VOID, ".write(v)")  # type: ignore[attr-defined]

    def builtin_call(self, e: ast.Call, name: str, want: Type | None) -> Type | None:
        e.kind, e.builtin = "builtin", name  # type: ignore[attr-defined]
        a = e.args
        if name == "bool":
            return self.conversion(e, BOOL)
        if name in ("sizeof", "alignof"):
            if len(a) != 1:
                self.err("E152", f"{name}(T) takes one type", e)
                return None
            t = self.type_expr(a[0])
            if t is None:
                return None
            e.cv = sizeof(t) if name == "sizeof" else alignof(t)  # type: ignore[attr-defined]
            return U64
        if name == "offsetof":
            if len(a) != 2 or not (isinstance(a[1], ast.Constant) and isinstance(a[1].value, str)):
                self.err("E152", 'offsetof(T, "field") takes a struct and a field name', e)
                return None
            t = self.type_expr(a[0])
            if t is None:
                return None
            if not isinstance(t, StructT) or t.field_index(a[1].value) < 0:
                self.err("E154", f"{t} has no field `{a[1].value}`", a[1])
                return None
            e.cv = t.offsets[a[1].value]  # type: ignore[attr-defined]
            return U64
        if name == "len":
            if len(a) != 1:
                self.err("E152", "len(a) takes one array", e)
                return None
            t = self.place(a[0]) if isinstance(a[0], (ast.Name, ast.Attribute, ast.Subscript)) else self.expr(a[0])
            if t is None:
                return None
            if not isinstance(t, ArrayT):
                self.err("E205", f"len() is for arrays, not {t}", a[0])
                return None
            e.cv = t.n  # type: ignore[attr-defined]
            return U64
        if name == "addr_of":
            if len(a) != 1:
                self.err("E152", "addr_of(place) takes one place", e)
                return None
            if isinstance(a[0], ast.Name):
                sym = self.lookup(a[0].id)
                if isinstance(sym, LocalSym) and not sym.ty.is_aggregate:
                    self.err("E311", f"`{a[0].id}` is a scalar local: it has no address", a[0])
                    return None
                if isinstance(sym, FuncSym):
                    self.err("E311", "a function used as a value is already a Callable", a[0])
                    return None
                if isinstance(sym, GlobalSym):  # resolved before any function body
                    if sym.ty is not None and not sym.ty.is_aggregate:
                        # Under CPython a scalar global is a Python variable, not memory (LANGUAGE.md 6)
                        self.err(
                            "E311",
                            f"`{a[0].id}` is a scalar global: it has no address (use static(Array[T, 1]))",
                            a[0],
                        )
                        return None
            t = self.place(a[0])
            return PtrT(t) if t is not None else None
        if name == "null":
            if len(a) != 1:
                self.err("E152", "null(T) takes one type", e)
                return None
            t = self.type_expr(a[0])
            return PtrT(t) if t else None
        if name == "panic":
            self.args(e, [U64], VOID, "panic")
            return VOID
        if name == "fence":
            self.args(e, [], VOID, name)
            return VOID
        if name in ("cstr", "extern_addr"):
            if len(a) != 1 or not (isinstance(a[0], ast.Constant) and isinstance(a[0].value, (str, bytes))):
                self.err("E152", f"{name}() takes one string literal", e)
                return None
            v = a[0].value
            e.text = v.encode() if isinstance(v, str) else v  # type: ignore[attr-defined]
            if name == "extern_addr":
                return U64
            return PtrT(INTS["u8"])
        if name in intr.CSR_OPS:
            if not a:
                self.err("E152", f"{name} needs a CSR", e)
                return None
            ct = self.expr(a[0])
            sym = getattr(a[0], "sym", None)
            if ct is None:
                return None
            if not getattr(sym, "is_csr", False) and a[0].cv is None:  # type: ignore[attr-defined]
                self.err("E209", "the CSR must be a constant (a CSR name from compiler.prelude)", a[0])
                return None
            e.csr = a[0].cv  # type: ignore[attr-defined]
            nargs = 0 if name == "csr_read" else 1
            rest = ast.Call(func=e.func, args=a[1:], keywords=[])
            ast.copy_location(rest, e)
            self.args(rest, [U64] * nargs, VOID, name)
            return VOID if name in ("csr_write", "csr_set", "csr_clear") else U64
        if name in intr.PRIV:
            p = intr.PRIV[name]
            return self.args(e, [U64] * p.nargs, p.ret, name)
        if name in intr.ATOMICS:
            bits = intr.ATOMICS[name][1]
            return self._atomic(e, bits, 2, name)
        if name in intr.LRSC:
            return self._atomic(e, intr.LRSC[name], 1 if name.startswith("lr") else 2, name)
        if name == "sbi_ecall":
            self.args(e, [U64] * 8 + [PtrT(U64)], I64, name)
            return I64
        if name == "range":
            self.err("E133", "range() is only for `for` loops", e)
            return None
        self.err("E152", f"`{name}` cannot be called here", e)
        return None

    def _atomic(self, e: ast.Call, bits: int, nargs: int, name: str) -> Type | None:
        if len(e.args) != nargs:
            self.err("E152", f"{name} takes {nargs} arguments", e)
            return None
        pt = self.expr(e.args[0])
        if pt is None:
            return None
        if not (isinstance(pt, PtrT) and isinstance(pt.target, IntT) and pt.target.bits == bits):
            self.err("E205", f"{name} needs a Ptr to a {bits}-bit integer, not {pt}", e.args[0])
            return None
        vt = pt.target
        if nargs == 2:
            t = self.expr(e.args[1], vt)
            if t is not None:
                self.expect(e.args[1], vt, "E205", "value")
        return U64 if name.startswith("sc") else vt

    def e_TooDeep(self, e: ast.expr, want: Type | None) -> None:
        return None  # reported when the file was loaded

    # unsupported expressions, reported with their own words
    def e_Lambda(self, e: ast.expr, want: Type | None) -> None:
        self.err("E131", "lambdas are not part of the language", e)

    def e_Tuple(self, e: ast.expr, want: Type | None) -> None:
        self.err("E150", "tuples are not part of the language", e)


def _floordiv(a: int, b: int, t: Type) -> int:
    return a // b


_FOLD = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
    ast.BitAnd: lambda a, b: a & b,
    ast.BitOr: lambda a, b: a | b,
    ast.BitXor: lambda a, b: a ^ b,
    ast.LShift: None,
    ast.RShift: None,
}
_CMP = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
}


def _fold(op: ast.operator, a: int, b: int, t: Type) -> int:
    if isinstance(t, IntT):
        if isinstance(op, (ast.LShift, ast.RShift)):
            n = b & (t.bits - 1)
            if isinstance(op, ast.LShift):
                return t.wrap(a << n)
            return t.wrap(a >> n) if t.signed else (a & ((1 << t.bits) - 1)) >> n
        return t.wrap(_FOLD[type(op)](a, b))
    if isinstance(op, ast.LShift):
        return a << b
    if isinstance(op, ast.RShift):
        return a >> b
    return _FOLD[type(op)](a, b)


# The checker and lowering recurse a few times per level of an expression, up to MAX_DEPTH levels, so they run
# with room for that. Python-to-Python calls do not use the C stack (CPython 3.11+): a higher limit costs nothing.
RECURSION_LIMIT = 20000


@contextlib.contextmanager
def deep_recursion():
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, RECURSION_LIMIT))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def check_program(paths: list[Path], extra: dict[str, Path] | None = None, root: Path | None = None) -> Program:
    """Load, gate, resolve and type-check a program; raise CompileError with every diagnostic."""
    c = Checker()
    main = c.load([Path(p) for p in paths], extra or {}, root)  # CPython's parser keeps its own limits
    c.rep.raise_if_any() if not c.order else None
    with deep_recursion():
        c.declare_all()
        c.check_bodies()
    c.rep.raise_if_any()
    return Program(c.modules, c.order, c.funcs, c.globals, c.structs, c.consts, main)
