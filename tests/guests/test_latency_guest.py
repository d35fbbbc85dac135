"""The latency guest (tests/guests/latency, `just bench-latency`'s): it builds into a checked image, its trap vector
and switch recorder are in it, and image, .bss and stack stay below the device tree its VM config places in the
same 1 MiB of guest memory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyshyper_host.build import toolchain
from pyshyper_host.build.pipeline import GUEST_BASE, GUEST_MAGIC, build_guest
from tests.conftest import require_tool

GUEST = Path(__file__).resolve().parent / "latency"


@pytest.fixture(scope="module")
def guest(tmp_path_factory):
    require_tool(toolchain.PREFIX + "ld")
    return build_guest(GUEST, tmp_path_factory.mktemp("out"))


def _symbols(elf_path: Path) -> dict:
    from elftools.elf.elffile import ELFFile

    with open(elf_path, "rb") as f:
        elf = ELFFile(f)
        return {s.name: s["st_value"] for s in elf.get_section_by_name(".symtab").iter_symbols() if s.name}


def test_image_header(guest):
    data = guest.bin.read_bytes()
    assert int.from_bytes(data[8:16], "little") == GUEST_MAGIC
    assert int.from_bytes(data[16:24], "little") == len(data) == guest.size
    assert int.from_bytes(data[24:32], "little") == guest.instances == 1


def test_vector_and_recorder_are_linked(guest):
    syms = _symbols(guest.elf)
    for name in ("guest_main", "guest_trap", "latency_trap_entry", "latency_trap_time", "switch_record"):
        assert syms.get(name, 0) >= GUEST_BASE, name
    assert syms["latency_trap_entry"] % 4 == 0  # stvec direct mode: a 4-byte aligned base (Priv 12.1.2)


def test_everything_stays_below_the_device_tree(guest):
    cfg = json.loads((GUEST / "latency.json").read_text())
    region = cfg["memory"]["region"][0]
    dtb = int(cfg["image"]["device_tree_load_ipa"], 16)
    assert int(cfg["image"]["kernel_load_ipa"], 16) == int(region["ipa_start"], 16) == GUEST_BASE
    assert _symbols(guest.elf)["_end"] <= dtb < GUEST_BASE + int(region["length"], 16)
    assert cfg["image"]["kernel_filename"] == guest.bin.name
