"""The statistics page (mvm.toml `stats`, at the same guest-physical address in every VM): read-only u64
counters, an emulated device registered in each VM (core/emul.py).

Per vCPU i of the reading VM at 0x20 * i: exits, WFI exits, SBI calls, the time CSR. From 0x800 the hypervisor's
own: free page frames, all page frames, then at 0x810 + 8 * h hart h's stack high-water mark in bytes, at
0x850 + 16 * h hart h's switches from one vCPU to another (core/sched.py) and the instructions they took in all
(instret from the start of leaving one vCPU to the sret into the next: with QEMU's -icount, their exact cost),
at 0x8d0 + 16 * h hart h's vCPU entries that fenced its TLB: all of the VMID's, then the VS stage only
(core/sched.py sched_fences).
Stores are ignored; an access that is not naturally aligned is an access fault for the guest.
"""

from compiler.prelude import Final, Ptr, cstr, u64
from hypervisor.arch.riscv.hart import hart_time
from hypervisor.board import MAX_HARTS, MVM_STATS_BASE, MVM_STATS_SIZE
from hypervisor.core.console import console_field, console_lock, console_puts, console_unlock
from hypervisor.core.emul import EMUL_DONE, EMUL_FAULT, emul_add
from hypervisor.core.frame_alloc import frame_alloc_free_pages, frame_alloc_total_pages
from hypervisor.core.stack import stack_high_water, stack_top
from hypervisor.core.vm import RQ, Vcpu, Vm, vcpu_traps, vcpu_vm, vm_vcpu

STATS_STRIDE: Final = u64(0x20)  # per vCPU: exits, WFI exits, SBI calls, the time CSR
STATS_HYP: Final = u64(0x800)  # free pages, total pages
STATS_HYP_STACKS: Final = u64(0x810)  # each hart's stack high-water mark
STATS_HYP_SWITCHES: Final = u64(0x850)  # each hart's vCPU switches and their instructions
STATS_HYP_FENCES: Final = u64(0x8D0)  # each hart's entries that fenced: all of the VMID's, the VS stage only


def stats_read(v: Ptr[Vcpu], offset: u64) -> u64:
    """The u64 at `offset` (a multiple of 8) as v's VM sees it."""
    if offset >= STATS_HYP_FENCES:
        hart = (offset - STATS_HYP_FENCES) // 16
        if hart >= MAX_HARTS:
            return u64(0)
        if (offset - STATS_HYP_FENCES) % 16 == 0:
            return RQ[hart].fences_all
        return RQ[hart].fences_vs
    if offset >= STATS_HYP_SWITCHES:
        hart = (offset - STATS_HYP_SWITCHES) // 16
        if hart >= MAX_HARTS:
            return u64(0)
        if (offset - STATS_HYP_SWITCHES) % 16 == 0:
            return RQ[hart].switch_count
        return RQ[hart].switch_instret
    if offset >= STATS_HYP_STACKS:
        hart = (offset - STATS_HYP_STACKS) // 8
        return stack_high_water(stack_top(hart)) if hart < MAX_HARTS else u64(0)
    if offset >= STATS_HYP:
        return frame_alloc_free_pages() if offset == STATS_HYP else frame_alloc_total_pages()
    vm = vcpu_vm(v)
    i = offset // STATS_STRIDE
    if i >= vm.vcpus:
        return u64(0)
    t = vm_vcpu(vm, i)
    field = (offset % STATS_STRIDE) // 8
    if field == 0:
        return vcpu_traps(t)
    if field == 1:
        return t.wfi_exits
    if field == 2:
        return t.sbi_calls
    return hart_time()


def stats_emul(v: Ptr[Vcpu], offset: u64, width: u64, store: bool, value: Ptr[u64]) -> u64:
    v.stats_reads += 1
    if offset % width != 0:
        return EMUL_FAULT
    if not store:
        value[0] = stats_read(v, offset - offset % 8) >> ((offset % 8) * 8)
    return EMUL_DONE


def stats_attach(vm: Ptr[Vm]) -> bool:
    return emul_add(vm, MVM_STATS_BASE, MVM_STATS_SIZE, stats_emul)


def stats_print_exits(vm: Ptr[Vm]) -> None:
    """After vm_print_stats at the MVM's power-off: each vCPU's exits by cause, two lines per vCPU. Interrupts:
    the hypervisor's timer, the physical PLIC, the rest (IPIs; in AIA mode all but the timer). SBI calls by
    extension (RFENCE by function). MMIO exits by device: the virtual PLIC by register class, the statistics
    page, virtio-mmio notifies and interrupt registers (InterruptStatus, InterruptACK), the rest (other virtio
    registers, the virtual APLIC). Then the remote fences and the messages to other vCPUs."""
    for i in range(vm.vcpus):
        v = vm_vcpu(vm, u64(i))
        sbi_known = (
            v.sbi_base_calls
            + v.sbi_timer_calls
            + v.sbi_ipi_calls
            + v.sbi_rfence_calls[0]
            + v.sbi_rfence_calls[1]
            + v.sbi_rfence_calls[2]
            + v.sbi_hsm_calls
            + v.sbi_console_calls
        )
        plic = v.plic_claims + v.plic_completes + v.plic_reads + v.plic_stores
        console_lock()
        console_field(cstr(b"pyshyper: vm"), vm.id)
        console_field(cstr(b" vcpu"), u64(i))
        console_field(cstr(b" exits: irq "), v.irqs)
        console_field(cstr(b" (timer "), v.timer_irqs)
        console_field(cstr(b", plic "), v.ext_irqs)
        console_field(cstr(b", ipi/other "), v.irqs - v.timer_irqs - v.ext_irqs)
        console_field(cstr(b"), sbi "), v.sbi_calls)
        console_field(cstr(b" (base "), v.sbi_base_calls)
        console_field(cstr(b", time "), v.sbi_timer_calls)
        console_field(cstr(b", ipi "), v.sbi_ipi_calls)
        console_field(cstr(b", rfence.i "), v.sbi_rfence_calls[0])
        console_field(cstr(b", rfence.vma "), v.sbi_rfence_calls[1])
        console_field(cstr(b", rfence.vma_asid "), v.sbi_rfence_calls[2])
        console_field(cstr(b", hsm "), v.sbi_hsm_calls)
        console_field(cstr(b", console "), v.sbi_console_calls)
        console_field(cstr(b", other "), v.sbi_calls - sbi_known)
        console_field(cstr(b"), mmio "), v.mmio_exits)
        console_field(cstr(b" (plic claim "), v.plic_claims)
        console_field(cstr(b", plic complete "), v.plic_completes)
        console_field(cstr(b", plic load "), v.plic_reads)
        console_field(cstr(b", plic store "), v.plic_stores)
        console_field(cstr(b", stats "), v.stats_reads)
        console_field(cstr(b", virtio notify "), v.virtio_notifies)
        console_field(cstr(b", virtio irq "), v.virtio_irq_regs)
        console_field(cstr(b", other "), v.mmio_exits - plic - v.stats_reads - v.virtio_notifies - v.virtio_irq_regs)
        console_field(cstr(b"), wfi "), v.wfi_exits)
        console_field(cstr(b", other "), v.traps - v.irqs - v.sbi_calls - v.wfi_exits)
        console_puts(cstr(b"\n"))
        console_field(cstr(b"pyshyper: vm"), vm.id)
        console_field(cstr(b" vcpu"), u64(i))
        console_field(cstr(b" fences: sent "), v.fences_sent)
        console_field(cstr(b", deferred "), v.fences_deferred)
        console_field(cstr(b", waited "), v.fences_waited)
        console_field(cstr(b", polls "), v.fence_polls)
        console_field(cstr(b", served "), v.fences_served)
        console_field(cstr(b"; messages: ipi "), v.ipis_posted)
        console_field(cstr(b", vseip received "), v.vseip_posts)
        console_puts(cstr(b"\n"))
        console_unlock()
