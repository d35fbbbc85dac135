"""Shared memory between guest VMs on the MVM's side: the config (`shyper shm config FILE.json`) checked field by
field, the SHM records both ways, the commands `shyper shm config / list / remove` through the daemon against the
hypervisor model (tests/mvm_tools/hvmodel.py), and the region and its doorbell in a GVM's device tree."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import fdt
import pytest
from shyper import cli, proto
from shyper.schema import ConfigErrors
from shyper.shm import load_shm

from tests.mvm_tools.conftest import Rig, example, write_config

LINK0 = {"name": "link0", "ipa": "0x9000_0000", "size": "2M", "irq": 8, "vms": {"vm1": "rw", "vm2": "ro"}}


def run(rig: Rig, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["--socket", rig.socket_path, *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def write_shm(tmp: Path, obj: Any, name: str = "link0.json") -> Path:
    p = tmp / name
    p.write_text(json.dumps(obj))
    return p


def test_config_defaults_and_number_forms() -> None:
    cfg = load_shm(LINK0, "plic")
    assert (cfg.name, cfg.ipa, cfg.size, cfg.doorbell_ipa, cfg.irq) == ("link0", 0x9000_0000, 2 << 20, 0x9020_0000, 8)
    assert cfg.vms == {"vm1": "rw", "vm2": "ro"}
    rec = cfg.record()
    assert rec.vms == (("vm1", proto.SHM_RW, 0), ("vm2", proto.SHM_RO, 0))
    assert load_shm({**LINK0, "size": 4096, "doorbell_ipa": "0x8fff_f000"}).doorbell_ipa == 0x8FFF_F000


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"size": "0x1800"}, "size: 0x1800 is not a nonzero multiple of 4096"),
        ({"size": "2T"}, "size: '2T' is not a number"),
        ({"size": "2G"}, "size: 0x80000000 is above 0x40000000 (1 GiB)"),
        ({"ipa": "0x90000800"}, "ipa: 0x90000800 is not a multiple of 4096"),
        ({"ipa": "0x1ffffff0000"}, "ipa: the region ends at 0x200001f0000, above the guest-physical limit"),
        ({"ipa": "0xc000000"}, "ipa: 0xc000000 .. 0xc200000 overlaps the PLIC"),
        ({"doorbell_ipa": "0x90100000"}, "doorbell_ipa: 0x90100000 is inside the region"),
        ({"irq": 0}, "irq: 0 is not an interrupt source 1 .. 95"),
        ({"irq": "eight"}, "irq: 'eight' is not a number"),
        ({"vms": {}}, "vms: not an object of 1 .. 7 VMs by name"),
        ({"vms": {"vm1": "wr"}}, 'vms.vm1: \'wr\' is not "rw" or "ro"'),
        ({"vms": {"vm 1": "rw"}}, "vms.vm 1: not a VM name"),
        ({"name": ""}, "name: '' is not 1 .. 31 of"),
        ({"colour": "red"}, "colour: unknown field (known: name, ipa, size, doorbell_ipa, irq, vms)"),
    ],
)
def test_bad_config_names_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigErrors) as e:
        load_shm({**LINK0, **change}, "plic")
    assert any(message in str(err) for err in e.value.errors), e.value.errors


def test_missing_fields_all_listed() -> None:
    with pytest.raises(ConfigErrors) as e:
        load_shm({"name": "x"})
    assert sorted(err.path for err in e.value.errors) == ["ipa", "irq", "size", "vms"]


def test_aia_controller_and_sources() -> None:
    with pytest.raises(ConfigErrors, match=r"doorbell_ipa: 0xd000000 .. 0xd001000 overlaps the APLIC"):
        load_shm({**LINK0, "doorbell_ipa": "0xd000000"}, "aia")
    with pytest.raises(ConfigErrors, match=r"ipa: 0x28000000 .. 0x28200000 overlaps the IMSIC pages"):
        load_shm({**LINK0, "ipa": "0x2800_0000"}, "aia")


def test_record_round_trip_and_malformed() -> None:
    rec = proto.ShmRecord("link0", 0x9000_0000, 0x20_0000, 0x9020_0000, 8, (("vm1", 2, 1), ("vm2", 1, 0)))
    raw = proto.encode_shm(rec, request=False)
    assert len(raw) == proto.SHM_RECORD_SIZE == 344
    assert proto.decode_shm(raw) == rec
    assert proto.decode_shm_list(proto.encode_shm_list([rec, rec])) == [rec, rec]
    with pytest.raises(proto.ProtocolError, match="a VM id in a request"):
        proto.encode_shm(rec)
    bad = bytearray(raw)
    bad[64 + 2 * 40] = ord("x")  # an entry beyond the count
    with pytest.raises(proto.ProtocolError, match=r"vms\[2\] set beyond its count"):
        proto.decode_shm(bytes(bad))
    with pytest.raises(proto.ProtocolError, match="count 5 does not match"):
        proto.decode_shm_list(b"\x05\0\0\0\0\0\0\0" + raw)


def loaded_dtb(rig: Rig, vm_id: int) -> fdt.FDT:
    vm = rig.model.vms[vm_id]
    head = vm.read(vm.dtb, 8)
    return fdt.parse_dtb(vm.read(vm.dtb, int.from_bytes(head[4:8], "big")))


@pytest.mark.parametrize("irq_mode", [0, 1], ids=["plic", "aia"])
def test_session(rig_factory, images: Path, irq_mode: int, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    """Define link0 for vm1 (rw) and vm2 (ro), make both, boot them: each device tree has the region (no-map,
    outside memory) and its doorbell; `shyper shm list` shows who maps it; the region is refused removal while
    mapped, its pages come back with the last VM, then it is removed."""
    rig: Rig = rig_factory(irq_mode=irq_mode, aia_guests=3)
    free = rig.model.free_pages
    path = write_shm(images, LINK0)
    code, out, err = run(rig, capsys, "shm", "config", str(path))
    assert (code, out) == (0, "shared memory link0: defined (2 MiB at 0x90000000, doorbell 0x90200000)\n"), err
    code, _, err = run(rig, capsys, "shm", "config", str(path))
    assert code == 2 and f"shyper: {path}: name: shared memory link0 exists" in err
    bad = write_shm(images, {**LINK0, "size": "3K"}, "bad.json")
    code, _, err = run(rig, capsys, "shm", "config", str(bad))
    assert code == 2 and f"shyper: {bad}: size: 0xc00 is not a nonzero multiple of 4096" in err

    for name in ("vm1", "vm2"):
        assert (
            run(rig, capsys, "vm", "config", str(write_config(images, example(name, images), f"{name}.json")))[0] == 0
        )
    assert rig.model.free_pages == free - 2 * (128 << 20) // 4096 - 512  # the region's pages, taken once
    code, out, _ = run(rig, capsys, "shm", "list")
    assert code == 0
    head, row = out.splitlines()
    assert head.split() == ["NAME", "SIZE", "IPA", "DOORBELL", "IRQ", "VMS"]
    assert re.match(r"link0\s+2 MiB\s+0x90000000\s+0x90200000\s+8\s+vm1 rw \(vm1\), vm2 ro \(vm2\)$", row), row
    code, out, _ = run(rig, capsys, "shm", "list", "--json")
    assert code == 0 and json.loads(out)[0]["vms"] == [
        {"name": "vm1", "access": "rw", "id": 1},
        {"name": "vm2", "access": "ro", "id": 2},
    ]

    # a region naming a VM that exists is refused by the hypervisor (defined before the VMs it names)
    late = write_shm(images, {**LINK0, "name": "late", "ipa": "0xa000_0000", "irq": 9}, "late.json")
    code, _, err = run(rig, capsys, "shm", "config", str(late))
    assert code == 1 and "vms: vm1 exists (vm1): shared memory is defined before the VMs that map it (EBUSY)" in err

    for vid, access in ((1, "rw"), (2, "ro")):
        assert run(rig, capsys, "vm", "boot", str(vid))[0] == 0
        tree = loaded_dtb(rig, vid)
        region = tree.get_node("reserved-memory/shm@90000000")
        assert region.exist_property("no-map")
        assert list(region.get_property("reg").data) == [0, 0x9000_0000, 0, 0x20_0000]
        for node in tree.root.nodes:  # outside every memory node
            if node.name.startswith("memory@"):
                base, size = (lambda d: (d[0] << 32 | d[1], d[2] << 32 | d[3]))(list(node.get_property("reg").data))
                assert not base <= 0x9000_0000 < base + size
        door = tree.get_node("soc/shm-doorbell@90200000")
        assert door.get_property("compatible").value == "pyshyper,shm-doorbell"
        assert list(door.get_property("reg").data) == [0, 0x9020_0000, 0, 0x1000]
        assert list(door.get_property("interrupts").data) == ([8] if irq_mode == 0 else [8, 4])
        assert door.get_property("memory-region").value == region.get_property("phandle").value
        assert door.get_property("pyshyper,access").value == access
        assert door.get_property("pyshyper,name").value == "link0"

    code, _, err = run(rig, capsys, "shm", "remove", "link0")
    assert code == 1 and "name: link0 is mapped by vm1 vm2 (remove them first) (EBUSY)" in err
    assert run(rig, capsys, "vm", "remove", "1")[0] == 0
    assert rig.model.free_pages == free - (128 << 20) // 4096 - 512  # vm2 still maps it
    assert run(rig, capsys, "vm", "remove", "2")[0] == 0
    assert rig.model.free_pages == free
    assert run(rig, capsys, "shm", "remove", "link0")[:2] == (0, "shared memory link0: removed\n")
    code, _, err = run(rig, capsys, "shm", "remove", "link0")
    assert code == 1 and "name: no shared memory called link0 (EINVAL)" in err
    assert run(rig, capsys, "shm", "list", "--json")[1] == "[]\n"


def test_vm_without_region_has_no_reserved_memory(rig: Rig, images: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(rig, capsys, "shm", "config", str(write_shm(images, {**LINK0, "vms": {"vm1": "rw"}})))[0] == 0
    assert run(rig, capsys, "vm", "config", str(write_config(images, example("vm2", images), "vm2.json")))[0] == 0
    assert run(rig, capsys, "vm", "boot", "1")[0] == 0
    tree = loaded_dtb(rig, 1)
    assert not tree.exist_node("reserved-memory")
    assert not any(n.name.startswith("shm-doorbell") for n in tree.get_node("soc").nodes)


@pytest.mark.parametrize("argv", [["shm"], ["shm", "config"], ["shm", "list"], ["shm", "remove"]])
def test_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main([*argv, "--help"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("usage: shyper")
