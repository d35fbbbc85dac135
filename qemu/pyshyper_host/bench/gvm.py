"""Guest VM benchmark (``just bench-gvm``, ``python -m pyshyper_host.bench.gvm``): a guest VM booted from the MVM's
shell against the same kernel and initramfs booted natively, the image-load throughput, the control round trip.

- native: ``images.native_gvm_command`` (QEMU, 1 hart, 128M, the GVM's virtio-console on stdio): wall clock from
  starting QEMU to the GVM's shell prompt (after its ready line), median of ``--runs``;
- under the hypervisor (``--irq plic``, ``--irq aia``, both by default): the MVM booted once as ``pyshyper run``
  boots it (4 harts, 2G), ``shyper vm config vm1.json``, then per run ``shyper vm boot 1 && shyper vm console 1``
  typed into the MVM's shell: wall clock from the command to vm1's ready line and prompt on its console (the
  `shyper` process's start, the images loaded through the control port, the GVM's boot), then ``shyper vm stop
  1``; the boot's own ``N MiB loaded in T s`` gives the load throughput, and the boot time less the load time
  is the GVM's own boot under the hypervisor;
- the control round trip: ``shyper system ping -n N`` (SYSTEM_INFO requests between the daemon and the hypervisor):
  median and min.

Output: a Markdown table, printed and written to build/bench/gvm.md.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pyshyper_host import PROJECT_ROOT
from pyshyper_host.bench.console import BootError, boot_to_shell, start_shell
from pyshyper_host.images import initramfs as images
from pyshyper_host.run.command import mvm_qemu_command

GVM = "vm1"
TIMEOUT = 300.0
BOOTED = re.compile(r"vm 1: booted \(([\d.]+) (MiB|KiB|GiB) loaded in ([\d.]+) s\)")
PING = re.compile(r"median (\d+) us, min (\d+) us, max (\d+) us")
UNIT = {"KiB": 1 / 1024, "MiB": 1.0, "GiB": 1024.0}


@dataclass
class HvResult:
    irq: str
    walls: list[float] = field(default_factory=list)  # command to the GVM's prompt
    loads: list[tuple[float, float]] = field(default_factory=list)  # (MiB, seconds)
    ping_median_us: float | None = None
    ping_min_us: float | None = None
    error: str | None = None


def native(cache: Path, runs: int) -> list[float]:
    walls = []
    for _ in range(runs):
        r = boot_to_shell(
            images.native_gvm_command(cache, GVM),
            TIMEOUT,
            ready_line=images.GVM_READY_LINE,
            prompt=images.gvm_prompt(GVM),
        )
        walls.append(r.wall_prompt)
    return walls


def under_hypervisor(irq: str, cache: Path, runs: int, pings: int) -> HvResult:
    res = HvResult(irq)
    out = PROJECT_ROOT / "build" / "bench" / f"gvm-{irq}"
    cmd = mvm_qemu_command(False, 4, "2G", cache, irq=irq, aia_guests=3, out=out, quiet=True)
    sh, _, _ = start_shell(cmd, TIMEOUT)
    try:
        end = time.monotonic() + 120
        while sh.run("shyper vm list >/dev/null 2>&1")[1] != 0:  # the daemon service starts
            if time.monotonic() > end:
                raise BootError("the shyper daemon does not answer", sh.log)
            time.sleep(2)
        out_, status = sh.run(f"shyper vm config {GVM}.json")
        if status != 0:
            raise BootError(f"shyper vm config {GVM}.json failed: {out_}", sh.log)
        for _ in range(runs):
            t0 = time.monotonic()
            sh.send("shyper vm boot 1 && shyper vm console 1")
            m = sh.expect(BOOTED.pattern, timeout=TIMEOUT)
            res.loads.append((float(m.group(1)) * UNIT[m.group(2)], float(m.group(3))))
            sh.expect(re.escape(f"{images.GVM_READY_LINE}: {GVM}"), timeout=TIMEOUT)
            sh.expect(re.escape(images.gvm_prompt(GVM)), timeout=TIMEOUT)
            res.walls.append(time.monotonic() - t0)
            sh.child.send("\x1d")  # Ctrl-] detaches
            sh.expect(r"\[detached\]", timeout=60)
            sh.expect(re.escape(images.PROMPT), timeout=60)
            sh.run("shyper vm stop 1")
        text, _ = sh.run(f"shyper system ping -n {pings}")
        pm = PING.search(text)
        if pm:
            res.ping_median_us, res.ping_min_us = float(pm.group(1)), float(pm.group(2))
        sh.poweroff(TIMEOUT)
    finally:
        sh.close()
    return res


def report(native_walls: list[float], results: list[HvResult], runs: int, pings: int) -> str:
    base = statistics.median(native_walls) if native_walls else None
    lines = [
        f"# Guest VM boot, image load and control round trip ({runs} run(s) each, medians)",
        "",
        "| configuration | to the GVM's shell (s) | ratio | image load | GVM boot less load (s) | control round trip |",
        "|---|---|---|---|---|---|",
    ]
    if base is not None:
        lines.append(f"| native QEMU (1 hart, 128M) | {base:.2f} | 1.00 | - | {base:.2f} | - |")
    for r in results:
        if r.error:
            lines.append(f"| hypervisor, {r.irq} | failed: {r.error.splitlines()[0][:80]} | | | | |")
            continue
        wall = statistics.median(r.walls)
        mib = statistics.median(m for m, _ in r.loads)
        secs = statistics.median(s for _, s in r.loads)
        ratio = f"{wall / base:.2f}" if base else "-"
        ping = f"{r.ping_median_us:.0f} us (min {r.ping_min_us:.0f})" if r.ping_median_us is not None else "-"
        lines.append(
            f"| hypervisor, {r.irq} (`shyper vm boot` + console) | {wall:.2f} | {ratio} | "
            f"{mib:.1f} MiB in {secs:.2f} s = {mib / secs:.1f} MiB/s | {wall - secs:.2f} | {ping} ({pings}) |"
        )
    lines += [
        "",
        "Native: QEMU started to the GVM's prompt. Under the hypervisor: `shyper vm boot 1 && shyper vm console 1`",
        "typed in the MVM's shell to vm1's prompt on its console (the images are read from the MVM's disk and",
        "loaded through the control port first). Round trip: `shyper system ping` (daemon <-> hypervisor).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench-gvm", description=__doc__.split("\n\n")[0])
    ap.add_argument("--irq", action="append", choices=["plic", "aia"], help="hypervisor IRQ modes (default both)")
    ap.add_argument("--runs", type=int, default=3, help="boots per configuration (default %(default)s)")
    ap.add_argument("--pings", type=int, default=200, help="control round trips (default %(default)s)")
    ap.add_argument("--cache", type=Path, default=None, help="image cache (default: pyshyper images')")
    ap.add_argument("--report", type=Path, default=PROJECT_ROOT / "build" / "bench" / "gvm.md")
    args = ap.parse_args(argv)
    cache = args.cache or images.default_cache()
    if images.main(["--cache", str(cache)]) != 0:
        print("bench-gvm: `pyshyper images` failed", file=sys.stderr)
        return 1
    try:
        walls = native(cache, args.runs)
    except BootError as e:
        print(f"bench-gvm: the native GVM boot failed: {e}", file=sys.stderr)
        walls = []
    results = []
    for irq in args.irq or ["plic", "aia"]:
        try:
            results.append(under_hypervisor(irq, cache, args.runs, args.pings))
        except BootError as e:
            results.append(HvResult(irq, error=str(e)))
        except Exception as e:  # a pexpect timeout: reported in the table, the other mode still runs
            results.append(HvResult(irq, error=f"{type(e).__name__}: {e}"))
    text = report(walls, results, args.runs, args.pings)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(text)
    print(text)
    return 0 if walls and all(r.error is None for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
