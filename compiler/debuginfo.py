"""Debug information: LLVM debug metadata that becomes DWARF mapping the machine code to the typed-Python source.

One `DICompileUnit` per program (its directory is the project root), one `DIFile` per module (its path relative to
that root when under it), one `DISubprogram` per defined function (named as in Python, with no linkage name, so
that a debugger takes `break sbi_base` and shows `sbi_base` in a backtrace; the ELF symbol stays
module-qualified), a `DILocation` on every instruction (the line and column of the statement it came from), a
`DILocalVariable` with a `#dbg_declare` record for every parameter and local, and a
`DIGlobalVariableExpression` for every global. Types are described with their C layout (compiler.types), so a
debugger prints a `Ptr[Vcpu]` as a pointer to a structure with named fields.

LLVM turns this into `.debug_info`, `.debug_abbrev`, `.debug_line` (`.file`/`.loc` directives in the assembly,
which GNU as encodes), `.debug_frame` (from `.cfi_*` directives: LLVM emits them for every function once the
module has debug info) and friends. None of it is loaded: the image (`objcopy -O binary`) is the same with or
without it. DWARF 4, which every gdb reads: GNU as 2.40 takes LLVM's `.file N "dir" "name"` directives only in
its DWARF 5 mode (where directory 0 becomes the assembler's working directory), so compiler.asm keeps the name
alone and GNU as writes a DWARF 4 line program to match the unit.
"""

from __future__ import annotations

import ast
from pathlib import Path

from llvmlite import ir

from compiler.checker import FuncSym, GlobalSym, LocalSym, Module, Program
from compiler.types import ArrayT, BoolT, FnT, IntT, LitT, MmioT, PtrT, StructT, Type, VoidT, sizeof

DWARF_VERSION = 4
DEBUG_INFO_VERSION = 3  # LLVM's own metadata format version (llvm::DEBUG_METADATA_VERSION)
LANGUAGE = "DW_LANG_Python"  # DWARF 5 table 7.17 code 0x14, usable in a DWARF 4 unit
PRODUCER = "pyshyper compiler (llvmlite)"
I32 = ir.IntType(32)


class _DbgDeclare(ir.instructions.Instruction):
    """`#dbg_declare(ptr %slot, !var, !DIExpression(), !loc)`: a local lives in this stack slot (LLVM's debug
    record form; optimization turns it into `#dbg_value` records where the slot is promoted to registers)."""

    def __init__(self, parent: ir.Block, slot: ir.Value, var: ir.DIValue, loc: ir.DIValue) -> None:
        super().__init__(parent, ir.VoidType(), "dbg_declare", [])
        self.slot, self.var, self.loc = slot, var, loc

    def descr(self, buf: list[str]) -> None:
        ref = self.slot.get_reference()
        buf.append(f"#dbg_declare(ptr {ref}, {self.var.get_reference()}, !DIExpression(), {self.loc.get_reference()})")


class _Distinct(ir.values.DIValue):
    """A `distinct` node, equal only to itself: structures refer to themselves through their fields' types,
    which llvmlite's structural hash of a node would follow forever."""

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)


def first_stores(fn: ast.FunctionDef) -> dict[str, int]:
    """The line of each name's first assignment in a function (a local's declaration line)."""
    lines: dict[str, int] = {}
    for node in ast.walk(fn):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            if node.id not in lines or node.lineno < lines[node.id]:
                lines[node.id] = node.lineno
    return lines


class DebugInfo:
    def __init__(self, module: ir.Module, prog: Program, root: Path) -> None:
        self.m = module
        self.root = root
        self.files: dict[str, ir.DIValue] = {}
        self.types: dict[Type, ir.DIValue | None] = {}
        self.globals: list[ir.DIValue] = []
        self.locations: dict[tuple[int, int, int], ir.DIValue] = {}
        main_file = self.file(prog.main)
        self.cu = self.distinct(
            "DICompileUnit",
            {
                "language": ir.DIToken(LANGUAGE),
                "file": main_file,
                "producer": PRODUCER,
                "isOptimized": True,
                "runtimeVersion": 0,
                "emissionKind": ir.DIToken("FullDebug"),
            },
        )
        module.add_named_metadata("llvm.dbg.cu", self.cu)
        flags = module.add_named_metadata("llvm.module.flags")
        flags.add(module.add_metadata([ir.Constant(I32, 7), "Dwarf Version", ir.Constant(I32, DWARF_VERSION)]))
        flags.add(
            module.add_metadata([ir.Constant(I32, 2), "Debug Info Version", ir.Constant(I32, DEBUG_INFO_VERSION)])
        )
        self.expr = module.add_debug_info("DIExpression", {})

    def distinct(self, kind: str, operands: dict[str, object]) -> ir.DIValue:
        ops = tuple(sorted(self.m._fix_di_operands(operands.items())))
        return _Distinct(self.m, True, kind, ops, name=str(len(self.m.metadata)))

    def finish(self) -> None:
        """The compile unit lists the globals (it was made before them)."""
        if self.globals:
            self.cu.operands = tuple(sorted((*self.cu.operands, ("globals", self.m.add_metadata(self.globals)))))

    # ---------------------------------------------------------------- files and places
    def file(self, mod: Module) -> ir.DIValue:
        di = self.files.get(mod.path)
        if di is None:
            p = Path(mod.path).resolve()
            try:
                name = str(p.relative_to(self.root))
            except ValueError:
                name = str(p)
            di = self.m.add_debug_info("DIFile", {"filename": name, "directory": str(self.root)})
            self.files[mod.path] = di
        return di

    def location(self, node: ast.AST, scope: ir.DIValue) -> ir.DIValue | None:
        line = getattr(node, "lineno", None)
        if line is None:
            return None
        return self.line_location(line, scope, getattr(node, "col_offset", -1) + 1)

    def line_location(self, line: int, scope: ir.DIValue, column: int = 0) -> ir.DIValue:
        key = (line, column, id(scope))
        loc = self.locations.get(key)
        if loc is None:  # made directly: llvmlite's own cache of nodes costs more than the rest of the lowering
            ops = (("column", column), ("line", line), ("scope", scope))
            loc = ir.values.DIValue(self.m, False, "DILocation", ops, name=str(len(self.m.metadata)))
            self.locations[key] = loc
        return loc

    # ---------------------------------------------------------------- functions and variables
    def subprogram(self, f: FuncSym, fn: ir.Function) -> ir.DIValue:
        file = self.file(f.module)
        sig = [self.type(f.ret), *(self.type(t) for _, t in f.params)]
        sub_ty = self.m.add_debug_info("DISubroutineType", {"types": self.m.add_metadata(sig)})
        line = f.node.lineno
        body_line = f.node.body[0].lineno if f.node.body else line
        local = fn.linkage != "external"
        sp = self.distinct(
            "DISubprogram",
            {
                "name": f.name,
                "scope": file,
                "file": file,
                "line": line,
                "type": sub_ty,
                "scopeLine": body_line,
                "flags": ir.DIToken("DIFlagPrototyped"),
                "spFlags": ir.DIToken(
                    "DISPFlagDefinition | DISPFlagOptimized" + (" | DISPFlagLocalToUnit" if local else "")
                ),
                "unit": self.cu,
            },
        )
        fn.set_metadata("dbg", sp)
        return sp

    def declare_locals(self, b: ir.IRBuilder, f: FuncSym, sp: ir.DIValue, slots: dict[LocalSym, ir.Value]) -> None:
        """A variable for each parameter (argument number from 1) and local, declared in its stack slot."""
        file = self.file(f.module)
        first = first_stores(f.node)
        params = [name for name, _ in f.params]
        for name, loc in f.locals.items():
            line = f.node.lineno if name in params else first.get(name, f.node.lineno)
            fields: dict[str, object] = {
                "name": name,
                "scope": sp,
                "file": file,
                "line": line,
                "type": self.type(loc.ty),
            }
            if name in params:
                fields["arg"] = params.index(name) + 1
            var = self.m.add_debug_info("DILocalVariable", fields)
            b._insert(_DbgDeclare(b.block, slots[loc], var, self.line_location(line, sp)))

    def global_variable(self, g: GlobalSym, gv: ir.GlobalVariable) -> None:
        file = self.file(g.module)
        var = self.distinct(
            "DIGlobalVariable",
            {
                "name": g.name,
                "scope": file,
                "file": file,
                "line": getattr(g.node, "lineno", 0),
                "type": self.type(g.ty),
                "isLocal": gv.linkage != "external",
                "isDefinition": True,
            },
        )
        gve = self.m.add_debug_info("DIGlobalVariableExpression", {"var": var, "expr": self.expr})
        gv.set_metadata("dbg", gve)
        self.globals.append(gve)

    # ---------------------------------------------------------------- types
    def type(self, t: Type | None) -> ir.DIValue | None:
        """The DWARF type of t (None for `None` results); structures are made once, fields after (a structure
        may point to itself)."""
        if t is None or isinstance(t, VoidT):
            return None
        if t in self.types:
            return self.types[t]
        m = self.m
        di: ir.DIValue | None
        if isinstance(t, (IntT, LitT)):
            it = t if isinstance(t, IntT) else IntT("i64", 64, True)
            enc = "DW_ATE_signed" if it.signed else "DW_ATE_unsigned"
            di = m.add_debug_info("DIBasicType", {"name": it.name, "size": it.bits, "encoding": ir.DIToken(enc)})
        elif isinstance(t, BoolT):
            di = m.add_debug_info("DIBasicType", {"name": "bool", "size": 8, "encoding": ir.DIToken("DW_ATE_boolean")})
        elif isinstance(t, PtrT):
            di = self._pointer(str(t), self.type(t.target))
        elif isinstance(t, MmioT):
            elem = self.type(t.elem)
            vol = m.add_debug_info("DIDerivedType", {"tag": ir.DIToken("DW_TAG_volatile_type"), "baseType": elem})
            di = self._pointer(str(t), vol)
        elif isinstance(t, FnT):
            sig = [self.type(t.ret), *(self.type(p) for p in t.params)]
            sub = m.add_debug_info("DISubroutineType", {"types": m.add_metadata(sig)})
            di = self._pointer(str(t), sub)
        elif isinstance(t, ArrayT):
            rng = m.add_debug_info("DISubrange", {"count": t.n})
            di = m.add_debug_info(
                "DICompositeType",
                {
                    "tag": ir.DIToken("DW_TAG_array_type"),
                    "baseType": self.type(t.elem),
                    "size": sizeof(t) * 8,
                    "elements": m.add_metadata([rng]),
                },
            )
        elif isinstance(t, StructT):
            di = self.distinct(
                "DICompositeType",
                {
                    "tag": ir.DIToken("DW_TAG_structure_type"),
                    "name": t.name,
                    "size": t.size * 8,
                    "align": t.align * 8,
                    "identifier": f"{t.module}.{t.name}",
                },
            )
            self.types[t] = di
            members = [
                m.add_debug_info(
                    "DIDerivedType",
                    {
                        "tag": ir.DIToken("DW_TAG_member"),
                        "name": name,
                        "scope": di,
                        "baseType": self.type(ft),
                        "size": sizeof(ft) * 8,
                        "offset": t.offsets[name] * 8,
                    },
                )
                for name, ft in t.fields
            ]
            di.operands = tuple(sorted((*di.operands, ("elements", m.add_metadata(members)))))
        else:
            raise TypeError(f"no debug type for {t}")
        self.types[t] = di
        return di

    def _pointer(self, name: str, base: ir.DIValue | None) -> ir.DIValue:
        return self.m.add_debug_info(
            "DIDerivedType", {"tag": ir.DIToken("DW_TAG_pointer_type"), "name": name, "baseType": base, "size": 64}
        )
