"""The test-guest build: tests/guests/NAME/ -> OUT/guests/NAME.elf and .bin with a checked header."""

from __future__ import annotations

from pathlib import Path

import pytest

from qemu import toolchain
from qemu.build import (
    GUEST_BASE,
    GUEST_MAGIC,
    BuildError,
    build_guest,
    build_guests,
    check_guest_image,
    guest_dirs,
)
from tests.conftest import require_tool

GUESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def selftest(tmp_path_factory):
    require_tool(toolchain.PREFIX + "ld")
    return build_guest(GUESTS / "selftest", tmp_path_factory.mktemp("out"))


def test_guest_dirs_finds_selftest():
    assert GUESTS / "selftest" in guest_dirs()


def test_selftest_header(selftest):
    data = selftest.bin.read_bytes()
    assert len(data) == selftest.size
    assert data[:4] != b"\0\0\0\0" and data[0] & 0x7F == 0x6F  # jal x0 (j) over the header
    assert int.from_bytes(data[8:16], "little") == GUEST_MAGIC
    assert data[8:16] == b"PYSHGUST"
    assert int.from_bytes(data[16:24], "little") == len(data)
    assert int.from_bytes(data[24:32], "little") == selftest.instances == 2


def test_selftest_elf(selftest):
    from elftools.elf.elffile import ELFFile

    with open(selftest.elf, "rb") as f:
        elf = ELFFile(f)
        assert elf["e_entry"] == GUEST_BASE
        syms = {s.name: s for s in elf.get_section_by_name(".symtab").iter_symbols()}
    for name in ("guest_main", "guest_trap", "guest_trap_entry", "pyshyper_panic", "__stack_top"):
        assert name in syms and syms[name]["st_shndx"] != "SHN_UNDEF", name


def test_bad_header_is_reported(selftest, tmp_path):
    bad = tmp_path / "bad.bin"
    data = bytearray(selftest.bin.read_bytes())
    data[8:16] = b"NOTAGUST"
    bad.write_bytes(bytes(data))
    with pytest.raises(BuildError, match="no magic at offset 8"):
        check_guest_image("bad", selftest.elf, bad)


def test_build_guests_none(tmp_path):
    assert build_guests(tmp_path, [], quiet=True) == ()
