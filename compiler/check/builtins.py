"""Builtins: a call to an intrinsic is typed by the rule its row in compiler/intrinsics.py names, from that row's
parameters, result, width or fold; a builtin with no row cannot be called where it stands."""

from __future__ import annotations

import ast

from compiler import intrinsics as intr
from compiler.intrinsics import Intrinsic
from compiler.symbols import FuncSym, GlobalSym, LocalSym
from compiler.types import VOID, ArrayT, IntT, PtrT, StructT, Type

# Builtins that are not intrinsics, called where the language does not take them: (code, message).
NOT_CALLABLE = {"range": ("E133", "range() is only for `for` loops")}


class Builtins:
    def builtin_call(self, e: ast.Call, name: str, want: Type | None) -> Type | None:
        e.kind, e.builtin = "builtin", name  # type: ignore[attr-defined]
        row = intr.INTRINSICS.get(name)
        if row is None:
            code, msg = NOT_CALLABLE.get(name, ("E152", f"`{name}` cannot be called here"))
            self.err(code, msg, e)
            return None
        return RULES[row.rule](self, e, row)

    def _rule_call(self, e: ast.Call, row: Intrinsic) -> Type | None:
        """A plain signature: the row's parameters and result."""
        return self.args(e, list(row.params), row.ret, row.name)

    def _rule_convert(self, e: ast.Call, row: Intrinsic) -> Type | None:
        return self.conversion(e, row.ret)

    def _rule_type(self, e: ast.Call, row: Intrinsic) -> Type | None:
        """`sizeof(T)`, `alignof(T)`: a constant the row's fold takes from the type."""
        if len(e.args) != 1:
            self.err("E152", f"{row.name}(T) takes one type", e)
            return None
        t = self.type_expr(e.args[0])
        if t is None:
            return None
        e.cv = row.fold(t)  # type: ignore[attr-defined,misc]
        return row.ret

    def _rule_offsetof(self, e: ast.Call, row: Intrinsic) -> Type | None:
        a = e.args
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
        return row.ret

    def _rule_len(self, e: ast.Call, row: Intrinsic) -> Type | None:
        a = e.args
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
        return row.ret

    def _rule_addr_of(self, e: ast.Call, row: Intrinsic) -> Type | None:
        a = e.args
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

    def _rule_null(self, e: ast.Call, row: Intrinsic) -> Type | None:
        if len(e.args) != 1:
            self.err("E152", "null(T) takes one type", e)
            return None
        t = self.type_expr(e.args[0])
        return PtrT(t) if t else None

    def _rule_string(self, e: ast.Call, row: Intrinsic) -> Type | None:
        """`cstr("...")`, `extern_addr("symbol")`: one string literal, kept as bytes in `e.text`."""
        a = e.args
        if len(a) != 1 or not (isinstance(a[0], ast.Constant) and isinstance(a[0].value, (str, bytes))):
            self.err("E152", f"{row.name}() takes one string literal", e)
            return None
        v = a[0].value
        e.text = v.encode() if isinstance(v, str) else v  # type: ignore[attr-defined]
        return row.ret

    def _rule_csr(self, e: ast.Call, row: Intrinsic) -> Type | None:
        """A CSR constant (kept in `e.csr`), then the row's parameters."""
        a = e.args
        if not a:
            self.err("E152", f"{row.name} needs a CSR", e)
            return None
        ct = self.expr(a[0])
        sym = getattr(a[0], "sym", None)
        if ct is None:
            return None
        if not getattr(sym, "is_csr", False) and a[0].cv is None:  # type: ignore[attr-defined]
            self.err("E209", "the CSR must be a constant (a CSR name from compiler.prelude)", a[0])
            return None
        e.csr = a[0].cv  # type: ignore[attr-defined]
        rest = ast.Call(func=e.func, args=a[1:], keywords=[])
        ast.copy_location(rest, e)
        self.args(rest, list(row.params), VOID, row.name)
        return row.ret

    def _rule_atomic(self, e: ast.Call, row: Intrinsic) -> Type | None:
        """A Ptr to an integer of the row's width, and a value of that integer when the row takes two arguments;
        the result is that integer unless the row names one."""
        if len(e.args) != row.nargs:
            self.err("E152", f"{row.name} takes {row.nargs} arguments", e)
            return None
        pt = self.expr(e.args[0])
        if pt is None:
            return None
        if not (isinstance(pt, PtrT) and isinstance(pt.target, IntT) and pt.target.bits == row.bits):
            self.err("E205", f"{row.name} needs a Ptr to a {row.bits}-bit integer, not {pt}", e.args[0])
            return None
        vt = pt.target
        if row.nargs == 2:
            t = self.expr(e.args[1], vt)
            if t is not None:
                self.expect(e.args[1], vt, "E205", "value")
        return row.ret if row.ret is not None else vt


# The rules a row of compiler/intrinsics.py can name.
RULES = {
    "call": Builtins._rule_call,
    "convert": Builtins._rule_convert,
    "type": Builtins._rule_type,
    "offsetof": Builtins._rule_offsetof,
    "len": Builtins._rule_len,
    "addr_of": Builtins._rule_addr_of,
    "null": Builtins._rule_null,
    "string": Builtins._rule_string,
    "csr": Builtins._rule_csr,
    "atomic": Builtins._rule_atomic,
}
