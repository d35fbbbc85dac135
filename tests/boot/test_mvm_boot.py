"""Boot the management VM (Debian's Linux, `pyshyper run --guest mvm`) under the hypervisor in QEMU and check it
over the serial console, once per interrupt mode (`--irq plic`, `--irq aia --aia-guests 3`), and once more in PLIC
mode as on a lean hart: no Sstc (`-cpu rv64,sstc=false`: Linux's timer is the SBI one, which the hypervisor keeps
with its own timer and hvip.VSTIP) and no htinst (a `--mmio-decode fetch` build decodes every trapped MMIO access
from the instruction it reads back), and in AIA mode on QEMU's `max` hart (vector, Smstateen, Zkr, Sv57...: the
guest gets V with its state enabled, its AIA CSRs through hstateen0, and is not told of what it cannot use):

the shell is reached; the MVM's crng is ready at time 0 (the hypervisor gave it the firmware's /chosen/rng-seed) and
the first python3's time is printed; the images disk is mounted at /var/lib/shyper, HOME and cwd are /root;
/proc/cpuinfo lists 2 harts; /proc/interrupts has the UART (ttyS0) line and its count goes up
as more is typed; dmesg has no warnings or errors from the devices the hypervisor provides or passes through, and no
oops at all; a script inside the MVM (busybox `sleep 5` between two markers) takes 5 s of host wall clock within 5%,
and the guest's clocks (/proc/uptime, and `date`, real time from the passthrough goldfish RTC) agree with the host's;
python3 computes a value; `poweroff` ends QEMU with status 0 after the hypervisor's per-vCPU statistics.

Each mode boots once (a module-scoped fixture, built into its own temporary OUT with `mvm_qemu_command`,
exactly the command `pyshyper run` uses); the tests below run in order on that boot. The serial log of a failing test
is saved as logs/<test>.log.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from pyshyper_host.bench import console, stats
from pyshyper_host.images import initramfs as images
from tests.conftest import require_tool

pytestmark = [pytest.mark.qemu, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
LOG_DIR = ROOT / "logs"
TIMEOUT = 120.0
SLEEP = 5
# name -> (irq, mmio_decode, QEMU -cpu or None for the board's)
MODES = {
    "plic": ("plic", "htinst", None),
    "aia": ("aia", "htinst", None),
    "plic-lean": ("plic", "fetch", "rv64,sstc=false"),
    "aia-max": ("aia", "htinst", "max"),
}

# dmesg lines from the hypervisor's devices (interrupt controllers, the UART, the timer, SBI) ...
DEVICE_WORDS = re.compile(r"plic|aplic|imsic|ttyS0|8250|serial|riscv-timer|\bsbi", re.I)
# ... must not say any of these; and no line at all may say BAD_ANYWHERE.
DEVICE_BAD = re.compile(r"warning|error|failed|timed out", re.I)
BAD_ANYWHERE = re.compile(r"Oops|BUG:|Call Trace")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


class Mvm:
    """One boot of the MVM: the shell, and what the tests learned along the way."""

    def __init__(self, mode: str, shell: console.Shell) -> None:
        self.mode = mode
        self.irq, self.mmio_decode, self.cpu = MODES[mode]
        self.shell = shell
        self.powered_off = False

    def run(self, command: str, timeout: float = TIMEOUT) -> str:
        out, status = self.shell.run(command, timeout=timeout)
        assert status == 0, f"`{command}` exited with status {status}:\n{out}"
        return out

    def save_log(self, name: str) -> Path:
        LOG_DIR.mkdir(exist_ok=True)
        p = LOG_DIR / f"{_safe(name)}.log"
        self.shell.save_failure(p)
        return p


@pytest.fixture(scope="module", params=list(MODES))
def mvm(request, boot_out, mvm_image_cache):
    require_tool("qemu-system-riscv64", "riscv64-unknown-elf-ld")
    from pyshyper_host.run.command import mvm_qemu_command

    mode = request.param
    irq, mmio_decode, cpu = MODES[mode]
    out = boot_out(irq, mmio_decode=mmio_decode)
    cmd = mvm_qemu_command(
        False, 2, "1G", mvm_image_cache, irq=irq, aia_guests=3, out=out, quiet=True, mmio_decode=mmio_decode, cpu=cpu
    )
    try:
        shell, wall, _ = console.start_shell(cmd, timeout=TIMEOUT)
        print(f"\n[{mode}] shell after {wall:.2f} s")
    except console.BootError as e:
        LOG_DIR.mkdir(exist_ok=True)
        p = LOG_DIR / f"test_mvm_boot-{mode}-boot.log"
        p.write_text(e.log)
        pytest.fail(f"[{mode}] the MVM does not reach a shell that answers; serial log: {p}\n{e}")
    m = Mvm(mode, shell)
    yield m
    shell.close()


@pytest.fixture(autouse=True)
def _log_on_failure(request, mvm):
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        p = mvm.save_log(request.node.name)
        print(f"serial log: {p}")


def test_shell(mvm: Mvm):
    out = mvm.run("echo $((6 * 7)); uname -r")
    assert out.splitlines()[0] == "42"
    assert "PyShyper MVM ready" in mvm.shell.log


def test_first_python3_and_entropy(mvm: Mvm):
    """The hypervisor gives the MVM the firmware's fresh /chosen/rng-seed, so Linux's crng is ready at time 0 (not
    seconds later, after the first user process has waited for it), and the first python3 of the shell does not
    wait for entropy (its time is printed, not asserted: the host's load decides it)."""
    out, status = mvm.shell.run("time python3 -c pass", timeout=TIMEOUT)
    assert status == 0, out
    m = re.search(r"real\s+(?:(\d+)m\s*)?([\d.]+)s", out)
    assert m, out
    print(f"\n[{mvm.mode}] the first python3 -c pass in the MVM: {int(m.group(1) or 0) * 60 + float(m.group(2)):.2f} s")
    log = mvm.shell.log
    assert re.search(r"pyshyper: vm0: /chosen/rng-seed: \d+ fresh bytes from the firmware's device tree", log), log
    dmesg = mvm.run("dmesg")
    crng = re.search(r"^\[\s*([\d.]+)\] random: crng init done", dmesg, re.M)
    assert crng, "no 'crng init done' in dmesg"
    assert float(crng.group(1)) == 0.0, crng.group(0)
    assert dmesg.index("crng init done") < dmesg.index("Run /init as init process")


def test_images_disk_and_home(mvm: Mvm):
    """The images disk (virtio-blk on the passthrough slot 0x1000_8000, ext4 labelled shyper-images) is mounted
    read-write at /var/lib/shyper with the GVMs' kernel and initramfs; the shell's HOME and cwd are /root."""
    mounts = mvm.run("cat /proc/mounts")
    assert re.search(r"^/dev/vda /var/lib/shyper ext4 rw", mounts, re.M), mounts
    assert (
        mvm.run("readlink -f /sys/block/vda/device").strip() == "/sys/devices/platform/soc/10008000.virtio_mmio/virtio0"
    )
    files = mvm.run("ls /var/lib/shyper").split()
    assert {"Image", "gvm-initramfs.cpio"} <= set(files), files
    assert mvm.run("head -c 64 /var/lib/shyper/Image | tail -c 8 | od -An -c").split()[:3] == ["R", "S", "C"]
    assert mvm.run("echo $HOME; pwd").split() == ["/root", "/root"]
    mvm.run("echo written > /var/lib/shyper/probe && cat /var/lib/shyper/probe && rm /var/lib/shyper/probe")


def test_cpuinfo_two_harts(mvm: Mvm):
    out = mvm.run("cat /proc/cpuinfo")
    procs = [ln for ln in out.splitlines() if re.match(r"processor\s*:", ln)]
    assert len(procs) == 2, out
    # the ISA Linux was told: never H; Sstc exactly when the harts have it
    isa = re.search(r"^isa\s*:\s*(\S+)", out, re.M).group(1)
    assert "h" not in isa.split("_")[0][4:], isa
    assert ("_sstc" in isa) == (mvm.cpu is None or "sstc=false" not in mvm.cpu), isa
    if mvm.cpu == "max":
        assert "v" in isa.split("_")[0][4:] and "_zkr" not in isa, isa  # vector passed on, the seed CSR not


def _uart_irqs(mvm: Mvm) -> int:
    out = mvm.run("cat /proc/interrupts")
    lines = out.splitlines()
    ncpu = len(lines[0].split())
    for ln in lines[1:]:
        if ln.rstrip().endswith("ttyS0"):
            counts = ln.split(":", 1)[1].split()[:ncpu]
            return sum(int(c) for c in counts)
    pytest.fail(f"/proc/interrupts has no ttyS0 line:\n{out}")


def test_uart_interrupts_count(mvm: Mvm):
    first = _uart_irqs(mvm)
    assert first > 0
    for i in range(5):
        assert mvm.run(f"echo typed {i} more characters on the console").strip().startswith("typed")
    second = _uart_irqs(mvm)
    assert second > first, f"ttyS0 interrupts do not count: {first} then {second}"


def test_dmesg_clean(mvm: Mvm):
    out = mvm.run("dmesg")
    assert "Linux version" in out
    bad = [ln for ln in out.splitlines() if DEVICE_WORDS.search(ln) and DEVICE_BAD.search(ln)]
    assert not bad, "dmesg: the hypervisor's devices complain:\n" + "\n".join(bad)
    oops = [ln for ln in out.splitlines() if BAD_ANYWHERE.search(ln)]
    assert not oops, "dmesg: kernel oops/BUG:\n" + "\n".join(oops)
    # the right interrupt controller is in use
    want = {"plic": "riscv-plic", "aia": "riscv-aplic"}[mvm.irq]
    assert want in out, f"no {want} in dmesg"
    if mvm.irq == "aia":
        assert "riscv-imsic" in out


def test_timer_accuracy(mvm: Mvm):
    """busybox `sleep 5` in the MVM against the host's monotonic clock (within 5%); the guest's /proc/uptime
    over the same interval (within 5%, and never short of 5 s) and its `date` (real time from the passthrough RTC)
    against the host's. The markers around the sleep are shell builtins (`read` of /proc/uptime, `echo`), so the
    interval both sides measure is the sleep's; the `date` processes run outside it."""
    script = (
        "d0=$(date +%s); read u0 x </proc/uptime; echo @@T''START $d0 $u0; "
        f"sleep {SLEEP}; "
        "read u1 x </proc/uptime; echo @@T''END $u1; echo @@T''DATE $(date +%s)"
    )
    quoted = script.replace("$", "\\$")  # expanded when the script runs, not when it is written
    out = mvm.run(f"printf '%s\\n' \"{quoted}\" > /tmp/timer.sh; cat /tmp/timer.sh")
    assert out.strip() == script, out
    sh = mvm.shell
    sh.send("sh /tmp/timer.sh")
    m1 = sh.expect(r"@@TSTART (\d+) ([0-9.]+)\r*\n", timeout=30)
    h1, r1 = time.monotonic(), time.time()
    m2 = sh.expect(r"@@TEND ([0-9.]+)\r*\n", timeout=SLEEP * 4 + 30)
    h2, r2 = time.monotonic(), time.time()
    m3 = sh.expect(r"@@TDATE (\d+)\r*\n", timeout=30)
    sh.expect(re.escape(images.PROMPT))
    host = h2 - h1
    uptime = float(m2.group(1)) - float(m1.group(2))
    date_start, date_end = int(m1.group(1)), int(m3.group(1))
    print(
        f"\n[{mvm.mode}] sleep {SLEEP}: host {host:.3f} s, guest uptime {uptime:.3f} s, "
        f"guest date {date_end - date_start} s; guest-host date offset {date_start - r1:+.2f} s"
    )
    assert abs(host / SLEEP - 1) <= 0.05, f"sleep {SLEEP} took {host:.3f} s of host time"
    assert abs(uptime / host - 1) <= 0.05, f"guest uptime advanced {uptime:.3f} s in {host:.3f} s of host time"
    assert uptime >= SLEEP - 0.01, f"sleep {SLEEP} ended after {uptime:.3f} s of guest uptime"  # centiseconds
    # date has 1 s resolution and its two processes run just outside the interval: the host's within 1.5 s,
    # and the host's real time
    assert abs((date_end - date_start) - host) <= 1.5, (date_start, date_end, host)
    assert abs(date_start - r1) <= 3 and abs(date_end - r2) <= 3, (date_start, r1, date_end, r2)


def test_hypervisor_statistics_page(mvm: Mvm):
    """The hypervisor's statistics page (mvm.toml "stats", not in the device tree) reads from the MVM's shell:
    each vCPU's exit counters and the time CSR, which advance."""
    base = stats.stats_base()
    first = stats.read_vcpu_stats(mvm.shell)
    # Each vCPU runs something, then idles: an idle vCPU with Sstc and an IMSIC may take no exit at all for
    # seconds (its timer and interrupts need none), and each wakes to run a task and traps on its next WFI.
    # (The trap that counts is the next WFI after the task, which a loaded host may delay past one read: up to
    # five rounds.)
    for _ in range(5):
        mvm.run("taskset -c 0 true; taskset -c 1 true; sleep 1")
        second = stats.read_vcpu_stats(mvm.shell)
        if all(second[v].traps > first[v].traps for v in (0, 1)):
            break
    assert sorted(first) == [0, 1]
    for v in (0, 1):
        assert second[v].traps > first[v].traps > 0, (v, first[v], second[v])
        assert second[v].wfi >= first[v].wfi
        assert 0.9 <= (second[v].ticks - first[v].ticks) / stats.TIMEBASE_HZ < 60
    # beyond the vCPUs: reads as 0, no fault (not the page's last word: busybox devmem then maps the next page too,
    # the virtio console's, which its driver holds, and /dev/mem refuses)
    assert "0x" in mvm.run(f"devmem {base + 0x800 - 8:#x} 64")


def test_stall_diagnosis_says_where_each_hart_is(mvm: Mvm):
    """What a stalled boot test prints: both harts, each in the guest, in a named hypervisor function or in
    OpenSBI, read through QEMU's monitor while the MVM runs (run/monitor.py). OpenSBI is a place a running hart
    can be: without Sstc (plic-lean) every guest timer goes through SBI set_timer to M-mode, and an idle hart's
    timer interrupt is taken there first."""
    text = mvm.shell.diagnosis()
    where = re.compile(
        r": guest, pc 0x[0-9a-f]+ \((kernel|user)\)"
        r"|: hypervisor, pc 0x[0-9a-f]+ in [\w.]+\+0x"
        r"|: OpenSBI \(M-mode\), pc 0x[0-9a-f]+;"
    )
    for hart in (0, 1):
        lines = [ln for ln in text.splitlines() if f" hart {hart}: " in ln]
        assert len(lines) == 3, text
        for ln in lines:
            assert where.search(ln), ln
    # six samples all in M-mode would mean the harts never ran the VM or the hypervisor: not a running MVM
    assert re.search(r": (guest|hypervisor), pc", text), text
    assert mvm.run("echo still-here").strip() == "still-here"  # asking the monitor did not disturb the VM


def test_python3(mvm: Mvm):
    out = mvm.run("python3 -c 'print(sum(range(1000)))'", timeout=TIMEOUT)
    assert out.strip().splitlines()[-1] == "499500", out


def test_poweroff(mvm: Mvm):
    status = mvm.shell.poweroff(timeout=TIMEOUT)
    log = mvm.shell.log
    assert "pyshyper: vm0 (management VM) resets the machine, type 0x0" in log
    vcpus = stats.parse_vcpu_stats(log)
    assert sorted(vcpus) == [0, 1], f"per-vCPU statistics: {vcpus}"
    for s in vcpus.values():
        assert s.traps > 0 and s.ticks > 0, s
    mmio, fetched = sum(s.mmio for s in vcpus.values()), sum(s.fetched for s in vcpus.values())
    print(f"\n[{mvm.mode}] emulated MMIO accesses {mmio}, decoded from the fetched instruction {fetched}")
    # The interrupt controller's registers are emulated in both modes. A fetch build has no other decoder: each of
    # them was read back from the guest (hlvx) and decoded, compressed forms included, and the statistics count
    # all as fetched. QEMU gives htinst for every one, so an htinst build reads back none.
    assert mmio > 0, vcpus
    assert fetched == (mmio if mvm.mmio_decode == "fetch" else 0), vcpus
    assert status == 0, f"QEMU exited with status {status}"
