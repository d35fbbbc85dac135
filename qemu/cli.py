"""The `pyshyper` command: `cc`, `build`, `run`, `gdb`, `images`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from boards import BoardError
from qemu import build, gdb, run


class OneLineParser(argparse.ArgumentParser):
    """Bad arguments get one clear line on stderr and exit status 2 (no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _forward_cc(argv: list[str]) -> int:
    try:
        from compiler.cli import main as cc_main
    except ImportError as e:
        print(f"pyshyper cc: the compiler command line is not available ({e})", file=sys.stderr)
        return 1
    return int(cc_main(argv) or 0)


def _forward_images(argv: list[str]) -> int:
    try:
        from qemu.images import main as images_main
    except ImportError as e:
        print(f"pyshyper images: the image builder is not available ({e})", file=sys.stderr)
        return 1
    return int(images_main(argv) or 0)


# Subcommands whose arguments belong to another module's own parser: forwarded untouched, --help included.
FORWARDED: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "cc": (_forward_cc, "the typed-subset compiler: check, run, emit (see `pyshyper cc --help`)"),
    "images": (_forward_images, "prepare guest and MVM images (see `pyshyper images --help`)"),
}


def make_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="pyshyper", description="PyShyper: a RISC-V hypervisor in typed Python.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name, (_, help_text) in FORWARDED.items():
        sub.add_parser(name, help=help_text, add_help=False)
    p = sub.add_parser(
        "build",
        help="compile, assemble and link build/pyshyper.elf and .bin",
        description="Build the hypervisor image for a board and IRQ mode.",
    )
    build.add_arguments(p)
    p.set_defaults(func=build.run_build)
    p = sub.add_parser(
        "run",
        help="build if needed and boot the hypervisor under QEMU",
        description="Boot the hypervisor under QEMU with OpenSBI; exits with QEMU's status.",
    )
    run.add_arguments(p)
    p.set_defaults(func=run.run_run)
    p = sub.add_parser(
        "gdb",
        help="gdb-multiarch on build/pyshyper.elf, attached to a QEMU started by `pyshyper run --gdb`",
        description="Start gdb-multiarch on the hypervisor's ELF (Python files and lines from its DWARF), "
        "connected to QEMU's gdb stub.",
    )
    gdb.add_arguments(p)
    p.set_defaults(func=gdb.run_gdb)
    return parser


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else list(argv)
    if args_list and args_list[0] in FORWARDED:
        return FORWARDED[args_list[0]][0](args_list[1:])
    parser = make_parser()
    args, unknown = parser.parse_known_args(args_list)
    if unknown:
        # Report it as the subcommand's error ("pyshyper build: error: ..."), still one line.
        prog = f"{parser.prog} {args.command}" if getattr(args, "command", None) else parser.prog
        print(f"{prog}: error: unrecognized arguments: {' '.join(unknown)}", file=sys.stderr)
        return 2
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except BoardError as e:
        # Bad input, never a traceback: a wrong option, or board data (board.toml, mvm.toml) that does not hold
        # together, as one line naming the file, the field and the reason.
        print(f"{parser.prog} {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
