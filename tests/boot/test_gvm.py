"""Guest VMs from the MVM's shell (issue 10), over the MVM's serial console with pexpect, once per interrupt mode
(`--irq plic`, `--irq aia --aia-guests 3`), on `pyshyper run`'s machine (4 harts, 2G, the images disk):

the `shyper` daemon answers `shyper system info`; `shyper vm config` registers the shipped vm1 (hart 2) and vm2
(hart 3) and `shyper vm boot` starts them; each GVM's shell is reached through `shyper vm console` (Ctrl-]
detaches) and through /dev/hvcN, and runs a command; `shyper vm list` shows both running on their harts; each
GVM's crng is ready at 0.000000 (the daemon's fresh /chosen/rng-seed); `poweroff` in vm1 leaves vm2 and the MVM
running; a bad access in vm2 (`devmem 0x3000000`, no device there) leaves it `crashed` with the reason; both boot
again; the daemon killed (init starts it again) loses no VM; five bad configs each get exit 2 and a message
naming the field; removing both returns every page; the soak's slice: config/boot/stop/remove cycles of the
tiny guest (tests/guests/tiny) with no page lost; the MVM's `poweroff` still exits 0. The hypervisor's lines about
the GVMs are on the MVM's /dev/hvc0 (its log port) and never on the serial console, the shell's: every command's
output is read whole from there.

The tiny guest reaches the MVM as base64 typed into the shell (its .bin is 2 KiB, built by `pyshyper build` into
the boot's OUT/guests/) with its config tests/guests/tiny/tiny.json, both into /root.

Each mode boots once (a module-scoped fixture, `mvm_qemu_command` as `pyshyper run` makes it); the tests run in
order on that boot. The serial log of a failing test is saved as logs/<test>.log. `just soak` runs the soak alone
with PYSHYPER_GVM_CYCLES=100 (default 3).
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
CYCLES = int(os.environ.get("PYSHYPER_GVM_CYCLES", "3"))
TINY = ROOT / "tests" / "guests" / "tiny"
SHMPEER = ROOT / "tests" / "guests" / "shmpeer"
DETACH = "\x1d"  # Ctrl-]
# Shared memory (core/shmem.py): link0 between vm1 (rw) and vm2 (ro), link1 for vm1 alone (vm2 is not named)
LINK0 = {"name": "link0", "ipa": "0x9000_0000", "size": "2M", "irq": 8, "vms": {"vm1": "rw", "vm2": "ro"}}
LINK1 = {"name": "link1", "ipa": "0x9100_0000", "size": "64K", "irq": 9, "vms": {"vm1": "rw"}}
SHM_IPA, DOORBELL = 0x9000_0000, 0x9020_0000
DOOR_RING, DOOR_COUNT, DOOR_STATUS, DOOR_ACK, DOOR_SENT = 0x0C, 0x10, 0x14, 0x18, 0x1C
SHM_TEXT = b"hello from vm1, through link0.\n\0"
GVM_LINE = re.compile(r"pyshyper: vm[1-7]\b")  # a line of the hypervisor's about a GVM (hypervisor/core/log.py)


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
        return self.shell.run(command, timeout=timeout)

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
        p = LOG_DIR / f"{_safe(name)}.log" if "/" not in name else Path(name + ".log")
        self.shell.save_failure(p)
        return p


@pytest.fixture(scope="module", params=MODES)
def mvm(request, boot_out, mvm_image_cache):
    require_tool("qemu-system-riscv64", "riscv64-unknown-elf-ld")
    from pyshyper_host.run.command import mvm_qemu_command

    mode = request.param
    out = boot_out(mode)
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
    # The hypervisor's log port, read from its start into a file while the tests run (the MVM takes it 16 bytes per
    # buffer: the boot log before the GVMs' lines takes a minute)
    shell.run("(cat /dev/hvc0 > /tmp/hvc0.log &)", timeout=TIMEOUT)
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


def test_shm_defined_before_the_vms(mvm: Mvm):
    """`shyper shm config` defines link0 and link1 before the VMs they name exist; a bad field is exit 2 naming it;
    `shyper shm list` shows them, mapped by no VM yet."""
    for cfg in (LINK0, LINK1):
        mvm.run(f"printf '%s' '{json.dumps(cfg)}' > /root/{cfg['name']}.json")
        out = mvm.run(f"shyper shm config {cfg['name']}.json")
        assert out.strip().startswith(f"shared memory {cfg['name']}: defined"), out
    mvm.run(f"printf '%s' '{json.dumps({**LINK0, 'name': 'bad', 'size': '3K'})}' > /root/bad-shm.json")
    out, status = mvm.status("shyper shm config bad-shm.json")
    assert status == 2 and "bad-shm.json: size: 0xc00 is not a nonzero multiple of 4096" in out, out
    table = mvm.run("shyper shm list")
    assert re.search(r"^link0\s+2 MiB\s+0x90000000\s+0x90200000\s+8\s+vm1 rw, vm2 ro$", table, re.M), table
    assert re.search(r"^link1\s+64 KiB\s+0x91000000\s+0x91010000\s+9\s+vm1 rw$", table, re.M), table
    assert mvm.system()["free_pages"] == mvm.free_start  # no frames until a VM maps it


def test_config_and_boot_both(mvm: Mvm):
    for vid, (name, _) in GVMS.items():
        assert mvm.run(f"shyper vm config {name}.json").strip() == str(vid)
    assert {mvm.vms()[v]["state"] for v in GVMS} == {"created"}
    for vid in GVMS:
        out = mvm.run(f"shyper vm boot {vid}", timeout=GVM_BOOT)
        m = re.search(rf"vm {vid}: booted \(([\d.]+) MiB loaded in ([\d.]+) s\)", out)
        assert m, out
        print(f"\n[{mvm.mode}] vm{vid}: {m.group(1)} MiB loaded in {m.group(2)} s")


def test_gvm_lines_are_on_hvc0_not_the_serial_console(mvm: Mvm):
    """The hypervisor's lines about vm1 and vm2 (created, boots) are on /dev/hvc0, the hypervisor's log port in the
    MVM, and not on the serial console (hypervisor/core/log.py log_vm)."""
    m = GVM_LINE.search(mvm.shell.log)
    assert m is None, mvm.shell.log[max(0, m.start() - 1000) : m.end() + 200]
    end = time.monotonic() + 90
    while True:  # /dev/hvc0 as read so far (the mvm fixture), up to vm2's boot line, the last of them; the lines
        # shown renamed, so that the serial console still never carries one
        log = mvm.run(r"sed -n 's/^pyshyper: vm\([1-7]\) /GVMLOG \1 /p' /tmp/hvc0.log")
        if re.search(r"^GVMLOG 2 boots at", log, re.M):
            break
        assert time.monotonic() < end, f"/dev/hvc0 has no line of vm2's boot after 90 s:\n{log}"
        time.sleep(2)
    for vid in GVMS:
        assert re.search(rf"^GVMLOG {vid} created: 1 vCPUs, \d+ pages$", log, re.M), log
        assert re.search(rf"^GVMLOG {vid} boots at 0x[0-9a-f]+$", log, re.M), log


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


def _devmem_words(mvm: Mvm, vid: int, addr: int, n: int) -> list[int]:
    reads = "; ".join(f"devmem {addr + 4 * k:#x}" for k in range(n))
    got = mvm.hvc(vid, f"echo @@W''ORDS $({reads})", r"@@WORDS [^\n]*\n")
    m = re.search(r"@@WORDS ((?:0x[0-9A-Fa-f]+ ?)+)\n", got)
    assert m, got
    return [int(w, 16) for w in m.group(1).split()]


def _door(mvm: Mvm, vid: int, reg: int) -> int:
    return _devmem_words(mvm, vid, DOORBELL + reg, 1)[0]


def test_shm_round_trip(mvm: Mvm):
    """vm1 writes a string into link0 with devmem and rings the doorbell; vm2 sees its doorbell count rise and
    reads the same bytes; vm2 (read-only) cannot write there: its store is an access fault (SIGSEGV), the VM runs
    on; vm2 may ring back; both see the region in their device tree, each with its access."""
    for vid, regions in ((1, "shm@90000000 shm@91000000 rw"), (2, "shm@90000000 ro")):
        got = mvm.hvc(
            vid,
            "echo @@D''T $(cd /proc/device-tree/reserved-memory && ls -d shm@*) "
            "$(cat /proc/device-tree/soc/shm-doorbell@90200000/pyshyper,access)",
            r"@@DT .*\n",
        )
        assert f"@@DT {regions}\n" in got, got
    assert _door(mvm, 2, DOOR_COUNT) == 0 and _door(mvm, 2, DOOR_STATUS) == 0
    words = [int.from_bytes(SHM_TEXT[k : k + 4].ljust(4, b"\0"), "little") for k in range(0, len(SHM_TEXT), 4)]
    writes = "; ".join(f"devmem {SHM_IPA + 4 * k:#x} 32 {w:#010x}" for k, w in enumerate(words))
    mvm.hvc(1, f"{writes}; devmem {DOORBELL + DOOR_RING:#x} 32 1; echo @@R''ANG", r"@@RANG")
    assert _door(mvm, 2, DOOR_COUNT) == 1 and _door(mvm, 2, DOOR_STATUS) == 1
    assert _door(mvm, 1, DOOR_SENT) == 1 and _door(mvm, 1, DOOR_COUNT) == 0
    back = b"".join(w.to_bytes(4, "little") for w in _devmem_words(mvm, 2, SHM_IPA, len(words)))
    assert back[: len(SHM_TEXT)] == SHM_TEXT, back
    mvm.hvc(2, f"devmem {DOORBELL + DOOR_ACK:#x} 32 1; echo @@A''CK", r"@@ACK")
    assert _door(mvm, 2, DOOR_STATUS) == 0 and _door(mvm, 2, DOOR_COUNT) == 1
    # read-only: the store faults in the guest (SIGSEGV, status 139), the bytes stay, vm2 runs on
    got = mvm.hvc(2, f"devmem {SHM_IPA:#x} 32 0x41414141; echo @@S''TORE $?", r"@@STORE \d+\n")
    assert "@@STORE 139" in got, got
    assert _devmem_words(mvm, 2, SHM_IPA, 1) == words[:1]
    assert mvm.vms()[2]["state"] == "running"
    # a read-only VM may ring: it tells the writer it has read
    mvm.hvc(2, f"devmem {DOORBELL + DOOR_RING:#x} 32 1; echo @@R''ANG", r"@@RANG")
    assert _door(mvm, 1, DOOR_COUNT) == 1 and _door(mvm, 1, DOOR_STATUS) == 1
    mvm.hvc(1, f"devmem {DOORBELL + DOOR_ACK:#x} 32 1; echo @@A''CK", r"@@ACK")
    table = mvm.run("shyper shm list")
    assert re.search(r"^link0 .*vm1 rw \(vm1\), vm2 ro \(vm2\)$", table, re.M), table
    assert re.search(r"^link1 .*vm1 rw \(vm1\)$", table, re.M), table
    print(f"\n[{mvm.mode}] vm2 read {back[: len(SHM_TEXT) - 2].decode()!r} from link0; its store there: SIGSEGV")


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


def test_shm_unnamed_vm_cannot_reach_it(mvm: Mvm):
    """link1 names vm1 alone: in vm2 nothing is at its address, and vm2's access there ends it (crashed, no
    device at that guest address) as any access outside its memory does; vm1 reads link1 as usual. A mapped
    region cannot be removed."""
    got = mvm.hvc(1, "echo @@L''INK1 $(devmem 0x91000000)", r"@@LINK1 0x[0-9A-F]+\n")
    assert "@@LINK1 0x00000000" in got, got
    mvm.run("printf 'devmem 0x91000000\\n' > /dev/hvc2")
    mvm.wait_state(2, "crashed")
    table = mvm.run("shyper vm list")
    line = next(ln for ln in table.splitlines() if re.match(r"\s*2\s+vm2\s", ln))
    assert "load guest-page fault: no device at guest address 0x91000000" in line, line
    print(f"\n[{mvm.mode}] {line.strip()}")
    out, status = mvm.status("shyper shm remove link0")
    assert status == 1 and "link0 is mapped by vm1 vm2 (remove them first) (EBUSY)" in out, out


def test_remove_returns_every_page(mvm: Mvm):
    for vid in GVMS:
        assert re.search(rf"vm {vid}: removed", mvm.run(f"shyper vm remove {vid}"))
    assert sorted(mvm.vms()) == [0]
    s = mvm.system()
    assert mvm.free_start is not None
    assert s["free_pages"] == mvm.free_start, (s["free_pages"], mvm.free_start)
    assert s["hart_vm"][2:] == [None, None], s


def test_shm_removed_after_its_vms(mvm: Mvm):
    """The last VM that mapped a region gave its pages back (test_remove_returns_every_page); the regions can
    go now."""
    for name in ("link0", "link1"):
        assert mvm.run(f"shyper shm remove {name}").strip() == f"shared memory {name}: removed"
    assert json.loads(mvm.run("shyper shm list --json")) == []


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


def test_shm_doorbell_interrupts_between_two_guests(mvm: Mvm):
    """Interrupt delivery end to end: two bare-metal guests (tests/guests/shmpeer) share link2 and play 50 rounds
    of ping-pong, each step a ring that reaches the other as an interrupt through its virtual interrupt controller
    (vPLIC, or vAPLIC into its IMSIC file); each counts the interrupts it took and checks every echo. Removing both
    gives every page back, and link2 goes."""
    _put_file(mvm, (mvm.out / "guests" / "shmpeer.bin").read_bytes(), "/root/shmpeer.bin")
    _put_file(mvm, (SHMPEER / "link2.json").read_bytes(), "/root/link2.json")
    base = json.loads((SHMPEER / "shmpeer.json").read_text())
    for name, hart in (("peer-a", 2), ("peer-b", 3)):
        cfg = {**base, "name": name, "cpu": {"num": 1, "allocate_bitmap": 1 << hart, "master": hart}}
        _put_file(mvm, json.dumps(cfg).encode(), f"/root/{name}.json")
    free = mvm.system()["free_pages"]
    mvm.run("shyper shm config link2.json")
    ids = [int(mvm.run(f"shyper vm config {name}.json").strip()) for name in ("peer-a", "peer-b")]
    for vid in ids:
        mvm.run(f"(cat /dev/hvc{vid} > /tmp/peer{vid}.out & echo $! > /tmp/peer{vid}.pid)")
    t0 = time.monotonic()
    for vid in reversed(ids):
        mvm.run(f"shyper vm boot {vid}")
    want = {vid: f"shmpeer: index {k}: 50 interrupts, doorbell count 50, 0 bad echoes" for k, vid in enumerate(ids)}
    end = time.monotonic() + 40
    while True:
        outs = {vid: mvm.run(f"cat /tmp/peer{vid}.out").replace("\r", "") for vid in ids}
        if all(want[vid] in outs[vid] for vid in ids):
            break
        assert time.monotonic() < end, outs
        time.sleep(1)
    print(f"\n[{mvm.mode}] 50 doorbell round trips between two guests in {time.monotonic() - t0:.1f} s")
    for vid in ids:
        assert f"irq mode {mvm.mode}" in outs[vid], outs[vid]
        mvm.run(f"kill $(cat /tmp/peer{vid}.pid)")
        mvm.run(f"shyper vm stop {vid} && shyper vm remove {vid}")
    assert mvm.run("shyper shm remove link2").strip() == "shared memory link2: removed"
    assert mvm.system()["free_pages"] == free


def test_no_gvm_line_on_the_serial_console(mvm: Mvm):
    """After every GVM's boots, power-off, crash, reboots and removal: none of the hypervisor's lines about them
    reached the serial console."""
    m = GVM_LINE.search(mvm.shell.log)
    assert m is None, mvm.shell.log[max(0, m.start() - 1000) : m.end() + 200]


def test_mvm_poweroff_exits_0(mvm: Mvm):
    status = mvm.shell.poweroff(timeout=TIMEOUT)
    assert status == 0, f"QEMU exited with status {status}"
