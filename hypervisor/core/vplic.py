"""A virtual PLIC for one VM: the register model behind trap-and-emulate of the guest's PLIC window.

Follows the RISC-V PLIC Specification 1.0.0, chapter 3 (memory map) and chapters 4-9 (interrupt gateways,
priorities, pending bits, enables, thresholds, claim/complete), laid out like the board's PLIC (QEMU `virt`: 96 sources
(source 0 reserved: "no interrupt"), priorities 0..7, two contexts per hart, M then S). A guest vCPU n uses
context `vplic_context_of_vcpu(n)` = 2n + 1, its S-mode context; the M contexts exist, so the guest's device tree
can describe the real layout, but no guest hart takes their interrupts.

The caller (the trap path) owns the policy around the model:
* a guest access traps (a guest-page fault in the PLIC window), is decoded (`hypervisor.arch.riscv.mmio_decode`),
  checked with `vplic_access_ok` (false: the guest gets an access fault), then `vplic_read` / `vplic_write`;
* a non-zero result of `vplic_write` is a passthrough (`hw_owned`) source the guest just completed: the caller
  completes it on the physical PLIC, which lets the device interrupt again;
* a physical interrupt routed to the VM (claimed on the physical PLIC by the hypervisor) becomes
  `vplic_set_pending`, an emulated device's line `vplic_set_pending` / `vplic_clear_pending`;
* after any of these, the caller recomputes `hvip.VSEIP` of each vCPU from `vplic_context_pending`;
* accesses from several harts to one Vplic are serialized by the caller.
"""

from compiler.prelude import Array, Final, Ptr, addr_of, amoswap_w, inline, struct, u32, u64
from hypervisor.arch.riscv.plic import (
    PLIC_CLAIM,
    PLIC_CONTEXT,
    PLIC_CONTEXT_STRIDE,
    PLIC_ENABLE,
    PLIC_ENABLE_STRIDE,
    PLIC_PENDING,
    PLIC_SOURCES,
    PLIC_WINDOW,
    PLIC_WORDS,
)
from hypervisor.board import PLIC_CONTEXTS_PER_HART, PLIC_S_CONTEXT

VPLIC_SOURCES: Final = PLIC_SOURCES  # the board's (QEMU virt: 96; Linux sees riscv,ndev = 95)
VPLIC_WORDS: Final = PLIC_WORDS
VPLIC_MAX_CONTEXTS: Final = 16  # 8 vCPUs x (M, S)
VPLIC_CONTEXTS_PER_VCPU: Final = PLIC_CONTEXTS_PER_HART  # laid out as the board's PLIC: M then S per hart
VPLIC_S_CONTEXT: Final = PLIC_S_CONTEXT
VPLIC_PRIORITY_MASK: Final = u32(7)  # 7 priority levels (QEMU virt VIRT_IRQCHIP_NUM_PRIO_BITS = 3); WARL


@struct
class Vplic:
    contexts: u64  # contexts in use (0 .. contexts-1), at most VPLIC_MAX_CONTEXTS
    priority: Array[u32, VPLIC_SOURCES]  # per source; priority[0] stays 0
    pending: Array[u32, VPLIC_WORDS]  # chapter 6: set by a gateway request, cleared by a claim
    deferred: Array[u32, VPLIC_WORDS]  # requests a gateway holds while its source is in service (chapter 4)
    in_service: Array[u32, VPLIC_WORDS]  # claimed and not yet completed
    hw_owned: Array[u32, VPLIC_WORDS]  # passthrough of a physical source: completion goes to the physical PLIC
    enable: Array[u32, VPLIC_WORDS * VPLIC_MAX_CONTEXTS]  # context c, word w at [c * VPLIC_WORDS + w]
    threshold: Array[u32, VPLIC_MAX_CONTEXTS]


def vplic_context_of_vcpu(vcpu: u64) -> u64:
    """The context a guest vCPU takes its external interrupts from (its S-mode context)."""
    return vcpu * VPLIC_CONTEXTS_PER_VCPU + VPLIC_S_CONTEXT


def vplic_init(p: Ptr[Vplic], contexts: u64) -> None:
    """Reset state (PLIC 1.0.0: priorities, enables, thresholds and pending bits all zero); `contexts` is
    clamped to VPLIC_MAX_CONTEXTS. The hw_owned map is cleared too: set it with `vplic_set_hw_owned`."""
    p.contexts = contexts if contexts <= VPLIC_MAX_CONTEXTS else u64(VPLIC_MAX_CONTEXTS)
    for s in range(VPLIC_SOURCES):
        p.priority[s] = 0
    for w in range(VPLIC_WORDS):
        p.pending[w] = 0
        p.deferred[w] = 0
        p.in_service[w] = 0
        p.hw_owned[w] = 0
    for i in range(VPLIC_WORDS * VPLIC_MAX_CONTEXTS):
        p.enable[i] = 0
    for c in range(VPLIC_MAX_CONTEXTS):
        p.threshold[c] = 0


def vplic_source_ok(src: u64) -> bool:
    return src != 0 and src < VPLIC_SOURCES


def vplic_bit(src: u64) -> u32:
    return u32(1) << (src & 31)


def vplic_test(bitmap: Ptr[u32], src: u64) -> bool:
    return bitmap[src >> 5] & vplic_bit(src) != 0


def vplic_assign(bitmap: Ptr[u32], src: u64, on: bool) -> None:
    if on:
        bitmap[src >> 5] = bitmap[src >> 5] | vplic_bit(src)
    else:
        bitmap[src >> 5] = bitmap[src >> 5] & ~vplic_bit(src)


def vplic_set_hw_owned(p: Ptr[Vplic], src: u64, owned: bool) -> None:
    """Mark `src` as the guest's view of a physical source routed to this VM (same number)."""
    if vplic_source_ok(src):
        vplic_assign(addr_of(p.hw_owned[0]), src, owned)


def vplic_set_pending(p: Ptr[Vplic], src: u64) -> None:
    """A gateway request for `src` (chapter 4): pending, unless the source is in service, when the request is
    held until the guest completes it (a level-triggered line still asserted then is taken again)."""
    if not vplic_source_ok(src):
        return
    if vplic_test(addr_of(p.in_service[0]), src):
        vplic_assign(addr_of(p.deferred[0]), src, True)
    else:
        vplic_assign(addr_of(p.pending[0]), src, True)


def vplic_clear_pending(p: Ptr[Vplic], src: u64) -> None:
    """An emulated level-triggered line went low before it was claimed: withdraw its request."""
    if vplic_source_ok(src):
        vplic_assign(addr_of(p.pending[0]), src, False)
        vplic_assign(addr_of(p.deferred[0]), src, False)


def vplic_best(p: Ptr[Vplic], ctx: u64) -> u64:
    """The source a claim by `ctx` would return (chapters 5, 7, 8): pending, enabled for the context and
    with a priority above its threshold (so never priority 0); the highest priority wins, the lowest ID on
    ties. 0 when there is none."""
    if ctx >= p.contexts:
        return 0
    best = u64(0)
    best_prio = p.threshold[ctx]
    for w in range(u64(VPLIC_WORDS)):
        live = p.pending[w] & p.enable[ctx * VPLIC_WORDS + w]
        if live == 0:
            continue
        for b in range(u64(32)):
            if (live >> b) & 1 != 0:
                src = w * 32 + b
                if p.priority[src] > best_prio:
                    best = src
                    best_prio = p.priority[src]
    return best


def vplic_context_pending(p: Ptr[Vplic], ctx: u64) -> bool:
    """The context's interrupt notification (chapter 8): the caller mirrors it into hvip.VSEIP."""
    return vplic_best(p, ctx) != 0


def vplic_claim(p: Ptr[Vplic], ctx: u64) -> u64:
    """A read of the claim register (chapter 9): the best source, now not pending and in service; 0 if none."""
    src = vplic_best(p, ctx)
    if src != 0:
        vplic_assign(addr_of(p.pending[0]), src, False)
        vplic_assign(addr_of(p.in_service[0]), src, True)
    return src


def vplic_complete(p: Ptr[Vplic], ctx: u64, src: u64) -> u64:
    """A write of `src` to the claim/complete register (chapter 9). Ignored (0) unless the source is in service
    and enabled for the context ("If the completion ID does not match an interrupt source that is currently
    enabled for the target, the completion is silently ignored"). A passthrough (hw_owned) source in service is
    completed from any of the VM's contexts, as QEMU's PLIC does: a guest that moves the source's affinity
    between its claim and its completion must not leave the physical source in service, its device silenced
    for good. A request held meanwhile becomes pending.
    Gives `src` when it is hw_owned, so the caller completes it on the physical PLIC, otherwise 0."""
    if ctx >= p.contexts or not vplic_source_ok(src):
        return 0
    enabled = vplic_test(addr_of(p.enable[ctx * VPLIC_WORDS]), src)
    hw = vplic_test(addr_of(p.hw_owned[0]), src)
    if not (enabled or hw) or not vplic_test(addr_of(p.in_service[0]), src):
        return 0
    vplic_assign(addr_of(p.in_service[0]), src, False)
    if vplic_test(addr_of(p.deferred[0]), src):
        vplic_assign(addr_of(p.deferred[0]), src, False)
        vplic_assign(addr_of(p.pending[0]), src, True)
    if hw:
        return src
    return 0


def vplic_access_ok(offset: u64, width: u64) -> bool:
    """Every PLIC register is 32 bits wide: an access of another width, a misaligned one, or one outside the
    window is refused (the caller injects an access fault). Reserved offsets are fine (read 0, ignore writes)."""
    return width == 4 and offset & 3 == 0 and offset < PLIC_WINDOW


def vplic_is_claim(offset: u64) -> bool:
    """Whether offset is a context's claim/complete register (chapter 9): the one register whose read changes
    the PLIC (a claim) and whose write is not kept (a complete)."""
    return offset >= PLIC_CONTEXT and (offset - PLIC_CONTEXT) % PLIC_CONTEXT_STRIDE == PLIC_CLAIM


def vplic_read(p: Ptr[Vplic], offset: u64, width: u64) -> u64:
    """The value of a guest read; reading a claim register claims (a side effect). Reserved offsets and
    accesses `vplic_access_ok` refuses read 0."""
    if not vplic_access_ok(offset, width):
        return 0
    if vplic_is_claim(offset):
        ctx = (offset - PLIC_CONTEXT) // PLIC_CONTEXT_STRIDE
        if ctx >= p.contexts:
            return 0
        return vplic_claim(p, ctx)
    return vplic_read_plain(p, offset)


@inline
def vplic_read_plain(p: Ptr[Vplic], offset: u64) -> u64:
    """A read without a side effect (every register but claim/complete) at an offset `vplic_access_ok`
    accepted: what the register holds, 0 for a reserved offset."""
    if offset < PLIC_PENDING:
        src = offset >> 2
        if src < VPLIC_SOURCES:
            return u64(p.priority[src])
        return 0
    if offset < PLIC_ENABLE:
        w = (offset - PLIC_PENDING) >> 2
        if w < VPLIC_WORDS:
            return u64(p.pending[w])
        return 0
    if offset < PLIC_CONTEXT:
        ctx = (offset - PLIC_ENABLE) // PLIC_ENABLE_STRIDE
        w = ((offset - PLIC_ENABLE) % PLIC_ENABLE_STRIDE) >> 2
        if ctx < p.contexts and w < VPLIC_WORDS:
            return u64(p.enable[ctx * VPLIC_WORDS + w])
        return 0
    ctx = (offset - PLIC_CONTEXT) // PLIC_CONTEXT_STRIDE
    if ctx < p.contexts and (offset - PLIC_CONTEXT) % PLIC_CONTEXT_STRIDE == 0:
        return u64(p.threshold[ctx])
    return 0


@inline
def vplic_write_plain(p: Ptr[Vplic], offset: u64, value: u32) -> bool:
    """A write below the contexts (priority, pending, enable: chapters 5 to 7) at an offset `vplic_access_ok`
    accepted, made with one atomic swap of its word, so that it needs no lock: whether the register changed.
    Pending bits are read-only; reserved offsets and source 0's priority and enable bit are not written.

    Which harts: any vCPU of the VM writes these words this way, reads them whole (vplic_read_plain), or reads
    them under the VM's lock (a claim, the lines: core/virq.py). A writer whose swap changed the word takes the
    lock afterwards and computes the lines again, so a claim or a line decided before the swap is corrected."""
    if offset < PLIC_PENDING:
        src = offset >> 2
        if not vplic_source_ok(src):
            return False
        new = value & VPLIC_PRIORITY_MASK
        return amoswap_w(addr_of(p.priority.unchecked[src]), new) != new  # src < VPLIC_SOURCES: vplic_source_ok
    if offset < PLIC_ENABLE:
        return False
    ctx = (offset - PLIC_ENABLE) // PLIC_ENABLE_STRIDE
    w = ((offset - PLIC_ENABLE) % PLIC_ENABLE_STRIDE) >> 2
    if ctx >= p.contexts or w >= VPLIC_WORDS:
        return False
    new = value & ~u32(1) if w == 0 else value  # source 0 does not exist
    # ctx < contexts <= VPLIC_MAX_CONTEXTS (vplic_init) and w < VPLIC_WORDS: within `enable`
    return amoswap_w(addr_of(p.enable.unchecked[ctx * VPLIC_WORDS + w]), new) != new


def vplic_write(p: Ptr[Vplic], offset: u64, width: u64, value: u64) -> u64:
    """Apply a guest write. Gives the source completed by a claim/complete write when it is hw_owned (the
    caller completes it on the physical PLIC), otherwise 0. Pending bits are read-only; writes to reserved
    offsets, to source 0's priority or enable bit, and accesses `vplic_access_ok` refuses are ignored."""
    if not vplic_access_ok(offset, width):
        return 0
    v = u32(value)
    if offset < PLIC_CONTEXT:
        vplic_write_plain(p, offset, v)
        return 0
    ctx = (offset - PLIC_CONTEXT) // PLIC_CONTEXT_STRIDE
    reg = (offset - PLIC_CONTEXT) % PLIC_CONTEXT_STRIDE
    if ctx >= p.contexts:
        return 0
    if reg == 0:
        p.threshold[ctx] = v & VPLIC_PRIORITY_MASK
        return 0
    if reg == PLIC_CLAIM:
        return vplic_complete(p, ctx, u64(v))
    return 0
