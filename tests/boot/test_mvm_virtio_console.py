"""The management VM's virtio console (hypervisor/core/virtio_console.py on the virtio-mmio transport), driven
by Debian's stock virtio_console driver in the MVM, once per interrupt mode (`--irq plic`, `--irq aia
--aia-guests 3`; one boot each, the checks below in order on it):

the control port is found as userspace finds it (the `vportNpM` whose `/sys/class/virtio-ports/*/name` reads
`org.pyshyper.control`); the eight console ports are /dev/hvc0 .. /dev/hvc7; /dev/hvc0 carries the hypervisor's
own log (its banner and the MVM's creation line, printed before the MVM booted); a frame with an unknown type
written to the control port comes back as an ETYPE response with the request's id (mvm-tools/PROTOCOL.md), and
a frame after garbage bytes too (resynchronisation); the device's interrupt is counted in /proc/interrupts.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from pyshyper_host.bench import console
from tests.conftest import require_tool

pytestmark = [pytest.mark.qemu, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
LOG_DIR = ROOT / "logs"
TIMEOUT = 120.0
MODES = ("plic", "aia")

# Run in the MVM: find the control port by name, send two frames of an unknown type (the second after garbage
# bytes), print each response's header fields and message.
CONTROL_SCRIPT = r"""
import glob, os, select, struct, sys, time
def named(d):
    return os.path.exists(d + '/name') and open(d + '/name').read().strip() == 'org.pyshyper.control'
ports = [d for d in glob.glob('/sys/class/virtio-ports/*') if named(d)]
print('PORTS', len(ports), ' '.join(os.path.basename(p) for p in ports))
for attempt in range(50):  # a daemon that just ended may still be closing the port
    try:
        fd = os.open('/dev/' + os.path.basename(ports[0]), os.O_RDWR)
        break
    except OSError as e:
        if e.errno != 16 or attempt == 49:
            raise
        time.sleep(0.2)
def frame(kind, rid):
    return struct.pack('<IHHIIII', 0x59485350, 1, kind, rid, 0, 0, 0)
def response():
    buf = b''
    while True:
        if len(buf) >= 24:
            length = struct.unpack_from('<I', buf, 16)[0]
            if len(buf) >= 24 + length:
                return buf
        r, _, _ = select.select([fd], [], [], 10)
        if not r:
            print('TIMEOUT', buf.hex()); sys.exit(1)
        buf += os.read(fd, 4096)
for payload, rid in ((frame(0x7777, 42), 42), (b'\x00junk' + frame(0x0999, 43), 43)):
    os.write(fd, payload)
    b = response()
    magic, ver, kind, got, status, length, res = struct.unpack_from('<IHHIIII', b)
    msg = b[24:24 + length].decode()
    print('RESP magic=%#x version=%d type=%#x id=%d status=%d msg=%s' % (magic, ver, kind, got, status, msg))
"""


class Mvm:
    def __init__(self, mode: str, shell: console.Shell) -> None:
        self.mode = mode
        self.shell = shell

    def run(self, command: str, timeout: float = 60.0) -> str:
        out, status = self.shell.run(command, timeout=timeout)
        assert status == 0, f"[{self.mode}] `{command}` exited {status}:\n{out}"
        return out


@pytest.fixture(scope="module", params=MODES)
def mvm(request, boot_out, mvm_image_cache):
    require_tool("qemu-system-riscv64", "riscv64-unknown-elf-ld")
    from pyshyper_host.run.command import mvm_qemu_command

    mode = request.param
    out = boot_out(mode)
    cmd = mvm_qemu_command(False, 2, "1G", mvm_image_cache, irq=mode, aia_guests=3, out=out, quiet=True)
    try:
        shell, _, _ = console.start_shell(cmd, timeout=TIMEOUT)
    except console.BootError as e:
        LOG_DIR.mkdir(exist_ok=True)
        p = LOG_DIR / f"test_mvm_virtio_console-{mode}-boot.log"
        p.write_text(e.log)
        pytest.fail(f"[{mode}] the MVM does not reach a shell; serial log: {p}\n{e}")
    m = Mvm(mode, shell)
    yield m
    try:
        assert shell.poweroff() == 0
    finally:
        shell.close()


@pytest.fixture(autouse=True)
def _log_on_failure(request, mvm):
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        mvm.shell.save_failure(LOG_DIR / f"{request.node.name}.log")


def test_control_port_found_by_name(mvm: Mvm):
    out = mvm.run("grep -l org.pyshyper.control /sys/class/virtio-ports/*/name")
    assert re.search(r"/sys/class/virtio-ports/vport\d+p8/name", out), out


def test_console_ports_are_hvc0_to_hvc7(mvm: Mvm):
    out = mvm.run("ls /dev/hvc0 /dev/hvc1 /dev/hvc2 /dev/hvc3 /dev/hvc4 /dev/hvc5 /dev/hvc6 /dev/hvc7")
    for i in range(8):
        assert f"/dev/hvc{i}" in out
    names = mvm.run("cat /sys/class/virtio-ports/*/name | sort")
    assert names.split() == ["org.pyshyper.control"], names


def test_hvc0_carries_the_hypervisor_log(mvm: Mvm):
    # The log reaches the port at the pace of the MVM's idle exits and the hvc driver's polling: read until the
    # MVM's creation line has come (at once, normally), for 60 s at most.
    mvm.shell.run(
        "timeout 60 awk '{ print } /vm0 [(]management VM[)]: Linux at/ { exit }' /dev/hvc0 > /tmp/hvc0.log",
        timeout=90,
    )
    out = mvm.run("cat /tmp/hvc0.log")
    assert re.search(r"PyShyper \d+\.\d+\.\d+: a Type-1 hypervisor", out), out[-2000:]
    assert "vm0 (management VM): Linux at" in out, out[-2000:]


def test_control_port_answers_unknown_type_with_etype(mvm: Mvm):
    # The port has one opener, and the MVM's init runs the shyper daemon, which holds it: the service leaves
    # init's table (busybox init re-reads it on SIGHUP) and the daemon ends, so the port is this script's.
    # init handles the SIGHUP in its own time and may start the service once more before it does; the service and
    # the daemon are killed until neither has been seen for two seconds running (ten checks 0.2 s apart).
    mvm.run("sed -i '/shyper-service/d' /etc/inittab && kill -HUP 1")
    procs = "'[s]hyper-service|[s]hyper system daemon'"
    mvm.run(
        f"n=0; for i in $(seq 150); do if pkill -f {procs}; then n=0; else n=$((n+1)); fi;"
        f" [ $n -ge 10 ] && break; sleep 0.2; done; ! pgrep -f {procs}",
        timeout=90,
    )
    script = base64.b64encode(CONTROL_SCRIPT.encode()).decode()
    mvm.run("rm -f /tmp/ctl.b64")
    for i in range(0, len(script), 200):  # short lines: a long one does not survive the serial console's input
        mvm.run(f"echo -n {script[i : i + 200]} >> /tmp/ctl.b64")
    mvm.run("base64 -d /tmp/ctl.b64 > /tmp/ctl.py")
    out = mvm.run("python3 /tmp/ctl.py", timeout=60)
    assert re.search(r"PORTS 1 vport\d+p8", out), out
    resp = re.findall(r"RESP magic=(\S+) version=(\d+) type=(\S+) id=(\d+) status=(\d+) msg=(.*)", out)
    assert [(m, v, t, i, s) for m, v, t, i, s, _ in resp] == [
        ("0x59485350", "1", "0xf777", "42", "3"),
        ("0x59485350", "1", "0x8999", "43", "3"),
    ], out
    assert all(msg.strip() for *_, msg in resp)


def test_device_interrupts_counted(mvm: Mvm):
    out = mvm.run("grep virtio /proc/interrupts")
    line = next((x for x in out.splitlines() if re.search(r"\b16\b", x)), None)
    assert line is not None, out
    counts = [int(c) for c in line.split()[1:3]]
    assert sum(counts) > 0, line
