"""Lowering: a checked program to one `llvmlite.ir` module, for the riscv64 or the host target.

The two targets share every line here but the intrinsics: on riscv64 a privileged instruction is a call to a
marker function (`__pys_*`) that `compiler.asm` replaces by the instruction itself before GNU as; on the host it
is a call into Python (`pyshyper_host_*`), bound by `compiler.host`.
"""

from __future__ import annotations

import ast
from pathlib import Path

from llvmlite import ir

from compiler import intrinsics as intr
from compiler.checker import ConstSym, FuncSym, GlobalSym, LocalSym, Program, deep_recursion
from compiler.debuginfo import DebugInfo
from compiler.types import (
    BOOL,
    PTR_IR,
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
    llvm_type,
)

I1 = ir.IntType(1)
I8 = ir.IntType(8)
I32 = ir.IntType(32)
I64_IR = ir.IntType(64)
PRESERVE_MOST = "preserve_mostcc"  # marker calls (compiler/asm.py): the instruction writes a0 at most
PANIC = "pyshyper_panic"
PANIC_BOUNDS, PANIC_DIV0, PANIC_ASSERT, PANIC_EXPLICIT = 1, 2, 3, 4


class _VolatileLoad(ir.instructions.LoadInstr):
    def descr(self, buf: list[str]) -> None:
        super().descr(buf)
        buf[-1] = buf[-1].replace("load ", "load volatile ", 1)


class _VolatileStore(ir.instructions.StoreInstr):
    def descr(self, buf: list[str]) -> None:
        super().descr(buf)
        buf[-1] = buf[-1].replace("store ", "store volatile ", 1)


class _Callee:
    """An opaque function pointer with its signature: llvmlite's `call` reads `function_type` from its callee."""

    def __init__(self, value: ir.Value, fnty: ir.FunctionType) -> None:
        self.value, self.function_type, self.type = value, fnty, value.type
        self._users: set = set()

    def get_reference(self) -> str:
        return self.value.get_reference()


def _fnty(ft: FnT) -> ir.FunctionType:
    return ir.FunctionType(llvm_type(ft.ret), [llvm_type(p) for p in ft.params])


class Lowering:
    def __init__(self, prog: Program, target: str, debug_root: Path | None = None) -> None:
        self.prog = prog
        self.target = target
        self.host = target == "host"
        self.module = ir.Module(name=prog.main.name, context=ir.Context())
        self.funcs: dict[FuncSym, ir.Function] = {}
        self.gvars: dict[GlobalSym, ir.GlobalVariable] = {}
        self.externs: dict[str, ir.Function] = {}
        # DWARF for the program (compiler.debuginfo) when given the project root its file names are relative to.
        self.debug = DebugInfo(self.module, prog, debug_root) if debug_root is not None else None
        self.sp: ir.DIValue | None = None

    # ---------------------------------------------------------------- module
    def lower(self) -> ir.Module:
        for s in self.prog.structs:
            s.llvm = self.module.context.get_identified_type(f"struct.{s.module}.{s.name}")
        for s in self.prog.structs:
            s.llvm.set_body(*[llvm_type(t, True) for _, t in s.fields])
        for f in self.prog.funcs:
            self._declare_func(f)
        for g in self.prog.globals:
            self._define_global(g)
        self._panic_fn()
        for f in self.prog.funcs:
            if not f.extern:
                self._define_func(f)
        if self.host:
            for f in self.prog.funcs:
                if not f.extern:
                    self._host_wrapper(f)
        if self.debug is not None:
            self.debug.finish()
        return self.module

    def _host_wrapper(self, f: FuncSym) -> None:
        """`__pys_call.<symbol>(i64...) -> i64`: setjmp guard for panics, then the call."""
        fn = ir.Function(self.module, ir.FunctionType(I64_IR, [I64_IR] * len(f.params)), "__pys_call." + f.symbol)
        fn.attributes.add("noinline")
        sj = self._extern("_setjmp", I32, [PTR_IR])
        sj.attributes.add("returns_twice")
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        go = fn.append_basic_block("call")
        failed = fn.append_basic_block("panicked")
        s = b.call(sj, [self.jmpbuf])
        b.cbranch(b.icmp_signed("==", s, ir.Constant(I32, 0)), go, failed)
        b.position_at_end(failed)
        b.ret(ir.Constant(I64_IR, 0))
        b.position_at_end(go)
        args = []
        for (_, t), a in zip(f.params, fn.args, strict=True):
            lt = llvm_type(t)
            if isinstance(t, (PtrT, MmioT, FnT)):
                args.append(b.inttoptr(a, PTR_IR))
            elif lt.width < 64:
                args.append(b.trunc(a, lt))
            else:
                args.append(a)
        r = b.call(self.funcs[f], args)
        if isinstance(f.ret, VoidT):
            b.ret(ir.Constant(I64_IR, 0))
        elif isinstance(f.ret, (PtrT, MmioT, FnT)):
            b.ret(b.ptrtoint(r, I64_IR))
        elif r.type.width < 64:
            signed = isinstance(f.ret, IntT) and f.ret.signed
            b.ret(b.sext(r, I64_IR) if signed else b.zext(r, I64_IR))
        else:
            b.ret(r)

    def _declare_func(self, f: FuncSym) -> None:
        sym = f.symbol
        if self.host and sym == PANIC:
            sym = PANIC + ".program"
        if f.extern and sym in self.module.globals:  # one declaration per symbol (the checker made them agree)
            self.funcs[f] = self.module.globals[sym]
            return
        fn = ir.Function(self.module, _fnty(f.fnty), sym)
        fn.linkage = "external" if (f.export and not self.host) or f.extern else "internal"
        fn.attributes.add("nounwind")
        if f.inline == "inline":  # every call (LANGUAGE.md): a hint would leave a big body out of line
            fn.attributes.add("alwaysinline")
        elif f.inline == "noinline":
            fn.attributes.add("noinline")
        self.funcs[f] = fn

    def _define_global(self, g: GlobalSym) -> None:
        lt = llvm_type(g.ty, True)
        gv = ir.GlobalVariable(self.module, lt, g.symbol)
        # An exported global is a definition with the default (external) linkage: LLVM reads `external global`
        # as a declaration, which takes no initializer. On the host, as for @export functions, it stays internal.
        if not g.export or self.host:
            gv.linkage = "internal"
        gv.initializer = self._const_init(g.ty, g.init)
        if g.align:
            gv.align = g.align
        if g.section:
            gv.section = g.section
        self.gvars[g] = gv
        if self.debug is not None:
            self.debug.global_variable(g, gv)

    def _const_init(self, t: Type, v: object) -> ir.Constant:
        lt = llvm_type(t, True)
        if v is None:
            return ir.Constant(lt, None)
        if isinstance(t, ArrayT):
            items = list(v) + [None] * (t.n - len(v))  # type: ignore[arg-type]
            return ir.Constant(lt, [self._const_init(t.elem, x) for x in items])
        if isinstance(v, FuncSym):
            return self.funcs[v]
        return ir.Constant(lt, int(v) & ((1 << lt.width) - 1))  # type: ignore[call-overload,attr-defined]

    def _panic_fn(self) -> None:
        ty = ir.FunctionType(ir.VoidType(), [I64_IR, I64_IR, I64_IR])
        existing = [f for f in self.prog.funcs if f.symbol == PANIC]
        if existing and not self.host:
            self.panic = self.funcs[existing[0]]
            return
        fn = ir.Function(self.module, ty, PANIC)
        fn.attributes.add("noreturn")
        fn.attributes.add("nounwind")
        fn.attributes.add("cold")
        self.panic = fn
        if self.host:
            # The host panic records the panic in Python, then longjmps back to the wrapper's setjmp.
            self.jmpbuf = ir.GlobalVariable(self.module, ir.ArrayType(I64_IR, 64), "__pys_jmpbuf")
            self.jmpbuf.initializer = ir.Constant(ir.ArrayType(I64_IR, 64), None)
            b = ir.IRBuilder(fn.append_basic_block())
            rec = self._extern("pyshyper_host_panic", ir.VoidType(), [I64_IR] * 3)
            b.call(rec, list(fn.args))
            lj = self._extern("longjmp", ir.VoidType(), [PTR_IR, I32])
            lj.attributes.add("noreturn")
            b.call(lj, [self.jmpbuf, ir.Constant(I32, 1)])
            b.unreachable()

    def _extern(self, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
        fn = self.externs.get(name)
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(ret, args), name)
            fn.attributes.add("nounwind")
            self.externs[name] = fn
        return fn

    # ---------------------------------------------------------------- functions
    def _define_func(self, f: FuncSym) -> None:
        fn = self.funcs[f]
        self.f = f
        entry = fn.append_basic_block("entry")
        body = fn.append_basic_block("body")
        self.b = ir.IRBuilder(entry)
        if self.debug is not None:
            self.sp = self.debug.subprogram(f, fn)
            self.b.debug_metadata = self.debug.location(f.node, self.sp)
        self.slots: dict[LocalSym, ir.Value] = {}
        params = {name for name, _ in f.params}
        for name, loc in f.locals.items():
            lt = llvm_type(loc.ty, True)
            slot = self.b.alloca(lt, name=name)
            if loc.ty.is_aggregate:
                slot.align = max(8, _align(loc.ty))
            if name not in params:  # a parameter's slot holds its argument from the start (debug info: one value)
                self.b.store(ir.Constant(lt, None), slot)
            self.slots[loc] = slot
        for (name, t), arg in zip(f.params, fn.args, strict=True):
            arg.name = name + ".arg"
            self._store(arg, self.slots[f.locals[name]], t)
        if self.debug is not None:
            self.debug.declare_locals(self.b, f, self.sp, self.slots)
        self.b.branch(body)
        self.b.position_at_end(body)
        self.loops: list[tuple[ir.Block, ir.Block]] = []
        self.block(f.node.body)
        if self.debug is not None:  # falling off the end: the function's last line
            self.b.debug_metadata = self.debug.line_location(f.node.end_lineno or f.node.lineno, self.sp)
        if not self.b.block.is_terminated:
            if isinstance(f.ret, VoidT):
                self.b.ret_void()
            else:
                self.b.unreachable()

    def block(self, body: list[ast.stmt]) -> None:
        for s in body:
            if self.b.block.is_terminated:
                # Code after return/break/continue is unreachable; give it a block of its own.
                self.b.position_at_end(self.b.function.append_basic_block("dead"))
            self._at(s)
            getattr(self, "s_" + type(s).__name__)(s)

    def _at(self, node: ast.AST) -> None:
        """Debug info: the instructions made from here on come from this statement's line."""
        if self.debug is not None:
            self.b.debug_metadata = self.debug.location(node, self.sp) or self.b.debug_metadata

    # ---------------------------------------------------------------- statements
    def s_Expr(self, s: ast.Expr) -> None:
        if isinstance(s.value, ast.Call):
            self.call(s.value)

    def s_Pass(self, s: ast.stmt) -> None:
        pass

    s_Global = s_Pass

    def s_Return(self, s: ast.Return) -> None:
        if s.value is None:
            self.b.ret_void()
        else:
            self.b.ret(self.val(s.value))

    def s_Assert(self, s: ast.Assert) -> None:
        ok = self.val(s.test)
        fail = self.b.function.append_basic_block("assert.fail")
        cont = self.b.function.append_basic_block("assert.ok")
        self.b.cbranch(ok, cont, fail)
        self.b.position_at_end(fail)
        self._panic(PANIC_ASSERT, ir.Constant(I64_IR, s.lineno), ir.Constant(I64_IR, 0))
        self.b.position_at_end(cont)

    def s_If(self, s: ast.If) -> None:
        cv = getattr(s.test, "cv", None)
        if cv is not None:  # constant condition: lower only the live branch
            self.block(s.body if cv else s.orelse)
            return
        then = self.b.function.append_basic_block("if.then")
        other = self.b.function.append_basic_block("if.else") if s.orelse else None
        end = self.b.function.append_basic_block("if.end")
        self.b.cbranch(self.val(s.test), then, other or end)
        self.b.position_at_end(then)
        self.block(s.body)
        if not self.b.block.is_terminated:
            self.b.branch(end)
        if other is not None:
            self.b.position_at_end(other)
            self.block(s.orelse)
            if not self.b.block.is_terminated:
                self.b.branch(end)
        self.b.position_at_end(end)

    def s_While(self, s: ast.While) -> None:
        head = self.b.function.append_basic_block("while.head")
        body = self.b.function.append_basic_block("while.body")
        end = self.b.function.append_basic_block("while.end")
        self.b.branch(head)
        self.b.position_at_end(head)
        self.b.cbranch(self.val(s.test), body, end)
        self.b.position_at_end(body)
        self.loops.append((head, end))
        self.block(s.body)
        self.loops.pop()
        self._at(s)  # the loop's own code (next value, back edge) is the loop statement's line
        if not self.b.block.is_terminated:
            self.b.branch(head)
        self.b.position_at_end(end)

    def s_For(self, s: ast.For) -> None:
        t: IntT = s.target.ty  # type: ignore[attr-defined]
        lt = llvm_type(t)
        step: int = s.step  # type: ignore[attr-defined]
        start, stop = (self.val(x) for x in s.bounds)  # type: ignore[attr-defined]
        counter = self._entry_alloca(lt, "for.counter")
        self.b.store(start, counter)
        head = self.b.function.append_basic_block("for.head")
        body = self.b.function.append_basic_block("for.body")
        latch = self.b.function.append_basic_block("for.next")
        end = self.b.function.append_basic_block("for.end")
        self.b.branch(head)
        self.b.position_at_end(head)
        c = self.b.load(counter, typ=lt)
        op = "<" if step > 0 else ">"
        more = self.b.icmp_signed(op, c, stop) if t.signed else self.b.icmp_unsigned(op, c, stop)
        self.b.cbranch(more, body, end)
        self.b.position_at_end(body)
        self.b.store(c, self.slots[s.target.sym])  # type: ignore[attr-defined]
        self.loops.append((latch, end))
        self.block(s.body)
        self.loops.pop()
        self._at(s)  # the loop's own code (next value, back edge) is the loop statement's line
        if not self.b.block.is_terminated:
            self.b.branch(latch)
        self.b.position_at_end(latch)
        c = self.b.load(counter, typ=lt)
        # Python's range never wraps: leave the loop where the next value would not fit the type.
        if step > 0:
            limit = t.max - step
            cmp = ">"
        else:
            limit = t.min - step
            cmp = "<"
        bump = self.b.function.append_basic_block("for.bump")
        if t.min <= limit <= t.max:
            k = ir.Constant(lt, limit & ((1 << t.bits) - 1))
            past = self.b.icmp_signed(cmp, c, k) if t.signed else self.b.icmp_unsigned(cmp, c, k)
            self.b.cbranch(past, end, bump)
        else:
            self.b.branch(end)
        self.b.position_at_end(bump)
        self.b.store(self.b.add(c, ir.Constant(lt, step & ((1 << t.bits) - 1))), counter)
        self.b.branch(head)
        self.b.position_at_end(end)

    def _entry_alloca(self, lt: ir.Type, name: str) -> ir.Value:
        here = self.b.block
        entry = self.b.function.entry_basic_block
        self.b.position_at_start(entry)
        slot = self.b.alloca(lt, name=name)
        self.b.position_at_end(here)
        return slot

    def s_Break(self, s: ast.stmt) -> None:
        self.b.branch(self.loops[-1][1])

    def s_Continue(self, s: ast.stmt) -> None:
        self.b.branch(self.loops[-1][0])

    def s_AnnAssign(self, s: ast.AnnAssign) -> None:
        if s.value is not None:
            self._assign(s.target, s.value)

    def s_Assign(self, s: ast.Assign) -> None:
        self._assign(s.targets[0], s.value)

    def _assign(self, tgt: ast.expr, value: ast.expr) -> None:
        if getattr(value, "ctor", False):  # `x = T()` zeroes x's place each time it runs
            slot = self.slots[tgt.sym]  # type: ignore[attr-defined]
            self.b.store(ir.Constant(llvm_type(tgt.sym.ty, True), None), slot)  # type: ignore[attr-defined]
            return
        t = tgt.ty if not isinstance(tgt, ast.Name) else tgt.sym.ty  # type: ignore[attr-defined]
        v = self.val(value)
        self._store(v, self.addr(tgt), t)

    def s_AugAssign(self, s: ast.AugAssign) -> None:
        ptr = self.addr(s.target)
        t = s.target.ty  # type: ignore[attr-defined]
        cur = self._load(ptr, t)
        self._store(self.binop(s.binop, cur), ptr, t)  # type: ignore[attr-defined]

    # ---------------------------------------------------------------- memory
    def _load(self, ptr: ir.Value, t: Type) -> ir.Value:
        v = self.b.load(ptr, typ=llvm_type(t, True))
        if isinstance(t, BoolT):
            v = self.b.trunc(v, I1)
        return v

    def _store(self, v: ir.Value, ptr: ir.Value, t: Type) -> None:
        if isinstance(t, BoolT):
            v = self.b.zext(v, I8)
        self.b.store(v, ptr)

    def addr(self, e: ast.expr) -> ir.Value:
        """The address of a place."""
        if isinstance(e, ast.Name):
            sym = e.sym  # type: ignore[attr-defined]
            if isinstance(sym, LocalSym):
                return self.slots[sym]
            return self.gvars[sym]
        if isinstance(e, ast.Attribute):
            bt = e.value.ty  # type: ignore[attr-defined]
            st: StructT = bt.target if isinstance(bt, PtrT) else bt
            base = self.val(e.value) if isinstance(bt, PtrT) else self.addr(e.value)
            i = st.field_index(e.attr)
            return self._gep(base, [ir.Constant(I32, 0), ir.Constant(I32, i)], inbounds=True, source_etype=st.llvm)
        if isinstance(e, ast.Subscript):
            base_e = e.base  # type: ignore[attr-defined]
            bt = base_e.ty
            idx = self._index64(e.slice)
            if isinstance(bt, ArrayT):
                base = self.addr(base_e)
                if not e.unchecked and getattr(e.slice, "cv", None) is None:  # type: ignore[attr-defined]
                    self._bounds_check(idx, bt.n)
                return self._gep(base, [ir.Constant(I64_IR, 0), idx], inbounds=True, source_etype=llvm_type(bt, True))
            base = self.val(base_e)
            return self._gep(base, [idx], source_etype=llvm_type(bt.target, True))
        if isinstance(e, ast.Call) and getattr(e, "kind", None) == "builtin" and e.builtin == "addr_of":  # type: ignore
            return self.val(e)
        raise AssertionError(f"not a place: {ast.dump(e)}")

    def _gep(self, base: ir.Value, idx: list[ir.Value], inbounds: bool = False, source_etype=None) -> ir.Value:
        g = self.b.gep(base, idx, inbounds=inbounds, source_etype=source_etype)
        g.type = PTR_IR  # llvmlite would keep the base's typed-pointer type
        return g

    def _index64(self, e: ast.expr) -> ir.Value:
        v = self.val(e)
        t = e.ty  # type: ignore[attr-defined]
        if isinstance(t, IntT) and t.bits < 64:
            v = self.b.sext(v, I64_IR) if t.signed else self.b.zext(v, I64_IR)
        return v

    def _bounds_check(self, idx: ir.Value, n: int) -> None:
        ok = self.b.icmp_unsigned("<", idx, ir.Constant(I64_IR, n))
        fail = self.b.function.append_basic_block("bounds.fail")
        cont = self.b.function.append_basic_block("bounds.ok")
        self.b.cbranch(ok, cont, fail)
        self.b.position_at_end(fail)
        self._panic(PANIC_BOUNDS, idx, ir.Constant(I64_IR, n))
        self.b.position_at_end(cont)

    def _panic(self, kind: int, a: ir.Value, b: ir.Value) -> None:
        self.b.call(self.panic, [ir.Constant(I64_IR, kind), a, b])
        self.b.unreachable()

    # ---------------------------------------------------------------- expressions
    def val(self, e: ast.expr) -> ir.Value:
        t = e.ty  # type: ignore[attr-defined]
        cv = getattr(e, "cv", None)
        if cv is not None and isinstance(t, (IntT, BoolT, LitT)):
            lt = llvm_type(t)
            return ir.Constant(lt, cv & ((1 << lt.width) - 1))
        return getattr(self, "e_" + type(e).__name__)(e)

    def e_Name(self, e: ast.Name) -> ir.Value:
        sym = e.sym  # type: ignore[attr-defined]
        if isinstance(sym, FuncSym):
            return self.funcs[sym]
        if isinstance(sym, ConstSym):
            return ir.Constant(llvm_type(sym.ty), sym.value)
        return self._load(self.addr(e), e.ty)  # type: ignore[attr-defined]

    def e_Attribute(self, e: ast.Attribute) -> ir.Value:
        return self._load(self.addr(e), e.ty)  # type: ignore[attr-defined]

    e_Subscript = e_Attribute

    def e_UnaryOp(self, e: ast.UnaryOp) -> ir.Value:
        v = self.val(e.operand)
        if isinstance(e.op, ast.Not):
            return self.b.xor(v, ir.Constant(I1, 1))
        if isinstance(e.op, ast.USub):
            return self.b.sub(ir.Constant(v.type, 0), v)
        if isinstance(e.op, ast.Invert):
            return self.b.xor(v, ir.Constant(v.type, (1 << v.type.width) - 1))
        return v

    def e_BinOp(self, e: ast.BinOp) -> ir.Value:
        return self.binop(e, self.val(e.left))

    def binop(self, e: ast.BinOp, a: ir.Value) -> ir.Value:
        t: IntT = e.ty  # type: ignore[attr-defined]
        op = e.op
        b = self.b
        if isinstance(op, (ast.LShift, ast.RShift)):
            rt = e.right.ty  # type: ignore[attr-defined]
            mask = t.bits - 1
            if getattr(e.right, "cv", None) is not None:
                n = ir.Constant(a.type, e.right.cv & mask)  # type: ignore[attr-defined]
            else:
                n = self.val(e.right)
                n = b.and_(n, ir.Constant(n.type, mask))
                if rt.bits > t.bits:
                    n = b.trunc(n, a.type)
                elif rt.bits < t.bits:
                    n = b.zext(n, a.type)
            if isinstance(op, ast.LShift):
                return b.shl(a, n)
            return b.ashr(a, n) if t.signed else b.lshr(a, n)
        c = self.val(e.right)
        if isinstance(op, ast.Add):
            return b.add(a, c)
        if isinstance(op, ast.Sub):
            return b.sub(a, c)
        if isinstance(op, ast.Mult):
            return b.mul(a, c)
        if isinstance(op, ast.BitAnd):
            return b.and_(a, c)
        if isinstance(op, ast.BitOr):
            return b.or_(a, c)
        if isinstance(op, ast.BitXor):
            return b.xor(a, c)
        return self._divmod(isinstance(op, ast.FloorDiv), a, c, t, getattr(e.right, "cv", None))

    def _divmod(self, is_div: bool, a: ir.Value, c: ir.Value, t: IntT, cv: int | None) -> ir.Value:
        b = self.b
        lt = a.type
        zero = ir.Constant(lt, 0)
        if cv is None:
            fail = b.function.append_basic_block("div.zero")
            ok = b.function.append_basic_block("div.ok")
            b.cbranch(b.icmp_unsigned("==", c, zero), fail, ok)
            b.position_at_end(fail)
            a64 = a if t.bits == 64 else (b.sext(a, I64_IR) if t.signed else b.zext(a, I64_IR))
            self._panic(PANIC_DIV0, a64, ir.Constant(I64_IR, 0))
            b.position_at_end(ok)
        if not t.signed:
            return b.udiv(a, c) if is_div else b.urem(a, c)
        # Python's floor semantics; MIN // -1 wraps to MIN (sdiv would be undefined there).
        minus1 = b.icmp_signed("==", c, ir.Constant(lt, (1 << t.bits) - 1))
        safe_c = b.select(minus1, ir.Constant(lt, 1), c)
        q = b.sdiv(a, safe_c)
        r = b.srem(a, safe_c)
        q = b.select(minus1, b.sub(zero, a), q)
        r = b.select(minus1, zero, r)
        adjust = b.and_(b.icmp_signed("!=", r, zero), b.icmp_signed("<", b.xor(r, c), zero))
        if is_div:
            return b.select(adjust, b.sub(q, ir.Constant(lt, 1)), q)
        return b.select(adjust, b.add(r, c), r)

    def e_BoolOp(self, e: ast.BoolOp) -> ir.Value:
        is_and = isinstance(e.op, ast.And)
        end = self.b.function.append_basic_block("bool.end")
        incoming = []
        for v in e.values[:-1]:
            x = self.val(v)
            nxt = self.b.function.append_basic_block("bool.next")
            incoming.append((ir.Constant(I1, 0 if is_and else 1), self.b.block))
            if is_and:
                self.b.cbranch(x, nxt, end)
            else:
                self.b.cbranch(x, end, nxt)
            self.b.position_at_end(nxt)
        last = self.val(e.values[-1])
        incoming.append((last, self.b.block))
        self.b.branch(end)
        self.b.position_at_end(end)
        phi = self.b.phi(I1)
        for v, blk in incoming:
            phi.add_incoming(v, blk)
        return phi

    def e_Compare(self, e: ast.Compare) -> ir.Value:
        a = self.val(e.left)
        c = self.val(e.comparators[0])
        op = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}[type(e.ops[0])]
        t = e.left.ty  # type: ignore[attr-defined]
        if isinstance(t, IntT) and t.signed:
            return self.b.icmp_signed(op, a, c)
        return self.b.icmp_unsigned(op, a, c)

    def e_IfExp(self, e: ast.IfExp) -> ir.Value:
        cond = self.val(e.test)
        then = self.b.function.append_basic_block("sel.then")
        other = self.b.function.append_basic_block("sel.else")
        end = self.b.function.append_basic_block("sel.end")
        self.b.cbranch(cond, then, other)
        self.b.position_at_end(then)
        x = self.val(e.body)
        xb = self.b.block
        self.b.branch(end)
        self.b.position_at_end(other)
        y = self.val(e.orelse)
        yb = self.b.block
        self.b.branch(end)
        self.b.position_at_end(end)
        phi = self.b.phi(x.type)
        phi.add_incoming(x, xb)
        phi.add_incoming(y, yb)
        return phi

    def e_Call(self, e: ast.Call) -> ir.Value:
        return self.call(e)

    # ---------------------------------------------------------------- calls
    def call(self, e: ast.Call) -> ir.Value:
        kind = e.kind  # type: ignore[attr-defined]
        if kind == "direct":
            fn = self.funcs[e.target]  # type: ignore[attr-defined]
            return self.b.call(fn, [self.val(a) for a in e.args])
        if kind == "indirect":
            ft: FnT = e.func.ty  # type: ignore[attr-defined]
            fp = self.val(e.func)
            return self._icall(fp, ft, e.args)
        if kind == "convert":
            return self._convert(e.args[0], e.ty)  # type: ignore[attr-defined]
        if kind == "make_ptr":
            return self.b.inttoptr(self.val(e.args[0]), PTR_IR)
        if kind == "method":
            return self._method(e)
        return self._builtin(e)

    def _icall(self, fp: ir.Value, ft: FnT, args: list[ast.expr]) -> ir.Value:
        fnty = _fnty(ft)
        vals = [self.val(a) for a in args]
        return self.b.call(_Callee(fp, fnty), vals)

    def _convert(self, a: ast.expr, t: Type) -> ir.Value:
        v = self.val(a)
        st = a.ty  # type: ignore[attr-defined]
        if isinstance(t, BoolT):
            return self.b.icmp_unsigned("!=", v, ir.Constant(v.type, 0))
        lt = llvm_type(t)
        sw, tw = v.type.width, lt.width
        if sw == tw:
            return v
        if sw > tw:
            return self.b.trunc(v, lt)
        if isinstance(st, IntT) and st.signed:
            return self.b.sext(v, lt)
        return self.b.zext(v, lt)

    def _method(self, e: ast.Call) -> ir.Value:
        f: ast.Attribute = e.func  # type: ignore[assignment]
        bt = f.value.ty  # type: ignore[attr-defined]
        base = self.val(f.value)
        name = e.method  # type: ignore[attr-defined]
        if name == "addr":
            return self.b.ptrtoint(base, I64_IR)
        if name == "offset":
            n = self._index64(e.args[0])
            et = bt.target if isinstance(bt, PtrT) else bt.elem
            return self._gep(base, [n], source_etype=llvm_type(et, True))
        lt = llvm_type(bt.elem)
        if self.host:  # MMIO on the host goes to Python (prelude.mock)
            fn = self._extern("pyshyper_host_mmio", I64_IR, [I64_IR] * 4)
            addr = self.b.ptrtoint(base, I64_IR)
            bits = ir.Constant(I64_IR, lt.width)
            if name == "read":
                r = self.b.call(fn, [ir.Constant(I64_IR, 0), bits, addr, ir.Constant(I64_IR, 0)])
                return self.b.trunc(r, lt) if lt.width < 64 else r
            v = self.val(e.args[0])
            v = self.b.zext(v, I64_IR) if lt.width < 64 else v
            return self.b.call(fn, [ir.Constant(I64_IR, 1), bits, addr, v])
        if name == "read":
            instr = _VolatileLoad(self.b.block, base, typ=lt)
            instr.align = lt.width // 8
            self.b._insert(instr)
            return instr
        instr = _VolatileStore(self.b.block, self.val(e.args[0]), base)
        instr.align = lt.width // 8
        self.b._insert(instr)
        return instr

    def _builtin(self, e: ast.Call) -> ir.Value:
        name = e.builtin  # type: ignore[attr-defined]
        args = e.args
        b = self.b
        if name == "bool":
            return self._convert(args[0], BOOL)
        if name == "addr_of":
            return self.addr(args[0])
        if name == "null":
            return ir.Constant(PTR_IR, None)
        if name == "panic":
            self._panic(PANIC_EXPLICIT, self.val(args[0]), ir.Constant(I64_IR, 0))
            b.position_at_end(b.function.append_basic_block("after.panic"))
            return ir.Constant(I64_IR, 0)
        if name == "fence":
            return b.fence("seq_cst")
        if name == "cstr":
            return self._cstr(e.text)  # type: ignore[attr-defined]
        if name == "extern_addr":
            sym = e.text.decode()  # type: ignore[attr-defined]
            gv = self.module.globals.get(sym)
            if gv is None:
                gv = ir.GlobalVariable(self.module, I8, sym)
            return b.ptrtoint(gv, I64_IR)
        if name in intr.ATOMICS:
            op, _ = intr.ATOMICS[name]
            return b.atomic_rmw(op, self.val(args[0]), self.val(args[1]), "seq_cst")
        if name in intr.LRSC:
            return self._lrsc(name, [self.val(a) for a in args], intr.LRSC[name])
        if name in intr.CSR_OPS:
            return self._csr(name, e.csr, [self.val(a) for a in args[1:]])  # type: ignore[attr-defined]
        if name in intr.PRIV:
            return self._priv(name, [self.val(a) for a in args])
        if name == "sbi_ecall":
            return self._ecall([self.val(a) for a in args])
        raise AssertionError(name)

    def _cstr(self, text: bytes) -> ir.Value:
        """A NUL-terminated constant in .rodata, shared by equal strings."""
        key = ".str." + text.hex()[:40] + f".{len(text)}"
        gv = self.module.globals.get(key)
        if gv is None:
            data = bytearray(text + b"\0")
            ty = ir.ArrayType(I8, len(data))
            gv = ir.GlobalVariable(self.module, ty, key)
            gv.initializer = ir.Constant(ty, data)
            gv.global_constant = True
            gv.linkage = "private"
            gv.unnamed_addr = True
        return gv

    def _csr(self, op: str, csr: int, args: list[ir.Value]) -> ir.Value:
        ret = ir.VoidType() if op in ("csr_write", "csr_set", "csr_clear") else I64_IR
        if self.host:
            fn = self._extern("pyshyper_host_csr", I64_IR, [I64_IR] * 3)
            r = self.b.call(
                fn,
                [
                    ir.Constant(I64_IR, intr.CSR_OPS.index(op)),
                    ir.Constant(I64_IR, csr),
                    args[0] if args else ir.Constant(I64_IR, 0),
                ],
            )
            return r
        return self._marker_call(intr.marker_name(op, csr), ret, [I64_IR] * len(args), args)

    def _marker_call(
        self, name: str, ret: ir.Type, argtys: list[ir.Type], args: list[ir.Value], preserves: bool = True
    ) -> ir.Value:
        """A call of marker `name` (compiler/asm.py puts the instruction in its place). The instruction writes
        a0 at most, and only as its result, so the call is made with LLVM's preserve_most convention: the
        caller keeps its values in the argument and temporary registers across it instead of moving them to
        callee-saved ones (each of which its prologue saves). `preserves` False: the instruction clobbers an
        argument register it does not return (the C convention then says so)."""
        fn = self._extern(name, ret, argtys)
        if not preserves:
            return self.b.call(fn, args)
        fn.calling_convention = PRESERVE_MOST
        return self.b.call(fn, args, cconv=PRESERVE_MOST)

    def _priv(self, name: str, args: list[ir.Value]) -> ir.Value:
        p = intr.PRIV[name]
        if self.host:
            fn = self._extern("pyshyper_host_priv", I64_IR, [I64_IR] * 3)
            full = args + [ir.Constant(I64_IR, 0)] * (2 - len(args))
            return self.b.call(fn, [ir.Constant(I64_IR, intr.PRIV_OPS.index(name)), *full])
        return self._marker_call(intr.marker_name(name), llvm_type(p.ret), [I64_IR] * p.nargs, args, p.preserves)

    def _lrsc(self, name: str, args: list[ir.Value], bits: int) -> ir.Value:
        it = ir.IntType(bits)
        if not self.host:
            ret = it if name.startswith("lr") else I64_IR
            return self._marker_call(intr.marker_name(name), ret, [PTR_IR] + ([it] if len(args) > 1 else []), args)
        # Host: one hart, so a reservation is the address of the last lr.
        res = self.module.globals.get("__pys_reservation")
        if res is None:
            res = ir.GlobalVariable(self.module, PTR_IR, "__pys_reservation")
            res.initializer = ir.Constant(PTR_IR, None)
            res.linkage = "internal"
        if name.startswith("lr"):
            self.b.store(args[0], res)
            return self.b.load(args[0], typ=it)
        held = self.b.icmp_unsigned(
            "==", self.b.ptrtoint(self.b.load(res, typ=PTR_IR), I64_IR), self.b.ptrtoint(args[0], I64_IR)
        )
        with self.b.if_then(held):
            self.b.store(args[1], args[0])
        self.b.store(ir.Constant(PTR_IR, None), res)
        return self.b.select(held, ir.Constant(I64_IR, 0), ir.Constant(I64_IR, 1))

    def _ecall(self, args: list[ir.Value]) -> ir.Value:
        eid, fid, regs, out = args[0], args[1], args[2:8], args[8]
        if self.host:
            fn = self._extern("pyshyper_host_sbi", I64_IR, [I64_IR] * 8 + [PTR_IR])
            return self.b.call(fn, args)
        pair = ir.LiteralStructType([I64_IR, I64_IR])
        # SBI calling convention: a0..a5 arguments, a6 = FID, a7 = EID; a0 = error, a1 = value.
        fn = self._extern(intr.marker_name("ecall"), pair, [I64_IR] * 8)
        r = self.b.call(fn, [*regs, fid, eid])
        err = self.b.extract_value(r, 0)
        value = self.b.extract_value(r, 1)
        with self.b.if_then(self.b.icmp_unsigned("!=", self.b.ptrtoint(out, I64_IR), ir.Constant(I64_IR, 0))):
            self.b.store(value, out)
        return err


def _align(t: Type) -> int:
    from compiler.types import alignof

    return alignof(t)


def lower_program(prog: Program, target: str, debug_root: Path | None = None) -> ir.Module:
    """`debug_root`: emit debug info, file names relative to this folder (the project root)."""
    with deep_recursion():  # as deep as the checker went (a flat sum of thousands of operands)
        return Lowering(prog, target, debug_root).lower()
