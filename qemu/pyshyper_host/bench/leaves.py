"""Large pages in stage 2: the MVM's boot to its shell with 4 KiB stage-2 leaves only against the largest leaves.

``python -m pyshyper_host.bench.leaves`` (``just bench-leaves``; ``just bench`` runs it as a section of the boot
report, ``bench.boot --stage2``) boots, in one run and on one QEMU CPU model (``--cpu``, default
``rv64,svnapot=true``, so that 64 KiB Svnapot leaves are possible and the native baseline has the same harts):

- the MVM's kernel and initramfs natively (the baseline);
- the hypervisor built with ``pyshyper build --stage2-leaf 4k`` (every guest page its own 4 KiB leaf);
- the hypervisor built with the default ``--stage2-leaf max`` (1 GiB, 2 MiB and 64 KiB leaves where aligned).

Each once to the shell for wall clock and once under ``-icount shift=0,sleep=off`` (virtual time, the guest's
``time`` CSR at the first shell: one guest instruction per ns), as bench/boot.py measures, and the MVM's stage-2
leaves as the hypervisor reports them (``pyshyper: vm0 stage 2: ...``). Under QEMU a G-stage walk is software and
its TLB holds 4 KiB pages whatever the leaf, so a large leaf saves walk levels on each TLB refill, not TLB reach;
and QEMU flushes its TLB on every change of virtualization mode (target/riscv/cpu_helper.c
riscv_cpu_set_virt_enabled), so after each trap to the hypervisor the guest's refills walk again. The figure is
what the page size changes on this emulator, not on hardware; the guest's instruction count (icount) hardly
depends on it. Output: a Markdown section with ratios
against the native boot of the same run.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pyshyper_host import PROJECT_ROOT
from pyshyper_host.bench.console import BootError, boot_to_shell
from pyshyper_host.bench.stats import TIMEBASE_HZ
from pyshyper_host.images import initramfs as images
from pyshyper_host.run import command as run_command
from pyshyper_host.run.command import mvm_qemu_command

ICOUNT = list(run_command.ICOUNT)  # -icount and a fixed -seed (run/command.py)
CPU = "rv64,svnapot=true"
LEAVES = ("4k", "max")  # pyshyper build --stage2-leaf
LEAF_NAMES = {"4k": "hypervisor, 4 KiB leaves only", "max": "hypervisor, largest leaves"}
LEAF_LINE = re.compile(
    r"pyshyper: vm0 stage 2: (\d+) x 1G, (\d+) x 2M, (\d+) x 64K, (\d+) x 4K leaves, (\d+) table pages"
)
REPORT = PROJECT_ROOT / "build" / "bench" / "leaves.md"


@dataclass
class LeafRun:
    name: str
    walls: list[float] = field(default_factory=list)  # seconds from starting QEMU to the shell prompt
    icounts: list[float] = field(default_factory=list)  # virtual ms at the first shell under -icount
    leaves: tuple[int, int, int, int, int] | None = None  # 1G, 2M, 64K, 4K leaves and table pages of the MVM
    error: str | None = None

    @property
    def wall(self) -> float | None:
        return statistics.median(self.walls) if self.walls else None

    @property
    def icount_ms(self) -> float | None:
        return statistics.median(self.icounts) if self.icounts else None


def leaf_counts(log: str) -> tuple[int, int, int, int, int] | None:
    m = LEAF_LINE.search(log)
    return (int(m[1]), int(m[2]), int(m[3]), int(m[4]), int(m[5])) if m else None


Command = Callable[[bool], list[str]]  # icount -> QEMU command


def _commands(cache: Path, hv_mem: str, cpu: str, smp: int) -> dict[str, Command]:
    """name -> (icount -> QEMU command); the hypervisor builds go to build/bench/plic-leaf-<leaf>."""

    def native(icount: bool) -> list[str]:
        return images.native_qemu_command(cache, smp=smp, extra=ICOUNT if icount else (), cpu=cpu)

    def hypervisor(leaf: str) -> Command:
        out = PROJECT_ROOT / "build" / "bench" / f"plic-leaf-{leaf}"

        def cmd(icount: bool) -> list[str]:
            return list(mvm_qemu_command(icount, smp, hv_mem, cache, out=out, quiet=True, cpu=cpu, stage2_leaf=leaf))

        return cmd

    return {"native": native, **{LEAF_NAMES[leaf]: hypervisor(leaf) for leaf in LEAVES}}


def measure(
    cache: Path,
    hv_mem: str = "2G",
    cpu: str = CPU,
    smp: int = 2,
    timeout: float = 300.0,
    runs_wall: int = 1,
    runs_icount: int = 1,
) -> list[LeafRun]:
    """`runs_wall` rounds of wall-clock boots, each configuration in turn (native first), then `runs_icount`
    rounds of -icount boots; medians."""
    cmds = _commands(cache, hv_mem, cpu, smp)
    runs = [LeafRun(name) for name in cmds]
    for icount in [False] * runs_wall + [True] * runs_icount:
        for run, make in zip(runs, cmds.values(), strict=True):
            if run.error is not None:
                continue
            try:
                r = boot_to_shell(make(icount), timeout=timeout * (4 if icount else 1), attempts=2)
            except BootError as e:
                run.error = str(e)
                continue
            except Exception as e:  # noqa: BLE001 - a build failure is reported in the table, not a crash
                run.error = f"{type(e).__name__}: {e}"
                continue
            if icount and r.shell_ticks is not None:
                run.icounts.append(r.shell_ticks * 1000 / TIMEBASE_HZ)
            elif not icount:
                run.walls.append(r.wall_prompt)
            run.leaves = run.leaves or leaf_counts(r.log)
            what = f"{run.icounts[-1]:.1f} ms virtual" if icount and run.icounts else f"{r.wall_prompt:.2f} s wall"
            print(f"bench-leaves: {run.name}: shell after {what}", flush=True)
    for run in runs:
        if run.error:
            print(f"bench-leaves: {run.name}: {run.error}", file=sys.stderr, flush=True)
    return runs


def _ratio(v: float | None, base: float | None) -> str:
    return f"{v / base:.3f}" if v and base else ""


def section(runs: list[LeafRun], cpu: str = CPU) -> list[str]:
    """The Markdown section: one row per configuration, ratios against the native row."""
    base = runs[0]
    rows = [
        "## Stage-2 leaf size: 4 KiB pages only against large pages",
        "",
        f"`-cpu {cpu}`, `-smp 2`, PLIC; boots of each configuration in turn to the MVM's shell, for wall clock and "
        f"under `{' '.join(ICOUNT)}` (virtual time at the first shell, OpenSBI and the hypervisor's boot included), "
        "medians of n boots. With two harts QEMU's round-robin between them makes the icount figure of one boot "
        "vary from boot to boot by more than the leaf size changes it. "
        "Builds: `pyshyper build --stage2-leaf 4k` and the default `--stage2-leaf max`. Leaves: the MVM's stage-2 "
        "table as the hypervisor reports it at boot. Under QEMU the G-stage walk is done in software and its TLB "
        "holds 4 KiB pages whatever the leaf size, so a large leaf shortens each walk (two levels instead of three) "
        "but does not widen the TLB as on hardware; QEMU also empties its TLB on every trap to the hypervisor "
        "(a change of virtualization mode), so the guest's refills walk often. The guest runs the same instructions "
        "either way: the wall clock shows what the leaf size changes, icount only the noise of two harts.",
        "",
        "| configuration | boot to shell, wall (s) | ratio to native | boot to shell, icount (ms) | ratio to native |"
        " MVM leaves: 1G / 2M / 64K / 4K | table pages |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for r in runs:
        if r.error:
            rows.append(f"| {r.name} | failed | | | | | |")
            continue
        wall = "" if r.wall is None else f"{r.wall:.2f} (n={len(r.walls)})"
        icount = "" if r.icount_ms is None else f"{r.icount_ms:.1f} (n={len(r.icounts)})"
        leaves = " / ".join(str(n) for n in r.leaves[:4]) if r.leaves else ""
        tables = str(r.leaves[4]) if r.leaves else ""
        rows.append(
            f"| {r.name} | {wall} | {_ratio(r.wall, base.wall)} | {icount} | "
            f"{_ratio(r.icount_ms, base.icount_ms)} | {leaves} | {tables} |"
        )
    by = {r.name: r for r in runs}
    small, large = by.get(LEAF_NAMES["4k"]), by.get(LEAF_NAMES["max"])
    if small and large and not small.error and not large.error:
        rows += [
            "",
            f"Large pages against 4 KiB pages: wall {_ratio(large.wall, small.wall)}, "
            f"icount {_ratio(large.icount_ms, small.icount_ms)} (below 1: the large pages boot faster).",
        ]
    rows += [
        "",
        f"Errors: {'; '.join(f'{r.name}: {r.error}' for r in runs if r.error)}" if any(r.error for r in runs) else "",
    ]
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m pyshyper_host.bench.leaves",
        description="MVM boot to shell with 4 KiB stage-2 leaves only against the largest leaves, and natively.",
    )
    ap.add_argument("--cache", type=Path, default=None, help="image cache (default: $PYSHYPER_CACHE or ~/.cache)")
    ap.add_argument("--cpu", default=CPU, help=f"QEMU -cpu for every boot (default {CPU})")
    ap.add_argument("--hv-mem", default="2G", help="QEMU memory under the hypervisor (default 2G)")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per boot (x4 with -icount)")
    ap.add_argument("--runs", type=int, default=1, help="wall-clock boots per configuration (median; default 1)")
    ap.add_argument("--icount-runs", type=int, default=1, help="-icount boots per configuration (median; default 1)")
    ap.add_argument("--report", type=Path, default=REPORT, help="where the Markdown report goes")
    args = ap.parse_args(argv)
    cache = (args.cache.expanduser() if args.cache else images.default_cache()).resolve()
    if images.main(["--cache", str(cache)]) != 0:
        return 1
    runs = measure(
        cache, args.hv_mem, args.cpu, timeout=args.timeout, runs_wall=args.runs, runs_icount=args.icount_runs
    )
    text = "\n".join(section(runs, args.cpu)) + "\n"
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(text)
    print()
    print(text, end="")
    print(f"\n(report: {args.report})")
    return 1 if any(r.error for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
