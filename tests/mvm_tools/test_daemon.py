"""The `shyper` daemon against the model of the hypervisor end (tests/mvm_tools/hvmodel.py, a test double that
implements PROTOCOL.md) over a socketpair: start-up, config, boot with the images loaded, stop, reboot (asked and
by the guest), crash, remove, a killed and restarted daemon, refusals, and garbage on the port."""

from __future__ import annotations

import json
import os
import pty
import random
import struct
import termios
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fdt
import pytest
from shyper import daemon, proto

from tests.mvm_tools.conftest import Rig, example
from tests.mvm_tools.hvmodel import REBOOTING, RUNNING, STOPPED
from tests.mvm_tools.test_proto import mutate, raw, sample_system, sample_vcpus, sample_vm


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("timed out")
        time.sleep(0.01)


def configure(rig: Rig, images: Path, name: str = "vm1") -> int:
    answer = rig.daemon.handle({"cmd": "vm.config", "config": example(name, images), "base_dir": str(images)})
    assert answer["ok"], answer
    return int(answer["id"])


def loaded_dtb(rig: Rig, vm_id: int) -> fdt.FDT:
    vm = rig.model.vms[vm_id]
    head = vm.read(vm.dtb, 8)
    return fdt.parse_dtb(vm.read(vm.dtb, int.from_bytes(head[4:8], "big")))


def seed(tree: fdt.FDT) -> bytes:
    p = tree.get_node("chosen").get_property("rng-seed")
    return b"".join(w.to_bytes(4, "big") for w in p.data) if isinstance(p, fdt.PropWords) else bytes(p.data)


def test_start_says_hello_and_reads_the_vms(rig: Rig) -> None:
    assert [t for t, _ in rig.model.requests[:2]] == [proto.HELLO, proto.VM_LIST]
    assert rig.daemon.system is not None and rig.daemon.system.harts == 4
    assert list(rig.daemon.vms) == [0]


def test_config_boot_loads_every_image(rig: Rig, images: Path) -> None:
    vm_id = configure(rig, images)
    assert vm_id == 1
    vm = rig.model.vms[1]
    assert (vm.name, vm.hart_mask, vm.master, vm.entry, vm.dtb) == ("vm1", 0b100, 2, 0x8020_0000, 0x87E0_0000)
    assert vm.console == (0x1000_1000, 1) and vm.regions == [(0x8000_0000, 0x800_0000)]
    assert json.loads(vm.config)["image"]["kernel_filename"] == str(images / "Image")
    free_before = rig.model.free_pages

    answer = rig.daemon.handle({"cmd": "vm.boot", "id": 1})
    assert answer["ok"], answer
    kernel = (images / "Image").read_bytes()
    ramdisk = (images / "gvm-initramfs.cpio").read_bytes()
    assert vm.read(0x8020_0000, len(kernel)) == kernel
    assert vm.read(0x8400_0000, len(ramdisk)) == ramdisk
    tree = loaded_dtb(rig, 1)
    assert tree.root.get_property("model").value == "pyshyper,vm1"
    end = tree.get_node("chosen").get_property("linux,initrd-end").data
    assert list(end) == [0, 0x8400_0000 + len(ramdisk)]
    assert vm.state == RUNNING and vm.boots == 1
    assert rig.model.free_pages == free_before
    # chunked: 8 KiB loads in this rig, every one answered OK
    loads = [s for t, s in rig.model.requests if t == proto.VM_LOAD]
    assert len(loads) == -(-len(kernel) // 8192) + -(-len(ramdisk) // 8192) + 1 and set(loads) == {0}


def test_list_shows_state_harts_console_uptime(rig: Rig, images: Path) -> None:
    configure(rig, images, "vm1")
    configure(rig, images, "vm2")
    assert rig.daemon.handle({"cmd": "vm.boot", "id": 2})["ok"]
    vms = rig.daemon.handle({"cmd": "vm.list"})["vms"]
    assert [(v["id"], v["name"], v["state"], v["harts"], v["console"]) for v in vms] == [
        (0, "mvm", "running", [0, 1], "ttyS0"),
        (1, "vm1", "created", [2], "/dev/hvc1"),
        (2, "vm2", "running", [3], "/dev/hvc2"),
    ]
    assert vms[2]["uptime"] is not None and vms[2]["uptime"] > 0 and vms[1]["uptime"] is None


def test_two_vms_share_a_hart_by_priority(rig: Rig, images: Path) -> None:
    """Two GVMs placed on hart 2: the CREATE records carry their priority and time slice, `vm.list` gives each
    VM's vCPUs from one SCHED_INFO, `system.info` each hart's run queue in order."""
    low = example("vm1", images)
    low["cpu"].update(priority=10, time_slice_ms=50)
    high = example("vm2", images)
    high["cpu"] = {"num": 1, "allocate_bitmap": "0b0100", "master": 2, "priority": 200}
    for c in (low, high):
        assert rig.daemon.handle({"cmd": "vm.config", "config": c, "base_dir": str(images)})["ok"]
    cpus = [rig.model.vms[i].cpus[0] for i in (1, 2)]
    assert [(c.hart, c.priority, c.slice_ms) for c in cpus] == [(2, 10, 50), (2, 200, 10)]  # 0 sent: the default
    assert [c.vm_id for c in rig.model.rq[2]] == [1, 2]

    def detail() -> dict[int, list[tuple[Any, ...]]]:
        before = sum(1 for t, _ in rig.model.requests if t == proto.SCHED_INFO)
        answer = rig.daemon.handle({"cmd": "vm.list"})
        assert answer["ok"], answer
        assert sum(1 for t, _ in rig.model.requests if t == proto.SCHED_INFO) == before + 1
        return {
            v["id"]: [(d["vcpu"], d["hart"], d["priority"], d["state"], d["switches"]) for d in v["vcpus_detail"]]
            for v in answer["vms"]
        }

    assert detail() == {
        0: [(0, 0, 0, "running", 0), (1, 1, 0, "running", 0)],  # alone on their harts: no switches
        1: [(0, 2, 10, "stopped", 0)],
        2: [(0, 2, 200, "stopped", 0)],
    }
    assert rig.daemon.handle({"cmd": "vm.boot", "id": 1})["ok"]
    assert detail()[1] == [(0, 2, 10, "running", 1)]
    assert rig.daemon.handle({"cmd": "vm.boot", "id": 2})["ok"]  # the higher priority preempts at once
    assert (detail()[1], detail()[2]) == ([(0, 2, 10, "ready", 1)], [(0, 2, 200, "running", 1)])
    rig.model.guest_wfi(2, 0)  # WFI: the hart goes to vm1
    assert (detail()[1], detail()[2]) == ([(0, 2, 10, "running", 2)], [(0, 2, 200, "waiting", 1)])
    assert rig.daemon.handle({"cmd": "vm.stop", "id": 1})["ok"]
    assert (detail()[1], detail()[2]) == ([(0, 2, 10, "stopped", 2)], [(0, 2, 200, "waiting", 1)])
    rig.model.guest_interrupt(2, 0)  # the hart had nothing runnable: taking rt again is a switch
    assert detail()[2] == [(0, 2, 200, "running", 2)]

    info = rig.daemon.handle({"cmd": "system.info"})
    assert info["system"]["hart_vm"] == [0, 0, 1, None]  # the first vCPU placed on the hart
    queues = info["run_queues"]
    assert [[(q["vm"], q["vm_name"], q["vcpu"], q["state"]) for q in hart] for hart in queues] == [
        [(0, "mvm", 0, "running")],
        [(0, "mvm", 1, "running")],
        [(1, "vm1", 0, "stopped"), (2, "vm2", 0, "running")],
        [],
    ]
    assert queues[2][0]["time_slice_ms"] == 50 and queues[2][1]["priority"] == 200
    vm = rig.daemon.handle({"cmd": "vm.info", "id": 2})["vm"]
    assert vm["vcpus_detail"][0]["wfi_exits"] == 1 and vm["vcpus_detail"][0]["exits"] == vm["exits"] == 101
    rig.model.guest_wfi(0, 1)  # alone on hart 1: waits in place, still running
    assert detail()[0] == [(0, 0, 0, "running", 0), (1, 1, 0, "running", 0)]


def vcpu_states(rig: Rig) -> dict[tuple[int, int], tuple[int, str, int]]:
    """(VM id, vcpu) -> (hart, state, switches), from `vm.list`."""
    answer = rig.daemon.handle({"cmd": "vm.list"})
    assert answer["ok"], answer
    return {
        (v["id"], d["vcpu"]): (d["hart"], d["state"], d["switches"]) for v in answer["vms"] for d in v["vcpus_detail"]
    }


def test_equal_priorities_take_turns_and_secondary_vcpus_wait_for_hsm(rig: Rig, images: Path) -> None:
    """vm1 has vCPUs on harts 2 and 3 (master 3: its vCPU 1 starts, vCPU 0 waits for an HSM start); vm2 shares
    hart 3 at the same priority: the hart's round-robin slices pass it back and forth."""
    a = example("vm1", images)
    a["cpu"] = {"num": 2, "allocate_bitmap": "0b1100", "master": 3, "priority": 50}
    b = example("vm2", images)
    b["cpu"]["priority"] = 50
    for c in (a, b):
        assert rig.daemon.handle({"cmd": "vm.config", "config": c, "base_dir": str(images)})["ok"]
    assert rig.daemon.handle({"cmd": "vm.boot", "id": 1})["ok"]
    assert rig.daemon.handle({"cmd": "vm.boot", "id": 2})["ok"]
    states = vcpu_states(rig)
    assert [states[k] for k in ((1, 0), (1, 1), (2, 0))] == [(2, "stopped", 0), (3, "running", 1), (3, "ready", 0)]
    rig.model.guest_hart_start(1, 0)
    assert vcpu_states(rig)[1, 0] == (2, "running", 0)  # alone on hart 2: no switch
    rig.model.guest_slice_end(3)
    states = vcpu_states(rig)
    assert (states[1, 1], states[2, 0]) == ((3, "ready", 1), (3, "running", 1))
    rig.model.guest_slice_end(3)
    states = vcpu_states(rig)
    assert (states[1, 1], states[2, 0]) == ((3, "running", 2), (3, "ready", 1))


def test_hypervisor_without_sched_info(rig: Rig, images: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A hypervisor that answers SCHED_INFO with ETYPE (it has no scheduler): the listings work, without vCPUs."""
    rig.model.HANDLERS = {k: v for k, v in rig.model.HANDLERS.items() if k != proto.SCHED_INFO}
    configure(rig, images)
    answer = rig.daemon.handle({"cmd": "vm.list"})
    assert answer["ok"] and [v["vcpus_detail"] for v in answer["vms"]] == [None, None]
    info = rig.daemon.handle({"cmd": "system.info"})
    assert info["ok"] and info["run_queues"] is None
    assert "the hypervisor reports no run queues" in caplog.text


def test_malformed_sched_info_fails_the_listing(rig: Rig) -> None:
    rig.model.HANDLERS = {**rig.model.HANDLERS, proto.SCHED_INFO: lambda self, p: struct.pack("<II", 1, 0)}
    answer = rig.daemon.handle({"cmd": "vm.list"})
    assert answer["ok"] is False and answer["code"] == 1
    assert "malformed answer from the hypervisor to SCHED_INFO: SCHED_INFO: count 1 does not match" in answer["error"]


def test_stop_reboot_remove_and_pages_come_back(rig: Rig, images: Path) -> None:
    free = rig.model.free_pages
    vm_id = configure(rig, images)
    assert rig.model.free_pages == free - 0x800_0000 // 4096
    assert rig.daemon.handle({"cmd": "vm.boot", "id": vm_id})["ok"]
    first = seed(loaded_dtb(rig, vm_id))
    assert rig.daemon.handle({"cmd": "vm.stop", "id": vm_id})["ok"]
    assert rig.model.vms[vm_id].state == STOPPED
    assert rig.daemon.handle({"cmd": "vm.reboot", "id": vm_id})["ok"]  # stopped: just reload and boot
    assert rig.daemon.handle({"cmd": "vm.reboot", "id": vm_id})["ok"]  # running: stop, reload, boot
    assert rig.model.vms[vm_id].boots == 3 and rig.model.vms[vm_id].state == RUNNING
    assert seed(loaded_dtb(rig, vm_id)) != first  # a fresh seed on every boot
    assert rig.daemon.handle({"cmd": "vm.remove", "id": vm_id})["ok"]
    assert vm_id not in rig.model.vms and rig.model.free_pages == free
    info = rig.daemon.handle({"cmd": "system.info"})
    assert info["ok"] and info["system"]["free_pages"] == free


def test_console_device_held_raw_while_the_vm_exists(rig: Rig, images: Path) -> None:
    """The daemon holds each GVM's /dev/hvcN open in raw mode from config to remove (a console opened with the
    default termios would echo the guest's output back into it); a restarted daemon holds it again. Here hvc1 is
    a pty's slave in the daemon's console directory."""
    master, slave = pty.openpty()
    os.makedirs(rig.daemon.console_dir, exist_ok=True)
    os.symlink(os.ttyname(slave), os.path.join(rig.daemon.console_dir, "hvc1"))
    os.close(slave)
    try:
        vm_id = configure(rig, images)
        assert vm_id in rig.daemon.consoles
        attrs = termios.tcgetattr(rig.daemon.consoles[vm_id])
        assert attrs[3] & (termios.ECHO | termios.ICANON) == 0, "not raw"
        new = rig.restart_daemon()
        assert vm_id in new.consoles
        assert new.handle({"cmd": "vm.remove", "id": vm_id})["ok"]
        assert vm_id not in new.consoles
    finally:
        os.close(master)


def test_guest_reboot_is_reloaded_and_booted(rig: Rig, images: Path) -> None:
    vm_id = configure(rig, images)
    assert rig.daemon.handle({"cmd": "vm.boot", "id": vm_id})["ok"]
    first = seed(loaded_dtb(rig, vm_id))
    rig.model.vms[vm_id].write(0x8020_0000, b"\0" * 64)  # the guest scribbled over its kernel
    rig.model.guest_reboot(vm_id)
    wait_for(lambda: rig.model.vms[vm_id].boots == 2 and rig.model.vms[vm_id].state == RUNNING)
    assert rig.model.vms[vm_id].read(0x8020_0000, 64) == (images / "Image").read_bytes()[:64]
    assert seed(loaded_dtb(rig, vm_id)) != first


def test_crash_is_listed_with_its_reason(rig: Rig, images: Path, caplog: pytest.LogCaptureFixture) -> None:
    vm_id = configure(rig, images)
    assert rig.daemon.handle({"cmd": "vm.boot", "id": vm_id})["ok"]
    rig.model.guest_crash(vm_id, scause=21, stval=0x10, sepc=0xFFFF_FFFF_8000_1234, htval=0x0400_0004)
    wait_for(lambda: "-> crashed: load guest-page fault" in caplog.text)
    vm = rig.daemon.handle({"cmd": "vm.list"})["vms"][1]
    assert vm["state"] == "crashed"
    assert vm["reason_text"] == (
        "load guest-page fault: no device at guest address 0x10000010 (sepc 0xffffffff80001234)"
    )
    assert rig.daemon.handle({"cmd": "vm.boot", "id": vm_id})["ok"]  # boots afresh
    assert rig.model.vms[vm_id].state == RUNNING


def test_restarted_daemon_loses_no_vm(rig: Rig, images: Path) -> None:
    configure(rig, images, "vm1")
    configure(rig, images, "vm2")
    assert rig.daemon.handle({"cmd": "vm.boot", "id": 1})["ok"]
    rig.model.guest_poweroff(1)
    wait_for(lambda: rig.daemon.vms[1].state == STOPPED)
    new = rig.restart_daemon()
    assert sorted(new.vms) == [0, 1, 2] and sorted(new.configs) == [1, 2]
    assert new.configs[2].kernel == str(images / "Image")
    assert new.handle({"cmd": "vm.boot", "id": 2})["ok"]  # its images found again from the stored config
    assert new.handle({"cmd": "vm.boot", "id": 1})["ok"]
    assert [v["state"] for v in new.handle({"cmd": "vm.list"})["vms"]] == ["running"] * 3


def test_reboot_asked_while_no_daemon_ran_is_done_at_start(rig: Rig, images: Path) -> None:
    vm_id = configure(rig, images)
    assert rig.daemon.handle({"cmd": "vm.boot", "id": vm_id})["ok"]
    rig.daemon.shutdown()
    rig.model.vms[vm_id].state = REBOOTING  # no event: nobody listens
    rig.restart_daemon()
    wait_for(lambda: rig.model.vms[vm_id].boots == 2 and rig.model.vms[vm_id].state == RUNNING)


@pytest.mark.parametrize(
    "req, code, message",
    [
        ({"cmd": "vm.stop", "id": 0}, 1, "vm 0 is the MVM"),
        ({"cmd": "vm.remove", "id": 0}, 1, "vm 0 is the MVM"),
        ({"cmd": "vm.boot", "id": 5}, 1, "no VM with id 5 (ENOVM)"),
        ({"cmd": "vm.stop", "id": 9}, 2, "VM id 9 is not 0 .. 7"),
        ({"cmd": "vm.explode"}, 2, "unknown command"),
        ({"nocmd": 1}, 2, '"cmd"'),
    ],
)
def test_refusals(rig: Rig, req: dict[str, Any], code: int, message: str) -> None:
    answer = rig.daemon.handle(req)
    assert answer["ok"] is False and answer["code"] == code and message in answer["error"], answer


def test_hypervisor_refusals_are_failures_config_errors_are_code_2(rig_factory: Any, images: Path) -> None:
    rig = rig_factory(irq_mode=1, aia_guests=2)
    configure(rig, images)
    c = example("vm2", images)
    c["name"] = "vm3"
    c["cpu"] = {"num": 1, "allocate_bitmap": "0b100", "master": 2}
    assert rig.daemon.handle({"cmd": "vm.config", "config": c, "base_dir": str(images)})["ok"]  # shares hart 2
    c["name"] = "vm4"
    answer = rig.daemon.handle({"cmd": "vm.config", "config": c, "base_dir": str(images)})
    assert answer == {
        "ok": False,
        "code": 1,
        "error": "hart 2 has no free guest interrupt file: it has 2 (aia-guests), each taken by a vCPU placed on it "
        "(EBUSY)",
    }
    c = example("vm2", images)
    c["emulated_device"]["emulated_device_list"].append(
        {"type": "EMU_DEVICE_T_PLIC", "base_ipa": "0xc000000", "length": "0x600000"}
    )
    answer = rig.daemon.handle({"cmd": "vm.config", "config": c, "base_dir": str(images)})
    assert answer["code"] == 2 and "[1].type: EMU_DEVICE_T_PLIC but the hypervisor runs in AIA mode" in answer["error"]
    c = example("vm2", images)
    c["name"] = "vm1"  # the hypervisor's own check: names are unique
    answer = rig.daemon.handle({"cmd": "vm.config", "config": c, "base_dir": str(images)})
    assert answer == {"ok": False, "code": 2, "error": "name: vm1 is already called so (EINVAL)"}
    assert sorted(rig.model.vms) == [0, 1, 2]  # nothing changed


def test_garbage_and_bad_frames_on_the_port_are_dropped(
    rig: Rig, images: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rig.model.send_raw(b"noise" * 10)
    rig.model.send(0x8015, 999, 0, bytes(128))  # a response nobody asked for
    rig.model.send(0x0100, 0, 0, bytes(128))  # an event with state 0
    rig.model.send(0x0002, 0, 0, b"")  # a request from the hypervisor
    rig.model.send(0x0006, 0, 0, b"")  # an unknown type
    vm_id = configure(rig, images)
    assert rig.daemon.handle({"cmd": "vm.boot", "id": vm_id})["ok"]
    assert "no such request is waiting" in caplog.text
    assert "the hypervisor sends only responses and events" in caplog.text
    assert "state 0 is not 1 .. 5" in caplog.text
    assert "unknown message type 0x6" in caplog.text


def test_timeout_when_the_hypervisor_does_not_answer(rig: Rig) -> None:
    rig.daemon.ch.timeout = 0.3
    rig.model._request = lambda *a: None  # type: ignore[method-assign]  # swallow every request
    answer = rig.daemon.handle({"cmd": "system.info"})
    assert answer["ok"] is False and answer["code"] == 1 and "no answer from the hypervisor" in answer["error"]


def test_find_control_port(tmp_path: Path) -> None:
    for port, name in (("vport0p0", ""), ("vport0p1", "something.else"), ("vport0p8", "org.pyshyper.control")):
        (tmp_path / port).mkdir()
        (tmp_path / port / "name").write_text(name + "\n")
    assert daemon.find_control_port(str(tmp_path)) == "/dev/vport0p8"
    (tmp_path / "vport0p8" / "name").write_text("other\n")
    assert daemon.find_control_port(str(tmp_path)) is None


def test_mediated_cfg(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = tmp_path / "mediated-cfg.json"
    good.write_text(json.dumps({"mediated": ["/dev/vdb", "/var/lib/disk.img"]}))
    assert daemon.load_mediated(str(good)) == ["/dev/vdb", "/var/lib/disk.img"]
    for text, message in (
        ("[]", "not an object"),
        ('{"mediated": "/dev/vdb"}', "not a list"),
        ('{"mediated": [1]}', "mediated[0]: not a file name"),
        ('{"mediated": [], "disks": []}', "disks: unknown field"),
        ("{", "is not JSON"),
    ):
        good.write_text(text)
        with pytest.raises(daemon.Failure, match=message.replace("[", r"\[")) as e:
            daemon.load_mediated(str(good))
        assert e.value.code == 2


def test_start_is_logged(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    text = "\n".join(r.getMessage() for r in caplog.get_records("setup"))
    assert "hypervisor 0.4.0, protocol 1, 4 harts, IRQ mode PLIC, 1 GiB of 1 GiB free" in text
    assert "vm 0 mvm: running" in text


@pytest.mark.fuzz
def test_fuzzed_frames_into_the_running_daemon(rig: Rig, images: Path, caplog: pytest.LogCaptureFixture) -> None:
    """5000 seeded malformed frames down the port into the daemon's reader thread: it drops them and keeps serving."""
    rng = random.Random(7)
    good = [
        raw(0x8016, 3, proto.encode_vm_list([sample_vm(id=0, console_port=0, hart_mask=3, vcpus=2), sample_vm()])),
        raw(0x0100, 0, proto.encode_vm(sample_vm(id=6, console_port=6, state=proto.STOPPED))),
        raw(0x8012, 4, b"hart 2 is taken", status=proto.EBUSY),
        raw(0x8001, 1, proto.encode_system(sample_system())),
        raw(0x8005, 5, proto.encode_sched_info(sample_vcpus())),
    ]
    rig.model.send_raw(b"".join(mutate(rng, good) for _ in range(5000)))
    rig.model.send_raw(bytes(proto.HEADER_SIZE + proto.MAX_PAYLOAD))  # completes whatever partial frame is left
    rig.model.send(0x0100, 0, 0, proto.encode_vm(sample_vm(id=5, name="sentinel", console_port=5)))
    wait_for(lambda: "sentinel" in caplog.text)  # everything before it has been read
    assert rig.daemon.ch._reader is not None and rig.daemon.ch._reader.is_alive()
    assert "control port: dropped" in caplog.text
    vm_id = configure(rig, images)
    assert rig.daemon.handle({"cmd": "vm.boot", "id": vm_id})["ok"]
