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


@pytest.fixture
def guest_module():
    """guest.py under CPython (compiler/LANGUAGE.md section 10), a fresh simulated memory."""
    import sys

    from compiler import prelude

    prelude.install_import_hook(["hypervisor", "tests.guests.common", "tests.guests.latency"])
    for name in [n for n in sys.modules if n.startswith(("hypervisor", "tests.guests.common", "tests.guests.latency"))]:
        sys.modules.pop(name)
    prelude.reset()
    return prelude.load_module(str(GUEST / "guest.py"), "tests.guests.latency.guest")


def _bootargs(g, text: bytes) -> None:
    from compiler.prelude import cstr, u64

    s = cstr(text)
    g.bootargs[0] = u64(s.addr())
    g.bootargs[1] = u64(len(text) + 1)  # a device-tree string property's length counts its NUL


def test_bootargs_words(guest_module):
    """`key=value` words of /chosen/bootargs as shyper's device tree gives them (the config's cmdline, then the
    VM's hostname): a key matches whole words only, a missing or empty one gives the default."""
    from compiler.prelude import cstr, u64

    g = guest_module
    _bootargs(g, b"mode=switch n=200 xn=9 min_us=50 timer=sbi max_us= hostname=latency")
    assert g.arg_u64(cstr(b"n"), u64(5)) == 200
    assert g.arg_u64(cstr(b"min_us"), u64(5)) == 50
    assert g.arg_u64(cstr(b"max_us"), u64(7)) == 7  # empty
    assert g.arg_u64(cstr(b"seed"), u64(3)) == 3  # absent
    assert g.arg_is(cstr(b"timer"), cstr(b"sbi"))
    assert g.arg_is(cstr(b"mode"), cstr(b"switch")) and not g.arg_is(cstr(b"mode"), cstr(b"swi"))
    assert g.arg_is(cstr(b"hostname"), cstr(b"latency"))  # the last word, up to the NUL
    _bootargs(g, b"")
    assert g.arg_u64(cstr(b"n"), u64(2000)) == 2000 and not g.arg_is(cstr(b"mode"), cstr(b"switch"))


def test_deadlines_follow_xorshift64(guest_module):
    from compiler.prelude import u64

    def ref(x: int) -> int:  # Marsaglia 2003, the (13, 7, 17) triple on 64 bits
        m = (1 << 64) - 1
        x ^= (x << 13) & m
        x ^= x >> 7
        x ^= (x << 17) & m
        return x

    x, y = u64(1), 1
    for _ in range(100):
        x, y = guest_module.xorshift64(x), ref(y)
        assert int(x) == y != 0
