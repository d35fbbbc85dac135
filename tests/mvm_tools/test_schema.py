"""The GVM config schema (shyper.schema): the shipped configs load, and each bad config is refused with an error
that names the field path and the reason."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from shyper import schema
from shyper.schema import ConfigErrors, load_config, load_config_file

from tests.mvm_tools.conftest import EXAMPLES, example, write_config


@pytest.mark.parametrize("name, hart", [("vm1", 2), ("vm2", 3)])
def test_shipped_configs_load(images: Path, name: str, hart: int) -> None:
    cfg = load_config_file(str(write_config(images, example(name, images))), irq_mode="aia", harts=4)
    assert cfg.name == name
    assert cfg.harts == [hart] and cfg.master == hart and cfg.vcpus == 1
    assert [(r.ipa, r.size) for r in cfg.regions] == [(0x8000_0000, 128 << 20)]
    assert (cfg.kernel_ipa, cfg.entry_ipa, cfg.ramdisk_ipa, cfg.dtb_ipa) == (
        0x8020_0000, 0x8020_0000, 0x8400_0000, 0x87E0_0000,
    )  # fmt: skip
    assert cfg.console == schema.Console(0x1000_1000, 1)
    assert (cfg.priority, cfg.time_slice_ms) == (0, None)  # no cpu.priority / time_slice_ms: the defaults
    assert cfg.dtb_file is None and cfg.cmdline == "console=hvc0 earlycon=sbi rdinit=/init"
    # relative names resolved against the config's directory, and stored that way for VM_CONFIG_GET
    assert cfg.kernel == str(images / "Image")
    stored = json.loads(cfg.stored_json())
    assert stored["image"]["ramdisk_filename"] == str(images / "gvm-initramfs.cpio")
    assert load_config(stored, "/", "plic", 4).kernel == cfg.kernel


def test_shipped_configs_name_the_mvm_files() -> None:
    for name in ("vm1", "vm2"):
        image = json.loads((EXAMPLES / f"{name}.json").read_text())["image"]
        assert image["kernel_filename"] == "/var/lib/shyper/Image"
        assert image["ramdisk_filename"] == "/var/lib/shyper/gvm-initramfs.cpio"


def test_flat_lists_plain_integers_and_imsic_passthrough(images: Path) -> None:
    c = example("vm1", images)
    c["emulated_device_list"] = c.pop("emulated_device")["emulated_device_list"]
    c["emulated_device_list"].append(
        {"name": "plic", "type": "EMU_DEVICE_T_PLIC", "base_ipa": 0xC00_0000, "length": 0x60_0000, "irq_id": 0}
    )
    c["passthrough_device_list"] = [{"name": "imsic-guest", "base_pa": "0x28002000", "base_ipa": "0x28000000",
                                     "length": "0x1000", "irq_num": 0, "irq_list": []}]  # fmt: skip
    del c["passthrough_device"]
    c["memory"]["region"] = [
        {"ipa_start": 0x8000_0000, "length": 0x800_0000},
        {"ipa_start": "0x100000000", "length": "0b1" + "0" * 24},
    ]
    c["cpu"] = {"num": 2, "allocate_bitmap": 0b1100, "master": 3}
    cfg = load_config(c, str(images), "plic", 4)
    assert cfg.irqc == "plic" and cfg.vcpus == 2 and cfg.hart_mask == 0b1100
    assert [r.size for r in cfg.regions] == [0x800_0000, 1 << 24]
    assert len(cfg.notes) == 1 and "IMSIC guest interrupt file, ignored" in cfg.notes[0]


def test_more_vcpus_than_harts_share_them(images: Path) -> None:
    """cpu.num may exceed the harts of cpu.allocate_bitmap (never fall below them): vCPU i goes on the (i mod k)-th
    of the k harts, so several of the VM's vCPUs share a hart (mvm-tools/README.md, hypervisor/core/gvm.py)."""
    c = example("vm1", images)
    c["cpu"] = {"num": 3, "allocate_bitmap": "0b0100", "master": 2}
    cfg = load_config(c, str(images), "plic", 4)
    assert (cfg.vcpus, cfg.hart_mask, cfg.harts, cfg.master) == (3, 0b0100, [2], 2)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(c: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = c
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        if value is DELETE:
            del node[last]
        else:
            node[int(last) if last.isdigit() else last] = value

    return apply


DELETE = object()
EMU = "emulated_device.emulated_device_list"

# (what is changed, the field path the error must name, a piece of the reason)
BAD: list[tuple[Callable[[dict[str, Any]], None], str, str]] = [
    (_set("memory.region.0.length", "0x8000100"), "memory.region[0].length", "not a multiple of 4096"),
    (_set("memory.region.0.ipa_start", "0x80000800"), "memory.region[0].ipa_start", "not a multiple of 4096"),
    (_set("memory.region.0.length", 0), "memory.region[0].length", "out of range"),
    (_set("memory.region", []), "memory.region", "has 0 entries"),
    (_set("memory.region.0.size", "0x1000"), "memory.region[0].size", "unknown field"),
    (_set("cpu.allocate_bitmap", "0b1100"), "cpu.allocate_bitmap", "has 2 harts, more than cpu.num 1"),
    (_set("cpu.master", 1), "cpu.master", "hart 1 is not in cpu.allocate_bitmap"),
    (_set("cpu.allocate_bitmap", "0b100000"), "cpu.allocate_bitmap", "names a hart above 3"),
    (_set("cpu.num", "two"), "cpu.num", "is not a number"),
    (_set("cpu.num", True), "cpu.num", "is not a number"),
    (_set("cpu.priority", 256), "cpu.priority", "256 is out of range 0 .. 255"),
    (_set("cpu.priority", -1), "cpu.priority", "-1 is out of range 0 .. 255"),
    (_set("cpu.priority", "high"), "cpu.priority", "'high' is not a number"),
    (_set("cpu.priority", 1.5), "cpu.priority", "1.5 is not a number"),
    (_set("cpu.priority", False), "cpu.priority", "False is not a number"),
    (_set("cpu.priority", None), "cpu.priority", "None is not a number"),
    (_set("cpu.time_slice_ms", 0), "cpu.time_slice_ms", "0 is out of range 1 .. 1000"),
    (_set("cpu.time_slice_ms", "1001"), "cpu.time_slice_ms", "1001 is out of range 1 .. 1000"),
    (_set("cpu.time_slice_ms", [10]), "cpu.time_slice_ms", "[10] is not a number"),
    (_set("cpu.timeslice", 10), "cpu.timeslice", "unknown field (known: num, allocate_bitmap, master, priority"),
    (_set("image.kernel_filename", "missing-Image"), "image.kernel_filename", "No such file or directory"),
    (_set("image.kernel_filename", ""), "image.kernel_filename", "empty"),
    (_set("image.kernel_load_ipa", "0x80100000"), "image.kernel_load_ipa", "not 2 MiB-aligned"),
    (_set("image.kernel_entry_point", "0x90000000"), "image.kernel_entry_point", "outside the kernel image"),
    (_set("image.ramdisk_load_ipa", "0x87ff0000"), "image.ramdisk_load_ipa", "not inside one memory region"),
    (_set("image.ramdisk_load_ipa", "0x80210000"), "image.ramdisk_load_ipa", "overlaps image.kernel_load_ipa"),
    (_set("image.device_tree_load_ipa", "0x90000000"), "image.device_tree_load_ipa", "not inside one memory region"),
    (_set("image.device_tree_load_ipa", "0x87e00004"), "image.device_tree_load_ipa", "not a multiple of 8"),
    (_set("image.kernel", "Image"), "image.kernel", "unknown field"),
    (_set("image.kernel_load_ipa", DELETE), "image.kernel_load_ipa", "missing"),
    (_set("name", "my vm"), "name", "is not 1 .. 31"),
    (_set("name", "x" * 32), "name", "longer than 31"),
    (_set("type", "VM_T_WINDOWS"), "type", "is not one of VM_T_LINUX, VM_T_BARE_METAL"),
    (_set("colour", "blue"), "colour", "unknown field"),
    (_set("dtb_device", {}), "dtb_device", "not supported"),
    (_set(f"{EMU}.0.type", "EMU_DEVICE_T_VIRTIO_NET"), f"{EMU}[0].type", "virtio-net is not served"),
    (_set(f"{EMU}.0.type", "EMU_DEVICE_T_FOO"), f"{EMU}[0].type", "unknown device type"),
    (_set(f"{EMU}.0.irq_id", 96), f"{EMU}[0].irq_id", "not an interrupt source 1 .. 95"),
    (_set(f"{EMU}.0.base_ipa", "0x80001000"), "memory.region[0]", "overlaps emulated_device"),
    (_set(f"{EMU}.0.base_ipa", "0xc001000"), EMU, "overlaps the PLIC"),
    (_set(f"{EMU}.0.cfg_num", 2), f"{EMU}[0].cfg_num", "cfg_list has 0 entries"),
    (_set(f"{EMU}", []), EMU, "a GVM needs its console"),
    (_set("memory.region.0.ipa_start", "0xc000000"), "memory.region[0]", "overlaps the PLIC"),
    (
        _set("passthrough_device.passthrough_device_list", [{"base_pa": "0x10000000", "length": "0x100"}]),
        "passthrough_device.passthrough_device_list[0]",
        "not supported: the MVM owns every device",
    ),
    (
        _set("emulated_device_list", []),
        "emulated_device",
        "given twice",
    ),
]


@pytest.mark.parametrize("change, path, reason", BAD, ids=[f"{p}:{r}"[:60] for _, p, r in BAD])
def test_bad_configs_name_the_field(
    images: Path, change: Callable[[dict[str, Any]], None], path: str, reason: str
) -> None:
    c = copy.deepcopy(example("vm1", images))
    change(c)
    with pytest.raises(ConfigErrors) as e:
        load_config(c, str(images), "plic", 4)
    assert any(err.path == path and reason in err.reason for err in e.value.errors), str(e.value)


@pytest.mark.parametrize(
    "priority, time_slice, want",
    [(0, 1, (0, 1)), (255, 1000, (255, 1000)), ("0xc8", "0b1010", (200, 10)), ("10", 25, (10, 25))],
)
def test_priority_and_time_slice(images: Path, priority: Any, time_slice: Any, want: tuple[int, int]) -> None:
    """cpu.priority (0 .. 255) and cpu.time_slice_ms (1 .. 1000), numbers as Rust-Shyper writes them; kept in
    the stored config as given."""
    c = example("vm1", images)
    c["cpu"].update(priority=priority, time_slice_ms=time_slice)
    cfg = load_config(c, str(images), "plic", 4)
    assert (cfg.priority, cfg.time_slice_ms) == want
    stored = json.loads(cfg.stored_json())["cpu"]
    assert (stored["priority"], stored["time_slice_ms"]) == (priority, time_slice)


def test_interrupt_controller_must_match_the_hypervisor_mode(images: Path) -> None:
    c = example("vm1", images)
    c["emulated_device"]["emulated_device_list"].append(
        {"type": "EMU_DEVICE_T_PLIC", "base_ipa": "0xc000000", "length": "0x600000"}
    )
    assert load_config(c, str(images)).irqc == "plic"  # mode not known yet (the CLI's local check)
    assert load_config(c, str(images), "plic", 4).irqc == "plic"
    with pytest.raises(ConfigErrors) as e:
        load_config(c, str(images), "aia", 4)
    (err,) = e.value.errors
    assert err.path == f"{EMU}[1].type" and "hypervisor runs in AIA mode" in err.reason
    c["emulated_device"]["emulated_device_list"][1] = {"type": "EMU_DEVICE_T_APLIC", "base_ipa": "0xd000000",
                                                       "length": "0x8000"}  # fmt: skip
    assert load_config(c, str(images), "aia", 4).irqc == "aia"
    with pytest.raises(ConfigErrors, match=r"\[1\]\.type: EMU_DEVICE_T_APLIC but the hypervisor runs in PLIC"):
        load_config(c, str(images), "plic", 4)


def test_several_errors_are_all_reported(images: Path) -> None:
    c = example("vm1", images)
    c["memory"]["region"][0]["length"] = "0x123"
    c["cpu"]["master"] = 0
    c["bogus"] = 1
    with pytest.raises(ConfigErrors) as e:
        load_config(c, str(images))
    assert {err.path for err in e.value.errors} >= {"memory.region[0].length", "cpu.master", "bogus"}


def test_not_json_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{ nope")
    with pytest.raises(ConfigErrors, match="is not JSON"):
        load_config_file(str(tmp_path / "bad.json"))
    with pytest.raises(ConfigErrors, match="cannot read"):
        load_config_file(str(tmp_path / "absent.json"))


def test_schema_tables_cover_rust_shypers_fields() -> None:
    image = schema.CONFIG.fields["image"]
    assert isinstance(image, schema.Obj)
    assert set(image.fields) == {
        "kernel_filename", "kernel_load_ipa", "kernel_entry_point", "device_tree_filename", "device_tree_load_ipa",
        "ramdisk_filename", "ramdisk_load_ipa",
    }  # fmt: skip
    assert {"name", "type", "cmdline", "memory", "cpu", "emulated_device_list", "passthrough_device_list"} <= set(
        schema.CONFIG.fields
    )
