"""Boot-to-shell benchmark: the MVM kernel and initramfs natively under QEMU, and under the hypervisor.

``python -m qemu.bench_boot`` (``just bench-boot``) boots each configuration and measures, in one run:

- wall clock from starting QEMU to the MVM's shell prompt on the serial console (median of ``--runs``);
- with ``-icount shift=0,sleep=off`` (one guest instruction = 1 ns of virtual time, idle time skipped to the
  next timer deadline, so the figure is repeatable): the virtual time at which the first console shell starts,
  read by the guest from the ``time`` CSR (``/usr/bin/rdtime`` in the initramfs, written by ``/etc/profile``
  to ``/run/pyshyper-shell-time``). On QEMU virt ``time`` counts QEMU's virtual clock since reset at the
  timebase (10 MHz), so it includes OpenSBI and, under the hypervisor, the hypervisor's own boot, provided
  the hypervisor leaves ``htimedelta`` at 0.

With several harts QEMU's round-robin vCPU scheduling makes even the icount figure vary from run to run, so
the icount boot uses one hart (``--icount-smp``, default 1), where it repeats within about 0.2%
(host-dependent inputs such as the RTC remain).

A configuration is a name and a function ``(icount: bool, smp: int) -> list[str]`` building the QEMU command. The
native baseline comes from ``qemu.images.native_qemu_command``; the hypervisor configuration is built by
``hypervisor_config()`` from ``qemu.run.qemu_command`` when that can boot the MVM (otherwise only the
baseline is printed, and the table says so). Output: a Markdown table with ratios against the baseline.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from qemu import images

ICOUNT = ["-icount", "shift=0,sleep=off"]
TIMEBASE_HZ = 10_000_000

CommandBuilder = Callable[[bool, int], list[str]]  # (icount, harts) -> QEMU command


@dataclass
class Config:
    name: str
    command: CommandBuilder


@dataclass
class BootResult:
    wall_prompt: float  # seconds from spawn to the shell prompt
    wall_ready: float | None  # seconds from spawn to the ready line
    shell_ticks: int | None  # guest `time` CSR when the first shell started
    init_ticks: int | None  # guest `time` CSR when /init started
    poweroff_status: int | None
    log: str = ""


@dataclass
class Measurement:
    config: str
    walls: list[float] = field(default_factory=list)
    icount_shell_ms: float | None = None
    icount_init_ms: float | None = None
    error: str | None = None


class BootError(RuntimeError):
    def __init__(self, msg: str, log: str):
        super().__init__(msg)
        self.log = log


STATS_LINE = re.compile(r"pyshyper: vm(\d+) vcpu(\d+): traps (\d+), wfi (\d+), sbi (\d+), time (\d+)")


@dataclass
class VcpuStats:
    vm: int
    vcpu: int
    traps: int
    wfi: int
    sbi: int
    ticks: int  # the time CSR when the statistics were printed (TIMEBASE_HZ)


def parse_vcpu_stats(log: str) -> dict[int, VcpuStats]:
    """The hypervisor's per-vCPU statistics lines of the MVM (vm0) printed at its reset, by vCPU id."""
    out: dict[int, VcpuStats] = {}
    for m in STATS_LINE.finditer(log):
        vm, vcpu, traps, wfi, sbi, ticks = (int(g) for g in m.groups())
        if vm == 0:
            out[vcpu] = VcpuStats(vm, vcpu, traps, wfi, sbi, ticks)
    return out


class Shell:
    """The MVM's serial console under pexpect: QEMU started with ``cmd``, the whole serial log kept in ``log``.

    ``wait_prompt()`` waits for the first shell prompt (and for the init's ready line first when ``ready``),
    ``run(command)`` returns what a command printed (between markers, so the terminal's echo of the typed line
    never counts), ``poweroff()`` returns QEMU's exit status. pexpect's TIMEOUT and EOF propagate."""

    def __init__(self, cmd: list[str], timeout: float = 300.0) -> None:
        import io

        import pexpect

        self.cmd = cmd
        self.timeout = timeout
        self._buf = io.StringIO()
        self.t0 = time.monotonic()
        self.child = pexpect.spawn(
            cmd[0], cmd[1:], encoding="utf-8", codec_errors="replace", timeout=timeout, dimensions=(50, 200)
        )
        self.child.logfile_read = self._buf
        self._n = 0
        self.exitstatus: int | None = None

    @property
    def log(self) -> str:
        return self._buf.getvalue()

    def wait_prompt(self, ready: bool = True) -> tuple[float, float | None]:
        """(seconds from spawn to the prompt, to the ready line or None); then makes sure the shell answers."""
        import pexpect

        wall_ready = None
        if ready:
            self.child.expect_exact(images.READY_LINE)
            wall_ready = time.monotonic() - self.t0
        self.child.expect_exact(images.PROMPT)
        wall_prompt = time.monotonic() - self.t0
        # The shell may still be switching its terminal to raw mode, which discards typed-ahead input:
        # send the first command again until it answers.
        for _ in range(6):
            self.child.sendline("echo @@REA''DY")
            if self.child.expect(["@@READY\r", pexpect.TIMEOUT], timeout=min(self.timeout, 10)) == 0:
                break
        else:
            raise pexpect.TIMEOUT("the shell does not answer")
        self.child.expect_exact(images.PROMPT)
        return wall_prompt, wall_ready

    def send(self, command: str) -> None:
        self.child.sendline(command)

    def expect(self, pattern: str, timeout: float | None = None):
        """pexpect's expect (regex); returns the match."""
        self.child.expect(pattern, timeout=self.timeout if timeout is None else timeout)
        return self.child.match

    def run(self, command: str, timeout: float | None = None) -> tuple[str, int]:
        """Run ``command`` in the shell: (its output without carriage returns, its exit status)."""
        self._n += 1
        n = self._n
        # The quotes split the markers in the echoed command line, so only the output matches.
        self.child.sendline(f"echo @@B''EGIN{n}; {command}; echo @@E''ND{n}=$?")
        t = self.timeout if timeout is None else timeout
        self.child.expect(f"@@BEGIN{n}\r*\n", timeout=t)
        self.child.expect(f"@@END{n}=(\\d+)\r*\n", timeout=t)
        out = self.child.before.replace("\r", "")
        status = int(self.child.match.group(1))
        self.child.expect_exact(images.PROMPT, timeout=t)
        return out, status

    def poweroff(self, timeout: float = 60.0) -> int | None:
        import pexpect

        self.child.sendline("poweroff")
        self.child.expect(pexpect.EOF, timeout=timeout)
        self.child.close()
        self.exitstatus = self.child.exitstatus
        return self.exitstatus

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)


def boot_to_shell(
    cmd: list[str], timeout: float = 300.0, poweroff: bool = True, commands: list[str] | None = None, ready: bool = True
) -> BootResult:
    """Boot ``cmd``, wait for the prompt, read the guest's boot timestamps, run ``commands`` and power off.
    Raises BootError (with the serial log) on a timeout or an early exit."""
    import pexpect

    sh = Shell(cmd, timeout)
    try:
        wall_prompt, wall_ready = sh.wait_prompt(ready)
        out, _ = sh.run("echo T=$(cat /run/pyshyper-shell-time /run/pyshyper-init-time 2>/dev/null | tr '\\n' ,)")
        m = re.search(r"T=([0-9,]*)", out)
        vals = [int(v) for v in m.group(1).split(",") if v] if m else []
        shell_ticks = vals[0] if len(vals) > 0 else None
        init_ticks = vals[1] if len(vals) > 1 else None
        for c in commands or []:
            sh.child.sendline(c)
            sh.child.expect_exact(images.PROMPT)
        status = sh.poweroff() if poweroff else None
        return BootResult(wall_prompt, wall_ready, shell_ticks, init_ticks, status, sh.log)
    except (pexpect.TIMEOUT, pexpect.EOF) as e:
        raise BootError(f"boot failed: {type(e).__name__} ({' '.join(cmd)})", sh.log) from None
    finally:
        sh.close()


def measure(
    cfg: Config, runs: int, icount: bool, timeout: float, log_dir: Path | None, smp: int = 2, icount_smp: int = 1
) -> Measurement:
    m = Measurement(cfg.name)
    try:
        for i in range(runs):
            r = boot_to_shell(cfg.command(False, smp), timeout=timeout)
            m.walls.append(r.wall_prompt)
            print(f"bench-boot: {cfg.name}: run {i + 1}/{runs}: shell after {r.wall_prompt:.2f} s wall", flush=True)
        if icount:
            r = boot_to_shell(cfg.command(True, icount_smp), timeout=timeout * 4)
            if r.shell_ticks is not None:
                m.icount_shell_ms = r.shell_ticks * 1000 / TIMEBASE_HZ
                print(f"bench-boot: {cfg.name}: icount: shell at {m.icount_shell_ms:.1f} ms virtual", flush=True)
            if r.init_ticks is not None:
                m.icount_init_ms = r.init_ticks * 1000 / TIMEBASE_HZ
    except BootError as e:
        m.error = str(e)
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            p = log_dir / f"bench-boot-{re.sub(r'[^A-Za-z0-9]+', '-', cfg.name)}.log"
            p.write_text(e.log)
            m.error += f" (serial log: {p})"
        print(f"bench-boot: {cfg.name}: {m.error}", file=sys.stderr, flush=True)
    return m


def native_config(cache: Path | None = None, mem: str = "512M") -> Config:
    def cmd(icount: bool, smp: int) -> list[str]:
        return images.native_qemu_command(cache, smp=smp, mem=mem, extra=ICOUNT if icount else ())

    return Config("native", cmd)


def hypervisor_config(cache: Path | None = None, mem: str = "512M") -> tuple[Config | None, str]:
    """The hypervisor configuration through ``qemu.run.qemu_command`` when it knows how to boot the MVM.

    It is looked up, not assumed: ``qemu.run`` must offer ``mvm_qemu_command(icount=..., smp=..., mem=...)``
    (a QEMU command that boots the hypervisor with the MVM kernel and initramfs from the image cache) and the
    hypervisor must build. Returns (None, reason) otherwise."""
    try:
        from qemu import run
    except Exception as e:  # noqa: BLE001 - any import problem means: not available yet
        return None, f"qemu.run is not importable ({e})"
    builder = getattr(run, "mvm_qemu_command", None)
    if builder is None:
        return None, "qemu.run has no mvm_qemu_command() yet (the hypervisor cannot boot the MVM yet)"

    def cmd(icount: bool, smp: int) -> list[str]:
        return list(builder(icount=icount, smp=smp, mem=mem, cache=cache))

    return Config("hypervisor", cmd), ""


def table(ms: list[Measurement], note: str = "") -> str:
    base = ms[0]
    rows = [
        "| configuration | boot to shell, wall (s) | ratio | boot to shell, icount virtual (ms) | ratio |"
        " /init started, icount (ms) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for m in ms:
        if m.error:
            rows.append(f"| {m.config} | failed | | | | |")
            continue
        w = statistics.median(m.walls) if m.walls else None
        bw = statistics.median(base.walls) if base.walls and not base.error else None
        wr = f"{w / bw:.2f}" if w and bw else ""
        iv = m.icount_shell_ms
        ir = f"{iv / base.icount_shell_ms:.2f}" if iv and base.icount_shell_ms and not base.error else ""
        rows.append(
            f"| {m.config} | {w:.2f} (n={len(m.walls)}) | {wr} | "
            f"{'' if iv is None else f'{iv:.1f}'} | {ir} | "
            f"{'' if m.icount_init_ms is None else f'{m.icount_init_ms:.1f}'} |"
        )
    out = "\n".join(rows) + "\n"
    if note:
        out += f"\n{note}\n"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m qemu.bench_boot", description="MVM boot-to-shell time: native QEMU vs under the hypervisor."
    )
    ap.add_argument(
        "--cache", type=Path, default=None, help="image cache (default: $PYSHYPER_CACHE or ~/.cache/pyshyper)"
    )
    ap.add_argument("--runs", type=int, default=3, help="wall-clock boots per configuration (median)")
    ap.add_argument("--no-icount", action="store_true", help="skip the -icount boot")
    ap.add_argument("--smp", type=int, default=2, help="harts for the wall-clock boots")
    ap.add_argument("--icount-smp", type=int, default=1, help="harts for the -icount boot (1 repeats exactly)")
    ap.add_argument("--mem", default="512M")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per boot (x4 with -icount)")
    ap.add_argument("--native-only", action="store_true", help="measure only the native baseline")
    ap.add_argument("--logs", type=Path, default=Path("logs"), help="where serial logs of failed boots go")
    args = ap.parse_args(argv)

    cache = (args.cache.expanduser() if args.cache else images.default_cache()).resolve()
    if images.main(["--cache", str(cache)]) != 0:
        return 1
    configs = [native_config(cache, args.mem)]
    note = ""
    if not args.native_only:
        hv, why = hypervisor_config(cache, args.mem)
        if hv is None:
            note = f"Only the native baseline: the hypervisor configuration is not available: {why}."
            print(f"bench-boot: {note}", flush=True)
        else:
            configs.append(hv)
    ms = [
        measure(c, args.runs, not args.no_icount, args.timeout, args.logs, args.smp, args.icount_smp) for c in configs
    ]
    print()
    print(
        f"MVM boot to shell, {args.mem}, kernel {cache / 'Image'}; wall clock with {args.smp} harts, "
        f"icount ({' '.join(ICOUNT)}) with {args.icount_smp}:\n"
    )
    print(table(ms, note), end="")
    return 0 if not ms[0].error else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
