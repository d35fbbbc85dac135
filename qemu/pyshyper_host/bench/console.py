"""The MVM's serial console under pexpect: QEMU started with a command, waited on to its shell prompt, commands run
in the shell with their output and exit status, power-off; a boot that fails raises BootError with the serial log
and where the harts were (QEMU's monitor, run/monitor.py). The boot benchmark and the MVM boot tests drive the MVM
with it."""

from __future__ import annotations

import bisect
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pyshyper_host.images import initramfs as images
from pyshyper_host.run import monitor


@dataclass
class BootResult:
    wall_prompt: float  # seconds from spawn to the shell prompt
    wall_ready: float | None  # seconds from spawn to the ready line
    shell_ticks: int | None  # guest `time` CSR when the first shell started
    init_ticks: int | None  # guest `time` CSR when /init started
    poweroff_status: int | None
    log: str = ""
    marks: dict[str, float | None] = field(default_factory=dict)  # boot_marks(): wall seconds to each BOOT_MARKS line


# Lines of a boot's serial log that end its phases (the benchmark's "where the time goes" table): the kernel's
# first line, its start of /init; the shell's prompt is the wall_prompt itself. Under the hypervisor the kernel's
# early lines carry a "[vm0] " prefix (they go through the hypervisor's console), so a mark is a substring.
BOOT_MARKS = {"kernel": "Linux version ", "init": "Run /init as init process"}


class TimedLog:
    """pexpect's logfile_read that also notes when each piece of output arrived: `time_of(text)` is the wall
    time (seconds since t0) at which the first occurrence of `text` was complete, or None."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self._parts: list[str] = []
        self._ends: list[int] = []  # the log's length after each piece
        self._times: list[float] = []
        self._len = 0

    def write(self, text: str) -> None:
        self._parts.append(text)
        self._len += len(text)
        self._ends.append(self._len)
        self._times.append(time.monotonic() - self.t0)

    def flush(self) -> None:
        pass

    def getvalue(self) -> str:
        if len(self._parts) > 1:
            self._parts = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    def time_of(self, text: str) -> float | None:
        i = self.getvalue().find(text)
        if i < 0:
            return None
        end = i + len(text)
        return self._times[bisect.bisect_left(self._ends, end)]


class BootError(RuntimeError):
    """A boot that failed: the message says how, and where the harts were when the log has that (so an uncaught
    BootError in a test shows it); ``log`` is the whole serial log."""

    def __init__(self, msg: str, log: str):
        self.log = log
        diag = self.diagnosis
        super().__init__(f"{msg}\n{diag}" if diag else msg)

    @property
    def diagnosis(self) -> str:
        """The part of the log that says where the harts were (Shell.log_with_diagnosis), or ""."""
        i = self.log.rfind(DIAGNOSIS_MARK)
        return self.log[i + len(DIAGNOSIS_MARK) :].strip() if i >= 0 else ""


DIAGNOSIS_MARK = "\n==== "


class ShellSilent(Exception):
    """The shell printed its prompt and then never answered typed input."""


def start_shell(
    cmd: list[str],
    timeout: float = 300.0,
    ready: bool = True,
    attempts: int = 1,
    *,
    ready_line: str = images.READY_LINE,
    prompt: str = images.PROMPT,
) -> tuple[Shell, float, float | None]:
    """A Shell at its first prompt: (shell, wall seconds to the prompt, to the ready line). Tests take one boot:
    a silent shell is a bug to see. The benchmarks may allow more `attempts` (a boot whose shell stays silent is
    started again, said on stderr), so one bad boot does not cost a whole report.
    Raises BootError with the serial log and the harts' whereabouts when no boot gets there."""
    import pexpect

    for attempt in range(attempts):
        sh = Shell(cmd, timeout, ready_line=ready_line, prompt=prompt)
        try:
            wall_prompt, wall_ready = sh.wait_prompt(ready)
            return sh, wall_prompt, wall_ready
        except ShellSilent as e:
            log = sh.log_with_diagnosis()
            sh.close()
            print(f"bench-boot: boot {attempt + 1}: the shell does not answer; starting again", file=sys.stderr)
            if attempt + 1 == attempts:
                raise BootError(f"boot failed: {e} ({' '.join(cmd)})", log) from None
        except (pexpect.TIMEOUT, pexpect.EOF) as e:
            log = sh.log_with_diagnosis()
            sh.close()
            raise BootError(f"boot failed: {type(e).__name__} ({' '.join(cmd)})", log) from None
    raise AssertionError("unreachable")


class Shell:
    """The MVM's serial console under pexpect: QEMU started with ``cmd``, the whole serial log kept in ``log``.

    ``wait_prompt()`` waits for the first shell prompt (and for the init's ready line first when ``ready``),
    ``run(command)`` returns what a command printed (between markers, so the terminal's echo of the typed line
    never counts), ``poweroff()`` returns QEMU's exit status. pexpect's TIMEOUT and EOF propagate.
    QEMU also gets a monitor socket, so that ``diagnosis()`` can say where each hart is when the console stalls.
    ``ready_line`` and ``prompt``: the MVM's by default; a GVM's (images.GVM_READY_LINE, images.gvm_prompt(name))
    for a guest VM booted natively."""

    def __init__(
        self,
        cmd: list[str],
        timeout: float = 300.0,
        *,
        ready_line: str = images.READY_LINE,
        prompt: str = images.PROMPT,
    ) -> None:
        import tempfile

        import pexpect

        self._mon_dir = tempfile.TemporaryDirectory(prefix="pyshyper-mon-")
        self.monitor = Path(self._mon_dir.name) / "monitor.sock"
        if "-monitor" not in cmd:
            cmd = [*cmd, *monitor.monitor_args(self.monitor)]
        self.elf = Path(cmd[cmd.index("-kernel") + 1]) if "-kernel" in cmd else None
        self.cmd = cmd
        self.timeout = timeout
        self.t0 = time.monotonic()
        self._buf = TimedLog(self.t0)
        self.child = pexpect.spawn(
            cmd[0], cmd[1:], encoding="utf-8", codec_errors="replace", timeout=timeout, dimensions=(50, 200)
        )
        self.child.logfile_read = self._buf
        self.ready_line = ready_line
        self.prompt = prompt
        self._n = 0
        self.exitstatus: int | None = None

    @property
    def log(self) -> str:
        return self._buf.getvalue()

    def boot_marks(self) -> dict[str, float | None]:
        """Wall seconds from spawn to each BOOT_MARKS line (None: not in the log)."""
        return {name: self._buf.time_of(text) for name, text in BOOT_MARKS.items()}

    def diagnosis(self) -> str:
        """Where each hart is now (run/monitor.py), or why that cannot be told."""
        if not self.child.isalive():
            return f"QEMU has exited (status {self.child.exitstatus})"
        elf = self.elf if self.elf is not None and self.elf.name.startswith("pyshyper") else None
        return monitor.diagnose(self.monitor, elf)

    def log_with_diagnosis(self) -> str:
        """The serial log, then where the harts are: what a stalled test saves and prints."""
        return f"{self.log}\n{DIAGNOSIS_MARK}{self.diagnosis()}\n"

    def save_failure(self, path: Path) -> str:
        """Write the serial log and the diagnosis to `path`; print the diagnosis (pytest shows it with the
        failure) and give it back."""
        text = self.log_with_diagnosis()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        diag = text[len(self.log) :].strip()
        print(f"serial log saved to {path}\n{diag}")
        return diag

    def wait_prompt(self, ready: bool = True) -> tuple[float, float | None]:
        """(seconds from spawn to the prompt, to the ready line or None); then makes sure the shell answers."""
        import pexpect

        wall_ready = None
        if ready:
            self.child.expect_exact(self.ready_line)
            wall_ready = time.monotonic() - self.t0
        self.child.expect_exact(self.prompt)
        wall_prompt = time.monotonic() - self.t0
        # The shell may still be switching its terminal to raw mode, which discards typed-ahead input:
        # send the first command again until it answers.
        for _ in range(6):
            self.child.sendline("echo @@REA''DY")
            if self.child.expect(["@@READY\r", pexpect.TIMEOUT], timeout=min(self.timeout, 10)) == 0:
                break
        else:
            raise ShellSilent("the shell printed its prompt but does not answer")
        self.child.expect_exact(self.prompt)
        return wall_prompt, wall_ready

    def send(self, command: str) -> None:
        self.child.sendline(command)

    def expect(self, pattern: str, timeout: float | None = None) -> re.Match[str]:
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
        self.child.expect_exact(self.prompt, timeout=t)
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
        self._mon_dir.cleanup()


def boot_to_shell(
    cmd: list[str],
    timeout: float = 300.0,
    poweroff: bool = True,
    commands: list[str] | None = None,
    ready: bool = True,
    attempts: int = 1,
    *,
    ready_line: str = images.READY_LINE,
    prompt: str = images.PROMPT,
) -> BootResult:
    """Boot ``cmd``, wait for the prompt, read the guest's boot timestamps, run ``commands`` and power off. The
    MVM's ready line and prompt by default; a GVM booted natively (images.native_gvm_command) passes its own
    (images.GVM_READY_LINE, images.gvm_prompt(name)) and has no boot timestamps (None).
    Raises BootError (with the serial log) on a timeout or an early exit."""
    import pexpect

    sh, wall_prompt, wall_ready = start_shell(cmd, timeout, ready, attempts, ready_line=ready_line, prompt=prompt)
    try:
        out, _ = sh.run("echo T=$(cat /run/pyshyper-shell-time /run/pyshyper-init-time 2>/dev/null | tr '\\n' ,)")
        m = re.search(r"T=([0-9,]*)", out)
        vals = [int(v) for v in m.group(1).split(",") if v] if m else []
        shell_ticks = vals[0] if len(vals) > 0 else None
        init_ticks = vals[1] if len(vals) > 1 else None
        for c in commands or []:
            sh.child.sendline(c)
            sh.child.expect_exact(sh.prompt)
        status = sh.poweroff() if poweroff else None
        return BootResult(wall_prompt, wall_ready, shell_ticks, init_ticks, status, sh.log, sh.boot_marks())
    except (pexpect.TIMEOUT, pexpect.EOF) as e:
        raise BootError(f"boot failed: {type(e).__name__} ({' '.join(cmd)})", sh.log_with_diagnosis()) from None
    finally:
        sh.close()
