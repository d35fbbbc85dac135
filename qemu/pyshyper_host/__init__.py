"""The host side of PyShyper (the directory qemu/): the `pyshyper` command (cli), the build pipeline (build/), the
guest images (images/), QEMU runs and what watches them (run/), and the benchmarks (bench/).

Its import name is not `qemu`, which QEMU's own Python packages (`qemu.qmp`) use."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # qemu/pyshyper_host/__init__.py -> the checkout
