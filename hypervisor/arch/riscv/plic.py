"""The physical PLIC, owned by the hypervisor (PLIC spec 1.0.0, chapter 3 memory map).

On QEMU virt, hart h has two contexts: 2h for M-mode and 2h + 1 for S-mode; the hypervisor uses S-mode ones.
"""

from compiler.prelude import Final, Mmio, u32, u64
from hypervisor.board import PLIC_BASE

PLIC_PRIORITY: Final = u64(0x0)
PLIC_ENABLE: Final = u64(0x2000)
PLIC_ENABLE_STRIDE: Final = u64(0x80)
PLIC_CONTEXT: Final = u64(0x200000)
PLIC_CONTEXT_STRIDE: Final = u64(0x1000)
PLIC_CLAIM: Final = u64(4)


def plic_s_context(hartid: u64) -> u64:
    return 2 * hartid + 1


def plic_set_priority(src: u64, priority: u32) -> None:
    Mmio[u32](PLIC_BASE + PLIC_PRIORITY + 4 * src).write(priority)


def plic_enable(ctx: u64, src: u64, on: bool) -> None:
    reg = Mmio[u32](PLIC_BASE + PLIC_ENABLE + ctx * PLIC_ENABLE_STRIDE + (src // 32) * 4)
    bit = u32(1) << u32(src % 32)
    if on:
        reg.write(reg.read() | bit)
    else:
        reg.write(reg.read() & ~bit)


def plic_set_threshold(ctx: u64, threshold: u32) -> None:
    Mmio[u32](PLIC_BASE + PLIC_CONTEXT + ctx * PLIC_CONTEXT_STRIDE).write(threshold)


def plic_claim(ctx: u64) -> u64:
    """3.6: the highest-priority pending source (0: none); it stays in service until completed."""
    return u64(Mmio[u32](PLIC_BASE + PLIC_CONTEXT + ctx * PLIC_CONTEXT_STRIDE + PLIC_CLAIM).read())


def plic_complete(ctx: u64, src: u64) -> None:
    Mmio[u32](PLIC_BASE + PLIC_CONTEXT + ctx * PLIC_CONTEXT_STRIDE + PLIC_CLAIM).write(u32(src))
