"""The hypervisor's per-vCPU statistics of the MVM: the lines it prints at the MVM's power-off, and the statistics
page (boards/<board>/mvm.toml, "stats") read from the MVM's shell with busybox devmem."""

from __future__ import annotations

import re
from dataclasses import dataclass

from boards import load_board
from boards.mvm import load_mvm
from pyshyper_host.bench.console import BootError, Shell

TIMEBASE_HZ = load_board("qemu-virt").timebase_frequency  # the time CSR's rate, boards/qemu-virt/board.toml

STATS_LINE = re.compile(
    r"pyshyper: vm(\d+) vcpu(\d+): traps (\d+), wfi (\d+), sbi (\d+), time (\d+)"
    r"(?:, irq (\d+), mmio (\d+), fetched (\d+))?"
)


@dataclass
class VcpuStats:
    vm: int
    vcpu: int
    traps: int
    wfi: int
    sbi: int
    ticks: int  # the time CSR when the statistics were printed (TIMEBASE_HZ)
    irqs: int = 0  # the hypervisor's own interrupts
    mmio: int = 0  # emulated MMIO accesses
    fetched: int = 0  # of which decoded from the instruction read back with hlvx.hu (no htinst)


def parse_vcpu_stats(log: str) -> dict[int, VcpuStats]:
    """The hypervisor's per-vCPU statistics lines of the MVM (vm0) printed at its reset, by vCPU id."""
    out: dict[int, VcpuStats] = {}
    for m in STATS_LINE.finditer(log):
        vm, vcpu, traps, wfi, sbi, ticks, irqs, mmio, fetched = (int(g or 0) for g in m.groups())
        if vm == 0:
            out[vcpu] = VcpuStats(vm, vcpu, traps, wfi, sbi, ticks, irqs, mmio, fetched)
    return out


def stats_base() -> int:
    """Guest-physical address of the hypervisor's statistics page (boards/<board>/mvm.toml, "stats")."""
    dev = load_mvm().emulated_named("stats")
    if dev is None:
        raise RuntimeError("mvm.toml has no 'stats' page")
    return dev.base


def stats_reads(vcpus: int = 2) -> str:
    """Shell commands reading the hypervisor's counters of each MVM vCPU from the statistics page with busybox
    devmem: per vCPU i at base + 0x20 * i, exits, WFI exits, SBI calls, time CSR (each read is one exit itself)."""
    base = stats_base()
    return "; ".join(f"devmem {base + 0x20 * i + 8 * f:#x} 64" for i in range(vcpus) for f in range(4))


def parse_stats(text: str, vcpus: int = 2) -> dict[int, VcpuStats] | None:
    values = [int(x, 16) for x in re.findall(r"0x[0-9A-Fa-f]+", text)]
    if len(values) != 4 * vcpus:
        return None
    return {i: VcpuStats(0, i, *values[4 * i : 4 * i + 4]) for i in range(vcpus)}


def read_vcpu_stats(shell: Shell, vcpus: int = 2) -> dict[int, VcpuStats]:
    """The hypervisor's counters of each MVM vCPU, read in the MVM's shell (see `stats_reads`)."""
    out, status = shell.run(stats_reads(vcpus))
    stats = parse_stats(out, vcpus) if status == 0 else None
    if stats is None:
        raise BootError(f"cannot read the statistics page at {stats_base():#x}: {out!r}", shell.log)
    return stats
