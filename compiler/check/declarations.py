"""Declarations: module scopes and imports, type expressions, structs and their layout, Final constants, globals
and `static(...)`, function signatures and decorators; every symbol defined once."""

from __future__ import annotations

import ast

from compiler import intrinsics as intr
from compiler.symbols import PRELUDE, BuiltinSym, ConstSym, FuncSym, GlobalSym, Module, TypeSym
from compiler.types import (
    BOOL,
    INTS,
    LIT,
    U64,
    VOID,
    ArrayT,
    BoolT,
    FnT,
    IntT,
    MmioT,
    PtrT,
    StructT,
    Type,
    is_int,
    layout_struct,
)


def _csrs() -> dict[str, int]:
    from compiler.csrs import CSRS

    return CSRS


# Names of compiler.prelude that the checker resolves itself (besides the integer types and the CSR names).
PRELUDE_FUNCS = {"static", *(i.name for i in intr.INTRINSICS.values() if i.prelude)}
PRELUDE_TYPES = {"Ptr", "Array", "Mmio", "Callable", "Final"}
PRELUDE_DECOS = {"struct", "export", "extern", "inline", "noinline"}
# Field names that a Ptr or an array already uses (LANGUAGE.md 5): `p.addr()`, `p.offset(n)` and `a.unchecked[i]`
# would be ambiguous compiled and, under CPython, name the method instead of the field.
RESERVED_FIELDS = {
    "addr": "a field cannot be named `addr`: `p.addr()` of a Ptr to the struct is the pointer's address",
    "offset": "a field cannot be named `offset`: `p.offset(n)` of a Ptr to the struct moves the pointer",
    "unchecked": "a field cannot be named `unchecked`: `x.unchecked[i]` is unchecked indexing",
}
PY_BUILTINS = {"range", "True", "False", "None", *(i.name for i in intr.INTRINSICS.values() if i.builtin)}


class Declarations:
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
