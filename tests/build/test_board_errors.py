"""Bad board data is bad input: a copy of boards/qemu-virt with one field broken makes `pyshyper build` (and
`pyshyper run`) print one line naming the file, the field and the reason, and exit 2, never a traceback. The
mvm.toml cases are the loader's own (tests/build/test_mvm_dtb.py BAD_FIELDS), here driven through the command."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pyshyper_host import cli
from tests.build.test_mvm_dtb import BAD_FIELDS as MVM_BAD_FIELDS

ROOT = Path(__file__).resolve().parents[2]
BOARD = ROOT / "boards" / "qemu-virt"

BOARD_BAD_FIELDS = [
    # (pattern in board.toml, replacement, field named in the error, a word of the reason)
    (r"^max_harts = 8", "max_harts = 0", "max_harts", "must be positive"),
    (r"^hart_stack_size = 0x4000", "hart_stack_size = 0x4008", "hart_stack_size", "aligned"),
    (r'^qemu_cpu = "rv64,v=true,svnapot=true"', "qemu_cpu = 64", "qemu_cpu", "must be str"),
    (r"^default_smp = 4", "default_smp = 9", "default_smp", "more than max_harts"),
    (r'^default_mem = "2G"', 'default_mem = "lots"', "default_mem", "cannot read memory size"),
    (r"^load_address = 0x8020_0000", "load_address = 0x7020_0000", "hypervisor", "not inside the board's RAM"),
    (r"^load_address = 0x8400_0000", "load_address = 0x8100_0000", "guest_images", "overlaps the hypervisor"),
    (r"^size = 0x100\nirq = 10", "size = 0x100\nirq = 100", "uart.irq", "beyond the interrupt controllers"),
    (r"^size = 0x60_0000\nnum_sources = 96", "size = 0x60_0000\nnum_sources = 1", "plic.num_sources", "2..1024"),
    (r"^max_guests = 7 ", "max_guests = 70 ", "imsic.max_guests", "1..63"),
    (r"^default_guests = 3", "default_guests = 9", "imsic.default_guests", "more than max_guests"),
    (r"^\[clint\]", "[clnt]", "clint", "missing"),
    (r"^base = 0x2F0_0000\nsize = 0x4000", "base = 0x2F0_0000\nsize = 0x10", "sswi.size", "no SETSSIP word"),
    (r'^qemu_option = "aclint=on"', "qemu_option = 1", "sswi.qemu_option", "must be str"),
    (r"^base = 0x2F0_0000", "base = 0x2F0_0010", "sswi.base", "aligned"),
    (r"^timebase_frequency = 10_000_000", "timebase_frequency = 10_000_000\ntimebase = 1", "timebase", "unknown"),
    (r'^name = "qemu-virt"', 'name = "other-virt"', "name", "does not match its directory"),
    (r"^base = 0x1000_8000\nsize = 0x1000", "base = 0x1000_8000\nsize = 0", "virtio_mmio[7].size", "positive"),
]

CASES = [("board.toml", *c) for c in BOARD_BAD_FIELDS] + [("mvm.toml", *c) for c in MVM_BAD_FIELDS]


def broken_board(tmp_path: Path, file: str, pattern: str, replacement: str) -> Path:
    """A copy of the qemu-virt board with one edit in `file`."""
    board = tmp_path / "qemu-virt"
    shutil.copytree(BOARD, board)
    text = (board / file).read_text()
    new, n = re.subn(pattern, replacement, text, count=1, flags=re.M)
    assert n == 1, f"pattern {pattern!r} not found in {file}"
    (board / file).write_text(new)
    return board


@pytest.mark.parametrize(
    ("file", "pattern", "replacement", "field_name", "reason"),
    CASES,
    ids=[f"{c[0]}:{c[3]}-{i}" for i, c in enumerate(CASES)],
)
def test_build_names_file_field_and_reason(tmp_path, capsys, file, pattern, replacement, field_name, reason):
    board = broken_board(tmp_path, file, pattern, replacement)
    rc = cli.main(["build", "--board", str(board), "--out", str(tmp_path / "out"), "--no-guests", "-q"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1, err
    assert err.startswith(f"pyshyper build: error: {board / file}: {field_name}: "), err
    assert reason in err, err


def test_run_reports_a_bad_mvm_toml_the_same_way(tmp_path, capsys):
    board = broken_board(tmp_path, "mvm.toml", r"^num = 2", "num = 0")
    rc = cli.main(["run", "--board", str(board), "--out", str(tmp_path / "out"), "--print-command"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err == f"pyshyper run: error: {board / 'mvm.toml'}: cpu.num: must be positive, not 0\n"


@pytest.mark.parametrize(
    ("pattern", "replacement", "line"),
    [
        (r"^num = 2", "num = 0", "mvm.toml: cpu.num: must be positive, not 0"),
        (r"^host = 0xC000_0000", "host = 0xE000_0000", "mvm.toml: memory[0].host: [0xe0000000, 0x120000000) is not"),
    ],
)
def test_the_command_prints_no_traceback(tmp_path, pattern, replacement, line):
    """The installed command itself, as a user runs it (the two cases a traceback was seen for)."""
    board = broken_board(tmp_path, "mvm.toml", pattern, replacement)
    proc = subprocess.run(
        [sys.executable, "-m", "pyshyper_host.cli", "build", "--board", str(board), "--out", str(tmp_path / "out")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [proc.stderr.strip()], proc.stderr
    assert proc.stderr.startswith(f"pyshyper build: error: {board}/{line}"), proc.stderr


def test_a_board_under_the_working_directory_is_named_relative(monkeypatch, tmp_path, capsys):
    """A board's file is named relative to the working directory when it is under it (boards/qemu-virt/... from
    the project root): the path a user would edit."""
    broken_board(tmp_path, "board.toml", r"^max_harts = 8", "max_harts = -1")
    monkeypatch.chdir(tmp_path)
    rc = cli.main(["build", "--board", "./qemu-virt", "--out", str(tmp_path / "out"), "-q"])
    assert rc == 2
    assert (
        capsys.readouterr().err == "pyshyper build: error: qemu-virt/board.toml: max_harts: must be positive, not -1\n"
    )
