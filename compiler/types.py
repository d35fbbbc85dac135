"""The type table: every type of the language, its C layout, and its LLVM type (one place for all three)."""

from __future__ import annotations

from dataclasses import dataclass, field

from llvmlite import ir


class Type:
    pass

    def __str__(self) -> str:
        return self.name

    @property
    def is_aggregate(self) -> bool:
        return False

    @property
    def is_scalar(self) -> bool:
        return not self.is_aggregate


@dataclass(frozen=True)
class IntT(Type):
    name: str
    bits: int
    signed: bool

    @property
    def min(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    def wrap(self, v: int) -> int:
        v &= (1 << self.bits) - 1
        if self.signed and v >> (self.bits - 1):
            v -= 1 << self.bits
        return v

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class BoolT(Type):
    name: str = "bool"

    def __str__(self) -> str:
        return "bool"


@dataclass(frozen=True)
class LitT(Type):
    """The type of an untyped integer literal or constant: it adapts to its context."""

    name: str = "int literal"

    def __str__(self) -> str:
        return "int literal"


@dataclass(frozen=True)
class VoidT(Type):
    name: str = "None"

    def __str__(self) -> str:
        return "None"


@dataclass(frozen=True)
class PtrT(Type):
    target: Type

    def __str__(self) -> str:
        return f"Ptr[{self.target}]"


@dataclass(frozen=True)
class MmioT(Type):
    elem: IntT

    def __str__(self) -> str:
        return f"Mmio[{self.elem}]"


@dataclass(frozen=True)
class FnT(Type):
    params: tuple[Type, ...]
    ret: Type

    def __str__(self) -> str:
        return f"Callable[[{', '.join(map(str, self.params))}], {self.ret}]"


@dataclass(frozen=True)
class ArrayT(Type):
    elem: Type
    n: int

    @property
    def is_aggregate(self) -> bool:
        return True

    def __str__(self) -> str:
        return f"Array[{self.elem}, {self.n}]"


@dataclass(eq=False)
class StructT(Type):
    name: str
    module: str = ""
    fields: list[tuple[str, Type]] = field(default_factory=list)
    offsets: dict[str, int] = field(default_factory=dict)
    size: int = 0
    align: int = 1
    llvm: ir.IdentifiedStructType | None = None

    @property
    def is_aggregate(self) -> bool:
        return True

    def __str__(self) -> str:
        return self.name

    def __hash__(self) -> int:
        return id(self)

    def field_index(self, name: str) -> int:
        for i, (n, _) in enumerate(self.fields):
            if n == name:
                return i
        return -1


INTS: dict[str, IntT] = {
    n: IntT(n, b, s)
    for n, b, s in [
        ("u8", 8, False),
        ("u16", 16, False),
        ("u32", 32, False),
        ("u64", 64, False),
        ("i8", 8, True),
        ("i16", 16, True),
        ("i32", 32, True),
        ("i64", 64, True),
    ]
}
INTS["usize"] = INTS["u64"]
U64 = INTS["u64"]
I64 = INTS["i64"]
U32 = INTS["u32"]
BOOL = BoolT()
LIT = LitT()
VOID = VoidT()


def is_int(t: Type) -> bool:
    return isinstance(t, (IntT, LitT))


def sizeof(t: Type) -> int:
    if isinstance(t, IntT):
        return t.bits // 8
    if isinstance(t, BoolT):
        return 1
    if isinstance(t, (PtrT, MmioT, FnT)):
        return 8
    if isinstance(t, ArrayT):
        return t.n * sizeof(t.elem)
    if isinstance(t, StructT):
        return t.size
    raise TypeError(f"no size for {t}")


def alignof(t: Type) -> int:
    if isinstance(t, ArrayT):
        return alignof(t.elem)
    if isinstance(t, StructT):
        return t.align
    return sizeof(t)


def layout_struct(s: StructT) -> None:
    """C layout: each field at the next multiple of its alignment; size padded to the largest alignment."""
    off, align = 0, 1
    for name, ft in s.fields:
        a = alignof(ft)
        off = (off + a - 1) // a * a
        s.offsets[name] = off
        off += sizeof(ft)
        align = max(align, a)
    s.size = (off + align - 1) // align * align
    s.align = align


PTR_IR = ir.PointerType()


def llvm_type(t: Type, in_memory: bool = False) -> ir.Type:
    """The LLVM type of t; in memory a bool is an i8 (as C's _Bool), in registers an i1."""
    if isinstance(t, IntT):
        return ir.IntType(t.bits)
    if isinstance(t, BoolT):
        return ir.IntType(8) if in_memory else ir.IntType(1)
    if isinstance(t, (PtrT, MmioT, FnT)):
        return PTR_IR
    if isinstance(t, ArrayT):
        return ir.ArrayType(llvm_type(t.elem, True), t.n)
    if isinstance(t, StructT):
        assert t.llvm is not None
        return t.llvm
    if isinstance(t, VoidT):
        return ir.VoidType()
    if isinstance(t, LitT):
        return ir.IntType(64)
    raise TypeError(f"no LLVM type for {t}")
