"""The test suite's own rules (tests/conftest.py, pyproject.toml): a test that needs a host tool skips without it
on a developer's machine and fails under CI=true; markers are declared (--strict-markers)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests import conftest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("ci", "outcome"), [("", pytest.skip.Exception), ("true", pytest.fail.Exception)])
def test_a_missing_tool_skips_or_fails_in_ci(monkeypatch, ci, outcome):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="no-such-tool-pyshyper is not installed"):
        conftest.require_tool("no-such-tool-pyshyper")


def test_a_present_tool_passes(monkeypatch):
    monkeypatch.setenv("CI", "true")
    conftest.require_tool("sh")


def test_markers_are_strict_and_declared():
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "--strict-markers" in options["addopts"].split()
    declared = {m.split(":")[0] for m in options["markers"]}
    assert {"qemu", "slow"} <= declared


def test_an_undeclared_marker_is_an_error(tmp_path):
    (tmp_path / "test_x.py").write_text("import pytest\n\n\n@pytest.mark.qemuu\ndef test_x():\n    pass\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(ROOT),
            "-c",
            str(ROOT / "pyproject.toml"),
            str(tmp_path / "test_x.py"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "'qemuu' not found in `markers` configuration option" in proc.stdout + proc.stderr


def test_summary_line_is_pytests_own():
    """The suite's conftests leave pytest's summary line alone: CI and people read `N passed, M skipped in T s`."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "tests/build/test_test_rules.py::test_a_present_tool_passes",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-2000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"=+ 1 passed in \d+\.\d+s =+", last), last
