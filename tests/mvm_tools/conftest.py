"""Fixtures of the mvm-tools tests: fake guest images, configs, and a daemon wired to the hypervisor model."""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from shyper import daemon, devtree

from tests.mvm_tools.hvmodel import HypervisorModel

EXAMPLES = Path(__file__).resolve().parents[2] / "mvm-tools" / "examples"

# The MVM's cpu@0 under QEMU rv64 with V and Svnapot (board.toml's qemu_cpu) in AIA mode, as /proc/device-tree
# shows it (boards/mvm_fdt.py's QEMU_RV64_ISA minus mvm.toml's cpu.isa.remove)
MVM_ISA = (
    "rv64imafdcv_zic64b_zicbop_ziccamoa_ziccif_zicclsm_ziccrse_zicntr_zicsr_zifencei_zihintntl_zihintpause_zmmul"
    "_za64rs_zaamo_zalrsc_zfa_zca_zcd_zba_zbb_zbc_zbs_zve32f_zve32x_zve64f_zve64d_zve64x_ssaia_ssccptr"
    "_sscounterenw_sstc_sstvala_sstvecd_ssu64xl_svnapot_svvptc"
)
HOST_CPU = devtree.HostCpu(
    isa=MVM_ISA,
    isa_base="rv64i",
    extensions=tuple(["i", "m", "a", "f", "d", "c", "v"] + MVM_ISA.split("_")[1:]),
    mmu_type="riscv,sv57",
    timebase_frequency=10_000_000,
    block_sizes=(("riscv,cbop-block-size", 64),),
)


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """A kernel and an initramfs of random bytes (sizes not multiples of a page or of a load chunk)."""
    rng = random.Random(1)
    (tmp_path / "Image").write_bytes(rng.randbytes(300_001))
    (tmp_path / "gvm-initramfs.cpio").write_bytes(rng.randbytes(150_003))
    return tmp_path


def example(name: str, images: Path) -> dict[str, Any]:
    """A shipped example config with its image file names pointing into `images` (relative to it)."""
    cfg = json.loads((EXAMPLES / f"{name}.json").read_text())
    cfg["image"]["kernel_filename"] = "Image"
    cfg["image"]["ramdisk_filename"] = "gvm-initramfs.cpio"
    return cfg


def write_config(images: Path, cfg: dict[str, Any], name: str = "vm.json") -> Path:
    path = images / name
    path.write_text(json.dumps(cfg, indent=2))
    return path


@dataclass
class Rig:
    model: HypervisorModel
    daemon: daemon.Daemon
    socket_path: str
    port: socket.socket

    def restart_daemon(self) -> daemon.Daemon:
        """Kill this daemon (close its port and socket) and start a new one on a fresh open of the port."""
        self.daemon.shutdown()
        close_port(self.port)
        self.daemon, self.port = start_daemon(self.model, self.socket_path)
        return self.daemon


def close_port(port: socket.socket) -> None:
    try:
        port.shutdown(socket.SHUT_RDWR)  # wakes the daemon's reader and the model's loop
    except OSError:
        pass
    port.close()


def start_daemon(model: HypervisorModel, socket_path: str) -> tuple[daemon.Daemon, socket.socket]:
    ours, theirs = socket.socketpair()
    model.attach(theirs)
    consoles = os.path.join(os.path.dirname(os.path.dirname(socket_path)), "dev")  # GVMs' hvcN (tests)
    d = daemon.Daemon(
        daemon.Channel(ours.fileno(), timeout=10), socket_path, cpu=HOST_CPU, load_chunk=8192, console_dir=consoles
    )
    d.start()
    threading.Thread(target=d.serve_forever, daemon=True).start()
    return d, ours


@pytest.fixture
def rig_factory(caplog: pytest.LogCaptureFixture) -> Iterator[Any]:
    caplog.set_level(logging.INFO, logger="shyper")
    rigs: list[Rig] = []
    dirs: list[str] = []

    def make(**model_args: Any) -> Rig:
        d = tempfile.mkdtemp(prefix="shyper-", dir="/tmp")  # AF_UNIX paths are short
        dirs.append(d)
        path = os.path.join(d, "run", "shyper.sock")
        model = HypervisorModel(**model_args)
        dmn, port = start_daemon(model, path)
        rig = Rig(model, dmn, path, port)
        rigs.append(rig)
        return rig

    yield make
    for r in rigs:
        r.daemon.shutdown()
        close_port(r.port)
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def rig(rig_factory: Any) -> Rig:
    return rig_factory()
