"""Boot the hypervisor under QEMU with the self-test guest (tests/guests/selftest) and check the serial console:
the banner, every self-test line, the fault probe's report (vm2 ends, vm1 runs on) and a clean power-off.

Each configuration is built once into a temporary OUT (`build.pipeline.build`, guests included) and started with
`run.command.qemu_command`, exactly as `pyshyper run` does. The serial log of a failing boot is kept in
logs/<test>.log. The boot-to-banner and total run times are printed (pytest -s shows them).
"""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pexpect
import pytest

from boards import make_config
from pyshyper_host.build.pipeline import build, stale_reason
from pyshyper_host.run.command import (
    RunOptions,
    boot_hart_dtb_path,
    guest_image_path,
    qemu_command,
    write_boot_hart_dtb,
)
from tests.conftest import require_tool

pytestmark = pytest.mark.qemu

ROOT = Path(__file__).resolve().parents[2]
LOG_DIR = ROOT / "logs"
TIMEOUT = 60

SELFTESTS = ("dbcn", "legacy_putchar", "base", "timer_idle", "timer", "hsm", "wfi", "illegal_csr")

CONFIGS = {
    "plic": ("plic", None, "plic"),
    "aia": ("aia", 3, r"aia \(APLIC \+ IMSIC, 3 guest interrupt files per hart\)"),
}


def _need_tools() -> None:
    require_tool("qemu-system-riscv64", "riscv64-unknown-elf-ld")


@pytest.fixture(scope="module")
def built(boot_out):
    """name -> OUT directory with pyshyper.elf and guests/selftest.bin for that IRQ configuration (the test run's
    build of it, tests/conftest.py boot_out: built here when no boot test before has)."""
    _need_tools()
    cache: dict[str, Path] = {}

    def get(name: str):
        if name not in cache:
            irq, aia_guests, _ = CONFIGS[name]
            cfg = make_config("qemu-virt", irq, aia_guests)
            out = boot_out(irq, aia_guests)
            if stale_reason(cfg, out) is not None:
                build(cfg, out, quiet=True)
            assert sorted(p.stem for p in (out / "guests").glob("*.bin")) == [
                p.name for p in sorted((ROOT / "tests/guests").iterdir()) if (p / "guest.py").is_file()
            ]
            cache[name] = out
        return make_config("qemu-virt", CONFIGS[name][0], CONFIGS[name][1]), cache[name]

    return get


class Boot:
    """A QEMU run under pexpect that keeps the whole serial log and saves it when the test fails."""

    def __init__(self, cmd: list[str], request: pytest.FixtureRequest) -> None:
        self.log = io.StringIO()
        self.request = request
        self.t0 = time.monotonic()
        self.child = pexpect.spawn(
            cmd[0], cmd[1:], encoding="utf-8", codec_errors="replace", timeout=TIMEOUT, dimensions=(50, 250)
        )
        self.child.logfile_read = self.log
        self.marks: dict[str, float] = {}

    def expect(self, pattern: str, what: str) -> re.Match:
        try:
            self.child.expect(pattern)
        except (pexpect.TIMEOUT, pexpect.EOF) as e:
            kind = "timed out" if isinstance(e, pexpect.TIMEOUT) else "QEMU exited"
            pytest.fail(f"{kind} waiting for {what} ({pattern!r}); serial log:\n{self.log.getvalue()[-4000:]}")
        self.marks.setdefault(what, time.monotonic() - self.t0)
        return self.child.match

    def wait_exit(self) -> int:
        try:
            self.child.expect(pexpect.EOF)
        except pexpect.TIMEOUT:
            pytest.fail(f"QEMU did not exit within {TIMEOUT} s; serial log:\n{self.log.getvalue()[-4000:]}")
        self.child.close()
        self.marks["exit"] = time.monotonic() - self.t0
        return self.child.exitstatus if self.child.exitstatus is not None else -(self.child.signalstatus or 0)

    def text(self) -> str:
        return re.sub(r"\r+\n", "\n", self.log.getvalue())

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)
        rep = getattr(self.request.node, "rep_call", None)  # set by tests/boot/conftest.py
        if rep is None or rep.failed:
            LOG_DIR.mkdir(exist_ok=True)
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.request.node.name)
            (LOG_DIR / f"{name}.log").write_text(self.log.getvalue())


@pytest.fixture
def boot(request):
    boots: list[Boot] = []

    def start(cmd: list[str]) -> Boot:
        b = Boot(cmd, request)
        boots.append(b)
        return b

    yield start
    for b in boots:
        b.close()


def run_options(cfg, out: Path, smp: int = 4) -> RunOptions:
    b = cfg.board
    return RunOptions(cfg, out / "pyshyper.elf", smp, b.default_mem, b.qemu_cpu, guest_image_path("selftest", out))


def check_banner(b: Boot, irq_pattern: str, harts: int, ipis: str | None = None) -> None:
    """The boot banner's lines; `ipis` the IPIs line's pattern, by default what the machine `pyshyper run` gives
    the build has: an ACLINT SSWI in PLIC mode (`-M virt,aclint=on`), none in AIA mode."""
    if ipis is None:
        ipis = r"ACLINT SSWI at 0x2f00000" if irq_pattern == CONFIGS["plic"][2] else r"SBI IPI extension"
    b.expect(r"PyShyper \d+\.\d+\.\d+", "banner")
    b.expect(rf"harts: +{harts} \(boot hart \d+\)", "harts line")
    b.expect(r"memory: +0x[0-9a-f]+\.\.0x[0-9a-f]+", "memory line")
    b.expect(rf"irq: +{irq_pattern}[\r\n]", "irq line")
    b.expect(r"extensions: +H=yes Sstc=(yes|no) Svnapot=(yes|no) AIA=(yes|no)", "extensions line")
    b.expect(rf"IPIs: +{ipis}", "IPIs line")


def check_selftest(b: Boot) -> None:
    text = b.text()
    results = dict(re.findall(r"^\[vm1\] selftest: (\w+): (ok.*|FAILED.*)$", text, re.M))
    failed = {k: v for k, v in results.items() if v != "ok" and not v.startswith("ok ")}
    assert not failed, f"self-tests failed: {failed}"
    missing = [t for t in SELFTESTS if t not in results]
    assert not missing, f"self-tests missing from the log: {missing}"
    m = re.search(r"^\[vm1\] selftest: (\d+) passed, (\d+) failed$", text, re.M)
    assert m is not None, "no summary line"
    assert (int(m.group(1)), int(m.group(2))) == (len(SELFTESTS), 0)
    assert re.search(r"^\[vm1\] dbcn: console_write works$", text, re.M)
    assert re.search(r"^\[vm1\] dbcn: console_write_byte works$", text, re.M)
    assert re.search(r"^\[vm1\] legacy: putchar works$", text, re.M)
    assert re.search(r"^pyshyper: vm1 powered off, reason 0x0$", text, re.M)
    assert "selftest: unexpected trap" not in text and "PANIC" not in text


def report(name: str, b: Boot) -> None:
    print(
        f"\n[{name}] boot to banner {b.marks['banner']:.3f} s, to self-test summary "
        f"{b.marks.get('summary', float('nan')):.3f} s, QEMU exit {b.marks['exit']:.3f} s"
    )


def run_to_the_end(b: Boot, name: str) -> None:
    """The self-test's summary, every VM ended, QEMU's exit 0 and the self-test's lines all ok; the timings
    reported under `name`."""
    b.expect(r"selftest: \d+ passed, \d+ failed", "summary")
    b.expect(r"all VMs have ended", "all VMs ended")
    status = b.wait_exit()
    check_selftest(b)
    assert status == 0, f"QEMU exit status {status}"
    report(name, b)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_selftest_boot(name, built, boot):
    cfg, out = built(name)
    b = boot(qemu_command(run_options(cfg, out)))
    check_banner(b, CONFIGS[name][2], 4)
    b.expect(r"vm1: guest image \d+ bytes", "vm1 created")
    b.expect(r"vm2: guest image \d+ bytes", "vm2 created")
    b.expect(r"selftest: \d+ passed, \d+ failed", "summary")
    b.expect(r"all VMs have ended", "all VMs ended")
    status = b.wait_exit()
    text = b.text()
    check_selftest(b)
    # The fault probe (instance 1, vm2): its line, the hypervisor's report, and only vm2 ends.
    assert re.search(r"^\[vm2\] fault probe: loading from guest-physical 0x40000000$", text, re.M)
    assert re.search(r"^pyshyper: vm2 load guest-page fault at guest-physical 0x40000000$", text, re.M)
    assert re.search(r"^pyshyper: vm2 killed: .* at pc 0x[0-9a-f]+", text, re.M)
    assert "fault probe: FAILED" not in text
    assert "pyshyper: vm1 killed" not in text
    assert "unexpected trap in the hypervisor" not in text
    assert status == 0, f"QEMU exit status {status}"
    report(name, b)


def test_selftest_boot_one_hart(built, boot):
    """-smp 1: only vm1 (the self-test) gets a hart; the hypervisor says so and the run still ends cleanly."""
    cfg, out = built("plic")
    b = boot(qemu_command(run_options(cfg, out, smp=1)))
    check_banner(b, CONFIGS["plic"][2], 1)
    b.expect(r"not enough harts for guest instance 1", "not enough harts")
    run_to_the_end(b, "smp1")
    assert "[vm2]" not in b.text() and "vm2:" not in b.text()


def test_selftest_boot_without_an_sswi(built, boot):
    """A PLIC build on a machine without the ACLINT SSWI (`-M virt`): the hypervisor's IPIs go through the
    firmware's SBI IPI, and both guest instances run as with the SSWI."""
    cfg, out = built("plic")
    cmd = qemu_command(run_options(cfg, out))
    assert cmd[cmd.index("-M") + 1] == "virt,aclint=on"
    cmd[cmd.index("-M") + 1] = "virt"
    b = boot(cmd)
    no_sswi = r"SBI IPI extension \(the device tree shows no ACLINT SSWI at 0x2f00000 for every hart\)"
    check_banner(b, CONFIGS["plic"][2], 4, no_sswi)
    run_to_the_end(b, "no-sswi")


def test_selftest_boot_without_sstc(built, boot):
    """A hart without Sstc: the guest's SBI set_timer arms the hypervisor's own timer, which injects VSTIP
    through hvip at the deadline; the timer self-tests still pass."""
    cfg, out = built("plic")
    opts = run_options(cfg, out, smp=2)
    opts = RunOptions(opts.config, opts.elf, opts.smp, opts.mem, "rv64,sstc=false", opts.guest_image)
    b = boot(qemu_command(opts))
    b.expect(r"PyShyper \d+\.\d+\.\d+", "banner")
    b.expect(r"extensions: +H=yes Sstc=no", "extensions line without Sstc")
    run_to_the_end(b, "no-sstc")


@pytest.mark.parametrize("name", list(CONFIGS))
def test_selftest_boot_on_hart_3(name, built, boot):
    """OpenSBI cold-boots on hart 3 (`pyshyper run --boot-hart 3`): the hypervisor's boot hart is 3, it starts
    harts 0..2 through SBI HSM before making any VM, and both guest instances run as on hart 0."""
    import dataclasses

    cfg, out = built(name)
    opts = dataclasses.replace(run_options(cfg, out), boot_hart=3, dtb=boot_hart_dtb_path(out, 3))
    write_boot_hart_dtb(opts, opts.dtb)
    b = boot(qemu_command(opts))
    b.expect(r"Boot HART ID\s*: 3\s", "OpenSBI's cold boot on hart 3")
    check_banner(b, CONFIGS[name][2], 4)
    assert re.search(r"harts: +4 \(boot hart 3\)", b.text()), "the banner names another boot hart"
    b.expect(r"selftest: \d+ passed, \d+ failed", "summary")
    b.expect(r"all VMs have ended", "all VMs ended")
    status = b.wait_exit()
    check_selftest(b)
    assert re.search(r"^pyshyper: vm2 killed: .* at pc 0x[0-9a-f]+", b.text(), re.M)  # the fault probe, as always
    assert status == 0, f"QEMU exit status {status}"
    report(f"{name}, boot hart 3", b)


def _stress_line(text: str, boot: int) -> tuple[int, int]:
    m = re.search(rf"^\[vm1\] stress: boot {boot}: free pages (\d+), stack high-water (\d+) bytes$", text, re.M)
    assert m is not None, f"no report of boot {boot}"
    return int(m.group(1)), int(m.group(2))


@pytest.mark.parametrize("name", list(CONFIGS))
def test_stress_guest_loses_nothing(name, built, boot):
    """The stress guest (tests/guests/stress): vm1 makes random SBI calls and random accesses to an emulated
    device (the statistics page) on each of 200 boots, rebooting itself through SBI SRST in between, while vm2
    keeps a heartbeat. Every answer is checked in the guest (an SBI error code; an access fault at exactly the
    address for each access the device cannot do, none for the others). Across the 199 reboots the hypervisor's
    stack high-water mark stays where it was after the first (an SRST reboot re-entered the vCPU from inside the
    trap, one frame deeper each time, before runtime/trap.S unwound to the stack's top), and its free pages change
    only by what vm2 gave back when it ended; at the end every page is free again."""
    import dataclasses

    cfg, out = built(name)
    opts = dataclasses.replace(run_options(cfg, out), guest_image=guest_image_path("stress", out))
    b = boot(qemu_command(opts))
    b.child.timeout = 240  # 200 boots of random work; seconds on an idle host
    b.expect(r"stress: 200 boots, each \d+ SBI calls", "the stress summary")
    b.expect(r"all VMs have ended", "all VMs ended")
    status = b.wait_exit()
    text = b.text()
    assert "FAILED" not in text and "unexpected trap" not in text and "killed" not in text, text[-3000:]
    assert len(re.findall(r"^pyshyper: vm1 reboots, reason 0x0$", text, re.M)) == 199
    beats = re.findall(r"^\[vm2\] heartbeat: (\d+)$", text, re.M)
    assert [int(n) for n in beats] == list(range(1, 41)), "vm2's heartbeat stopped or skipped"
    first_beat = text.index("[vm2] heartbeat: 1\n")
    assert first_beat < text.index("[vm1] stress: boot 200:"), "vm2 did not run while vm1 was rebooting"
    free1, stack1 = _stress_line(text, 1)
    free2, stack2 = _stress_line(text, 2)
    free200, stack200 = _stress_line(text, 200)
    assert stack1 == stack2 == stack200, (stack1, stack2, stack200)
    released = re.search(r"^pyshyper: vm2 released (\d+) pages$", text, re.M)
    assert released is not None
    vm2_gone_first = text.index(released.group(0)) < text.index("[vm1] stress: boot 200:")
    assert free1 == free2
    if vm2_gone_first:
        assert free200 == free1 + int(released.group(1))
    else:  # vm2's pages may be back, and counted, just before its line is printed
        assert free200 in (free1, free1 + int(released.group(1)))
    total = re.search(r"^pyshyper: free pages (\d+) of (\d+)$", text, re.M)
    assert total is not None and total.group(1) == total.group(2), "pages were lost"
    assert re.search(r"^pyshyper: stack high-water \(bytes of \d+\): hart\d+ \d+", text, re.M)
    assert status == 0, f"QEMU exit status {status}"


def test_fpv_guest_keeps_fp_and_vector_state(built, boot):
    """The FP/vector guest (tests/guests/fpv) on the board's CPU (V, VLEN 128): each of vm1 and vm2 fills every FP
    and vector register and CSR (a different vtype each round, one with vill), has the hypervisor switch its state
    out and back in three times through the PyShyper test SBI extension (arch/riscv/fpu.py fpu_test_switch: the
    registers clobbered in between twice), checks the work each switch did (saved only what was Dirty, loaded only
    when the hart's registers were not its own) and then every value."""
    import dataclasses

    cfg, out = built("plic")
    assert "v=true" in cfg.board.qemu_cpu
    opts = dataclasses.replace(run_options(cfg, out), guest_image=guest_image_path("fpv", out))
    b = boot(qemu_command(opts))
    results: dict[str, str] = {}
    while len(results) < 2:  # the two harts finish in either order
        m = b.expect(r"\[(vm[12])\] fpv: (12 rounds ok, VLEN 128|FAIL[^\r\n]*)", "the next VM's result")
        results[m.group(1)] = m.group(2)
    assert all("FAIL" not in r for r in results.values()), b.text()[-3000:]
    b.expect(r"all VMs have ended", "all VMs ended")
    status = b.wait_exit()
    assert "FAIL" not in b.text() and "killed" not in b.text(), b.text()[-3000:]
    assert status == 0, f"QEMU exit status {status}"
