"""The `shyper` command: argument parsing, --help everywhere, exit codes (0 ok, 1 refused/failed, 2 usage/config),
and the commands run against a daemon wired to the hypervisor model, the way a user types them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from shyper import cli, proto

from tests.mvm_tools.bad_configs import BAD_CONFIGS, BadConfig
from tests.mvm_tools.conftest import EXAMPLES, Rig, example, write_config

MVM_TOOLS = Path(__file__).resolve().parents[2] / "mvm-tools"

COMMANDS = [
    [],
    ["system"],
    ["system", "daemon"],
    ["system", "info"],
    ["system", "ping"],
    ["system", "reboot"],
    ["system", "shutdown"],
    ["vm"],
    ["vm", "config"],
    ["vm", "boot"],
    ["vm", "stop"],
    ["vm", "reboot"],
    ["vm", "remove"],
    ["vm", "list"],
    ["vm", "console"],
]


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a) or "shyper")
def test_help_everywhere(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main([*argv, "--help"])
    assert e.value.code == 0
    assert capsys.readouterr().out.startswith("usage: shyper")


@pytest.mark.parametrize(
    "argv",
    [[], ["vm"], ["vm", "boot"], ["vm", "boot", "9"], ["vm", "boot", "x"], ["vm", "launch", "1"], ["system", "nap"]],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    assert "usage: shyper" in capsys.readouterr().err


def test_no_daemon_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--socket", str(tmp_path / "none.sock"), "vm", "list"]) == 1
    assert "cannot reach the shyper daemon" in capsys.readouterr().err


def test_bad_config_exits_2_locally_naming_the_field(
    images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c = example("vm1", images)
    c["memory"]["region"][0]["length"] = "0x8000100"
    path = write_config(images, c, "bad.json")
    # no daemon at that socket: the local check refuses before any connection
    assert cli.main(["--socket", str(tmp_path / "none.sock"), "vm", "config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"shyper: {path}: memory.region[0].length: 0x8000100 is not a multiple of 4096" in err


def test_module_entry_point_runs(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(MVM_TOOLS), os.environ.get("PYTHONPATH", "")]),
        "SHYPER_SOCKET": str(tmp_path / "none.sock"),
    }
    r = subprocess.run([sys.executable, "-m", "shyper", "vm", "list"], env=env, capture_output=True, text=True)
    assert r.returncode == 1 and "cannot reach the shyper daemon" in r.stderr
    r = subprocess.run([sys.executable, "-m", "shyper", "--version"], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("shyper ")


def run(rig: Rig, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["--socket", rig.socket_path, *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_ping_times_control_round_trips(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    """`shyper system ping -n 5`: five SYSTEM_INFO requests reach the hypervisor end, their times are printed;
    n out of range is a usage error."""
    before = sum(1 for t, _ in rig.model.requests if t == proto.SYSTEM_INFO)
    code, out, _ = run(rig, capsys, "system", "ping", "-n", "5")
    assert code == 0, out
    assert re.match(r"control round trip \(daemon <-> hypervisor, SYSTEM_INFO\): 5 requests, median \d+ us, min", out)
    assert re.search(r"^shyper -> daemon -> hypervisor and back: [\d.]+ ms", out, re.M)
    assert sum(1 for t, _ in rig.model.requests if t == proto.SYSTEM_INFO) == before + 5
    code, _, err = run(rig, capsys, "system", "ping", "-n", "0")
    assert code == 2 and "n: 0 is not 1 .. 10000" in err


def test_session(rig_factory, images: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    rig: Rig = rig_factory(irq_mode=1, aia_guests=3)
    vm1 = write_config(images, example("vm1", images), "vm1.json")
    vm2 = write_config(images, example("vm2", images), "vm2.json")
    assert run(rig, capsys, "vm", "config", str(vm1))[:2] == (0, "1\n")
    assert run(rig, capsys, "vm", "config", str(vm2))[:2] == (0, "2\n")
    code, out, _ = run(rig, capsys, "vm", "boot", "1")
    assert code == 0 and out.startswith("vm 1: booted (")
    assert run(rig, capsys, "vm", "boot", "2")[0] == 0
    rig.model.guest_crash(2, scause=13, stval=0x0, sepc=0xFFFF_FFFF_8000_0010, reason=1)
    code, out, _ = run(rig, capsys, "vm", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "NAME", "STATE", "VCPUS", "HARTS", "MEMORY", "UPTIME", "CONSOLE", "EXITS"]
    col = {name: lines[0].index(name) for name in ("NAME", "STATE", "HARTS", "CONSOLE")}
    rows = {line.split()[1]: line for line in lines[1:]}
    assert rows["mvm"][col["CONSOLE"] :].startswith("ttyS0")
    assert rows["vm1"][col["STATE"] :].startswith("running")
    assert rows["vm1"][col["HARTS"] :].startswith("2 ")
    assert rows["vm1"][col["CONSOLE"] :].startswith("/dev/hvc1")
    assert rows["vm2"][col["STATE"] :].startswith(
        "crashed: load page fault (scause 0xd, stval 0x0, sepc 0xffffffff80000010)"
    )
    assert " 128 MiB " in rows["vm2"]
    code, out, _ = run(rig, capsys, "vm", "list", "--json")
    assert code == 0 and [v["state"] for v in json.loads(out)] == ["running", "running", "crashed"]

    code, out, _ = run(rig, capsys, "system", "info")
    assert code == 0
    assert "harts       4 (0: vm0, 1: vm0, 2: vm1, 3: vm2)" in out
    assert "irq mode    AIA (APLIC + IMSIC, 3 guest interrupt files per hart)" in out
    assert run(rig, capsys, "system", "info", "--json")[0] == 0

    code, _, err = run(rig, capsys, "vm", "stop", "0")
    assert code == 1 and "vm 0 is the MVM" in err
    code, _, err = run(rig, capsys, "vm", "stop", "2")  # crashed: not running
    assert code == 1 and "is not running (ESTATE)" in err
    assert run(rig, capsys, "vm", "boot", "2")[0] == 0  # boots afresh
    assert run(rig, capsys, "vm", "stop", "2")[:2] == (0, "vm 2: stopped\n")
    assert run(rig, capsys, "vm", "reboot", "1")[0] == 0
    assert run(rig, capsys, "vm", "remove", "2")[:2] == (0, "vm 2: removed\n")
    code, _, err = run(rig, capsys, "vm", "boot", "2")
    assert code == 1 and "no VM with id 2 (ENOVM)" in err

    # a config good on its own but wrong for this hypervisor: the daemon's check, still exit 2 naming the field
    c = example("vm2", images)
    c["emulated_device"]["emulated_device_list"].append(
        {"type": "EMU_DEVICE_T_PLIC", "base_ipa": "0xc000000", "length": "0x600000"}
    )
    code, _, err = run(rig, capsys, "vm", "config", str(write_config(images, c, "plic.json")))
    assert code == 2 and "emulated_device.emulated_device_list[1].type: EMU_DEVICE_T_PLIC but the hypervisor" in err
    c = example("vm2", images)
    c["cpu"] = {"num": 1, "allocate_bitmap": "0b100", "master": 2}  # vm1's hart: shared
    assert run(rig, capsys, "vm", "config", str(write_config(images, c, "shared.json")))[:2] == (0, "2\n")
    code, out, _ = run(rig, capsys, "system", "info")
    assert code == 0 and "harts       4 (0: vm0, 1: vm0, 2: vm1+vm2, 3: -)" in out

    assert run(rig, capsys, "system", "shutdown")[0] == 0
    assert rig.model.powered_off


def shared_hart_rig(rig_factory: Any, images: Path, capsys: pytest.CaptureFixture[str]) -> Rig:
    """vm1 (priority 10, a 20 ms slice) and rt (priority 200, the default slice) on hart 2, both booted; the
    MVM's vCPU 1 made a WFI (alone on its hart: it waits in place)."""
    rig: Rig = rig_factory()
    vm1 = example("vm1", images)
    vm1["cpu"].update(priority=10, time_slice_ms="20")
    rt = example("vm2", images)
    rt["name"] = "rt"
    rt["cpu"] = {"num": 1, "allocate_bitmap": "0b0100", "master": 2, "priority": "0xc8"}
    assert run(rig, capsys, "vm", "config", str(write_config(images, vm1, "vm1.json")))[:2] == (0, "1\n")
    assert run(rig, capsys, "vm", "config", str(write_config(images, rt, "rt.json")))[:2] == (0, "2\n")
    assert run(rig, capsys, "vm", "boot", "1")[0] == 0
    assert run(rig, capsys, "vm", "boot", "2")[0] == 0  # preempts vm1 on hart 2
    rig.model.guest_wfi(0, 1)
    return rig


def test_vm_list_shows_each_vcpu_hart_priority_state(
    rig_factory: Any, images: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`shyper vm list`: the VM table as before, and under each VM a line per vCPU, in columns across VMs."""
    rig = shared_hart_rig(rig_factory, images, capsys)
    code, out, _ = run(rig, capsys, "vm", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "ID  NAME  STATE    VCPUS  HARTS  MEMORY   UPTIME  CONSOLE    EXITS"
    assert re.fullmatch(r" 1  vm1   running      1  2      128 MiB  \S+ *  /dev/hvc1    100", lines[4]), lines[4]
    assert [lines[i] for i in (2, 3, 5, 7)] == [
        "    vcpu 0  hart 0  priority   0  running  slice 10 ms  switches 0  exits   0",
        "    vcpu 1  hart 1  priority   0  running  slice 10 ms  switches 0  exits   1",  # alone: waits in place
        "    vcpu 0  hart 2  priority  10  ready    slice 20 ms  switches 1  exits 100",
        "    vcpu 0  hart 2  priority 200  running  slice 10 ms  switches 1  exits 100",
    ]
    assert lines[6].startswith(" 2  rt    running ") and len(lines) == 8
    # the hart gives way: rt waits in a WFI, vm1 runs; then rt's interrupt preempts vm1 at once
    rig.model.guest_wfi(2, 0)
    out = run(rig, capsys, "vm", "list")[1].splitlines()
    assert "priority  10  running  slice 20 ms  switches 2" in out[5] and "priority 200  waiting" in out[7]
    rig.model.guest_interrupt(2, 0)
    out = run(rig, capsys, "vm", "list")[1].splitlines()
    assert "priority  10  ready" in out[5] and "priority 200  running  slice 10 ms  switches 2" in out[7]

    code, out, _ = run(rig, capsys, "vm", "list", "--json")
    vms = json.loads(out)
    assert code == 0 and [v["vcpus_detail"] for v in vms[1:]] == [
        [{"vcpu": 0, "hart": 2, "priority": 10, "state": "ready", "time_slice_ms": 20, "switches": 2, "exits": 100,
          "wfi_exits": 0}],
        [{"vcpu": 0, "hart": 2, "priority": 200, "state": "running", "time_slice_ms": 10, "switches": 2,
          "exits": 101, "wfi_exits": 1}],
    ]  # fmt: skip


def test_system_info_shows_each_harts_run_queue(
    rig_factory: Any, images: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rig = shared_hart_rig(rig_factory, images, capsys)
    code, out, _ = run(rig, capsys, "system", "info")
    assert code == 0
    assert "\nharts       4 (0: vm0, 1: vm0, 2: vm1+vm2, 3: -)\n" in out
    assert out.endswith(
        "\n\n"
        "HART  VM  NAME  VCPU  PRIO  STATE    SLICE  SWITCHES\n"
        "   0   0  mvm      0     0  running  10 ms         0\n"
        "   1   0  mvm      1     0  running  10 ms         0\n"
        "   2   1  vm1      0    10  ready    20 ms         1\n"
        "   2   2  rt       0   200  running  10 ms         1\n"
        "   3   -\n"
    ), out
    code, out, _ = run(rig, capsys, "system", "info", "--json")
    queues = json.loads(out)["run_queues"]
    assert code == 0 and len(queues) == 4 and queues[3] == []
    assert [(v["vm"], v["vm_name"], v["vcpu"], v["priority"], v["state"]) for v in queues[2]] == [
        (1, "vm1", 0, 10, "ready"),
        (2, "rt", 0, 200, "running"),
    ]
    assert queues[2][1]["time_slice_ms"] == 10 and queues[2][1]["switches"] == 1
    # vm1 removed: rt is the first vCPU placed on hart 2
    assert run(rig, capsys, "vm", "remove", "1")[0] == 0
    out = run(rig, capsys, "system", "info")[1]
    assert "harts       4 (0: vm0, 1: vm0, 2: vm2, 3: -)" in out
    assert json.loads(run(rig, capsys, "system", "info", "--json")[1])["system"]["hart_vm"] == [0, 0, 2, None]


def test_listings_from_a_hypervisor_without_sched_info(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    rig.model.HANDLERS = {k: v for k, v in rig.model.HANDLERS.items() if k != proto.SCHED_INFO}
    code, out, _ = run(rig, capsys, "vm", "list")
    assert code == 0 and len(out.splitlines()) == 2  # the header and the MVM, no vCPU lines
    code, out, _ = run(rig, capsys, "system", "info")
    assert code == 0 and "harts       4 (0: vm0, 1: vm0, 2: -, 3: -)" in out
    assert out.endswith("run queues  not reported by this hypervisor (it does not know SCHED_INFO)\n")


def test_vcpu_slots_run_out(rig: Rig, images: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Harts are shared, vCPU slots are not: 16 in all, the MVM's two included."""
    for i in range(4):
        c = example("vm1", images)
        c["name"] = f"quad{i}"
        c["cpu"] = {"num": 4, "allocate_bitmap": "0b1111", "master": 0}
        code, out, err = run(rig, capsys, "vm", "config", str(write_config(images, c, f"q{i}.json")))
        if i < 3:
            assert (code, out) == (0, f"{i + 1}\n"), err
    assert (code, err) == (1, "shyper: cpu.num: 4 vCPUs asked, 2 vCPU slots free (the hypervisor has 16) (ELIMIT)\n")
    out = run(rig, capsys, "system", "info")[1]
    assert "harts       4 (0: vm0+vm1+vm2+vm3, 1: vm0+vm1+vm2+vm3, 2: vm1+vm2+vm3, 3: vm1+vm2+vm3)" in out


def test_console_attach_and_detach(rig: Rig, images: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(rig, capsys, "vm", "config", str(write_config(images, example("vm1", images))))[0] == 0
    code, _, err = run(rig, capsys, "vm", "console", "3")
    assert code == 1 and "no VM with id 3" in err
    code, _, err = run(rig, capsys, "vm", "console", "0")
    assert code == 1 and "ttyS0" in err

    master, slave = os.openpty()  # the pty's slave end stands for /dev/hvc1
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(cli.attach(os.ttyname(slave), "vm1", 1, in_r, out_w)))
    t.start()
    os.write(in_w, b"uname -n\r")
    assert os.read(master, 100) == b"uname -n\r"  # raw: passed on untouched
    os.write(master, b"vm1\r\nvm1:/# ")
    got = b""
    while b"vm1:/# " not in got:
        got += os.read(out_r, 1000)
    assert got.startswith(b"[attached to vm 1 (vm1) on /dev/pts/") and got.endswith(b"vm1\r\nvm1:/# ")
    os.write(in_w, b"ls\x1dnot sent")  # Ctrl-] detaches; what follows it stays here
    t.join(5)
    assert result == [0]
    assert os.read(master, 100) == b"ls"
    assert os.read(out_r, 1000).endswith(b"[detached]\r\n")
    for fd in (master, slave, in_r, in_w, out_r, out_w):
        os.close(fd)


@pytest.mark.parametrize("bad", BAD_CONFIGS, ids=lambda b: b.name)
def test_bad_configs_for_the_boot_test(
    bad: BadConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each bad config of bad_configs.py, made from the shipped vm1.json as the MVM's shell makes it (sed), exits 2
    with its message; the good one passes the same local check (the daemon is not there: exit 1, not 2)."""
    root = tmp_path / "var" / "lib" / "shyper"  # /var/lib/shyper, moved under tmp_path
    root.mkdir(parents=True)
    (root / "Image").write_bytes(bytes(300_000))
    (root / "gvm-initramfs.cpio").write_bytes(bytes(100_000))
    text = (EXAMPLES / "vm1.json").read_text()
    monkeypatch.chdir(tmp_path)
    sock = str(tmp_path / "none.sock")
    (tmp_path / "vm1.json").write_text(text)
    (tmp_path / "good.json").write_text(text.replace("/var/lib/shyper/", f"{root}/"))
    assert cli.main(["--socket", sock, "vm", "config", "good.json"]) == 1
    assert "cannot reach the shyper daemon" in capsys.readouterr().err
    subprocess.run(["sh", "-c", bad.sed_line()], check=True, cwd=tmp_path)
    made = (tmp_path / f"bad-{bad.name}.json").read_text()
    assert made == bad.apply(text)
    (tmp_path / "bad.json").write_text(made.replace("/var/lib/shyper/", f"{root}/"))
    assert cli.main(["--socket", sock, "vm", "config", "bad.json"]) == 2
    err = capsys.readouterr().err
    assert bad.message.replace("/var/lib/shyper/", f"{root}/") in err, err
    assert err.startswith("shyper: bad.json: ")
