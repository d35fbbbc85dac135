"""`shyper system daemon` run as a process, the way the MVM's init runs it (`--log FILE`), with its control port on a
pty whose other end is the hypervisor model (tests/mvm_tools/hvmodel.py, a test double of PROTOCOL.md's hypervisor
end); the `shyper` command run as a process against it. The daemon is killed with SIGKILL and started again: no VM
is lost. SIGTERM ends it with status 0."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tty
from pathlib import Path

import fdt
import pytest

from tests.mvm_tools.conftest import example, write_config
from tests.mvm_tools.hvmodel import RUNNING, HypervisorModel

MVM_TOOLS = Path(__file__).resolve().parents[2] / "mvm-tools"


def wait_for(cond, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("timed out")
        time.sleep(0.05)


@pytest.fixture
def run_dir() -> object:
    d = tempfile.mkdtemp(prefix="shyper-", dir="/tmp")  # AF_UNIX paths are short
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


def test_daemon_process(run_dir: Path, images: Path) -> None:
    master, slave = os.openpty()
    tty.setraw(slave)  # the control port is a byte stream: no line discipline in the way
    model = HypervisorModel()
    model.attach_fd(master)
    sock = run_dir / "shyper.sock"
    log = run_dir / "shyper.log"
    mediated = run_dir / "mediated-cfg.json"
    mediated.write_text(json.dumps({"mediated": ["/dev/vdb"]}))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(MVM_TOOLS), os.environ.get("PYTHONPATH", "")]),
        "SHYPER_SOCKET": str(sock),
    }
    daemon_argv = [sys.executable, "-m", "shyper", "system", "daemon", str(mediated), "--log", str(log),
                   "--port", os.ttyname(slave)]  # fmt: skip

    def shyper(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "shyper", *argv], env=env, capture_output=True, text=True)

    # a given device tree: the daemon patches a fresh rng-seed into it at every boot
    given = fdt.FDT()
    given.root.append(fdt.PropStrings("model", "given"))
    (images / "given.dtb").write_bytes(given.to_dtb(version=17))
    cfg = example("vm1", images)
    cfg["image"]["device_tree_filename"] = "given.dtb"
    config = write_config(images, cfg, "vm1.json")

    proc = subprocess.Popen(daemon_argv, env=env)
    try:
        wait_for(sock.exists)
        r = shyper("vm", "config", str(config))
        assert (r.returncode, r.stdout) == (0, "1\n"), r.stderr
        r = shyper("vm", "boot", "1")
        assert r.returncode == 0, r.stderr
        vm = model.vms[1]
        assert vm.state == RUNNING
        dtb = fdt.parse_dtb(vm.read(vm.dtb, 4096))
        assert dtb.root.get_property("model").value == "given" and dtb.get_node("chosen").exist_property("rng-seed")

        proc.send_signal(signal.SIGKILL)  # killed: its socket is left behind
        proc.wait(10)
        proc = subprocess.Popen(daemon_argv, env=env)
        wait_for(lambda: log.read_text().count("serving the shyper command") == 2)
        r = shyper("vm", "list", "--json")
        assert r.returncode == 0, r.stderr + log.read_text()
        assert [(v["id"], v["name"], v["state"]) for v in json.loads(r.stdout)] == [
            (0, "mvm", "running"), (1, "vm1", "running")
        ]  # fmt: skip
        r = shyper("vm", "reboot", "1")  # its files found from the config the hypervisor kept
        assert r.returncode == 0, r.stderr
        assert vm.boots == 2

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(slave)
        os.close(master)
    text = log.read_text()
    assert "mediated disk /dev/vdb" in text and "mediated virtio-blk disks are not served yet" in text
    assert "vm 1 vm1: booted" in text and "vm 1: loaded kernel" in text
    assert "stopped" in text.splitlines()[-1]
    assert not sock.exists()


def test_daemon_refuses_a_bad_mediated_cfg(run_dir: Path) -> None:
    bad = run_dir / "mediated-cfg.json"
    bad.write_text('{"mediated": "/dev/vdb"}')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(MVM_TOOLS), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-m", "shyper", "system", "daemon", str(bad), "--port", "/nonexistent"],
                       env=env, capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2 and "mediated: missing or not a list" in r.stderr


def test_daemon_without_a_control_port_exits_1(run_dir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(MVM_TOOLS), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-m", "shyper", "--socket", str(run_dir / "s.sock"), "system", "daemon",
                        "--port", str(run_dir / "no-such-port")], env=env, capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 1 and "cannot open the control port" in r.stderr
