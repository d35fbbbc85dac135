"""The type checker: from source files to a typed, resolved program.

Every expression node gets `.ty` (its type) and `.cv` (its constant value, or None); names get `.sym`.
Lowering (compiler/lower.py) reads only these annotations. All errors of a program are collected
before `CompileError` is raised.
"""

from __future__ import annotations

import ast
import contextlib
import sys
from pathlib import Path

from compiler.check.builtins import Builtins
from compiler.check.declarations import PY_BUILTINS, Declarations
from compiler.check.expressions import Expressions
from compiler.check.statements import Statements
from compiler.diagnostics import Reporter
from compiler.loader import Loader, find_root, module_name
from compiler.symbols import BuiltinSym, ConstSym, FuncSym, GlobalSym, LocalSym, Module, Program
from compiler.types import StructT

__all__ = [
    "Checker",
    "ConstSym",
    "FuncSym",
    "GlobalSym",
    "LocalSym",
    "Program",
    "check_program",
    "deep_recursion",
    "find_root",
    "module_name",
]


class Checker(Loader, Declarations, Statements, Expressions, Builtins):
    """One program's checker: the stages share its state (modules, symbols, the current module and function)
    and its errors."""

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

    def err(self, code: str, msg: str, node: ast.AST | None, mod: Module | None = None) -> None:
        m = mod or self.mod
        assert m is not None
        self.rep.error(code, msg, m.path, m.lines, node)

    def lookup(self, name: str) -> object | None:
        if self.fn is not None and name in self.fn.locals:
            return self.fn.locals[name]
        assert self.mod is not None
        if name in self.mod.scope:
            return self.mod.scope[name]
        if name in PY_BUILTINS:
            return BuiltinSym(name)
        return None


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
