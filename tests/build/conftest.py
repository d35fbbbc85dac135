"""Shared helpers for the build-pipeline tests: small riscv64 objects and ELFs made with GNU binutils."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from qemu import toolchain

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def binutils() -> None:
    """Skip a test that needs GNU binutils for riscv64 when they are not installed."""
    if shutil.which(toolchain.PREFIX + "as") is None:
        pytest.skip("binutils-riscv64-unknown-elf is not installed (qemu/setup-host.sh)")


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
