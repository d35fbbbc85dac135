"""The boot hart's start-up (hypervisor/main.py hyp_main) run on the host under CPython, with the firmware, the
device tree and the physical PLIC mocked: the order of what it does to the other harts.

The case it guards: OpenSBI's cold boot may run on hart 1 (QEMU's start-up lottery, about one boot in fifty),
and OpenSBI's start of another hart disables every source in that hart's own PLIC contexts. A hypervisor that
routed the management VM's interrupts to hart 0's S context before starting hart 0 lost them all: the MVM's
console went silent at its first interrupt-driven output (fixed by commit 8de405a: the other harts start first)."""

from __future__ import annotations

import importlib
import subprocess

import pytest

from compiler import prelude
from tests.conftest import require_tool
from tests.hypervisor.hyp_env import load_board

EID_BASE, EID_DBCN, EID_HSM, EID_IPI = 0x10, 0x4442434E, 0x48534D, 0x735049
DTB_ADDR = 0x8F00_0000


class StopBoot(Exception):
    """hart_wait: where the boot hart's start-up ends (it would wait for its vCPU forever)."""


class Plic:
    """The physical PLIC's enable registers, and every write in order."""

    def __init__(self, base: int):
        self.base, self.regs, self.log = base, {}, []

    def read(self, off, width):
        return self.regs.get(off, 0)

    def write(self, off, width, value):
        self.log.append(("write", off, value))
        self.regs[off] = value

    def enable_word(self, ctx: int) -> int:
        return self.regs.get(0x2000 + 0x80 * ctx, 0)


@pytest.fixture
def boot(tmp_path, monkeypatch):
    require_tool("qemu-system-riscv64", hint="its device tree stands for OpenSBI's; qemu/setup-host.sh")
    dtb = tmp_path / "virt.dtb"
    subprocess.run(
        ["qemu-system-riscv64", "-M", f"virt,dumpdtb={dtb}", "-cpu", "rv64", "-smp", "2", "-m", "2G", "-nographic"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    b = load_board(tmp_path, "plic")
    main = importlib.import_module("hypervisor.main")
    blob = dtb.read_bytes()
    prelude.memory.write(DTB_ADDR, blob)
    # The MVM's kernel (its Image header magic) and device tree where QEMU's loader would have put them.
    mem_host, mem_ipa = int(b.MVM_MEM_HOST), int(b.MVM_MEM_IPA)
    prelude.memory.write(mem_host + int(b.MVM_KERNEL_IPA) - mem_ipa + 0x38, b"RSC\x05")
    prelude.memory.write(mem_host + int(b.MVM_DTB_IPA) - mem_ipa, blob)
    plic = Plic(int(b.PLIC_BASE))
    prelude.mock.map_mmio(int(b.PLIC_BASE), 0x400_0000, plic.read, plic.write)
    console: list[bytes] = []

    def firmware(eid, fid, a0, a1, a2, *rest):
        if eid == EID_BASE and fid == 3:
            return 0, 1
        if eid == EID_DBCN and fid == 0:
            console.append(prelude.memory.read(a1, a0))
            return 0, a0
        if eid == EID_HSM and fid == 0:  # hart_start(hartid, start, opaque): OpenSBI's warm start of that hart
            plic.log.append(("hart_start", a0))
            for ctx in (2 * a0, 2 * a0 + 1):  # plic_warm_irqchip_init: every source off in its contexts
                for w in range(3):
                    plic.regs[0x2000 + 0x80 * ctx + 4 * w] = 0
            if hasattr(main, "hart_up"):
                main.hart_up[int(a2)] = prelude.u32(1)  # the hart reaches hyp_secondary_main
            return 0, 0
        if eid == EID_IPI:
            plic.log.append(("ipi", a1))
        return 0, 0

    prelude.mock.sbi_handler = firmware

    def stop(hartid):
        raise StopBoot()

    monkeypatch.setattr(main, "hart_wait", stop)
    return main, plic, console


@pytest.mark.parametrize("boot_hart", [0, 1])
def test_other_harts_start_before_interrupts_are_routed_to_them(boot, boot_hart):
    main, plic, console = boot
    with pytest.raises(StopBoot):
        main.hyp_main(prelude.u64(boot_hart), prelude.u64(DTB_ADDR))
    text = b"".join(console).decode()
    assert f"harts:      2 (boot hart {boot_hart})" in text
    assert "vm0 (management VM)" in text
    other = 1 - boot_hart
    started = plic.log.index(("hart_start", other))
    first_enable = next(i for i, e in enumerate(plic.log) if e[0] == "write" and 0x2000 <= e[1] < 0x200000)
    assert started < first_enable, plic.log[:8]
    # The MVM's passthrough sources (virtio-mmio 1-8, UART 10, RTC 11) stay enabled in hart 0's S context.
    assert plic.enable_word(1) == 0xDFE, hex(plic.enable_word(1))
    assert ("ipi", other) in plic.log[first_enable:]  # the other hart is told its vCPU is there
