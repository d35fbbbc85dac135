"""`pyshyper build` / `pyshyper run` argument handling: bad arguments get one line on stderr and exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]


def pyshyper(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyshyper_host.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--irq", "foo"], "--irq must be one of plic, aia, not 'foo'"),
        (["--aia-guests", "0"], "--aia-guests must be between 1 and 7, not 0"),
        (["--irq", "aia", "--aia-guests", "8"], "--aia-guests must be between 1 and 7, not 8"),
        (["--aia-guests", "2"], "--aia-guests needs --irq aia"),
        (["--aia-guests", "three"], "--aia-guests: expected an integer, not 'three'"),
        (["--board", "nope"], "unknown board 'nope' (known: qemu-virt)"),
        (["--board", "../boards"], "unknown board '../boards'"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    ],
)
def test_bad_build_argument_exits_2_with_one_line(args, message, tmp_path):
    proc = pyshyper("build", "--out", str(tmp_path / "out"), *args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("pyshyper build: error: ")
    assert message in lines[0]
    assert proc.stdout == ""
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--irq", "foo"], "--irq must be one of plic, aia"),
        (["--smp", "0"], "--smp must be between 1 and 8"),
        (["--smp", "99"], "--smp must be between 1 and 8"),
        (["--mem", "lots"], "--mem must be a size like 512M or 2G"),
        (["--mem", "16M"], "--mem 16M is too small"),
        (["--mem", "1G"], "--mem 1G is too small: the MVM needs at least 2G"),
        (["--guest", "mvm", "--smp", "1"], "--smp 1 is too few: the MVM's vCPUs run on harts 0..1"),
    ],
)
def test_bad_run_argument_exits_2_with_one_line(args, message):
    proc = pyshyper("run", "--print-command", *args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pyshyper run: error: ") and message in lines[0], proc.stderr


@pytest.mark.parametrize("command", ["build", "run"])
def test_help(command):
    proc = pyshyper(command, "--help")
    assert proc.returncode == 0
    for option in ("--board", "--irq", "--aia-guests", "--out"):
        assert option in proc.stdout


def test_top_level_help_lists_subcommands():
    proc = pyshyper("--help")
    assert proc.returncode == 0
    for command in ("cc", "build", "run", "images"):
        assert command in proc.stdout


def test_makefile_compatibility_form():
    """ARCH=riscv64 IRQ=aia AIA_GUESTS=3 make run  ==  pyshyper run --irq aia --aia-guests 3"""
    require_tool("make")
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    env.update({"ARCH": "riscv64", "IRQ": "aia", "AIA_GUESTS": "3"})
    proc = subprocess.run(
        ["make", "--no-print-directory", "-n", "run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == ".venv/bin/just run --irq aia --aia-guests 3"
    env["ARCH"] = "arm64"
    proc = subprocess.run(
        ["make", "--no-print-directory", "-n", "run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0 and "riscv64 only" in proc.stderr
