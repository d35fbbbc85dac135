"""`pyshyper run`: build when needed, then start QEMU with OpenSBI and the hypervisor; exit with QEMU's status.

By default (`--guest mvm`) the hypervisor boots the management VM: Debian's kernel `Image` and the MVM initramfs
from the image cache (`pyshyper images`, made first when needed) and the MVM's device tree from the build
(`OUT/mvm-<irq>.dtb`), each placed by QEMU's loader device at the host address behind its load IPA in
`boards/<board>/mvm.toml`. `--guest selftest` (or any tests/guests/NAME) loads a test-guest image instead,
`--guest none` nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import fdt

from boards import BoardError, BuildConfig, make_config
from boards.mvm import check_images, load_mvm
from pyshyper_host.build.pipeline import (
    DEFAULT_OUT,
    BuildError,
    _rel,
    add_config_arguments,
    build,
    config_from_args,
    mvm_dtb_path,
    positive_int,
    stale_reason,
    write_mvm_dtb,
)
from pyshyper_host.build.qemu_machine import qemu_device_tree
from pyshyper_host.images import initramfs as images
from pyshyper_host.images.initramfs import format_size
from pyshyper_host.run.gdb import GDB_PORT, attach_hint, port_number

QEMU = "qemu-system-riscv64"
MVM_GUEST = "mvm"  # the management VM: Debian's Linux from the image cache
DEFAULT_GUEST = MVM_GUEST  # `pyshyper run` boots the MVM unless told otherwise (--guest selftest, --guest none)
# Repeatable instruction counts: one guest instruction per ns of virtual time, idle time skipped; QEMU's
# guest-visible randomness (the device tree's /chosen/rng-seed) from a fixed seed; and the RTC running on the
# virtual clock from a fixed date, not the host's. Linux mixes both into its random pool, which steers its
# allocators and hashes: with them fixed, two boots of one image run the same instructions up to the first input
# (the MVM's /init starts at the same instruction count each time).
ICOUNT = ("-icount", "shift=0,sleep=off", "-seed", "1", "-rtc", "base=2026-01-01T00:00:00,clock=vm")
_SIZE = re.compile(r"^(\d+)([KMGT]?)$")


@dataclass(frozen=True)
class MvmImages:
    """What QEMU's loader puts in memory for the MVM: file and host-physical address of each image."""

    kernel: Path
    kernel_addr: int
    initrd: Path
    initrd_addr: int
    dtb: Path
    dtb_addr: int
    min_mem: int  # bytes of RAM QEMU needs for the MVM's memory (from the board's RAM base)
    min_smp: int  # harts QEMU needs for the MVM's vCPUs (highest pinned hart + 1)
    disk: Path | None = None  # the images disk (mvm-disk.img), a virtio-blk device on a passthrough slot

    def loader_args(self) -> list[str]:
        return [
            arg
            for path, addr in (
                (self.kernel, self.kernel_addr),
                (self.initrd, self.initrd_addr),
                (self.dtb, self.dtb_addr),
            )
            for arg in ("-device", f"loader,file={path},addr={addr:#x},force-raw=on")
        ]

    def disk_args(self) -> list[str]:
        """The images disk as a virtio-blk device: QEMU's virt machine puts it on the highest free virtio-mmio slot
        (0x1000_8000, source 8), one the MVM owns by passthrough. snapshot=on: the MVM may write to it, but the
        writes go to a temporary overlay QEMU drops at exit, so the cached image never changes (images/disk.py)."""
        if self.disk is None:
            return []
        return [
            "-drive",
            f"file={self.disk},if=none,format=raw,id=shyper-images,snapshot=on",
            "-device",
            "virtio-blk-device,drive=shyper-images",
        ]


def mvm_images(cfg: BuildConfig, out: Path = DEFAULT_OUT, cache: Path | None = None) -> MvmImages:
    """The MVM's images for a build configuration: kernel and initramfs from `cache` (default: the image cache),
    the device tree `OUT/mvm-<irq>.dtb`, at the host addresses of mvm.toml's load IPAs."""
    mvm = load_mvm(cfg.board)
    cache = cache if cache is not None else images.default_cache()
    b = cfg.board
    return MvmImages(
        kernel=cache / "Image",
        kernel_addr=mvm.host_address(mvm.kernel_load_ipa),
        initrd=cache / "mvm-initramfs.cpio",
        initrd_addr=mvm.host_address(mvm.initrd_load_ipa),
        dtb=mvm_dtb_path(cfg, out),
        dtb_addr=mvm.host_address(mvm.dtb_load_ipa),
        min_mem=max(b.hypervisor.end, *(m.host_end for m in mvm.memory)) - b.ram_base,
        min_smp=max(mvm.harts) + 1,
        disk=cache / "mvm-disk.img",
    )


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
    mvm: MvmImages | None = None
    boot_hart: int | None = None  # the hart OpenSBI must cold-boot on (None: QEMU's start-up race decides)
    dtb: Path | None = None  # QEMU's own device tree with that choice in it (`-dtb`), from write_boot_hart_dtb
    gdb_port: int = GDB_PORT


def write_boot_hart_dtb(opts: RunOptions, path: Path) -> Path:
    """QEMU's device tree for this machine (`-M ...,dumpdtb=`, with the same -cpu, -smp and -m) plus OpenSBI's
    configuration node `/chosen/opensbi-config { compatible = "opensbi,config"; cold-boot-harts = <&cpuN>; }`
    (OpenSBI docs/opensbi_config.md): only hart N may win OpenSBI's cold-boot lottery, so the hypervisor's boot
    hart is N. Without it QEMU's thread start-up picks, usually hart 0 and about one boot in fifty another one;
    this makes that rarer path one a test can take every time. OpenSBI deletes the node before it passes the tree
    on, so the hypervisor and its guests see QEMU's tree unchanged. Raises BoardError."""
    assert opts.boot_hart is not None
    try:
        tree = fdt.parse_dtb(qemu_device_tree(QEMU, opts.config.qemu_machine, opts.cpu, opts.smp, opts.mem))
    except FileNotFoundError:
        raise BoardError(f"{QEMU} not found: run qemu/setup-host.sh") from None
    except subprocess.CalledProcessError as e:
        why = (e.stderr or b"").decode(errors="replace").strip().splitlines()
        raise BoardError(f"QEMU cannot dump its device tree: {why[-1] if why else f'exit {e.returncode}'}") from None
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BoardError(f"QEMU cannot dump its device tree: {e}") from None
    cpu = f"/cpus/cpu@{opts.boot_hart:x}"
    if not tree.exist_node(cpu) or tree.get_node(cpu).get_property("phandle") is None:
        raise BoardError(f"--boot-hart {opts.boot_hart}: QEMU's device tree has no {cpu} with a phandle")
    config = fdt.Node("opensbi-config")
    config.append(fdt.PropStrings("compatible", "opensbi,config"))
    config.append(fdt.PropWords("cold-boot-harts", tree.get_node(cpu).get_property("phandle").value))
    tree.get_node("/chosen").append(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tree.to_dtb(version=17))
    return path


def boot_hart_dtb_path(out: Path, hart: int) -> Path:
    return out / f"qemu-boot-hart{hart}.dtb"


def parse_size(text: str) -> int:
    m = _SIZE.match(text.upper())
    if m is None:
        raise BoardError(f"--mem must be a size like 512M or 2G, not {text!r}")
    # QEMU reads a bare number as MiB.
    return int(m.group(1)) << {"": 20, "K": 10, "M": 20, "G": 30, "T": 40}[m.group(2)]


def qemu_command(opts: RunOptions) -> list[str]:
    """The full QEMU command line for a run (reused by the boot tests)."""
    b = opts.config.board
    machine = opts.config.qemu_machine
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
    if opts.mvm is not None:
        cmd += opts.mvm.loader_args() + opts.mvm.disk_args()
    if opts.dtb is not None:
        cmd += ["-dtb", str(opts.dtb)]
    if opts.gdb:  # halted at the first instruction, the stub on the loopback interface only
        cmd += ["-gdb", f"tcp:127.0.0.1:{opts.gdb_port}", "-S"]
    return cmd + list(opts.extra)


def guest_image_path(name: str, out: Path) -> Path:
    """A guest given by name is the image `OUT/guests/NAME.bin`; a path is taken as it is."""
    if "/" in name or name.endswith((".bin", ".img")):
        return Path(name)
    return out / "guests" / f"{name}.bin"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("--smp", type=positive_int, default=None, metavar="N", help="harts (default from the board: 4)")
    p.add_argument("--mem", default=None, metavar="SIZE", help="RAM size, QEMU syntax (default from the board: 2G)")
    p.add_argument(
        "--cpu",
        default=None,
        help="QEMU -cpu model and properties (default: the board's, qemu-virt rv64,v=true,svnapot=true)",
    )
    p.add_argument(
        "--guest",
        default=DEFAULT_GUEST,
        metavar="NAME",
        help=f"what the hypervisor runs: {MVM_GUEST} (the management VM, Debian Linux), a test guest "
        f"OUT/guests/NAME.bin (selftest) or a path, or none (default {DEFAULT_GUEST})",
    )
    p.add_argument(
        "--cache",
        type=Path,
        default=None,
        metavar="DIR",
        help="image cache for --guest mvm ($PYSHYPER_CACHE or ~/.cache/pyshyper)",
    )
    p.add_argument(
        "--boot-hart",
        type=int,
        default=None,
        metavar="N",
        help="make OpenSBI cold-boot on hart N, so the hypervisor's boot hart is N (default: QEMU's start-up "
        "race picks, nearly always 0): QEMU's device tree plus OpenSBI's cold-boot-harts, given with -dtb",
    )
    p.add_argument(
        "--gdb",
        action="store_true",
        help=f"start halted and wait for gdb on port {GDB_PORT} (attach with `pyshyper gdb` in another shell)",
    )
    p.add_argument(
        "--gdb-port", type=port_number, default=None, metavar="PORT", help="the gdb stub's port (implies --gdb)"
    )
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
    mvm = None
    guest = None
    if args.guest == MVM_GUEST:
        cache = args.cache.expanduser().resolve() if args.cache is not None else None
        mvm = mvm_images(cfg, args.out.resolve(), cache)
        if smp < mvm.min_smp:
            raise BoardError(f"--smp {smp} is too few: the MVM's vCPUs run on harts 0..{mvm.min_smp - 1}")
        needed = mvm.min_mem
    else:
        guest = guest_image_path(args.guest, args.out) if args.guest and args.guest != "none" else None
        needed = (b.guest_images.end if guest else b.hypervisor.end) - b.ram_base
    if parse_size(mem) < needed:
        what = "the MVM" if mvm is not None else b.name
        raise BoardError(f"--mem {mem} is too small: {what} needs at least {format_size(needed)}")
    check_boot_hart(args.boot_hart, smp)
    return RunOptions(
        cfg,
        args.out.resolve() / "pyshyper.elf",
        smp,
        mem,
        args.cpu or b.qemu_cpu,
        guest,
        args.gdb or args.gdb_port is not None,
        tuple(args.qemu_args),
        mvm,
        args.boot_hart,
        None if args.boot_hart is None else boot_hart_dtb_path(args.out.resolve(), args.boot_hart),
        args.gdb_port if args.gdb_port is not None else GDB_PORT,
    )


def check_boot_hart(hart: int | None, smp: int) -> None:
    if hart is not None and not 0 <= hart < smp:
        raise BoardError(f"--boot-hart must be a hart of the machine, 0..{smp - 1}, not {hart}")


def prepare_mvm(
    cfg: BuildConfig,
    out: Path,
    mvm: MvmImages,
    cache: Path | None = None,
    fetch: bool = True,
    cpu: str | None = None,
) -> str | None:
    """Make the MVM's images (`pyshyper images`, with its progress output; cached), rewrite its device tree with
    the initramfs' size (and the ISA of QEMU's `-cpu` model `cpu`), and check that kernel and initramfs fit their
    windows. Returns an error or None; bad board data (kernel or initramfs too big for its window) raises
    MvmError."""
    cache = cache if cache is not None else mvm.kernel.parent
    if fetch or not all(p.is_file() for p in (mvm.kernel, mvm.initrd, mvm.disk) if p is not None):
        if images.main(["--cache", str(cache)]) != 0:
            return f"the MVM images could not be made in {cache} (see `pyshyper images`)"
    for p in (mvm.kernel, mvm.initrd, *([mvm.disk] if mvm.disk is not None else [])):
        if not p.is_file():
            return f"{p} is missing after `pyshyper images`"
    try:
        dtb = write_mvm_dtb(cfg, out, cache, cpu)
        header = images.check_image_header(mvm.kernel.read_bytes()[:64])
    except (BuildError, RuntimeError) as e:
        return str(e)
    check_images(load_mvm(cfg.board), header["image_size"], dtb.initrd_size)  # MvmError: the CLI reports it
    return None


def mvm_run_options(
    icount: bool,
    smp: int,
    mem: str,
    cache: Path | None = None,
    irq: str = "plic",
    aia_guests: int = 3,
    *,
    board: str = "qemu-virt",
    out: Path | None = None,
    mmio_decode: str = "htinst",
    cpu: str | None = None,
    boot_hart: int | None = None,
    stage2_leaf: str = "max",
) -> RunOptions:
    """The options of a run that boots the hypervisor with the MVM, built into `out` (default build/) with the
    images of `cache` (default: the image cache): nothing is built or written here (`prepare_mvm_run` does that).

    `mem` and `smp` are raised to what the MVM's layout needs (its RAM ends at 0x1_0000_0000 with the default
    mvm.toml, so 2G, and its vCPUs are pinned to harts 0..N-1): the MVM itself always sees mvm.toml's memory and vCPUs.
    `boot_hart`: as `pyshyper run --boot-hart`; `stage2_leaf`: as `pyshyper build --stage2-leaf`. Raises BoardError
    for a bad choice."""
    cfg = dataclasses.replace(
        make_config(board, irq, aia_guests if irq == "aia" else None), mmio_decode=mmio_decode, stage2_leaf=stage2_leaf
    )
    out = (out if out is not None else DEFAULT_OUT).resolve()
    cache = cache.expanduser().resolve() if cache is not None else None
    mvm = mvm_images(cfg, out, cache)
    mem_bytes = max(parse_size(mem), mvm.min_mem)
    smp = max(smp, mvm.min_smp)
    check_boot_hart(boot_hart, smp)
    return RunOptions(
        cfg,
        out / "pyshyper.elf",
        smp,
        mem if mem_bytes == parse_size(mem) else format_size(mem_bytes),
        cpu or cfg.board.qemu_cpu,
        extra=ICOUNT if icount else (),
        mvm=mvm,
        boot_hart=boot_hart,
        dtb=None if boot_hart is None else boot_hart_dtb_path(out, boot_hart),
    )


def prepare_mvm_run(opts: RunOptions, quiet: bool = False) -> None:
    """Make what `opts` (from `mvm_run_options`) boots: the hypervisor when its build is stale, the MVM's device
    tree with the initramfs' size (the images must be in the cache: `pyshyper images`), and QEMU's device tree for
    `boot_hart`. Raises BuildError or BoardError when something cannot be made."""
    assert opts.mvm is not None
    out = opts.elf.parent
    reason = stale_reason(opts.config, out)
    if reason is not None:
        if not quiet:
            print(f"[run] building: {reason}", flush=True)
        build(opts.config, out, quiet=quiet, image_cache=opts.mvm.kernel.parent)
    error = prepare_mvm(opts.config, out, opts.mvm, opts.mvm.kernel.parent, fetch=False, cpu=opts.cpu)
    if error is not None:
        raise BuildError(error)
    if opts.dtb is not None:
        write_boot_hart_dtb(opts, opts.dtb)


def mvm_qemu_command(
    icount: bool,
    smp: int,
    mem: str,
    cache: Path | None = None,
    irq: str = "plic",
    aia_guests: int = 3,
    *,
    board: str = "qemu-virt",
    out: Path | None = None,
    quiet: bool = False,
    mmio_decode: str = "htinst",
    cpu: str | None = None,
    boot_hart: int | None = None,
    stage2_leaf: str = "max",
) -> list[str]:
    """The QEMU command that boots the hypervisor with the MVM (the boot benchmark and the MVM boot tests), after
    preparing it: `mvm_run_options`, then `prepare_mvm_run`, then `qemu_command`."""
    opts = mvm_run_options(
        icount,
        smp,
        mem,
        cache,
        irq,
        aia_guests,
        board=board,
        out=out,
        mmio_decode=mmio_decode,
        cpu=cpu,
        boot_hart=boot_hart,
        stage2_leaf=stage2_leaf,
    )
    prepare_mvm_run(opts, quiet)
    return qemu_command(opts)


def run_run(args: argparse.Namespace) -> int:
    """`pyshyper run`; a BoardError (bad options or board data) goes up to the CLI, which reports it."""
    opts = options_from_args(args)
    cmd = qemu_command(opts)
    if opts.dtb is not None:  # written first, so that a printed command runs as it is
        write_boot_hart_dtb(opts, opts.dtb)
        if not args.print_command:
            print(f"[run] OpenSBI cold-boots on hart {opts.boot_hart} ({_rel(opts.dtb)})", flush=True)
    if args.print_command:
        print(shlex.join(cmd))
        return 0
    image_cache = None
    if opts.mvm is not None:
        # The images first (cached: a quick check when they exist), so that the MVM's device tree, written here
        # and by a build, carries the initramfs' size.
        image_cache = opts.mvm.kernel.parent
        print(f"[run] MVM images in {image_cache}", flush=True)
        error = prepare_mvm(opts.config, args.out.resolve(), opts.mvm, cpu=opts.cpu)
        if error is not None:
            print(f"pyshyper run: {error}", file=sys.stderr)
            return 1
    reason = "--rebuild" if args.rebuild else stale_reason(opts.config, args.out, args.guest)
    if reason is not None:
        print(f"[run] building: {reason}", flush=True)
        try:
            build(opts.config, args.out, image_cache=image_cache)
        except BuildError as e:
            print(f"pyshyper run: {e}", file=sys.stderr)
            return 1
    if opts.guest_image is not None and not opts.guest_image.is_file():
        print(f"pyshyper run: error: guest image {opts.guest_image} not found", file=sys.stderr)
        return 2
    if opts.gdb:
        print(f"[run] QEMU waits for gdb on port {opts.gdb_port}; attach from another shell with:", flush=True)
        print(f"[run]   {attach_hint(opts.elf, opts.gdb_port)}", flush=True)
    print(f"[run] {shlex.join(cmd)}", flush=True)
    try:
        return subprocess.call(cmd)
    except FileNotFoundError:
        print(f"pyshyper run: {QEMU} not found: run qemu/setup-host.sh", file=sys.stderr)
        return 127
    except KeyboardInterrupt:
        return 130
