"""Statements: function bodies (locals, assignments, loops, returns), E134 for a body that can reach its end
without a value, and E140 for recursion."""

from __future__ import annotations

import ast

from compiler import intrinsics as intr
from compiler.symbols import ConstSym, FuncSym, GlobalSym, LocalSym, TypeSym
from compiler.types import (
    I64,
    IntT,
    LitT,
    StructT,
    Type,
    VoidT,
)


class Statements:
    # -- function bodies
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
                and getattr(intr.INTRINSICS.get(s.value.func.id), "noreturn", False)
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

    # -- statements
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
