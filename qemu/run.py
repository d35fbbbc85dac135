"""`pyshyper run`: build when needed, then start QEMU with OpenSBI and the hypervisor; exit with QEMU's status."""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from boards import BoardError, BuildConfig
from qemu.build import BuildError, add_config_arguments, build, config_from_args, positive_int, stale_reason

QEMU = "qemu-system-riscv64"
GDB_PORT = 1234
DEFAULT_GUEST = "selftest"  # `pyshyper run` runs the self-test guest unless told otherwise (--guest none)
_SIZE = re.compile(r"^(\d+)([KMGT]?)$")


@dataclass(frozen=True)
class RunOptions:
    config: BuildConfig
    elf: Path
    smp: int
    mem: str
    cpu: str
    guest_image: Path | None = None
    gdb: bool = False
    extra: tuple[str, ...] = ()


def parse_size(text: str) -> int:
    m = _SIZE.match(text.upper())
    if m is None:
        raise BoardError(f"--mem must be a size like 512M or 2G, not {text!r}")
    # QEMU reads a bare number as MiB.
    return int(m.group(1)) << {"": 20, "K": 10, "M": 20, "G": 30, "T": 40}[m.group(2)]


def qemu_command(opts: RunOptions) -> list[str]:
    """The full QEMU command line for a run (reused by the boot tests)."""
    b = opts.config.board
    machine = b.qemu_machine
    if opts.config.aia:
        machine += f",aia=aplic-imsic,aia-guests={opts.config.aia_guests}"
    cmd = [
        QEMU,
        "-M",
        machine,
        "-cpu",
        opts.cpu,
        "-smp",
        str(opts.smp),
        "-m",
        opts.mem,
        "-bios",
        "default",
        "-nographic",
        "-kernel",
        str(opts.elf),
    ]
    if opts.guest_image is not None:
        cmd += ["-device", f"loader,file={opts.guest_image},addr={b.guest_images.base:#x},force-raw=on"]
    if opts.gdb:
        cmd += ["-s", "-S"]
    return cmd + list(opts.extra)


def guest_image_path(name: str, out: Path) -> Path:
    """A guest given by name is the image `OUT/guests/NAME.bin`; a path is taken as it is."""
    if "/" in name or name.endswith((".bin", ".img")):
        return Path(name)
    return out / "guests" / f"{name}.bin"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("--smp", type=positive_int, default=None, metavar="N", help="harts (default from the board: 4)")
    p.add_argument("--mem", default=None, metavar="SIZE", help="RAM size, QEMU syntax (default from the board: 1G)")
    p.add_argument("--cpu", default=None, help="QEMU -cpu model and properties (default rv64)")
    p.add_argument(
        "--guest",
        default=DEFAULT_GUEST,
        metavar="NAME",
        help=f"guest image for the hypervisor to run: OUT/guests/NAME.bin or a path ({DEFAULT_GUEST}; none: no guest)",
    )
    p.add_argument("--gdb", action="store_true", help=f"wait for gdb on port {GDB_PORT} (-s -S)")
    p.add_argument("--rebuild", action="store_true", help="build even when the image looks up to date")
    p.add_argument("--print-command", action="store_true", help="print the QEMU command line and exit")
    p.add_argument("qemu_args", nargs="*", metavar="-- QEMU_ARG", help="extra arguments passed to QEMU after --")


def options_from_args(args: argparse.Namespace) -> RunOptions:
    """Raises BoardError with a one-line message for any bad choice."""
    cfg = config_from_args(args)
    b = cfg.board
    smp = args.smp if args.smp is not None else b.default_smp
    if not 1 <= smp <= b.max_harts:
        raise BoardError(f"--smp must be between 1 and {b.max_harts} on {b.name}, not {smp}")
    mem = args.mem if args.mem is not None else b.default_mem
    guest = guest_image_path(args.guest, args.out) if args.guest and args.guest != "none" else None
    needed = (b.guest_images.end if guest else b.hypervisor.end) - b.ram_base
    if parse_size(mem) < needed:
        raise BoardError(f"--mem {mem} is too small: {b.name} needs at least {needed >> 20}M")
    return RunOptions(
        cfg,
        args.out.resolve() / "pyshyper.elf",
        smp,
        mem,
        args.cpu or b.qemu_cpu,
        guest,
        args.gdb,
        tuple(args.qemu_args),
    )


def run_run(args: argparse.Namespace) -> int:
    try:
        opts = options_from_args(args)
    except BoardError as e:
        print(f"pyshyper run: error: {e}", file=sys.stderr)
        return 2
    cmd = qemu_command(opts)
    if args.print_command:
        print(shlex.join(cmd))
        return 0
    reason = "--rebuild" if args.rebuild else stale_reason(opts.config, args.out, args.guest)
    if reason is not None:
        print(f"[run] building: {reason}", flush=True)
        try:
            build(opts.config, args.out)
        except BuildError as e:
            print(f"pyshyper run: {e}", file=sys.stderr)
            return 1
    if opts.guest_image is not None and not opts.guest_image.is_file():
        print(f"pyshyper run: error: guest image {opts.guest_image} not found", file=sys.stderr)
        return 2
    if opts.gdb:
        print(f"[run] waiting for gdb: riscv64-elf gdb {opts.elf} -ex 'target remote :{GDB_PORT}'", flush=True)
    print(f"[run] {shlex.join(cmd)}", flush=True)
    try:
        return subprocess.call(cmd)
    except FileNotFoundError:
        print(f"pyshyper run: {QEMU} not found: run qemu/setup-host.sh", file=sys.stderr)
        return 127
    except KeyboardInterrupt:
        return 130
