"""`just bench-compiler`: compile the whole hypervisor for riscv64 and report lines per second and the share of
time per stage (check, lower, verify, optimize, codegen, assemble). Medians over several runs."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pyshyper_host import PROJECT_ROOT

ROOT = PROJECT_ROOT


def hypervisor_sources(board_module: Path) -> tuple[list[Path], dict[str, Path]]:
    files = sorted(p for p in (ROOT / "hypervisor").rglob("*.py") if p.name != "board.py")
    return files, {"hypervisor.board": board_module}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pyshyper_host.bench.compiler", description=__doc__)
    ap.add_argument("--runs", type=int, default=5, help="compilations to take the median of (default 5)")
    ap.add_argument(
        "--out", type=Path, default=None, help="Markdown report (default build/bench/compiler.md, PNG beside it)"
    )
    args = ap.parse_args(argv)
    from boards import make_config
    from boards.constants import render_hypervisor_module
    from compiler.driver import build_riscv_object

    with tempfile.TemporaryDirectory() as tmp:
        board = Path(tmp) / "board.py"
        board.write_text(render_hypervisor_module(make_config("qemu-virt", "plic")))
        files, extra = hypervisor_sources(board)
        totals: list[float] = []
        stages: dict[str, list[float]] = {}
        lines = 0
        for i in range(args.runs):
            t0 = time.perf_counter()
            r = build_riscv_object(list[str | Path](files), Path(tmp) / f"hyp{i}.o", extra, ROOT)
            totals.append(time.perf_counter() - t0)
            lines = r.lines
            for k, v in r.timings.stages.items():
                stages.setdefault(k, []).append(v)
    total = statistics.median(totals)
    out = [
        f"# Compiler benchmark: the hypervisor ({len(files) + 1} modules, {lines} lines) for riscv64",
        "",
        f"- median of {args.runs} runs: **{total * 1000:.0f} ms**, **{lines / total:,.0f} lines/s**",
        "",
        "| stage | median ms | share |",
        "|---|---:|---:|",
    ]
    for k, runs in stages.items():
        m = statistics.median(runs)
        out.append(f"| {k} | {m * 1000:.1f} | {m / total:.0%} |")
    out_md = args.out or ROOT / "build" / "bench" / "compiler.md"
    from pyshyper_host.bench.plot import bar_chart

    names = list(stages)
    title = f"Compiling the hypervisor: {total * 1000:.0f} ms ({lines / total:,.0f} lines/s)"
    per_stage = {"ms": [statistics.median(stages[k]) * 1000 for k in names]}
    if bar_chart(out_md.with_suffix(".png"), title, names, per_stage, "median ms"):
        out += ["", f"![time per stage]({out_md.with_suffix('.png').name})"]
    text = "\n".join(out)
    print(text)
    out_md.parent.mkdir(parents=True, exist_ok=True)
    out_md.write_text(text + "\n")
    print(f"(report: {out_md})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
