"""Shared helpers for the build-pipeline tests: small riscv64 objects and ELFs made with GNU binutils."""

from __future__ import annotations

from pathlib import Path

import pytest

from qemu import toolchain
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def binutils() -> None:
    """A test that needs GNU binutils for riscv64 (skipped without them, failed under CI=true)."""
    require_tool(toolchain.PREFIX + "as", toolchain.PREFIX + "ld")


@pytest.fixture
def asm(tmp_path: Path, binutils: None):
    """asm(name, source) -> object file assembled from `source` in tmp_path."""

    def make(name: str, source: str) -> Path:
        src = tmp_path / f"{name}.S"
        src.write_text(source)
        return toolchain.assemble(src, tmp_path / f"{name}.o")

    return make


@pytest.fixture
def fake_hyp_object(tmp_path: Path, binutils: None) -> Path:
    return toolchain.assemble(FIXTURES / "fake_hyp.S", tmp_path / "fake_hyp.o")
