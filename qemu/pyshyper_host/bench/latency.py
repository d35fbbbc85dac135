"""Timer-interrupt latency and context-switch benchmark (``just bench-latency``, ``python -m
pyshyper_host.bench.latency``; ``just bench`` adds its section to build/bench/boot.md).

The latency guest (tests/guests/latency, a bare-metal guest VM) arms its timer a pseudo-random few hundred
microseconds ahead, waits in WFI, and keeps `time` at its trap vector minus the deadline, in timebase ticks; it
prints the samples and the timebase it found in its device tree on its console. Per interrupt mode (``--irq plic``,
``--irq aia``, both by default), on one boot of the MVM as ``pyshyper run`` makes it (4 harts, 2G, the MVM on harts
0 and 1), typed into the MVM's shell:

- alone: the latency guest with ``cpu.priority`` 10 alone on hart 2 (``shyper vm config`` + ``boot``, its console
  read from /dev/hvcN), ``--samples`` rounds;
- shared: a Linux GVM (mvm-tools/examples/vm1.json) with ``cpu.priority`` 0 on the same hart 2, booted, a CPU-bound
  loop started in its shell, then the latency guest again (priority 10): the vCPU scheduler lets it preempt the
  Linux GVM when its deadline comes.

The context-switch cost (``--switch``, one boot under ``-icount shift=0,sleep=off``, PLIC): two latency guests in
``mode=switch`` with equal priority on hart 3. Each records the intervals during which it ran without a break
(its `instret` read in a loop, start.S ``switch_record``); under icount `instret` counts every instruction QEMU
runs, on every hart, so merging the two guests' intervals gives, from one VM's last instruction to the other's
first, the instructions of a switch (``switch_costs``): the hypervisor's timer interrupt at the end of a time slice,
its scheduling decision, the save and restore of the two vCPUs' state. The same VM's own breaks (a trap that does
not switch) are kept apart as the baseline. The hypervisor's own count of the switches on that hart and their
instructions (its statistics page, read with ``devmem``) is a row of its own.

Statistics: median, 99th percentile (nearest rank) and maximum, in ticks and microseconds (the guest's timebase);
a histogram PNG (log-spaced bins) next to the report. No figure is a pass/fail threshold, but every case must give
one: a case that fails, a config that `shyper vm config` refuses (its `cpu.priority`, a second VM on a taken hart)
included, is its row (``failed: ...``) and makes the exit status 1 (and `just bench`'s).

What the measurement relies on in the hypervisor: the latency guest's deadline, armed while the Linux GVM holds the
hart (its `vstimecmp`, or its SBI deadline without Sstc), preempts that GVM when it comes; two vCPUs of equal
priority on a hart take turns by time slice even when neither traps (the hypervisor's own timer); guests read the
hart's `instret` directly (hcounteren.IR), never a per-vCPU copy.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import re
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pyshyper_host import PROJECT_ROOT
from pyshyper_host.bench.console import BootError, Shell, start_shell
from pyshyper_host.bench.stats import stats_base
from pyshyper_host.images import initramfs as images
from pyshyper_host.run import command as run_command

ROOT = PROJECT_ROOT
REPORT = ROOT / "build" / "bench" / "latency.md"
GUEST_DIR = ROOT / "tests" / "guests" / "latency"
LINUX_CONFIG = ROOT / "mvm-tools" / "examples" / "vm1.json"
ICOUNT = list(run_command.ICOUNT)  # -icount and a fixed -seed (run/command.py)
TIMEOUT = 300.0
GVM_BOOT = 300.0  # a GVM's Linux to its shell under TCG on a loaded host
HART = 2  # the latency guest's hart, and the Linux GVM's in the shared case
SWITCH_HART = 3
PRIORITY_HIGH = 10
PRIORITY_LOW = 0
HV_LOG = re.compile(r"pyshyper: [^\n]*\n")  # the hypervisor's log lines, which share the serial console
UP_RE = re.compile(r"latency: up timebase (\d+) timer (\w+) mode (\w+)")
DONE_RE = re.compile(r"latency: done n (\d+) sum (\d+) min (\d+) max (\d+) early (\d+)")
SWITCH_DONE_RE = re.compile(r"latency: done intervals (\d+)")
VALUES_RE = re.compile(r"^latency: ([si]) (\d+)((?: [0-9a-f]+)+)\s*$", re.M)


class LatencyError(RuntimeError):
    """The guest's output is missing, incomplete or says it failed."""


# ---------------------------------------------------------------------------------------------------------------
# The guest's output


@dataclass
class TimerRun:
    timebase: int  # Hz, from the guest's device tree (0: it had none)
    timer: str  # "sstc" or "sbi"
    samples: list[int]


def _values(text: str, tag: str) -> list[int]:
    """The hex values of the `latency: TAG index v v ...` lines, in order; LatencyError when an index does not
    continue where the previous line ended (a line lost or cut on the console)."""
    out: list[int] = []
    for m in VALUES_RE.finditer(text):
        if m.group(1) != tag:
            continue
        if int(m.group(2)) != len(out):
            raise LatencyError(f"a line is missing or cut: index {m.group(2)} after {len(out)} value(s)")
        out += [int(v, 16) for v in m.group(3).split()]
    return out


def parse_timer(text: str) -> TimerRun:
    """A timer run's samples from the guest's console output (hypervisor log lines taken out first)."""
    text = HV_LOG.sub("", text.replace("\r", ""))
    if "latency: unexpected trap" in text or "latency: PANIC" in text:
        line = next(ln for ln in text.splitlines() if "latency: unexpected" in ln or "latency: PANIC" in ln)
        raise LatencyError(f"the guest failed: {line.strip()}")
    up = UP_RE.search(text)
    if up is None or up.group(3) != "timer":
        raise LatencyError("no `latency: up ... mode timer` line")
    done = DONE_RE.search(text)
    if done is None:
        raise LatencyError("the guest did not finish (no `latency: done` line)")
    n, total, lo, hi, early = (int(g) for g in done.groups())
    if early:
        raise LatencyError(f"{early} interrupt(s) came before their deadline")
    samples = _values(text, "s")
    if len(samples) != n or sum(samples) != total or (n and (min(samples), max(samples)) != (lo, hi)):
        raise LatencyError(f"samples lost or garbled on the console: {len(samples)} of {n}, sum {sum(samples)}")
    return TimerRun(int(up.group(1)), up.group(2), samples)


def parse_switch(text: str) -> list[tuple[int, int]]:
    """A switch recorder's intervals, (first instret, last instret) each."""
    text = HV_LOG.sub("", text.replace("\r", ""))
    done = SWITCH_DONE_RE.search(text)
    if done is None:
        raise LatencyError("the switch recorder did not finish (no `latency: done intervals` line)")
    values = _values(text, "i")
    if len(values) != 2 * int(done.group(1)):
        raise LatencyError(f"intervals lost on the console: {len(values) // 2} of {done.group(1)}")
    pairs = list(zip(values[::2], values[1::2], strict=True))
    if any(b < a for a, b in pairs) or any(b[0] <= a[1] for a, b in zip(pairs, pairs[1:], strict=False)):
        raise LatencyError("intervals out of order")
    return pairs


# ---------------------------------------------------------------------------------------------------------------
# Statistics


def percentile(values: Sequence[int], p: float) -> int:
    """The nearest-rank p-th percentile: the smallest value with at least p % of the values at or below it."""
    if not values:
        raise ValueError("no values")
    s = sorted(values)
    k = max(1, math.ceil(p / 100 * len(s)))
    return s[k - 1]


@dataclass(frozen=True)
class Summary:
    n: int
    median: float
    p99: int
    max: int
    min: int


def summarize(values: Sequence[int]) -> Summary:
    return Summary(len(values), statistics.median(values), percentile(values, 99), max(values), min(values))


def log_edges(lo: int, hi: int, bins: int) -> list[float]:
    """bins + 1 geometrically spaced bin edges covering lo .. hi (a latency's tail is orders above its median)."""
    lo = max(lo, 1)
    hi = max(hi, lo + 1)
    r = (hi / lo) ** (1 / bins)
    edges = [lo * r**i for i in range(bins + 1)]
    edges[0], edges[-1] = float(lo), float(hi)
    return edges


def histogram(values: Sequence[int], edges: Sequence[float]) -> list[int]:
    """Counts per bin [edges[i], edges[i+1]), the last bin closed; values outside the edges fall in the first or
    last bin, so the counts always sum to len(values)."""
    import bisect

    counts = [0] * (len(edges) - 1)
    for v in values:
        i = bisect.bisect_right(edges, v) - 1
        counts[min(max(i, 0), len(counts) - 1)] += 1
    return counts


@dataclass
class SwitchCosts:
    switches: list[int]  # instructions from one VM's last read to the other VM's first
    same_vm: list[int]  # a VM's own breaks: from its last read to its own next first read


def own_breaks(a: Sequence[tuple[int, int]]) -> list[int]:
    """One VM's breaks: from each interval's last read to the next one's first."""
    return [s1 - e0 for (_s0, e0), (s1, _e1) in zip(a, a[1:], strict=False)]


def switch_costs(a: Sequence[tuple[int, int]], b: Sequence[tuple[int, int]]) -> SwitchCosts:
    """Merge two VMs' run intervals on one hart (instret, global under icount). Only the stretch where both were
    recording counts, a gap from `lo` (the later of the two first reads) to `hi` (the earlier of the two last
    reads): outside it one side's runs are not on record (its boot, its output) and a gap there may hide them."""
    costs = SwitchCosts([], [])
    if not a or not b:
        return costs
    lo, hi = max(a[0][0], b[0][0]), min(a[-1][1], b[-1][1])
    merged = sorted([(s, e, 0) for s, e in a] + [(s, e, 1) for s, e in b])
    for (_s0, e0, v0), (s1, _e1, v1) in zip(merged, merged[1:], strict=False):
        if e0 < lo or s1 > hi:
            continue
        (costs.switches if v0 != v1 else costs.same_vm).append(s1 - e0)
    return costs


# ---------------------------------------------------------------------------------------------------------------
# Driving the MVM


@dataclass
class Case:
    """One latency measurement: its samples, or why there are none."""

    name: str  # "alone", "shared"
    run: TimerRun | None = None
    error: str | None = None  # a failure (a refused config included)


@dataclass
class ModeResult:
    irq: str
    cases: list[Case] = field(default_factory=list)
    error: str | None = None


@dataclass
class SwitchResult:
    irq: str
    intervals: list[list[tuple[int, int]]] = field(default_factory=list)
    costs: SwitchCosts | None = None
    error: str | None = None
    hv_switches: tuple[int, int] | None = None  # the hypervisor's count on the hart: switches, their instructions
    hv_fences: tuple[int, int] | None = None  # its vCPU entries there that fenced: all of a VMID's, VS stage only


class Refused(LatencyError):
    """`shyper vm config` said no (a bad field, or the hypervisor's refusal): a failure like any other."""


class Mvm:
    def __init__(self, sh: Shell) -> None:
        self.sh = sh

    def run(self, command: str, timeout: float = TIMEOUT) -> str:
        out, status = self.status(command, timeout)
        if status != 0:
            raise LatencyError(f"`{command}` exited with status {status}: {out.strip()[:300]}")
        return out

    def status(self, command: str, timeout: float = TIMEOUT) -> tuple[str, int]:
        out, status = self.sh.run(command, timeout=timeout)
        return HV_LOG.sub("", out), status

    def wait_daemon(self) -> None:
        end = time.monotonic() + 120
        while self.status("shyper vm list >/dev/null 2>&1")[1] != 0:  # the daemon service starts
            if time.monotonic() > end:
                raise LatencyError("the shyper daemon does not answer")
            time.sleep(2)

    def put_file(self, data: bytes, dst: str) -> None:
        """A file into the MVM, base64 typed into its shell."""
        text = base64.b64encode(data).decode()
        self.run(f"rm -f {dst}.b64")
        for i in range(0, len(text), 512):
            self.run(f"echo '{text[i : i + 512]}' >> {dst}.b64")
        self.run(f"base64 -d {dst}.b64 > {dst} && rm {dst}.b64")

    def config(self, cfg: dict, path: str) -> int:
        """`shyper vm config` of cfg written to path, as it is: the VM's id. A refusal raises Refused."""
        self.put_file(json.dumps(cfg, indent=1).encode(), path)
        out, status = self.status(f"shyper vm config {path}")
        if status != 0:
            why = _first_line(out) or "no message"
            raise Refused(f"`shyper vm config` refused {cfg.get('name', path)} (exit status {status}): {why}")
        return int(out.strip().splitlines()[-1])

    def remove(self, vid: int) -> None:
        self.status(f"shyper vm stop {vid}; shyper vm remove {vid}")

    def console_start(self, vid: int) -> str:
        tmp = f"/tmp/latency-vm{vid}.out"
        self.run(f"(cat /dev/hvc{vid} > {tmp} & echo $! > {tmp}.pid)")
        return tmp

    def console_wait(self, tmp: str, pattern: str, timeout: float) -> str:
        """The console's text once `pattern` (a grep -E regex) is in it; the reader is stopped."""
        end = time.monotonic() + timeout
        try:
            while self.status(f"grep -qE '{pattern}' {tmp}")[1] != 0:
                if time.monotonic() > end:
                    raise LatencyError(f"no {pattern!r} on the guest's console in {timeout:.0f} s")
                time.sleep(2)
            return self.run(f"cat {tmp}")
        finally:
            self.status(f"kill $(cat {tmp}.pid)")

    def hvc(self, vid: int, line: str, expect: str, timeout: float = GVM_BOOT, resend: float = 15.0) -> str:
        """Type `line` into a Linux GVM's /dev/hvcN until its answer `expect` (a regex) comes back."""
        tmp = self.console_start(vid)
        quoted = line.replace("'", "'\\''")
        send = f"printf '%s\\n' '{quoted}' > /dev/hvc{vid}"
        end = time.monotonic() + timeout
        sent = time.monotonic()
        self.run(send)
        try:
            while True:
                got = self.run(f"cat {tmp}")
                if re.search(expect, got):
                    return got
                if time.monotonic() > end:
                    raise LatencyError(f"/dev/hvc{vid}: no {expect!r} after {timeout:.0f} s")
                time.sleep(2)
                if time.monotonic() - sent > resend:
                    self.run(send)
                    sent = time.monotonic()
        finally:
            self.status(f"kill $(cat {tmp}.pid)")


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")


def guest_config(name: str, hart: int, priority: int, cmdline: str) -> dict:
    """The latency guest's VM config: tests/guests/latency/latency.json on `hart`, with `cmdline` and priority."""
    cfg = json.loads((GUEST_DIR / "latency.json").read_text())
    cfg["name"] = name
    cfg["cmdline"] = cmdline
    cfg["cpu"] = {"num": 1, "allocate_bitmap": f"{1 << hart:#06b}", "master": hart, "priority": priority}
    return cfg


def linux_config(hart: int, priority: int) -> dict:
    cfg = json.loads(LINUX_CONFIG.read_text())
    cfg["cpu"] = {"num": 1, "allocate_bitmap": f"{1 << hart:#06b}", "master": hart, "priority": priority}
    return cfg


def timer_cmdline(n: int, min_us: int, max_us: int, seed: int) -> str:
    return f"mode=timer n={n} min_us={min_us} max_us={max_us} seed={seed}"


def run_timer_guest(mvm: Mvm, cfg: dict, n: int) -> TimerRun:
    """Config, boot, read the latency guest's console to its `done` line, stop and remove it."""
    vid = mvm.config(cfg, f"/root/{cfg['name']}.json")
    try:
        tmp = mvm.console_start(vid)
        mvm.run(f"shyper vm boot {vid}")
        # the rounds (a few hundred us each) and the paced output (3 ms a line of 16) under TCG
        text = mvm.console_wait(tmp, "^latency: (done|unexpected|PANIC)", 120 + n * 0.05)
        return parse_timer(text)
    finally:
        mvm.remove(vid)


def measure_mode(
    irq: str, cache: Path, samples: int, min_us: int, max_us: int, shared: bool, out: Path | None = None
) -> ModeResult:
    """One MVM boot in `irq` mode: the alone case, then (with `shared`) the shared one."""
    from pyshyper_host.run.command import mvm_qemu_command

    res = ModeResult(irq)
    out = out if out is not None else ROOT / "build" / "bench" / f"latency-{irq}"
    cmd = mvm_qemu_command(False, 4, "2G", cache, irq=irq, aia_guests=3, out=out, quiet=True)
    sh, _, _ = start_shell(cmd, TIMEOUT)
    mvm = Mvm(sh)
    try:
        mvm.wait_daemon()
        mvm.put_file((out / "guests" / "latency.bin").read_bytes(), "/root/latency.bin")
        cmdline = timer_cmdline(samples, min_us, max_us, 1)
        alone = Case("alone")
        res.cases.append(alone)
        try:
            alone.run = run_timer_guest(mvm, guest_config("latency", HART, PRIORITY_HIGH, cmdline), samples)
        except LatencyError as e:
            alone.error = str(e)
        if shared:
            res.cases.append(measure_shared(mvm, samples, cmdline))
        sh.poweroff(TIMEOUT)
    except LatencyError as e:
        res.error = str(e)
    finally:
        _save_log(sh, f"latency-{irq}")
        sh.close()
    return res


def measure_shared(mvm: Mvm, samples: int, cmdline: str) -> Case:
    """A CPU-bound Linux GVM with priority 0 on HART, then the latency guest (priority 10) on the same hart."""
    case = Case("shared")
    try:
        lvid = mvm.config(linux_config(HART, PRIORITY_LOW), "/root/latency-linux.json")
    except Refused as e:
        case.error = f"the Linux GVM: {e}"
        return case
    try:
        mvm.run(f"shyper vm boot {lvid}", timeout=GVM_BOOT)
        mvm.hvc(lvid, "echo @@U''P $(hostname)", r"@@UP \S+")
        # the CPU-bound load: a shell loop in the background of the GVM's shell, for as long as the GVM runs
        mvm.hvc(lvid, "(while :; do :; done) & echo @@L''OOP $!", r"@@LOOP \d+", resend=60)
        try:
            case.run = run_timer_guest(mvm, guest_config("latency", HART, PRIORITY_HIGH, cmdline), samples)
        except LatencyError as e:  # a refused config included
            case.error = str(e)
    except LatencyError as e:
        case.error = f"the Linux GVM: {e}"
    finally:
        mvm.remove(lvid)
    return case


def run_switch_guests(mvm: Mvm, names: Sequence[str], cmdline: str, until_ms: int, res: SwitchResult) -> None:
    """Config the switch recorders `names` (one or two) on SWITCH_HART with equal priority, boot them together,
    read their intervals into res.intervals, remove them. A refused config raises Refused (a LatencyError)."""
    vids: list[int] = []
    try:
        for name in names:
            cfg = guest_config(name, SWITCH_HART, PRIORITY_HIGH, cmdline)
            vids.append(mvm.config(cfg, f"/root/{name}.json"))
        tmps = [mvm.console_start(v) for v in vids]
        mvm.run(" && ".join(f"shyper vm boot {v}" for v in vids))
        for tmp in tmps:
            text = mvm.console_wait(tmp, "^latency: (done|unexpected|PANIC)", 120 + until_ms / 10)
            res.intervals.append(parse_switch(text))
        res.hv_switches = hv_switch_counts(mvm, SWITCH_HART)
        res.hv_fences = hv_fence_counts(mvm, SWITCH_HART)
    finally:
        for v in vids:
            mvm.remove(v)
    if len(res.intervals) == 2:
        res.costs = switch_costs(res.intervals[0], res.intervals[1])
    else:  # one recorder alone on its hart (tests/boot/test_latency.py): only its own breaks
        res.costs = SwitchCosts([], own_breaks(res.intervals[0]))


def hv_switch_counts(mvm: Mvm, hart: int) -> tuple[int, int]:
    """The hypervisor's own count for `hart` on the statistics page (hypervisor/core/stats.py, 0x850 + 16 * hart):
    switches from one vCPU to another, and the instructions they took in all (instret from the start of leaving
    one vCPU to the sret into the next)."""
    return _stats_pair(mvm, 0x850 + 16 * hart)


def hv_fence_counts(mvm: Mvm, hart: int) -> tuple[int, int]:
    """The vCPU entries on `hart` that fenced its TLB (hypervisor/core/stats.py, 0x8d0 + 16 * hart): all of the
    VMID's translations, and the VS stage only (core/sched.py sched_fences)."""
    return _stats_pair(mvm, 0x8D0 + 16 * hart)


def _stats_pair(mvm: Mvm, offset: int) -> tuple[int, int]:
    addr = stats_base() + offset
    out = mvm.run(f"devmem {addr:#x} 64; devmem {addr + 8:#x} 64")
    words = re.findall(r"0x[0-9A-Fa-f]+", out)
    if len(words) != 2:
        raise LatencyError(f"cannot read the statistics page at {addr:#x}: {out!r}")
    return int(words[0], 16), int(words[1], 16)


def switch_cmdline(slices: int, gap: int, until_ms: int) -> str:
    return f"mode=switch slices={slices} gap={gap} until_ms={until_ms}"


def measure_switch(cache: Path, slices: int, until_ms: int, gap: int, out: Path | None = None) -> SwitchResult:
    """Under -icount: two switch recorders with equal priority on SWITCH_HART, their intervals merged."""
    from pyshyper_host.run.command import mvm_qemu_command

    res = SwitchResult("plic")
    out = out if out is not None else ROOT / "build" / "bench" / "latency-switch"
    cmd = mvm_qemu_command(True, 4, "2G", cache, irq="plic", out=out, quiet=True)
    sh, _, _ = start_shell(cmd, TIMEOUT * 4)
    mvm = Mvm(sh)
    try:
        mvm.wait_daemon()
        mvm.put_file((out / "guests" / "latency.bin").read_bytes(), "/root/latency.bin")
        run_switch_guests(mvm, ("switch-a", "switch-b"), switch_cmdline(slices, gap, until_ms), until_ms, res)
        sh.poweroff(TIMEOUT)
    except LatencyError as e:
        res.error = str(e)
    finally:
        _save_log(sh, "latency-switch")
        sh.close()
    return res


def _save_log(sh: Shell, name: str) -> None:
    p = ROOT / "logs" / f"bench-{name}.log"
    p.parent.mkdir(parents=True, exist_ok=True)
    sh.save_failure(p)


# ---------------------------------------------------------------------------------------------------------------
# Report


def _cell(ticks: float, timebase: int) -> str:
    return f"{ticks:g} ({ticks * 1e6 / timebase:.1f} us)" if timebase else f"{ticks:g}"


def table(results: Sequence[ModeResult]) -> str:
    rows = [
        "| irq | case | timer | samples | median, ticks (us) | p99, ticks (us) | max, ticks (us) | timebase |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if r.error and not r.cases:
            rows.append(f"| {r.irq} | failed: {r.error.splitlines()[0][:120]} | | | | | | |")
        for c in r.cases:
            if c.run is not None:
                s, tb = summarize(c.run.samples), c.run.timebase
                rows.append(
                    f"| {r.irq} | {c.name} | {c.run.timer} | {s.n} | {_cell(s.median, tb)} | {_cell(s.p99, tb)} | "
                    f"{_cell(s.max, tb)} | {tb / 1e6:g} MHz |"
                )
            else:
                rows.append(f"| {r.irq} | {c.name}: failed: {(c.error or '').splitlines()[0][:120]} | | | | | | |")
    return "\n".join(rows) + "\n"


def switch_table(res: SwitchResult) -> str:
    rows = [
        "| what | count | min | median | p99 | max |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    if res.error is not None:
        rows.append(f"| context switch: failed: {res.error.splitlines()[0][:120]} | | | | | |")
    if res.hv_switches is not None and res.hv_switches[0]:
        n, instr = res.hv_switches
        rows.append(
            f"| the hypervisor's own count on hart {SWITCH_HART}: switches, mean instructions from leaving one vCPU "
            f"to the sret into the next | {n} | | {instr / n:.0f} (mean) | | |"
        )
    if res.hv_fences is not None:
        full, vs = res.hv_fences
        rows.append(
            f"| vCPU entries on hart {SWITCH_HART} that fenced the TLB: all of the VMID's / the VS stage only "
            f"(two VMs: distinct VMIDs, a switch needs neither) | {full} / {vs} | | | | |"
        )
    for label, values in (
        (f"context switch between 2 VMs on hart {SWITCH_HART} (instructions)", res.costs.switches if res.costs else []),
        ("a VM's own break, no switch (instructions)", res.costs.same_vm if res.costs else []),
    ):
        if values:
            s = summarize(values)
            rows.append(f"| {label} | {s.n} | {s.min} | {s.median:g} | {s.p99} | {s.max} |")
    return "\n".join(rows) + "\n"


def chart(results: Sequence[ModeResult], png: Path, bins: int = 40) -> bool:
    """Histograms of every case with samples, log-spaced bins shared by all, log count axis."""
    runs = [(f"{r.irq}, {c.name}", c.run.samples) for r in results for c in r.cases if c.run is not None]
    if not runs:
        return False
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"(no PNG chart: matplotlib is not installed; `pip install -e '.[bench]'` for {png.name})")
        return False
    edges = log_edges(min(min(s) for _, s in runs), max(max(s) for _, s in runs), bins)
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    for label, samples in runs:
        counts = histogram(samples, edges)
        ax.stairs(counts, edges, label=f"{label} (median {statistics.median(samples):g})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("timer interrupt latency, deadline to handler (timebase ticks)")
    ax.set_ylabel("samples")
    ax.set_title("Timer-interrupt latency of a guest VM")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    plt.close(fig)
    return True


def report_section(
    results: Sequence[ModeResult], switch: SwitchResult | None, samples: int, png: Path | None
) -> list[str]:
    """The Markdown section (also part of `just bench`'s report)."""
    lines = [
        "## Timer-interrupt latency and context switch (tests/guests/latency)",
        "",
        f"A bare-metal guest VM with `cpu.priority` {PRIORITY_HIGH} on hart {HART} arms its timer a pseudo-random "
        "few hundred microseconds ahead, waits in WFI and records `time` at its trap vector minus the deadline "
        f"({samples} rounds; nearest-rank p99). Alone: nothing else on its hart. Shared: a Linux GVM with "
        f"`cpu.priority` {PRIORITY_LOW} running a CPU-bound shell loop on the same hart. Timer: `sstc` is the "
        "guest's own `stimecmp` (the hypervisor gives guests Sstc when the harts have it), `sbi` SBI set_timer. "
        "QEMU without icount: `time` follows the host's clock, so the tail also holds the host's descheduling of "
        "QEMU's threads (on a busy host, milliseconds).",
        "",
        table(results),
    ]
    if png is not None:
        lines += [f"![timer latency histogram]({png.name})", ""]
    if switch is not None:
        lines += [
            f"Context switch under `{' '.join(ICOUNT)}`: two guests in `mode=switch` with equal priority on hart "
            f"{SWITCH_HART} read `instret` in a loop (under icount it counts every instruction QEMU runs, the "
            "hypervisor's and the other harts' included); merging their uninterrupted stretches, the instructions "
            "from one VM's last to the other's first are a switch, and a VM's breaks with no switch the baseline.",
            "",
            switch_table(switch),
        ]
    return lines


def run(args: argparse.Namespace, cache: Path) -> tuple[list[ModeResult], SwitchResult | None]:
    results = []
    for irq in args.irq or ["plic", "aia"]:
        try:
            results.append(measure_mode(irq, cache, args.samples, args.min_us, args.max_us, not args.no_shared))
        except BootError as e:
            results.append(ModeResult(irq, error=str(e)))
        except Exception as e:  # noqa: BLE001 - a pexpect timeout: reported in the table, the other runs go on
            results.append(ModeResult(irq, error=f"{type(e).__name__}: {e}"))
        for c in results[-1].cases:
            what = c.error and f"failed: {c.error}" or (c.run and summarize(c.run.samples))
            print(f"bench-latency: {irq}: {c.name}: {what}", flush=True)
    switch = None
    if not args.no_switch:
        try:
            switch = measure_switch(cache, args.slices, args.until_ms, args.gap)
        except BootError as e:
            switch = SwitchResult("plic", error=str(e))
        except Exception as e:  # noqa: BLE001 - as above
            switch = SwitchResult("plic", error=f"{type(e).__name__}: {e}")
    return results, switch


def add_arguments(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The measurement's options (also `just bench`'s defaults: bench/boot.py --latency parses none)."""
    ap.add_argument("--samples", type=int, default=2000, help="timer rounds per case (default %(default)s)")
    ap.add_argument("--min-us", type=int, default=200, help="shortest deadline ahead, us (default %(default)s)")
    ap.add_argument("--max-us", type=int, default=600, help="longest deadline ahead, us (default %(default)s)")
    ap.add_argument("--no-shared", action="store_true", help="skip the shared case (the Linux GVM's boot)")
    ap.add_argument("--no-switch", action="store_true", help="skip the context-switch measurement (-icount boot)")
    # Under icount `instret` is global: the other harts' instructions break a recorder's run too, so only a gap
    # well above theirs (and below a 10 ms slice, 10^7 instructions) marks a switch; the recorders run long enough
    # to overlap (the second one boots a few seconds after the first) and take turns many times
    ap.add_argument("--slices", type=int, default=1024, help="run intervals per switch recorder (default %(default)s)")
    ap.add_argument("--until-ms", type=int, default=20000, help="switch recorders' time limit (default %(default)s)")
    ap.add_argument("--gap", type=int, default=100000, help="instret break that ends an interval (default %(default)s)")
    return ap


def failures(results: Sequence[ModeResult], switch: SwitchResult | None) -> list[str]:
    """Every case that gave no figures, a refused config included: the exit status is 1 when there is one."""
    out = [f"{r.irq}: {r.error}" for r in results if r.error]
    out += [f"{r.irq}: {c.name}: {c.error}" for r in results for c in r.cases if c.error]
    if switch is not None and switch.error:
        out.append(f"switch: {switch.error}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pyshyper_host.bench.latency", description=__doc__.split("\n\n")[0])
    ap.add_argument("--irq", action="append", choices=["plic", "aia"], help="IRQ modes (default both)")
    ap.add_argument("--cache", type=Path, default=None, help="image cache (default: pyshyper images')")
    ap.add_argument("--report", type=Path, default=REPORT)
    add_arguments(ap)
    args = ap.parse_args(argv)
    cache = args.cache or images.default_cache()
    if images.main(["--cache", str(cache)]) != 0:
        print("bench-latency: `pyshyper images` failed", file=sys.stderr)
        return 1
    results, switch = run(args, cache)
    png = args.report.with_suffix(".png")
    drawn = chart(results, png)
    text = "\n".join(
        [
            "# Timer-interrupt latency",
            "",
            f"{time.strftime('%Y-%m-%d %H:%M:%S')}.",
            "",
            *report_section(results, switch, args.samples, png if drawn else None),
        ]
    )
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(text)
    print()
    print(text, end="")
    print(f"\n(report: {args.report})")
    failed = failures(results, switch)
    for f in failed:
        print(f"bench-latency: failed: {f}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
