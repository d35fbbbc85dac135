"""Expressions: types, literal forms and their coercion, constant folding, places, and calls (direct,
indirect, conversions, Ptr and Mmio methods; calls to builtins go to compiler/check/builtins.py)."""

from __future__ import annotations

import ast

from compiler.symbols import BuiltinSym, ConstSym, FuncSym, GlobalSym, LocalSym, TypeSym
from compiler.types import (
    BOOL,
    I64,
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
    is_int,
)


class Expressions:
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
