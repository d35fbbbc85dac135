"""`pyshyper cc`: check, run (host JIT or CPython) and emit programs of the typed subset."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from compiler.diagnostics import CompileError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyshyper cc", description="The PyShyper compiler (see compiler/LANGUAGE.md).")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="{check,run,emit}")
    c = sub.add_parser(
        "check",
        help="type-check files; exit 1 with diagnostics if any",
        description="Type-check a program; every error of every file is reported.",
    )
    c.add_argument("files", nargs="+", metavar="FILE")
    r = sub.add_parser(
        "run",
        help="compile for the host and call a function, printing its value",
        description="Compile FILE for the host (MCJIT) and call NAME() -> int; its value is "
        "printed in decimal on the last line.",
    )
    r.add_argument("file", metavar="FILE")
    r.add_argument("--entry", default="main", metavar="NAME", help="function to call (default: main)")
    r.add_argument("--cpython", action="store_true", help="run the same function under CPython instead")
    e = sub.add_parser(
        "emit",
        help="emit LLVM IR, assembly or an object for riscv64",
        description="Compile a program for a target and write LLVM IR, assembly or an object.",
    )
    e.add_argument("files", nargs="+", metavar="FILE")
    e.add_argument("--target", default="riscv64", choices=["riscv64", "host"])
    e.add_argument("--emit", default="obj", choices=["llvm", "asm", "obj"])
    e.add_argument("-o", dest="out", required=True, metavar="OUT")
    e.add_argument("-O", dest="opt", type=int, default=2, choices=[0, 1, 2, 3])
    e.add_argument("-g", dest="debug", action="store_true", help="with debug info (DWARF): files, lines, variables")
    return p


def _run_cpython(path: Path, entry: str) -> int:
    """Run ENTRY() under CPython with the prelude's typing rewrite (LANGUAGE.md 10), after the same check the
    compiled path does, so a bad file gives diagnostics (never a traceback) either way."""
    from compiler import driver, prelude
    from compiler.checker import find_root, module_name

    diags = driver.check([path])
    if diags:
        raise CompileError(diags)
    root = find_root(path.resolve())
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    name = module_name(path, root)
    prelude.install_import_hook((name.split(".")[0],))
    mod = prelude.load_module(str(path), name)
    fn = getattr(mod, entry, None)
    if not callable(fn):
        raise KeyError(f"no function `{entry}` in the program")
    return int(fn())


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from compiler import driver
    from compiler.prelude import Panic

    try:
        if args.cmd == "check":
            diags = driver.check(args.files)
            for d in diags:
                print(d.render(), file=sys.stderr)
                print(file=sys.stderr)
            if diags:
                print(f"{len(diags)} error(s)", file=sys.stderr)
                return 1
            return 0
        if args.cmd == "run":
            if args.cpython:
                value = _run_cpython(Path(args.file), args.entry)
            else:
                value = driver.run_host([args.file], args.entry)
            print(int(value))
            return 0
        c = driver.compile_program(args.files, args.target, args.opt, debug=args.debug)
        out = Path(args.out)
        if args.emit == "llvm":
            out.write_text(c.llvm_ir)
        elif args.target != "riscv64":
            out.write_bytes(c.tm.emit_object(c.module)) if args.emit == "obj" else out.write_text(
                c.tm.emit_assembly(c.module)
            )
        elif args.emit == "asm":
            out.write_text(driver.riscv_assembly(c))
        else:
            driver.assemble(driver.riscv_assembly(c), out, debug=args.debug)
        return 0
    except CompileError as e:
        print(e.render(), file=sys.stderr)
        return 1
    except Panic as p:
        print(f"panic: {p}", file=sys.stderr)
        return 101
    except (KeyError, OSError, RuntimeError, TypeError) as e:
        print(f"pyshyper cc: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
