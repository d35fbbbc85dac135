"""The statistics page (mvm.toml `stats`, at the same guest-physical address in every VM): read-only u64
counters, an emulated device registered in each VM (core/emul.py).

Per vCPU i of the reading VM at 0x20 * i: exits, WFI exits, SBI calls, the time CSR. From 0x800 the hypervisor's
own: free page frames, all page frames, then at 0x810 + 8 * h hart h's stack high-water mark in bytes, at
0x850 + 16 * h hart h's switches from one vCPU to another (core/sched.py) and the instructions they took in all
(instret from the start of leaving one vCPU to the sret into the next: with QEMU's -icount, their exact cost).
Stores are ignored; an access that is not naturally aligned is an access fault for the guest.
"""

from compiler.prelude import Final, Ptr, u64
from hypervisor.arch.riscv.hart import hart_time
from hypervisor.board import MAX_HARTS, MVM_STATS_BASE, MVM_STATS_SIZE
from hypervisor.core.emul import EMUL_DONE, EMUL_FAULT, emul_add
from hypervisor.core.frame_alloc import frame_alloc_free_pages, frame_alloc_total_pages
from hypervisor.core.stack import stack_high_water, stack_top
from hypervisor.core.vm import RQ, Vcpu, Vm, vcpu_vm, vm_vcpu

STATS_STRIDE: Final = u64(0x20)  # per vCPU: exits, WFI exits, SBI calls, the time CSR
STATS_HYP: Final = u64(0x800)  # free pages, total pages
STATS_HYP_STACKS: Final = u64(0x810)  # each hart's stack high-water mark
STATS_HYP_SWITCHES: Final = u64(0x850)  # each hart's vCPU switches and their instructions


def stats_read(v: Ptr[Vcpu], offset: u64) -> u64:
    """The u64 at `offset` (a multiple of 8) as v's VM sees it."""
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
        return t.traps
    if field == 1:
        return t.wfi_exits
    if field == 2:
        return t.sbi_calls
    return hart_time()


def stats_emul(v: Ptr[Vcpu], offset: u64, width: u64, store: bool, value: Ptr[u64]) -> u64:
    if offset % width != 0:
        return EMUL_FAULT
    if not store:
        value[0] = stats_read(v, offset - offset % 8) >> ((offset % 8) * 8)
    return EMUL_DONE


def stats_attach(vm: Ptr[Vm]) -> bool:
    return emul_add(vm, MVM_STATS_BASE, MVM_STATS_SIZE, stats_emul)
