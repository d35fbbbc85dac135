"""Boot-to-shell benchmark: the MVM kernel and initramfs natively under QEMU, and under the hypervisor.

``python -m pyshyper_host.bench.boot`` (``just bench-boot``) boots each configuration and measures, in one run:

- wall clock from starting QEMU to the MVM's shell prompt on the serial console (median of ``--runs``);
- with ``-icount shift=0,sleep=off`` (one guest instruction = 1 ns of virtual time, idle time skipped to the
  next timer deadline, so the figure is repeatable): the virtual time at which the first console shell starts,
  read by the guest from the ``time`` CSR (``/usr/bin/rdtime`` in the initramfs, written by ``/etc/profile``
  to ``/run/pyshyper-shell-time``). On QEMU virt ``time`` counts QEMU's virtual clock since reset at the
  timebase (10 MHz), so it includes OpenSBI and, under the hypervisor, the hypervisor's own boot, provided
  the hypervisor leaves ``htimedelta`` at 0.

Each hypervisor mode is compared with native Linux on the QEMU machine it runs on: PLIC mode with ``native`` (QEMU's
``virt``), AIA mode with ``native, aia`` (``virt,aia=aplic-imsic,aia-guests=N``, whose own ratio against ``native``
is what the AIA machine costs). All configurations boot with the same harts (``--smp``/``--icount-smp``, default 2:
the MVM's vCPUs are pinned to harts 0 and 1) and the baseline with the MVM's own memory (``--mem``, default
mvm.toml's: 1G); under the hypervisor QEMU gets ``--hv-mem`` (2G, as ``pyshyper run``: the MVM's RAM is the GiB that
ends at 0x1_0000_0000 and the hypervisor's frame allocator takes the RAM below it), Linux sees the same. The -icount
boots also fix QEMU's guest-visible randomness (``-seed``) and run the RTC on the virtual clock from a fixed date
(run/command.py ICOUNT): Linux mixes both into its random pool, and with the host's time and entropy in it the time
to /init moved by ±5% between boots. Fixed, a boot is repeatable to the ns of virtual time up to /init, but that one
boot is a sample, not the figure: with two harts, QEMU's -icount runs them in turn, and where the turns fall against
the guest's spin-waits moves with any change of what runs before. One more character on the kernel's command line
moves native /init by up to 12% (1250.5 ms, 1100.9 with `pyshyper_pad=x`, 1158.5 with 29 characters), and so does an
unused field added to the hypervisor's vCPU structure. So -icount boot k (0, 1, ...) of every configuration appends
``pyshyper_pad=`` and k characters to the kernel's command line (none for k = 0: native's ``-append``, the MVM's
device tree ``/chosen/bootargs``, ``icount_perturbed``), the same perturbations on both sides, and the figures are
medians over ``--icount-runs`` boots (default 5). What follows /init is not repeatable even for one command line
(module loading, the images disk's reads completing on the host's time, the console's input). Each boot's figures
are printed.

The idle figure: traps per second of each MVM vCPU while its shell runs ``sleep`` (``--idle``, default 10 s),
from the hypervisor's per-vCPU statistics printed at the MVM's power-off, of a boot with the ``sleep`` minus one
without it. The hypervisor configurations (``--irq plic``, ``--irq aia``, both by default) are built with
``mvm_qemu_command`` (run/command.py) into build/bench/<irq>/; a build failure is reported in the table, not a crash.
Output: Markdown tables with ratios against the baseline measured in the same run, printed and written to
build/bench/boot.md.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from boards import make_config
from pyshyper_host import PROJECT_ROOT
from pyshyper_host.bench.console import BootError, boot_to_shell, start_shell
from pyshyper_host.bench.plot import bar_chart
from pyshyper_host.bench.stats import TIMEBASE_HZ, parse_stats, stats_base, stats_reads
from pyshyper_host.images import initramfs as images
from pyshyper_host.run import command as run_command
from pyshyper_host.run.command import mvm_qemu_command

ICOUNT = list(run_command.ICOUNT)  # -icount and a fixed -seed (run/command.py)

CommandBuilder = Callable[[bool, int], list[str]]  # (icount, harts) -> QEMU command


@dataclass
class Config:
    name: str
    command: CommandBuilder
    base: str | None = None  # the configuration its ratios are against (same QEMU machine); None: the first


@dataclass
class Measurement:
    config: str
    base: str | None = None  # Config.base
    walls: list[float] = field(default_factory=list)
    marks: list[dict[str, float | None]] = field(default_factory=list)  # per wall-clock boot: BootResult.marks
    icount_shell_ms: float | None = None
    icount_init_ms: float | None = None
    qemu: str = ""  # the QEMU machine's harts and memory, "-smp 2 -m 1G"
    guest: str = ""  # what the booted Linux reports: "2 cpu(s), 503104 kB"
    error: str | None = None


@dataclass
class IdleRate:
    vcpu: int
    seconds: float  # time CSR seconds between the two runs' statistics lines
    traps: float  # per second
    wfi: float
    sbi: float


@dataclass
class IdleMeasurement:
    config: str
    sleep: int
    rates: list[IdleRate] = field(default_factory=list)
    error: str | None = None


READY_RE = re.compile(r"PyShyper MVM ready: \S+, (\d+) cpu\(s\), (\d+) kB")
ROOT = PROJECT_ROOT
REPORT = ROOT / "build" / "bench" / "boot.md"


def qemu_shape(cmd: list[str]) -> str:
    """``-smp N -m SIZE`` of a QEMU command line."""
    parts = []
    for opt in ("-smp", "-m"):
        if opt in cmd[:-1]:
            parts.append(f"{opt} {cmd[cmd.index(opt) + 1]}")
    return " ".join(parts)


def guest_shape(log: str) -> str:
    m = READY_RE.search(log)
    return f"{m.group(1)} cpu(s), {int(m.group(2)) // 1024} MiB usable" if m else ""


def _qemu_version() -> str:
    import subprocess

    try:
        return subprocess.run(["qemu-system-riscv64", "--version"], capture_output=True, text=True).stdout.split("\n")[
            0
        ]
    except OSError:
        return "qemu-system-riscv64"


def _save_log(log_dir: Path | None, name: str, log: str) -> str:
    if log_dir is None:
        return ""
    log_dir.mkdir(parents=True, exist_ok=True)
    p = log_dir / f"bench-boot-{re.sub(r'[^A-Za-z0-9]+', '-', name)}.log"
    p.write_text(log)
    return f" (serial log: {p})"


PAD_PARAM = "pyshyper_pad"


def icount_perturbed(cmd: list[str], run: int, workdir: Path) -> list[str]:
    """-icount boot ``run`` of a command (module docstring): its kernel command line with `` pyshyper_pad=``
    and ``run`` characters appended (an unknown parameter, which Linux hands to /init's environment), the
    command itself for run 0. A native command carries the line in ``-append``; the MVM's is ``/chosen/bootargs``
    of the device tree QEMU's loader places (``-device loader,file=...dtb``), rewritten into ``workdir``."""
    if run == 0:
        return list(cmd)
    pad = f" {PAD_PARAM}=" + "x" * run
    out = list(cmd)
    if "-append" in out[:-1]:
        i = out.index("-append") + 1
        out[i] += pad
        return out
    for i, arg in enumerate(out):
        m = re.search(r"(?:^|,)file=([^,]+\.dtb)(?:,|$)", arg)
        if m is None:
            continue
        import fdt

        tree = fdt.parse_dtb(Path(m.group(1)).read_bytes())
        tree.set_property("bootargs", tree.get_property("bootargs", "/chosen").value + pad, path="/chosen")
        dst = workdir / f"{Path(m.group(1)).stem}-pad{run}.dtb"
        dst.write_bytes(tree.to_dtb(version=17))
        out[i] = arg.replace(m.group(1), str(dst))
        return out
    raise ValueError("no kernel command line to perturb (neither -append nor a device-tree loader)")


def measure(
    cfg: Config,
    runs: int,
    icount: bool,
    timeout: float,
    log_dir: Path | None,
    smp: int = 2,
    icount_smp: int = 2,
    icount_runs: int = 1,
) -> Measurement:
    m = Measurement(cfg.name)
    try:
        for i in range(runs):
            cmd = cfg.command(False, smp)
            m.qemu = qemu_shape(cmd)
            r = boot_to_shell(cmd, timeout=timeout, attempts=2)
            m.walls.append(r.wall_prompt)
            m.marks.append({**r.marks, "shell": r.wall_prompt})
            m.guest = guest_shape(r.log)
            print(f"bench-boot: {cfg.name}: run {i + 1}/{runs}: shell after {r.wall_prompt:.2f} s wall", flush=True)
        shells, inits = [], []
        with tempfile.TemporaryDirectory(prefix="pyshyper-bench-pad-") as pads:
            for i in range(icount_runs if icount else 0):
                cmd = icount_perturbed(cfg.command(True, icount_smp), i, Path(pads))
                r = boot_to_shell(cmd, timeout=timeout * 4, attempts=2)
                if r.init_ticks is not None:
                    inits.append(r.init_ticks * 1000 / TIMEBASE_HZ)
                if r.shell_ticks is not None:
                    shells.append(r.shell_ticks * 1000 / TIMEBASE_HZ)
                    init = f", /init at {inits[-1]:.3f} ms" if r.init_ticks is not None else ""
                    print(
                        f"bench-boot: {cfg.name}: icount run {i + 1}/{icount_runs} (command line + {i} characters): "
                        f"shell at {shells[-1]:.1f} ms virtual" + init,
                        flush=True,
                    )
        m.icount_shell_ms = statistics.median(shells) if shells else None
        m.icount_init_ms = statistics.median(inits) if inits else None
    except BootError as e:
        m.error = str(e) + _save_log(log_dir, cfg.name, e.log)
    except Exception as e:  # noqa: BLE001 - a build or setup failure is reported, not a crash
        m.error = f"{type(e).__name__}: {e}"
    if m.error:
        print(f"bench-boot: {cfg.name}: {m.error}", file=sys.stderr, flush=True)
    return m


def measure_alternating(configs: list[Config], args: argparse.Namespace) -> list[Measurement]:
    """The wall-clock boots alternate between the configurations (native, plic, aia, native, plic, ...), so a
    change in the host's load during the run weighs on each alike and the medians compare; then the -icount
    boots, which the host's load does not change."""
    ms = [Measurement(c.name, c.base) for c in configs]
    for _ in range(args.runs):
        for c, m in zip(configs, ms, strict=True):
            if m.error is None:
                one = measure(c, 1, False, args.timeout, args.logs, args.smp)
                m.walls += one.walls
                m.marks += one.marks
                m.qemu, m.guest, m.error = one.qemu, one.guest, one.error
    for c, m in zip(configs, ms, strict=True):
        if m.error is None and not args.no_icount:
            one = measure(c, 0, True, args.timeout, args.logs, args.smp, args.icount_smp, args.icount_runs)
            m.icount_shell_ms, m.icount_init_ms, m.error = one.icount_shell_ms, one.icount_init_ms, one.error
    return ms


def measure_idle(cfg: Config, sleep: int, timeout: float, log_dir: Path | None, smp: int = 2) -> IdleMeasurement:
    """Exits per second of each vCPU while the MVM idles: the hypervisor's counters read from its statistics page
    around ``sleep N`` and around ``sleep 0`` within one shell command: the difference of the two windows over the
    difference of their time CSR intervals, so the cost of the reads themselves cancels."""
    im = IdleMeasurement(cfg.name, sleep)
    try:
        shell, _, _ = start_shell(cfg.command(False, smp), timeout=timeout, attempts=2)
    except BootError as e:
        im.error = str(e) + _save_log(log_dir, f"{cfg.name}-idle", e.log)
        return im
    try:
        # One command line, so nothing is typed or printed on the console inside the windows: window A
        # (`sleep 0`) and window B (`sleep N`) each hold one set of counter reads, whose exits B - A cancels,
        # leaving the idle time alone. (Typing between separate commands did not cancel: how many characters
        # one UART interrupt carries varies, and in AIA mode a window could come out negative.)
        reads = stats_reads()
        out, status = shell.run(
            f"S0=$({reads}); sleep 0; S1=$({reads}); sleep {sleep}; S2=$({reads}); echo @S0 $S0 @S1 $S1 @S2 $S2",
            timeout=timeout + sleep,
        )
        m = re.search(r"@S0 (.*) @S1 (.*) @S2 (.*)", out)
        snaps = [parse_stats(g) for g in m.groups()] if m and status == 0 else []
        s0, s1, s2 = snaps if len(snaps) == 3 else (None, None, None)
        if s0 is None or s1 is None or s2 is None:
            raise BootError(f"cannot read the statistics page at {stats_base():#x}: {out!r}", shell.log)
        for v in sorted(s2):
            a = [s1[v].traps - s0[v].traps, s1[v].wfi - s0[v].wfi, s1[v].sbi - s0[v].sbi, s1[v].ticks - s0[v].ticks]
            b = [s2[v].traps - s1[v].traps, s2[v].wfi - s1[v].wfi, s2[v].sbi - s1[v].sbi, s2[v].ticks - s1[v].ticks]
            dt = (b[3] - a[3]) / TIMEBASE_HZ
            im.rates.append(IdleRate(v, dt, (b[0] - a[0]) / dt, (b[1] - a[1]) / dt, (b[2] - a[2]) / dt))
            print(f"bench-boot: {cfg.name}: idle vcpu{v}: {im.rates[-1].traps:.1f} exits/s over {dt:.2f} s", flush=True)
        shell.poweroff()
    except BootError as e:
        im.error = str(e) + _save_log(log_dir, f"{cfg.name}-idle", e.log)
    except Exception as e:  # noqa: BLE001
        im.error = f"{type(e).__name__}: {e}" + _save_log(log_dir, f"{cfg.name}-idle", shell.log)
    finally:
        shell.close()
    if im.error:
        print(f"bench-boot: {cfg.name}: idle: {im.error}", file=sys.stderr, flush=True)
    return im


def native_config(cache: Path | None = None, mem: str | None = None, aia_guests: int | None = None) -> Config:
    """The native baseline on the QEMU machine a PLIC build runs on (``-M virt,aclint=on``), or with ``aia_guests``
    on the one an AIA build runs on (``-M virt,aia=aplic-imsic,aia-guests=N``), so that each mode is compared on
    its own hardware."""
    build = make_config(images.NATIVE_BOARD, "plic") if aia_guests is None else None
    build = build or make_config(images.NATIVE_BOARD, "aia", aia_guests)

    def cmd(icount: bool, smp: int) -> list[str]:
        c = images.native_qemu_command(cache, smp=smp, mem=mem, extra=ICOUNT if icount else ())
        c[c.index("-M") + 1] = build.qemu_machine  # the build's own -M (boards BuildConfig.qemu_machine)
        return c

    return Config("native" if aia_guests is None else f"native, aia --aia-guests {aia_guests}", cmd)


def baseline_of(m: Measurement, ms: list[Measurement]) -> Measurement:
    """The measurement m's ratios are against: its Config.base, else the first."""
    return next((b for b in ms if m.base is not None and b.config == m.base), ms[0])


def hypervisor_config(
    cache: Path | None = None, mem: str = "2G", irq: str = "plic", aia_guests: int = 3, out: Path | None = None
) -> Config:
    """The hypervisor configuration through ``mvm_qemu_command`` (the command ``pyshyper run`` uses),
    building into ``out`` (default build/bench/<irq>, away from the default build directory) when a command is
    made; see ``prebuild`` for the build itself."""
    name = "hypervisor, " + ("plic" if irq == "plic" else f"aia --aia-guests {aia_guests}")
    out = out if out is not None else ROOT / "build" / "bench" / (irq if irq == "plic" else f"{irq}{aia_guests}")

    def cmd(icount: bool, smp: int) -> list[str]:
        return list(mvm_qemu_command(icount, smp, mem, cache, irq, aia_guests, out=out, quiet=True))

    return Config(name, cmd, "native" if irq == "plic" else f"native, aia --aia-guests {aia_guests}")


def prebuild(cfg: Config, smp: int = 2) -> str | None:
    """Make ``cfg``'s command once (which builds the hypervisor): None, or why it failed (BuildError, BoardError,
    ...), so that a failure is reported before the measurements, not in the middle of them."""
    try:
        cfg.command(False, smp)
    except Exception as e:  # noqa: BLE001
        return f"{cfg.name}: {type(e).__name__}: {e}"
    return None


def paired_ratios(m: Measurement, base: Measurement) -> list[float]:
    """Each alternated round's wall time over the baseline's in the same round (measure_alternating): a change of
    the host's speed during the run weighs on both sides of each ratio alike."""
    return [w / b for w, b in zip(m.walls, base.walls, strict=False) if b > 0]


def spread(ratios: list[float]) -> str:
    """`median (lower quartile-upper quartile)` of the paired ratios; the median alone for fewer than 4."""
    if not ratios:
        return ""
    med = statistics.median(ratios)
    if len(ratios) < 4:
        return f"{med:.2f}"
    q1, _, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    return f"{med:.2f} ({q1:.2f}-{q3:.2f})"


def table(ms: list[Measurement]) -> str:
    """The main table: each configuration's figures and their ratios against its baseline (baseline_of)."""
    rows = [
        "| configuration | QEMU | Linux sees | boot to shell, wall (s) | ratio | paired ratio (quartiles) |"
        " boot to shell, icount (ms) | ratio | /init started, icount (ms) | ratio |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in ms:
        if m.error:
            rows.append(f"| {m.config} | {m.qemu} | | failed | | | | | | |")
            continue
        base = baseline_of(m, ms)
        bw = statistics.median(base.walls) if base.walls and not base.error else None
        bi = base.icount_shell_ms if not base.error else None
        bn = base.icount_init_ms if not base.error else None
        w = statistics.median(m.walls) if m.walls else None
        wr = f"{w / bw:.2f}" if w and bw else ""
        pr = spread(paired_ratios(m, base)) if bw else ""
        iv = m.icount_shell_ms
        ir = f"{iv / bi:.2f}" if iv and bi else ""
        rows.append(
            f"| {m.config} | {m.qemu} | {m.guest} | {'' if w is None else f'{w:.2f}'} (n={len(m.walls)}) | {wr} | "
            f"{pr} | {'' if iv is None else f'{iv:.1f}'} | {ir} | "
            f"{'' if m.icount_init_ms is None else f'{m.icount_init_ms:.3f}'} | "
            f"{f'{m.icount_init_ms / bn:.3f}' if m.icount_init_ms and bn else ''} |"
        )
    return "\n".join(rows) + "\n"


# The phases of a wall-clock boot: (heading, the mark that starts it or None for QEMU's start, the mark that ends it)
PHASES = [
    ("QEMU start to the kernel's first line (OpenSBI, hypervisor)", None, "kernel"),
    ("kernel: first line to /init", "kernel", "init"),
    ("/init to the shell prompt", "init", "shell"),
]


def phase_seconds(marks: dict[str, float | None], start: str | None, end: str) -> float | None:
    """One boot's phase from its marks (console.BOOT_MARKS, plus "shell"), or None when a mark is missing."""
    t0 = 0.0 if start is None else marks.get(start)
    t1 = marks.get(end)
    return t1 - t0 if t0 is not None and t1 is not None else None


def phase_table(ms: list[Measurement]) -> str:
    """Where the wall time of the boots goes: each phase's median over the wall-clock boots and its ratio against
    the baseline's (a phase is left blank where a boot's log lacks its lines)."""

    def median(m: Measurement, start: str | None, end: str) -> float | None:
        vals = [v for mk in m.marks if (v := phase_seconds(mk, start, end)) is not None]
        return statistics.median(vals) if vals and not m.error else None

    head = "| configuration |" + "".join(f" {h} (s) | ratio |" for h, _, _ in PHASES)
    rows = [head, "|---|" + "---:|---:|" * len(PHASES)]
    for m in ms:
        base = [median(baseline_of(m, ms), a, b) for _, a, b in PHASES]
        cells = []
        for (_, a, b), bv in zip(PHASES, base, strict=True):
            v = median(m, a, b)
            cells.append("" if v is None else f"{v:.2f}")
            cells.append(f"{v / bv:.2f}" if v is not None and bv else "")
        rows.append(f"| {m.config} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def idle_table(ims: list[IdleMeasurement]) -> str:
    rows = [
        "| configuration | vCPU | idle interval (s) | traps/s | WFI traps/s | SBI calls/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for im in ims:
        if im.error:
            rows.append(f"| {im.config} | | failed | | | |")
        for r in im.rates:
            rows.append(f"| {im.config} | {r.vcpu} | {r.seconds:.2f} | {r.traps:.1f} | {r.wfi:.1f} | {r.sbi:.1f} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m pyshyper_host.bench.boot",
        description="MVM boot-to-shell time: native QEMU vs under the hypervisor.",
    )
    ap.add_argument(
        "--cache", type=Path, default=None, help="image cache (default: $PYSHYPER_CACHE or ~/.cache/pyshyper)"
    )
    ap.add_argument(
        "--runs",
        type=int,
        default=9,
        help="wall-clock boots per configuration, alternated (median; wall time on a busy 2-core host moves by "
        "about 8%% from boot to boot, so fewer than ~9 leave the ratio unsure by more than the gaps it measures)",
    )
    ap.add_argument("--no-icount", action="store_true", help="skip the -icount boot")
    ap.add_argument(
        "--icount-runs",
        type=int,
        default=5,
        help="-icount boots per configuration, boot k with k characters more on the kernel's command line, the "
        "same for every configuration (median; default 5; see the module's docstring)",
    )
    ap.add_argument("--smp", type=int, default=2, help="harts for the wall-clock boots (the MVM needs 2)")
    ap.add_argument("--icount-smp", type=int, default=2, help="harts for the -icount boots")
    ap.add_argument("--mem", default=None, help="QEMU memory of the native baseline (default: the MVM's, mvm.toml)")
    ap.add_argument(
        "--hv-mem",
        default="2G",
        help="QEMU memory under the hypervisor (default 2G, pyshyper run's: the MVM layout's RAM ends at 2G, and the "
        "hypervisor's frame allocator takes the RAM below the MVM's)",
    )
    ap.add_argument("--irq", action="append", choices=["plic", "aia"], help="hypervisor modes (default: both)")
    ap.add_argument("--aia-guests", type=int, default=3)
    ap.add_argument("--idle", type=int, default=30, help="seconds of `sleep` for the idle traps/s (0: skip)")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per boot (x4 with -icount)")
    ap.add_argument("--native-only", action="store_true", help="measure only the native baseline")
    ap.add_argument(
        "--trap",
        action="store_true",
        help="also run the trap microbenchmark (bench/trap.py, the same --irq modes) and add its table and chart",
    )
    ap.add_argument(
        "--stage2",
        action="store_true",
        help="also boot the MVM with 4 KiB stage-2 leaves only against the largest leaves (bench/leaves.py: one "
        "boot each, wall and icount, against native on the same -cpu) and add that section",
    )
    ap.add_argument(
        "--latency",
        action="store_true",
        help="also run the timer-latency and context-switch benchmark (bench/latency.py, the same --irq modes) and "
        "add its tables and histogram",
    )
    ap.add_argument("--logs", type=Path, default=ROOT / "logs", help="where serial logs of failed boots go")
    ap.add_argument("--report", type=Path, default=REPORT, help="where the Markdown report goes")
    args = ap.parse_args(argv)

    cache = (args.cache.expanduser() if args.cache else images.default_cache()).resolve()
    if images.main(["--cache", str(cache)]) != 0:
        return 1
    configs = [native_config(cache, args.mem)]
    notes: list[str] = []
    failed: list[str] = []
    if "aia" in (args.irq or ["plic", "aia"]):
        configs.append(native_config(cache, args.mem, args.aia_guests))
    hvs: list[Config] = []
    if not args.native_only:
        for irq in args.irq or ["plic", "aia"]:
            hv = hypervisor_config(cache, args.hv_mem, irq, args.aia_guests)
            why = prebuild(hv, args.smp)
            if why:
                notes.append(f"Not measured: {why}")
                failed.append(why)
                print(f"bench-boot: not measured: {why}", file=sys.stderr, flush=True)
            else:
                hvs.append(hv)
    configs += hvs
    ms = measure_alternating(configs, args)
    ims = [measure_idle(c, args.idle, args.timeout, args.logs, args.smp) for c in hvs] if args.idle else []
    failed += [f"{m.config}: {m.error}" for m in ms if m.error] + [
        f"{i.config}: idle: {i.error}" for i in ims if i.error
    ]

    report = [
        "# MVM boot to shell: native QEMU vs under the hypervisor",
        "",
        f"Kernel `{cache / 'Image'}` with the MVM initramfs, {_qemu_version()}"
        f", {time.strftime('%Y-%m-%d %H:%M:%S')}. Wall clock: median of {args.runs} boots "
        f"(alternating between the configurations) with `-smp {args.smp}`, from "
        f"starting QEMU to the shell prompt. icount: `{' '.join(ICOUNT)}`, `-smp {args.icount_smp}`, median of "
        f"{args.icount_runs}: virtual time (the guest's `time` CSR) when the first shell starts, and when /init "
        "starts, OpenSBI and the hypervisor's own boot included; boot k appends `pyshyper_pad=` and k characters "
        "to the kernel's command line, on every side alike (one boot's /init is repeatable, but one character "
        "more moves it by up to 12%: it is a sample). "
        "Ratios are against the native baseline on the same QEMU machine (PLIC mode against `native`, AIA mode "
        "against native Linux on the AIA machine it runs on), measured in the same run; the "
        "paired ratio is the median over the rounds of each round's wall time over its baseline's in that round, "
        "with its quartiles: how far one boot's ratio strays.",
        "",
        f"The baseline is native QEMU with `-smp {args.smp} -m {args.mem or images.mvm_mem()}` on "
        f"`-M {make_config(images.NATIVE_BOARD, 'plic').qemu_machine}` (for AIA mode on "
        f"`-M {make_config(images.NATIVE_BOARD, 'aia', args.aia_guests).qemu_machine}`): the machine each mode runs "
        "on, with what the MVM itself "
        f"gets (2 vCPUs and its memory from mvm.toml); under the hypervisor QEMU needs more RAM (the MVM's GiB sits "
        f"at 0xC000_0000..0x1_0000_0000, above OpenSBI, the hypervisor and its frame pool), so there "
        f"QEMU gets `-m {args.hv_mem}`, but Linux sees the same (column 'Linux sees', from the initramfs' ready line).",
        "",
        table(ms),
        "## Where the wall time goes",
        "",
        "Each wall-clock boot split at two lines of its serial log, when they arrived: the kernel's first "
        "(`Linux version`) and its start of `/init` (`Run /init as init process`); median per phase.",
        "",
        phase_table(ms),
    ]
    if ims:
        report += [
            f"## Idle traps per second (`sleep {args.idle}` in the MVM's shell)",
            "",
            "Per vCPU: the hypervisor's exit counters, read in the MVM's shell (busybox `devmem` on the hypervisor's "
            f"statistics page) around `sleep {args.idle}` and around `sleep 0`, all in one shell command so nothing "
            "is typed or printed inside the windows; the difference of the two windows over the difference of their "
            "durations, so the exits of the reads themselves cancel out.",
            "",
            idle_table(ims),
        ]
    png = args.report.with_suffix(".png")

    def median_wall(m: Measurement) -> float | None:
        return statistics.median(m.walls) if m.walls else None

    def ratio(v: float | None, base: float | None) -> float | None:
        return v / base if v and base else None

    if bar_chart(
        png,
        "MVM boot to shell, relative to native QEMU",
        [m.config for m in ms],
        {
            "wall clock": [ratio(median_wall(m), median_wall(baseline_of(m, ms))) for m in ms],
            "icount": [ratio(m.icount_shell_ms, baseline_of(m, ms).icount_shell_ms) for m in ms],
        },
        "time / native",
    ):
        report += [f"![boot ratios]({png.name})", ""]
    if args.trap:
        from pyshyper_host.bench import trap

        tcs, tfailed = trap.configs(args.irq or ["plic", "aia"], ["htinst", "fetch"], args.aia_guests, True)
        trs = [trap.measure(c, args.runs, not args.no_icount, args.timeout) for c in tcs]
        failed += tfailed + [f"trap: {r.config}: {r.error}" for r in trs if r.error]
        tpng = args.report.with_name(args.report.stem + "-trap.png")
        drawn = trap.chart(trs, tpng) if not args.no_icount else False
        report += trap.report_section(trs, args.runs, tpng if drawn else None)
    if args.stage2:
        from pyshyper_host.bench import leaves

        leaf_runs = leaves.measure(cache, args.hv_mem, timeout=args.timeout)
        failed += [f"stage-2 leaves: {r.name}: {r.error}" for r in leaf_runs if r.error]
        report += leaves.section(leaf_runs)
    if args.latency:
        from pyshyper_host.bench import latency

        largs = argparse.Namespace(
            irq=args.irq, **vars(latency.add_arguments(argparse.ArgumentParser()).parse_args([]))
        )
        lrs, lsw = latency.run(largs, cache)
        failed += [f"latency: {f}" for f in latency.failures(lrs, lsw)]
        lpng = args.report.with_name(args.report.stem + "-latency.png")
        drawn = latency.chart(lrs, lpng)
        report += latency.report_section(lrs, lsw, largs.samples, lpng if drawn else None)
    report += [f"{n}\n" for n in notes]
    text = "\n".join(report)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(text)
    print()
    print(text, end="")
    print(f"\n(report: {args.report})")
    for f in failed:
        print(f"bench-boot: failed: {f}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
