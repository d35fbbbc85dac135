"""QEMU's own machine: its device tree (`-M <machine>,dumpdtb=`) and the host CPU that tree describes (the ISA
string, MMU type and cache-block size the MVM's device tree starts from)."""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import fdt

from boards.mvm_fdt import QEMU_CBO_BLOCK_SIZE


@dataclass(frozen=True)
class HostCpu:
    isa: str
    mmu_type: str
    cbo_block_size: int


def qemu_device_tree(
    qemu: str = "qemu-system-riscv64", machine: str = "virt", cpu: str = "rv64", smp: int = 1, mem: str = "128M"
) -> bytes:
    """QEMU's own device tree (`-M <machine>,dumpdtb=`) for that machine, -cpu, -smp and -m. Raises what
    subprocess.run raises (OSError, CalledProcessError with QEMU's stderr, TimeoutExpired)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "qemu.dtb"
        subprocess.run(
            [qemu, "-M", f"{machine},dumpdtb={out}", "-cpu", cpu, "-smp", str(smp), "-m", mem, "-nographic"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        return out.read_bytes()


def host_cpu_from_qemu(qemu: str = "qemu-system-riscv64", machine: str = "virt", cpu: str = "rv64") -> HostCpu:
    """What QEMU puts in cpu@0 of its own device tree for `-M <machine> -cpu <cpu>` (e.g. `rv64,svnapot=true`)."""
    tree = fdt.parse_dtb(qemu_device_tree(qemu, machine, cpu))
    node = tree.get_node("/cpus/cpu@0")
    size = node.get_property("riscv,cbom-block-size")
    return HostCpu(
        node.get_property("riscv,isa").value,
        node.get_property("mmu-type").value,
        size.value if size is not None else QEMU_CBO_BLOCK_SIZE,
    )
