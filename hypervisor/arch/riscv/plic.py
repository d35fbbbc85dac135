"""The physical PLIC, owned by the hypervisor: its register map (PLIC spec 1.0.0, chapter 3; one declaration,
which the virtual PLIC of core/vplic.py follows too) and access to it.

The board says how contexts are laid out: QEMU virt gives hart h PLIC_CONTEXTS_PER_HART contexts, M-mode's first,
and the hypervisor uses the S-mode one.
"""

from compiler.prelude import Final, Mmio, u32, u64
from hypervisor.board import PLIC_BASE, PLIC_CONTEXTS_PER_HART, PLIC_NUM_SOURCES, PLIC_S_CONTEXT

PLIC_SOURCES: Final = PLIC_NUM_SOURCES  # sources 1 .. PLIC_SOURCES - 1 (source 0 is "no interrupt")
PLIC_WORDS: Final = (PLIC_NUM_SOURCES + 31) // 32  # 32-bit words of a per-source bitmap
PLIC_PRIORITY: Final = u64(0x0)  # 4 bytes per source
PLIC_PENDING: Final = u64(0x1000)  # 1 bit per source
PLIC_ENABLE: Final = u64(0x2000)  # 1 bit per source, per context
PLIC_ENABLE_STRIDE: Final = u64(0x80)
PLIC_CONTEXT: Final = u64(0x200000)  # threshold at +0, claim/complete at +4, per context
PLIC_CONTEXT_STRIDE: Final = u64(0x1000)
PLIC_CLAIM: Final = u64(4)
PLIC_WINDOW: Final = u64(0x4000000)  # the whole register window: 15872 contexts (chapter 3)


def plic_s_context(hartid: u64) -> u64:
    return PLIC_CONTEXTS_PER_HART * hartid + PLIC_S_CONTEXT


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
