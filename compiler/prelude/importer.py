"""The import hook: the static typing of compiled code, for CPython (annotated integers convert, `range` yields
its bounds' type, a failed `assert` panics, import cycles bind once loaded)."""

import ast
import importlib.abc
import importlib.machinery
import importlib.util
import sys

from compiler.prelude.ints import (
    _is_int_type,
    _lit_to,
    _LitForm,
    _tname,
    i64,
)
from compiler.prelude.panics import AssertPanic
from compiler.prelude.places import (
    Array,
    _builtin_len,
    _size,
    _StructMeta,
    len,
)
from compiler.prelude.sim_memory import (
    memory,
)

# ----------------------------------------------------------------------------------------------------------------
# Import hook: the static typing of compiled code, for CPython


_INT_NAMES = frozenset(["u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64", "usize", "bool"])


def _coerce(t, v):
    """Annotated parameters, results and assignments: a plain int takes the annotated integer type."""
    if _is_int_type(t):
        tv = type(v)
        if tv is int or tv is _LitForm:
            return _lit_to(t, v)
        if tv is not t and isinstance(v, (int, bool)):
            raise TypeError(f"expected {t.__name__}, got {_tname(tv)} (E206)")
    elif t is bool and type(v) is not bool:
        raise TypeError(f"expected bool, got {_tname(type(v))} (E206)")
    return v


def _range(*args):
    # the bounds give the type; the step is a constant of any type and sign, never converted (LANGUAGE.md 7)
    ts = {type(a) for a in args[:2] if type(a) is not int and type(a) is not _LitForm}
    if _builtin_len(ts) > 1:
        raise TypeError(f"range bounds of types {sorted(t.__name__ for t in ts)} (E202)")
    t = ts.pop() if ts else i64
    if not _is_int_type(t):
        raise TypeError(f"range bound of type {_tname(t)}")
    bounds = [int(_lit_to(t, a)) if type(a) is not t else int(a) for a in args[:2]]
    for i in range(*bounds, *[int(a) for a in args[2:]]):
        yield t(i)


def _old(name: str, glob: bool, depth: int = 2):
    f = sys._getframe(depth)
    return (f.f_globals if glob else f.f_locals).get(name)


def _bind(v, name: str, glob: bool = False, depth: int = 1):
    """`name = v`: a plain int literal or literal form takes the type of the variable (i64 for a new local)."""
    tv = type(v)
    if tv is not int and tv is not _LitForm:
        return v
    old = _old(name, glob, depth + 1)
    return _lit_to(type(old) if _is_int_type(type(old)) else i64, v)


def _make(t, name: str, glob: bool = False):
    """`name = T()` in a function: a zeroed T every time it runs; a local that already holds a T is zeroed in place,
    so the local keeps one place per call, as compiled (LANGUAGE.md 5).  Any other zero-argument call is called."""
    if isinstance(t, _StructMeta) or (isinstance(t, type) and issubclass(t, Array)):
        old = _old(name, glob)
        if type(old) is t:
            memory.fill(old._addr, _size(t))
            return old
        return t()
    return _bind(t(), name, glob, 2)


def _assert_failed(line: int):
    raise AssertPanic(3, line, 0)


def _int_ann(node):
    """u32 / Final[u32] annotation nodes -> the type name, else None."""
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "Final":
        node = node.slice
    if isinstance(node, ast.Name) and node.id in _INT_NAMES:
        return node.id
    return None


class _Typer(ast.NodeTransformer):
    def __init__(self):
        self.ret: list = []
        self.globs: list = []  # per function: the names of its `global` statements

    def _call(self, fn: str, *args, like):
        return ast.copy_location(ast.Call(func=ast.Name(id=fn, ctx=ast.Load()), args=list(args), keywords=[]), like)

    def visit_FunctionDef(self, node):
        self.ret.append(_int_ann(node.returns) if node.returns is not None else None)
        self.globs.append({n for g in ast.walk(node) if isinstance(g, ast.Global) for n in g.names})
        self.generic_visit(node)
        self.globs.pop()
        self.ret.pop()
        pre = []
        for a in node.args.posonlyargs + node.args.args:
            t = _int_ann(a.annotation) if a.annotation is not None else None
            if t is not None:
                assign = ast.Assign(
                    targets=[ast.Name(id=a.arg, ctx=ast.Store())],
                    value=self._call(
                        "__ps_coerce__", ast.Name(id=t, ctx=ast.Load()), ast.Name(id=a.arg, ctx=ast.Load()), like=node
                    ),
                    lineno=node.lineno,
                )
                pre.append(ast.copy_location(assign, node))
        if pre:
            body = node.body
            k = (
                1
                if body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
                else 0
            )
            node.body = body[:k] + pre + body[k:]
        return node

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Return(self, node):
        self.generic_visit(node)
        t = self.ret[-1] if self.ret else None
        if t is not None and node.value is not None:
            node.value = self._call("__ps_coerce__", ast.Name(id=t, ctx=ast.Load()), node.value, like=node.value)
        return node

    def visit_AnnAssign(self, node):
        self.generic_visit(node)
        t = _int_ann(node.annotation)
        if t is not None and node.value is not None:
            node.value = self._call("__ps_coerce__", ast.Name(id=t, ctx=ast.Load()), node.value, like=node.value)
        elif node.value is not None and self._is_zero_arg_call(node.value):
            node.value = self._bind(node.target, node.value)
        return node

    def visit_Assign(self, node):
        self.generic_visit(node)
        if len(node.targets) == 1:
            node.value = self._bind(node.targets[0], node.value)
        return node

    @staticmethod
    def _is_zero_arg_call(value) -> bool:
        return (
            isinstance(value, ast.Call)
            and not value.args
            and not value.keywords
            and isinstance(value.func, (ast.Name, ast.Subscript))
        )

    def _bind(self, target, value):
        """`x = v` in a function -> `x = __ps_bind__(v, "x", is_global)`: a plain int (a literal, a literal form)
        takes x's type, or i64 for a new local (LANGUAGE.md 3); `x = T()` -> `x = __ps_make__(T, "x", is_global)`,
        which zeroes x's place again when x already holds a T (LANGUAGE.md 5)."""
        if not (self.ret and isinstance(target, ast.Name)):
            return value
        glob = ast.Constant(target.id in self.globs[-1])
        if self._is_zero_arg_call(value):
            return self._call("__ps_make__", value.func, ast.Constant(target.id), glob, like=value)
        return self._call("__ps_bind__", value, ast.Constant(target.id), glob, like=value)

    def visit_Assert(self, node):
        self.generic_visit(node)
        fail = ast.Expr(value=self._call("__ps_assert_failed__", ast.Constant(node.lineno), like=node))
        new = ast.If(test=ast.UnaryOp(op=ast.Not(), operand=node.test), body=[ast.copy_location(fail, node)], orelse=[])
        return ast.copy_location(new, node)

    def visit_ImportFrom(self, node):
        # `from hypervisor.x import a, b` between program modules: bound now if defined, else once the cycle has
        # loaded (LANGUAGE.md 1: import cycles are allowed).  The language's own names import as usual.
        if node.level != 0 or node.module is None or node.module.split(".")[0] in ("compiler", "__future__", "typing"):
            return node
        names = ast.Tuple(elts=[ast.Constant(a.name) for a in node.names], ctx=ast.Load())
        call = self._call(
            "__ps_import__", self._call("globals", like=node), ast.Constant(node.module), names, like=node
        )
        return ast.copy_location(ast.Expr(value=call), node)

    def visit_For(self, node):
        self.generic_visit(node)
        it = node.iter
        if isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "range":
            it.func = ast.copy_location(ast.Name(id="__ps_range__", ctx=ast.Load()), it.func)
        return node


def _typed_code(source: str, path: str):
    # The rewrite and compile() of the tree recurse per level of an expression: room for what the compiler
    # accepts (2000 levels, compiler.loader.MAX_DEPTH; CPython's parser keeps its own limit).
    tree = ast.parse(source, filename=path)
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 20000))
    try:
        tree = _Typer().visit(tree)
        ast.fix_missing_locations(tree)
        return compile(tree, path, "exec", dont_inherit=True)
    finally:
        sys.setrecursionlimit(old)


_pending: list = []  # (globals, module, name) waiting for a module of an import cycle to finish
_loading = [0]


def _import_from(globs: dict, modname: str, names: tuple) -> None:
    mod = importlib.import_module(modname)
    for n in names:
        if n in vars(mod):
            globs[n] = vars(mod)[n]
        else:
            _pending.append((globs, mod, n))


def _resolve_pending() -> None:
    still = []
    for globs, mod, n in _pending:
        if n in vars(mod):
            globs[n] = vars(mod)[n]
        else:
            still.append((globs, mod, n))
    _pending[:] = still
    if _loading[0] == 0 and still:
        globs, mod, n = still[0]
        _pending.clear()
        raise ImportError(f"cannot import name {n!r} from {mod.__name__!r} (E103)")


_HOOK_NAMES = {
    "__ps_coerce__": _coerce,
    "__ps_range__": _range,
    "__ps_make__": _make,
    "__ps_bind__": _bind,
    "len": len,  # the language's len (a u64 for arrays) even where the module does not import it
    "__ps_assert_failed__": _assert_failed,
    "__ps_import__": _import_from,
}


class _TypedLoader(importlib.abc.Loader):
    def __init__(self, path: str):
        self.path = path

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        code = _typed_code(self.get_source(module.__name__), self.path)
        module.__dict__.update(_HOOK_NAMES)
        _loading[0] += 1
        try:
            exec(code, module.__dict__)
        except BaseException:
            _loading[0] -= 1
            if _loading[0] == 0:
                _pending.clear()
            raise
        _loading[0] -= 1
        _resolve_pending()

    def get_source(self, name):
        # decoded as CPython's own loader does: a UTF-8 BOM or a PEP 263 coding line, else UTF-8
        with open(self.path, "rb") as f:
            return importlib.util.decode_source(f.read())


class _TypedFinder(importlib.abc.MetaPathFinder):
    def __init__(self, prefixes):
        self.prefixes = tuple(prefixes)

    def find_spec(self, fullname, path, target=None):
        if not any(fullname == p or fullname.startswith(p + ".") for p in self.prefixes):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            return spec
        spec.loader = _TypedLoader(spec.origin)
        return spec


_finder: list = []


def install_import_hook(prefixes=("hypervisor",)) -> None:
    """Load modules under these dotted prefixes with the typing rewrite (idempotent; prefixes accumulate)."""
    if _finder:
        f = _finder[0]
        f.prefixes = tuple(dict.fromkeys(f.prefixes + tuple(prefixes)))
        return
    f = _TypedFinder(prefixes)
    _finder.append(f)
    sys.meta_path.insert(0, f)


def load_module(path: str, name: str):
    """Load one file as module `name` with the typing rewrite (and register it in sys.modules)."""
    spec = importlib.util.spec_from_file_location(name, path, loader=_TypedLoader(path))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return mod
