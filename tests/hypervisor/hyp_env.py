"""Test-only helper: the hypervisor's modules under CPython (through the prelude) for one build configuration."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

from boards import make_config
from boards.constants import render_hypervisor_module
from compiler import prelude


def load_board(tmp_path: Path, irq: str = "plic") -> ModuleType:
    """Render `hypervisor.board` for qemu-virt in `irq` mode (AIA with 3 guest files) into tmp_path, drop every
    hypervisor module imported before, reset the prelude's memory and mocks, and load the board module: the
    hypervisor's other modules then import fresh, against this board. Returns the board module."""
    board = tmp_path / "board.py"
    board.write_text(render_hypervisor_module(make_config("qemu-virt", irq, 3 if irq == "aia" else None)))
    prelude.install_import_hook(["hypervisor"])
    for name in [n for n in sys.modules if n.startswith("hypervisor")]:
        sys.modules.pop(name)
    prelude.reset()
    b = prelude.load_module(str(board), "hypervisor.board")
    importlib.invalidate_caches()
    return b
