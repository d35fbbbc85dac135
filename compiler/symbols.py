"""The checker's symbols: what a name of a checked program stands for, and the program itself.

The checker makes them (compiler/checker.py); lowering (compiler/lower.py) reads them.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from compiler.types import (
    VOID,
    FnT,
    StructT,
    Type,
)

# The module whose names the compiler knows itself: `from compiler.prelude import X` binds no file.
PRELUDE = "compiler.prelude"


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


@dataclass
class Program:
    """A checked program: its modules (`order`: those that parsed, in load order), every function, global,
    struct and constant, and the module given first."""

    modules: dict[str, Module]
    order: list[Module]
    funcs: list[FuncSym]
    globals: list[GlobalSym]
    structs: list[StructT]
    consts: list[ConstSym]
    main: Module
