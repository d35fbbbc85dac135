"""Trap microbenchmark: the guest-visible cost of the hypervisor's hot trap paths, against native where one exists.

``python -m pyshyper_host.bench.trap`` (``just bench-trap``) boots the benchmark guest (tests/guests/bench) as the
management VM's kernel (two vCPUs, the virtual PLIC or APLIC) and natively under OpenSBI alone, on harts without
Sstc (``-cpu rv64,sstc=false``: an SBI set_timer is then the hypervisor's own timer path). Each configuration runs
twice: under ``-icount shift=0,sleep=off``, where the guest's ``instret`` counts every instruction QEMU executes
(the hypervisor's and OpenSBI's included), giving instructions per operation, exact and repeatable; and without it,
giving wall time per operation (the ``time`` CSR, 10 MHz) on this host, median of ``--runs``.

The guest times BENCH_N of each operation in a loop and prints the raw counter deltas (guest.py); the empty loop is
subtracted here, so a figure is the operation's round trip alone: from the trapping instruction to the guest's next
one. Configurations: PLIC and AIA, each with htinst and with fetch decoding of trapped loads and stores (the build
option ``mmio_decode``). Output: a Markdown table, printed and written to build/bench/trap.md, and a PNG chart.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from boards import make_config
from pyshyper_host import PROJECT_ROOT
from pyshyper_host.bench.plot import bar_chart
from pyshyper_host.build.pipeline import BuildError, build, stale_reason, write_mvm_dtb
from pyshyper_host.images.initramfs import format_size
from pyshyper_host.run.command import QEMU, RunOptions, mvm_images, parse_size, qemu_command

ICOUNT = ["-icount", "shift=0,sleep=off"]
CPU = "rv64,sstc=false"  # harts without Sstc: the guest's timer goes through SBI set_timer
MEM = "1G"
SMP = 2
NS_PER_TICK = 100  # the virt board's time CSR: 10 MHz

OPS = ("sbi_null", "mmio_load", "mmio_store", "set_timer", "ipi")
OP_TITLES = {
    "sbi_null": "SBI null call",
    "mmio_load": "IRQC register load",
    "mmio_store": "IRQC register store",
    "set_timer": "SBI set_timer",
    "ipi": "SBI IPI",
}
LINE_RE = re.compile(r"bench: (\w+) n (\d+) instret (\d+) time (\d+)")
IRQ_RE = re.compile(r"bench: irq (\w+) hart (\d+) other (\d+)")
IPIS_RE = re.compile(r"bench: ipis received (\d+)")
ROOT = PROJECT_ROOT
REPORT = ROOT / "build" / "bench" / "trap.md"
GUEST = ROOT / "tests" / "guests" / "bench"


class BenchError(RuntimeError):
    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message)
        self.log = log


@dataclass
class Counts:
    """One run's raw figures: op -> (instret, time) deltas for n operations, the empty loop's under "nop"."""

    n: int
    irq: str
    raw: dict[str, tuple[int, int]]
    ipis_received: int

    def instructions(self, op: str) -> float:
        return (self.raw[op][0] - self.raw["nop"][0]) / self.n

    def ns(self, op: str) -> float:
        return (self.raw[op][1] - self.raw["nop"][1]) * NS_PER_TICK / self.n


def parse(log: str) -> Counts:
    """The guest's lines; BenchError when a line is missing or it says FAILED."""
    if "bench: FAILED" in log:
        raise BenchError(log[log.index("bench: FAILED") :].splitlines()[0], log)
    m = IRQ_RE.search(log)
    if m is None or "bench: done" not in log:
        raise BenchError("the benchmark guest did not finish (no `bench: done`)", log)
    if "bench: registers kept" not in log:
        raise BenchError("the benchmark guest did not check its registers (no `bench: registers kept`)", log)
    raw: dict[str, tuple[int, int]] = {}
    n = 0
    for name, count, instret, ticks in LINE_RE.findall(log):
        raw[name] = (int(instret), int(ticks))
        n = int(count)
    missing = [op for op in ("nop", *OPS) if op not in raw]
    if missing:
        raise BenchError(f"no figures for {', '.join(missing)}", log)
    ipis = IPIS_RE.search(log)
    return Counts(n, m.group(1), raw, int(ipis.group(1)) if ipis else 0)


def run_guest(cmd: list[str], timeout: float) -> Counts:
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else ""
        raise BenchError(f"no power-off within {timeout:.0f} s", out) from None
    return parse(p.stdout.decode(errors="replace"))


@dataclass
class Config:
    name: str
    command: list[str]  # without -icount


@dataclass
class Result:
    config: str
    icount: Counts | None = None
    walls: list[Counts] = field(default_factory=list)
    error: str | None = None

    def instructions(self, op: str) -> float | None:
        return self.icount.instructions(op) if self.icount else None

    def ns(self, op: str) -> float | None:
        return statistics.median(c.ns(op) for c in self.walls) if self.walls else None


def bench_image(out: Path) -> Path:
    return out / "guests" / "bench.bin"


def native_config(out: Path) -> Config:
    """The guest as OpenSBI's next stage (QEMU loads a raw -kernel at 0x8020_0000), on the machine a PLIC build
    runs on (boards BuildConfig.qemu_machine)."""
    machine = make_config("qemu-virt", "plic").qemu_machine
    cmd = [QEMU, "-M", machine, "-cpu", CPU, "-smp", str(SMP), "-m", MEM, "-bios", "default", "-nographic"]
    return Config("native (OpenSBI)", [*cmd, "-kernel", str(bench_image(out))])


def hypervisor_config(
    irq: str, decode: str, aia_guests: int = 3, out: Path | None = None, quiet: bool = True
) -> Config:
    """Build the hypervisor (with the test guests) into `out` when stale, write the MVM's device tree for CPU, and
    load the benchmark guest where the MVM's kernel goes. Raises BuildError."""
    cfg = dataclasses.replace(make_config("qemu-virt", irq, aia_guests if irq == "aia" else None), mmio_decode=decode)
    out = out if out is not None else ROOT / "build" / "bench" / f"trap-{irq}-{decode}"
    if stale_reason(cfg, out, "bench") is not None or not bench_image(out).is_file():
        build(cfg, out, quiet=quiet)
    write_mvm_dtb(cfg, out, out / "no-initramfs", CPU)  # no initramfs: the guest needs none
    mvm = mvm_images(cfg, out)
    # QEMU's RAM must hold the MVM's memory, where the guest is loaded (mvm.toml: it ends at 0x1_0000_0000)
    mem = format_size(max(parse_size(MEM), mvm.min_mem))
    cmd = qemu_command(RunOptions(cfg, out / "pyshyper.elf", SMP, mem, CPU))
    for path, addr in ((bench_image(out), mvm.kernel_addr), (mvm.dtb, mvm.dtb_addr)):
        cmd += ["-device", f"loader,file={path},addr={addr:#x},force-raw=on"]
    name = f"hypervisor, {irq}" + (f" --aia-guests {aia_guests}" if irq == "aia" else "") + f", {decode}"
    return Config(name, cmd)


def measure(cfg: Config, runs: int, icount: bool, timeout: float) -> Result:
    r = Result(cfg.name)
    try:
        if icount:
            r.icount = run_guest(cfg.command + ICOUNT, timeout)
            print(
                f"bench-trap: {cfg.name}: icount: "
                + ", ".join(f"{op} {r.icount.instructions(op):.0f}" for op in OPS)
                + " instructions",
                flush=True,
            )
        for i in range(runs):
            r.walls.append(run_guest(cfg.command, timeout))
            print(
                f"bench-trap: {cfg.name}: run {i + 1}/{runs}: "
                + ", ".join(f"{op} {r.walls[-1].ns(op):.0f}" for op in OPS)
                + " ns",
                flush=True,
            )
    except BenchError as e:
        r.error = str(e)
        if e.log:
            log = ROOT / "logs" / f"bench-trap-{re.sub(r'[^A-Za-z0-9]+', '-', cfg.name)}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(e.log)
            r.error += f" (serial log: {log})"
        print(f"bench-trap: {cfg.name}: {r.error}", file=sys.stderr, flush=True)
    return r


def table(results: list[Result]) -> str:
    """One row per configuration: instructions (icount) and wall ns per operation."""
    head = "| configuration | " + " | ".join(f"{OP_TITLES[op]}: instr | ns" for op in OPS) + " |"
    rows = [head, "|---|" + "---:|---:|" * len(OPS)]
    for r in results:
        if r.error:
            rows.append(f"| {r.config} | failed: {r.error} |" + " |" * (2 * len(OPS) - 1))
            continue
        cells = []
        for op in OPS:
            i, t = r.instructions(op), r.ns(op)
            cells += ["" if i is None else f"{i:.0f}", "" if t is None else f"{t:.0f}"]
        rows.append(f"| {r.config} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def report_section(results: list[Result], runs: int, png: Path | None) -> list[str]:
    """The Markdown section of the trap table (also part of `just bench`'s report)."""
    lines = [
        "## Trap round trips (tests/guests/bench)",
        "",
        f"Per operation, the empty loop subtracted, 10^5 of each: instructions under `{' '.join(ICOUNT)}` (the "
        "guest's `instret`, which then counts every instruction QEMU executes: guest, hypervisor and OpenSBI) "
        f"and wall-clock ns without icount (median of {runs} runs, the guest's `time` CSR). QEMU "
        f"`-cpu {CPU} -smp {SMP}`: the guest's set_timer is an SBI call on a hart without Sstc. IRQC register: "
        "PLIC source 1's priority (PLIC mode), APLIC sourcecfg[1] (AIA mode); natively the real PLIC's. "
        "IPI: SBI send_ipi to the other hart (vCPU), which takes it.",
        "",
        table(results),
    ]
    if png is not None:
        lines += [f"![trap round trips]({png.name})", ""]
    return lines


def chart(results: list[Result], png: Path) -> bool:
    ok = [r for r in results if not r.error]
    return bar_chart(
        png,
        "Trap round trips (-icount shift=0)",
        [OP_TITLES[op] for op in OPS],
        {r.config: [r.instructions(op) for op in OPS] for r in ok},
        "instructions per operation",
    )


def configs(irqs: list[str], decodes: list[str], aia_guests: int, native: bool) -> tuple[list[Config], list[str]]:
    cs: list[Config] = []
    failed: list[str] = []
    for irq in irqs:
        for decode in decodes:
            try:
                cs.append(hypervisor_config(irq, decode, aia_guests))
            except BuildError as e:
                failed.append(f"{irq}, {decode}: {e}")
                print(f"bench-trap: not measured: {irq}, {decode}: {e}", file=sys.stderr, flush=True)
    if native and cs:
        # The native baseline runs the image of the first build (the guest is the same in every build).
        out = Path(cs[0].command[cs[0].command.index("-kernel") + 1]).parent
        cs.insert(0, native_config(out))
    return cs, failed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pyshyper_host.bench.trap", description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="wall-clock runs per configuration (median)")
    ap.add_argument("--no-icount", action="store_true", help="skip the -icount runs")
    ap.add_argument("--irq", action="append", choices=["plic", "aia"], help="IRQ modes (default: both)")
    ap.add_argument("--decode", action="append", choices=["htinst", "fetch"], help="MMIO decoding (default: both)")
    ap.add_argument("--aia-guests", type=int, default=3)
    ap.add_argument("--no-native", action="store_true", help="skip the native baseline")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per run")
    ap.add_argument("--report", type=Path, default=REPORT, help="where the Markdown report goes")
    args = ap.parse_args(argv)
    cs, failed = configs(args.irq or ["plic", "aia"], args.decode or ["htinst", "fetch"], args.aia_guests, True)
    if args.no_native:
        cs = [c for c in cs if not c.name.startswith("native")]
    results = [measure(c, args.runs, not args.no_icount, args.timeout) for c in cs]
    failed += [f"{r.config}: {r.error}" for r in results if r.error]
    png = args.report.with_suffix(".png")
    drawn = chart(results, png) if not args.no_icount else False
    text = "\n".join(
        [
            "# Trap microbenchmark",
            "",
            f"{time.strftime('%Y-%m-%d %H:%M:%S')}.",
            "",
            *report_section(results, args.runs, png if drawn else None),
        ]
    )
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(text)
    print()
    print(text, end="")
    print(f"\n(report: {args.report})")
    for f in failed:
        print(f"bench-trap: failed: {f}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
