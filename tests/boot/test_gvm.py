"""Guest VMs from the MVM's shell (issue 10), over the MVM's serial console with pexpect, once per interrupt mode
(`--irq plic`, `--irq aia --aia-guests 3`), on `pyshyper run`'s machine (4 harts, 2G, the images disk):

the `shyper` daemon answers `shyper system info`; `shyper vm config` registers the shipped vm1 (hart 2) and vm2
(hart 3) and `shyper vm boot` starts them; each GVM's shell is reached through `shyper vm console` (Ctrl-]
detaches) and through /dev/hvcN, and runs a command; `shyper vm list` shows both running on their harts; each
GVM's crng is ready at 0.000000 (the daemon's fresh /chosen/rng-seed); `poweroff` in vm1 leaves vm2 and the MVM
running; a bad access in vm2 (`devmem 0x3000000`, no device there) leaves it `crashed` with the reason; both boot
again; the daemon killed (init starts it again) loses no VM; five bad configs each get exit 2 and a message
naming the field; removing both returns every page; the soak's slice: config/boot/stop/remove cycles of the
tiny guest (tests/guests/tiny) with no page lost; the MVM's `poweroff` still exits 0.

The tiny guest reaches the MVM as base64 typed into the shell (its .bin is 2 KiB, built by `pyshyper build` into
the boot's OUT/guests/) with its config tests/guests/tiny/tiny.json, both into /root.

Each mode boots once (a module-scoped fixture, `mvm_qemu_command` as `pyshyper run` makes it); the tests run in
order on that boot. The serial log of a failing test is saved as logs/<test>.log. `just soak` runs the soak alone
with PYSHYPER_GVM_CYCLES=100 (default 10).
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from pathlib import Path

import pytest

from pyshyper_host.bench import console
from pyshyper_host.images import initramfs as images
from tests.conftest import require_tool
from tests.mvm_tools.bad_configs import BAD_CONFIGS

pytestmark = [pytest.mark.qemu, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
LOG_DIR = ROOT / "logs"
TIMEOUT = 180.0
GVM_BOOT = 240.0  # a GVM's Linux to its shell, while the MVM and the other GVM run (QEMU TCG, loaded host)
MODES = ("plic", "aia")
GVMS = {1: ("vm1", 2), 2: ("vm2", 3)}  # id: (name, hart) as /root/vm1.json and vm2.json say
CYCLES = int(os.environ.get("PYSHYPER_GVM_CYCLES", "10"))
TINY = ROOT / "tests" / "guests" / "tiny"
DETACH = "\x1d"  # Ctrl-]
HV_LOG = re.compile(r"pyshyper: [^\n]*\n")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


class Mvm:
    """One boot of the MVM with the `shyper` command."""

    def __init__(self, mode: str, shell: console.Shell, out: Path) -> None:
        self.mode = mode
        self.shell = shell
        self.out = out
        self.free_start: int | None = None

    def run(self, command: str, timeout: float = TIMEOUT) -> str:
        out, status = self.status(command, timeout=timeout)
        assert status == 0, f"`{command}` exited with status {status}:\n{out}"
        return out

    def status(self, command: str, timeout: float = TIMEOUT) -> tuple[str, int]:
        """The command's output without the hypervisor's own log lines, which share the serial console and may
        land anywhere in it (`pyshyper: vm1 created ...`)."""
        out, status = self.shell.run(command, timeout=timeout)
        return HV_LOG.sub("", out), status

    def vms(self) -> dict[int, dict]:
        return {v["id"]: v for v in json.loads(self.run("shyper vm list --json"))}

    def system(self) -> dict:
        return json.loads(self.run("shyper system info --json"))["system"]

    def wait_state(self, vid: int, state: str, timeout: float = 60.0) -> dict:
        end = time.monotonic() + timeout
        while True:
            vm = self.vms().get(vid)
            if vm is not None and vm["state"] == state:
                return vm
            assert time.monotonic() < end, f"vm {vid} is not {state} after {timeout} s: {vm}"
            time.sleep(1)

    def hvc(self, vid: int, line: str, expect: str, timeout: float = 60.0, resend: float = 0.0) -> str:
        """Type `line` into /dev/hvcN (the GVM's console, as the MVM sees it; the daemon holds it in raw mode) and
        read what comes back until the regex `expect` matches: the GVM's answer. `resend`: type it again after
        that many seconds without an answer (a GVM still booting has no shell to read it yet)."""
        dev, tmp = f"/dev/hvc{vid}", f"/tmp/hvc{vid}.out"
        quoted = line.replace("'", "'\\''")
        send = f"printf '%s\\n' '{quoted}' > {dev}"
        self.run(f"(cat {dev} > {tmp} & echo $! > {tmp}.pid); sleep 0.2; {send}")
        try:
            end = time.monotonic() + timeout
            sent = time.monotonic()
            while True:
                got = self.run(f"cat {tmp}").replace("\r", "")
                if re.search(expect, got):
                    return got
                assert time.monotonic() < end, f"{dev}: no {expect!r} in {got!r}"
                time.sleep(1)
                if resend and time.monotonic() - sent > resend:
                    self.run(send)
                    sent = time.monotonic()
        finally:
            self.run(f"kill $(cat {tmp}.pid)")

    def save_log(self, name: str) -> Path:
        p = LOG_DIR / f"{_safe(name)}.log"
        self.shell.save_failure(p)
        return p


@pytest.fixture(scope="module", params=MODES)
def mvm(request, tmp_path_factory, mvm_image_cache):
    require_tool("qemu-system-riscv64", "riscv64-unknown-elf-ld")
    from pyshyper_host.run.command import mvm_qemu_command

    mode = request.param
    out = tmp_path_factory.mktemp(f"gvm-{mode}")
    cmd = mvm_qemu_command(False, 4, "2G", mvm_image_cache, irq=mode, aia_guests=3, out=out, quiet=True)
    try:
        shell, wall, _ = console.start_shell(cmd, timeout=TIMEOUT)
        print(f"\n[{mode}] MVM shell after {wall:.2f} s")
    except console.BootError as e:
        LOG_DIR.mkdir(exist_ok=True)
        p = LOG_DIR / f"test_gvm-{mode}-boot.log"
        p.write_text(e.log)
        pytest.fail(f"[{mode}] the MVM does not reach a shell that answers; serial log: {p}\n{e}")
    m = Mvm(mode, shell, out)
    end = time.monotonic() + 90
    while shell.run("shyper vm list >/dev/null 2>&1", timeout=TIMEOUT)[1] != 0:  # the daemon service starts
        if time.monotonic() > end:
            LOG_DIR.mkdir(exist_ok=True)
            pytest.fail(f"[{mode}] the shyper daemon does not answer; serial log: {m.save_log(f'test_gvm-{mode}')}")
        time.sleep(2)
    yield m
    shell.close()


@pytest.fixture(autouse=True)
def _log_on_failure(request, mvm):
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(f"serial log: {mvm.save_log(request.node.name)}")


def _attach(mvm: Mvm, vid: int) -> None:
    sh = mvm.shell
    sh.send(f"shyper vm console {vid}")
    sh.expect(rf"\[attached to vm {vid} \({GVMS[vid][0]}\) on /dev/hvc{vid}; Ctrl-\] detaches\]", timeout=60)


def _detach(mvm: Mvm) -> None:
    sh = mvm.shell
    sh.child.send(DETACH)
    sh.expect(r"\[detached\]", timeout=30)
    sh.expect(re.escape(images.PROMPT), timeout=30)


def test_system_info(mvm: Mvm):
    text = mvm.run("shyper system info")
    assert re.search(r"^hypervisor\s+PyShyper .* \(control protocol \d+\)", text, re.M), text
    assert re.search(r"^harts\s+4 \(0: vm0, 1: vm0, 2: -, 3: -\)", text, re.M), text
    irq = "PLIC" if mvm.mode == "plic" else r"AIA \(APLIC \+ IMSIC, 3 guest interrupt files per hart\)"
    assert re.search(rf"^irq mode\s+{irq}$", text, re.M), text
    s = mvm.system()
    assert 0 < s["free_pages"] <= s["total_pages"]
    mvm.free_start = s["free_pages"]
    assert [v["id"] for v in mvm.vms().values()] == [0]


def test_config_and_boot_both(mvm: Mvm):
    for vid, (name, _) in GVMS.items():
        assert mvm.run(f"shyper vm config {name}.json").strip() == str(vid)
    assert {mvm.vms()[v]["state"] for v in GVMS} == {"created"}
    for vid in GVMS:
        out = mvm.run(f"shyper vm boot {vid}", timeout=GVM_BOOT)
        m = re.search(rf"vm {vid}: booted \(([\d.]+) MiB loaded in ([\d.]+) s\)", out)
        assert m, out
        print(f"\n[{mvm.mode}] vm{vid}: {m.group(1)} MiB loaded in {m.group(2)} s")


def test_console_attach_reaches_each_shell(mvm: Mvm):
    """`shyper vm console N`: the GVM's boot and its shell (prompt naming the VM), a command run, Ctrl-] back to
    the MVM's shell."""
    sh = mvm.shell
    for vid, (name, _) in GVMS.items():
        _attach(mvm, vid)
        end = time.monotonic() + GVM_BOOT
        while True:  # the GVM may still be booting: its prompt answers Enter once its shell runs
            sh.child.send("\r")
            try:
                sh.expect(re.escape(images.gvm_prompt(name)), timeout=10)
                break
            except Exception:
                assert time.monotonic() < end, f"vm{vid}: no shell on its console"
        sh.child.send("echo @@C''ON $(hostname) $((6 * 7))\r")
        sh.expect(rf"@@CON {name} 42", timeout=30)
        sh.expect(re.escape(images.gvm_prompt(name)), timeout=30)
        _detach(mvm)
    assert mvm.run("echo back in the mvm").strip() == "back in the mvm"


def test_hvc_reaches_each_shell(mvm: Mvm):
    """/dev/hvcN in the MVM: raw (the daemon holds it so, or the guest's output would echo back into it), and
    a line written there runs in the GVM's shell, its answer read there."""
    for vid, (name, _) in GVMS.items():
        flags = mvm.run(f"stty -F /dev/hvc{vid} -a").split()
        assert "-echo" in flags and "-icanon" in flags, flags
        mvm.hvc(vid, "echo @@H''VC $(hostname) $(cat /proc/sys/kernel/random/boot_id | wc -c)", rf"@@HVC {name} 37")


def test_list_shows_both_running_on_their_harts(mvm: Mvm):
    vms = mvm.vms()
    for vid, (name, hart) in GVMS.items():
        assert vms[vid]["name"] == name and vms[vid]["state"] == "running", vms[vid]
        assert vms[vid]["harts"] == [hart], vms[vid]
    table = mvm.run("shyper vm list")
    for vid, (name, hart) in GVMS.items():
        row = rf"^\s*{vid}\s+{name}\s+running\s+1\s+{hart}\s+128 MiB\s+\S+\s+/dev/hvc{vid}\s+\d+$"
        assert re.search(row, table, re.M), table
    harts = mvm.system()["hart_vm"]
    assert harts == [0, 0, 1, 2], harts


def test_gvm_crng_ready_at_zero(mvm: Mvm):
    for vid in GVMS:
        got = mvm.hvc(vid, "dmesg | grep -m1 'crng init done'; echo @@D''ONE", r"@@DONE")
        m = re.search(r"\[\s*([\d.]+)\] random: crng init done", got)
        assert m, got
        assert float(m.group(1)) == 0.0, m.group(0)


def test_fp_and_vector_in_the_mvm_and_each_gvm(mvm: Mvm):
    """The board's CPU has V, and the MVM and the GVMs are told so (riscv,isa): Linux uses it (the hypervisor keeps
    sstatus.VS non-Off under them) and fpvcheck (gvm/fpvcheck.S: FP and vector work checked against scalar
    results) runs 3 seconds clean in the MVM and in each GVM."""
    out = mvm.run("grep -m1 '^isa' /proc/cpuinfo; fpvcheck 3", timeout=60)
    assert re.search(r"^isa\s*: rv64imafdcv", out, re.M), out
    assert re.search(r"^fpvcheck: ok [1-9]\d* rounds$", out, re.M), out
    for vid in GVMS:
        got = mvm.hvc(vid, "fpvcheck 3; echo @@F''PV $?", r"@@FPV \d+", timeout=60)
        assert re.search(r"fpvcheck: ok [1-9]\d* rounds", got) and "@@FPV 0" in got, got


def test_poweroff_in_vm1_leaves_vm2_and_mvm(mvm: Mvm):
    mvm.run("printf 'poweroff\\n' > /dev/hvc1")
    mvm.wait_state(1, "stopped")
    assert mvm.vms()[2]["state"] == "running"
    mvm.hvc(2, "echo @@A''LIVE $(hostname)", r"@@ALIVE vm2")
    assert mvm.run("echo mvm alive").strip() == "mvm alive"


def test_bad_access_in_vm2_crashes_it(mvm: Mvm):
    mvm.run("printf 'devmem 0x3000000\\n' > /dev/hvc2")
    vm = mvm.wait_state(2, "crashed")
    table = mvm.run("shyper vm list")
    line = next(ln for ln in table.splitlines() if re.match(r"\s*2\s+vm2\s", ln))
    assert "crashed: " in line and "0x3000000" in line, line
    print(f"\n[{mvm.mode}] {line.strip()}")
    assert vm is not None and mvm.run("echo mvm alive").strip() == "mvm alive"


def test_both_boot_again(mvm: Mvm):
    for vid in GVMS:
        mvm.run(f"shyper vm boot {vid}", timeout=GVM_BOOT)
    for vid, (name, _) in GVMS.items():
        mvm.hvc(vid, "echo @@A''GAIN $(hostname)", rf"@@AGAIN {name}", timeout=GVM_BOOT, resend=10)
    assert all(mvm.vms()[v]["state"] == "running" for v in GVMS)


def test_daemon_killed_loses_no_vm(mvm: Mvm):
    before = mvm.vms()
    pid = mvm.run("ps -o pid,args | grep '[s]hyper system daemon'").split()[0]
    mvm.run(f"kill -9 {pid}")
    end = time.monotonic() + 60
    while True:  # init starts the service again (after its 5 s pause)
        out, status = mvm.status("shyper vm list --json")
        if status == 0:
            break
        assert time.monotonic() < end, out
        time.sleep(2)
    after = {v["id"]: v for v in json.loads(out)}
    assert sorted(after) == sorted(before)
    for vid in GVMS:
        assert after[vid]["state"] == "running" and after[vid]["name"] == before[vid]["name"]
        assert after[vid]["uptime"] >= before[vid]["uptime"]
    mvm.hvc(1, "echo @@S''TILL $(hostname)", r"@@STILL vm1")


def test_bad_configs_exit_2_naming_the_field(mvm: Mvm):
    before = mvm.vms()
    assert len(BAD_CONFIGS) >= 5
    for bad in BAD_CONFIGS:
        mvm.run(bad.sed_line())
        out, status = mvm.status(f"shyper vm config bad-{bad.name}.json")
        assert status == 2, (bad.name, out)
        assert bad.message in out, (bad.name, out)
    assert sorted(mvm.vms()) == sorted(before)


def test_remove_returns_every_page(mvm: Mvm):
    for vid in GVMS:
        assert re.search(rf"vm {vid}: removed", mvm.run(f"shyper vm remove {vid}"))
    assert sorted(mvm.vms()) == [0]
    s = mvm.system()
    assert mvm.free_start is not None
    assert s["free_pages"] == mvm.free_start, (s["free_pages"], mvm.free_start)
    assert s["hart_vm"][2:] == [None, None], s


def _put_file(mvm: Mvm, data: bytes, dst: str) -> None:
    text = base64.b64encode(data).decode()
    mvm.run(f"rm -f {dst}.b64")
    for i in range(0, len(text), 512):
        mvm.run(f"echo '{text[i : i + 512]}' >> {dst}.b64")
    mvm.run(f"base64 -d {dst}.b64 > {dst} && rm {dst}.b64")
    assert mvm.run(f"md5sum {dst}").split()[0] == __import__("hashlib").md5(data).hexdigest()


def test_soak_tiny_guest_cycles(mvm: Mvm):
    """config/boot/stop/remove of the tiny guest, CYCLES times, in a shell loop in the MVM; free pages after
    equal free pages before; the first cycle's guest says its line on its console."""
    _put_file(mvm, (mvm.out / "guests" / "tiny.bin").read_bytes(), "/root/tiny.bin")
    _put_file(mvm, (TINY / "tiny.json").read_bytes(), "/root/tiny.json")
    free = mvm.system()["free_pages"]
    vid = int(mvm.run("shyper vm config tiny.json").strip())
    mvm.run(f"(cat /dev/hvc{vid} > /tmp/tiny.out & echo $! > /tmp/tiny.pid)")
    mvm.run(f"shyper vm boot {vid}")
    end = time.monotonic() + 30
    while "tiny: up on vCPU 0x0, device tree at 0x800f0000" not in mvm.run("cat /tmp/tiny.out"):
        assert time.monotonic() < end, mvm.run("cat /tmp/tiny.out")
        time.sleep(1)
    mvm.run("kill $(cat /tmp/tiny.pid)")
    mvm.run(f"shyper vm stop {vid} && shyper vm remove {vid}")
    t0 = time.monotonic()
    script = (
        f"for i in $(seq {CYCLES}); do id=$(shyper vm config tiny.json) && shyper vm boot $id >/dev/null"
        " && shyper vm stop $id >/dev/null && shyper vm remove $id >/dev/null || { echo @@F''AIL $i; break; }; done"
    )
    out = mvm.run(script, timeout=60 + CYCLES * 30)
    assert "@@FAIL" not in out, out
    print(f"\n[{mvm.mode}] {CYCLES} tiny-guest cycles in {time.monotonic() - t0:.1f} s")
    assert sorted(mvm.vms()) == [0]
    assert mvm.system()["free_pages"] == free
    if mvm.free_start is not None:  # the whole scenario ran before: back where the MVM started
        assert free == mvm.free_start


def test_mvm_poweroff_exits_0(mvm: Mvm):
    status = mvm.shell.poweroff(timeout=TIMEOUT)
    assert status == 0, f"QEMU exited with status {status}"
