"""Virtual interrupts for the VM that owns a physical interrupt line (PLIC mode): the physical PLIC is claimed
by the hypervisor, the source is made pending in the VM's virtual PLIC, and each vCPU's external interrupt
line (hvip.VSEIP, Priv 9.2.4) follows its S-mode context. The physical source is completed only when the
guest completes it, so a level-triggered device cannot storm the hypervisor meanwhile.
"""

from compiler.prelude import Array, Final, Ptr, addr_of, i64, noinline, static, u32, u64
from hypervisor.arch.riscv.hart import hart_vseip_set
from hypervisor.arch.riscv.plic import (
    PLIC_CONTEXT,
    PLIC_SOURCES,
    plic_claim,
    plic_complete,
    plic_enable,
    plic_s_context,
    plic_set_priority,
    plic_set_threshold,
)
from hypervisor.core.emul import EMUL_DONE, EMUL_FAULT, EMUL_WORD_FAULT, emul_read32_by, emul_write32_by
from hypervisor.core.spinlock import Spinlock, spin_lock, spin_unlock
from hypervisor.core.vm import MSG_VSEIP, VM_MAX, Vcpu, Vm, vcpu_post, vcpu_vm, vm_get, vm_vcpu
from hypervisor.core.vplic import (
    Vplic,
    vplic_access_ok,
    vplic_clear_pending,
    vplic_context_of_vcpu,
    vplic_context_pending,
    vplic_init,
    vplic_is_claim,
    vplic_read,
    vplic_read_plain,
    vplic_set_hw_owned,
    vplic_set_pending,
    vplic_write,
    vplic_write_plain,
)

VIRQ_SOURCES: Final = PLIC_SOURCES
NO_OWNER: Final = u64(0xFF)

# The virtual PLIC of the VM that owns the physical lines (the MVM), and one per guest VM slot (core/gvm.py; their
# sources are lines of devices the hypervisor emulates); one lock guards them all across harts.
vplic_main = static(Vplic)
vplic_gvm = static(Array[Vplic, VM_MAX])
vplic_spin = static(Spinlock)  # taken by any hart: MMIO exits of the VM's vCPUs, its external interrupts
virq_owner = static(Array[u64, VIRQ_SOURCES])  # VM index owning each physical source, or NO_OWNER
virq_claimed_ctx = static(Array[u64, VIRQ_SOURCES])  # the physical context that claimed a source in service


def virq_lock() -> None:
    spin_lock(addr_of(vplic_spin))


def virq_unlock() -> None:
    spin_unlock(addr_of(vplic_spin))


def virq_vplic() -> Ptr[Vplic]:
    return addr_of(vplic_main)


def virq_vplic_of(vm: Ptr[Vm]) -> Ptr[Vplic]:
    """vm's virtual PLIC: the MVM's (slot 0) is vplic_main, a guest VM's its slot's."""
    if vm.index == 0:
        return addr_of(vplic_main)
    return addr_of(vplic_gvm[vm.index])


def virq_gvm_init(vm: Ptr[Vm]) -> None:
    """A guest VM's virtual PLIC as at reset (at its creation and at each boot), for its vCPUs' contexts."""
    virq_lock()
    vplic_init(virq_vplic_of(vm), vm.vcpus * 2)
    virq_unlock()


def virq_init(vm: Ptr[Vm]) -> None:
    for i in range(VIRQ_SOURCES):
        virq_owner[i] = NO_OWNER
    vplic_init(addr_of(vplic_main), vm.vcpus * 2)


def virq_route(vm: Ptr[Vm], src: u64, hartid: u64) -> None:
    """Give physical source `src` to the VM; the physical PLIC signals it to `hartid`'s S-mode context."""
    virq_owner[src] = vm.id
    vplic_set_hw_owned(addr_of(vplic_main), src, True)
    plic_set_priority(src, u32(1))
    plic_enable(plic_s_context(hartid), src, True)
    plic_set_threshold(plic_s_context(hartid), u32(0))


def virq_line_locked(v: Ptr[Vcpu]) -> bool:
    """With the lock held: v's line as its S context now asks for it, recorded as the line last applied."""
    line = vplic_context_pending(virq_vplic_of(vcpu_vm(v)), vplic_context_of_vcpu(v.vcpu_id))
    v.vseip = u32(1) if line else u32(0)
    return line


def virq_apply(line: bool) -> None:
    hart_vseip_set(line)


def virq_update_vcpu(v: Ptr[Vcpu]) -> None:
    """On the hart running v: its VSEIP follows whether its S context has an enabled pending source."""
    virq_lock()
    line = virq_line_locked(v)
    virq_unlock()
    virq_apply(line)


def virq_lines_locked(current: Ptr[Vcpu]) -> bool:
    """With the lock held, after the virtual PLIC of current's VM changed: virq_lines_of_locked for that VM."""
    return virq_lines_of_locked(vcpu_vm(current), current)


def virq_lines_of_locked(vm: Ptr[Vm], current: Ptr[Vcpu]) -> bool:
    """With the lock held, after vm's virtual PLIC changed: the line of `current` (the vCPU on this hart, which
    the caller applies) if it is one of vm's (else false), and an IPI to each other vCPU of vm whose line must
    change (hvip is per hart, and a vCPU off a shared hart takes its messages when it enters: core/sched.py).
    The comparison with the line a vCPU last applied is made under the lock, as that vCPU's own update is:
    either it already saw this change, or it is told, so no change is ever missed."""
    line = False
    for i in range(vm.vcpus):
        t = vm_vcpu(vm, u64(i))
        if t.addr() == current.addr():
            line = virq_line_locked(t)
        elif vplic_context_pending(virq_vplic_of(vm), vplic_context_of_vcpu(t.vcpu_id)) != (t.vseip != 0):
            vcpu_post(t, u64(MSG_VSEIP))
            t.vseip_posts += 1  # under the lock: its one writer now
    return line


def virq_set_line(vm: Ptr[Vm], src: u64, high: bool, current: Ptr[Vcpu]) -> None:
    """An emulated device's wired line `src` of vm's virtual PLIC goes high (a gateway request) or low (the
    request withdrawn), from any hart. `current` is the vCPU this hart runs (of any VM; null for none): when it
    is one of vm's, its line is applied here; every other vCPU of vm whose line must change is told (an IPI),
    decided under the lock as in virq_lines_locked."""
    p = virq_vplic_of(vm)
    virq_lock()
    if high:
        vplic_set_pending(p, src)
    else:
        vplic_clear_pending(p, src)
    mine = False
    line = False
    for i in range(vm.vcpus):
        t = vm_vcpu(vm, u64(i))
        if t.addr() == current.addr():
            mine = True
            line = virq_line_locked(t)
        elif vplic_context_pending(p, vplic_context_of_vcpu(t.vcpu_id)) != (t.vseip != 0):
            vcpu_post(t, u64(MSG_VSEIP))
            t.vseip_posts += 1
    virq_unlock()
    if mine:
        virq_apply(line)


def virq_update(current: Ptr[Vcpu]) -> None:
    """virq_lines_locked in a critical section of its own, and the line applied on this hart."""
    virq_lock()
    line = virq_lines_locked(current)
    virq_unlock()
    virq_apply(line)


def virq_external(v: Ptr[Vcpu], hartid: u64) -> None:
    """S-mode external interrupt: claim every pending physical source and make it pending in its VM; then the
    lines, in the same critical section."""
    v.ext_irqs += 1
    ctx = plic_s_context(hartid)
    virq_lock()
    while True:
        src = plic_claim(ctx)
        if src == 0:
            break
        if src >= VIRQ_SOURCES or virq_owner[src] == NO_OWNER:
            plic_complete(ctx, src)  # nobody's: drop it
            continue
        virq_claimed_ctx[src] = ctx
        vplic_set_pending(addr_of(vplic_main), src)
    # The physical sources are the MVM's (slot 0): its lines, whichever vCPU this (possibly shared) hart runs
    mvm = vm_get(u64(0))
    line = virq_lines_of_locked(mvm, v)
    virq_unlock()
    if v.vm == 0:
        virq_apply(line)


def virq_guest_completed(vm: Ptr[Vm], src: u64) -> None:
    """vm completed a source in its virtual PLIC: if it is a physical source that vm owns (passthrough), complete
    it on the physical PLIC. A guest VM's sources are its own virtual ones (its console): the same number in
    another VM's PLIC is not its to complete."""
    if src < VIRQ_SOURCES and virq_owner[src] != NO_OWNER and virq_owner[src] == vm.id:
        plic_complete(virq_claimed_ctx[src], src)


def virq_emul(v: Ptr[Vcpu], offset: u64, width: u64, store: bool, value: Ptr[u64]) -> u64:
    """The VM's PLIC window (core/emul.py handler): the access on the virtual PLIC and, when it changed the
    virtual PLIC, every vCPU's line; a source the guest completed is completed on the physical PLIC afterwards.

    The lines follow the registers a claim depends on (pending, enable, priority, threshold: chapter 8), so only
    an access that can change one of them recomputes them: a claim (a read with a side effect), a complete, and
    a store that changed its register's value. A plain read, and a store of the value a register already holds,
    change nothing.

    Every PLIC register is one aligned 32-bit word, so guests reach them with LW and SW, through virq_read32
    and virq_write32 (the region's word handlers: core/vm.py EmulMem); this handler takes the other widths
    (refused) and the words emul.py's generic paths would give it."""
    if width != 4:
        return EMUL_FAULT  # vplic_access_ok: 32-bit accesses only
    if store:
        return virq_write32(v, u64(0), offset, value[0])
    got = virq_read32(v, u64(0), offset)
    if got == EMUL_WORD_FAULT:
        return EMUL_FAULT
    value[0] = got & 0xFFFF_FFFF
    return EMUL_DONE


def virq_read32(v: Ptr[Vcpu], region: u64, offset: u64) -> u64:
    """An LW of the VM's PLIC window (EmulMem.read32): the register sign-extended, or EMUL_WORD_FAULT. The
    common case is kept small: an aligned read below the contexts (priority, pending, enable: chapters 5 to 7)
    takes no lock and no call. Each register is one aligned 32-bit word, read whole: a store another hart makes
    meanwhile comes before or after it, as two accesses to a real PLIC are ordered. The rest (the contexts'
    registers: threshold, a claim; refusals) is out of line."""
    if offset < PLIC_CONTEXT and offset & 3 == 0:
        v.plic_reads += 1
        return u64(i64(vplic_read_plain(Ptr[Vplic](vcpu_vm(v).irqc_regs), offset) << 32) >> 32)
    return virq_read32_other(v, offset)


def virq_write32(v: Ptr[Vcpu], region: u64, offset: u64, value: u64) -> u64:
    """An SW of the VM's PLIC window (EmulMem.write32), the register in value's low 32 bits. Below the
    contexts (priority, enable) the word is swapped whole, without the lock (vplic_write_plain): a store another
    hart makes meanwhile comes before or after it, and a store that changed its word then takes the lock for
    the lines (virq_emul_changed). The rest (the contexts' registers: threshold, a complete; refusals) is out of
    line."""
    if offset < PLIC_CONTEXT and offset & 3 == 0:
        v.plic_stores += 1
        if vplic_write_plain(Ptr[Vplic](vcpu_vm(v).irqc_regs), offset, u32(value)):
            return virq_emul_changed(v)
        return EMUL_DONE
    return virq_write32_other(v, offset, value)


@noinline
def virq_read32_other(v: Ptr[Vcpu], offset: u64) -> u64:
    """virq_read32 off its common case."""
    return emul_read32_by(virq_emul_other, v, offset)


@noinline
def virq_write32_other(v: Ptr[Vcpu], offset: u64, value: u64) -> u64:
    """virq_write32 off its common case."""
    return emul_write32_by(virq_emul_other, v, offset, value)


@noinline
def virq_emul_changed(v: Ptr[Vcpu]) -> u64:
    """virq_write32's store changed a register: the lines (virq_update), EMUL_DONE; EMUL_FAULT if the VM has no
    virtual PLIC (it always has one here). Out of line and called last, so that virq_write32 keeps no frame: a
    result the optimizer could not know (the test) keeps the call the last thing virq_write32 does, where a
    constant one would be folded into it (LLVM's interprocedural constant propagation), leaving a call that
    needs a frame."""
    if vcpu_vm(v).irqc_regs == 0:
        return EMUL_FAULT
    virq_update(v)
    return EMUL_DONE


@noinline
def virq_emul_other(v: Ptr[Vcpu], offset: u64, width: u64, store: bool, value: Ptr[u64]) -> u64:
    """virq_emul off its common case: a context's register read (threshold, a claim), a store, a refusal."""
    if not vplic_access_ok(offset, width):
        return EMUL_FAULT
    claim = vplic_is_claim(offset)
    if not store and not claim:
        v.plic_reads += 1
        value[0] = vplic_read_plain(virq_vplic_of(vcpu_vm(v)), offset)
        return EMUL_DONE
    return virq_emul_change(v, offset, width, store, claim, value)


@noinline
def virq_emul_change(v: Ptr[Vcpu], offset: u64, width: u64, store: bool, claim: bool, value: Ptr[u64]) -> u64:
    """virq_emul for a store or a claim: the access, then the lines if it changed the virtual PLIC."""
    p = virq_vplic_of(vcpu_vm(v))
    if claim and store:
        v.plic_completes += 1
    elif claim:
        v.plic_claims += 1
    else:
        v.plic_stores += 1
    done = u64(0)
    changed = claim
    virq_lock()
    if store and claim:
        done = vplic_write(p, offset, width, value[0])
    elif store:
        before = vplic_read_plain(p, offset)
        vplic_write(p, offset, width, value[0])
        changed = vplic_read_plain(p, offset) != before
    else:
        value[0] = vplic_read(p, offset, width)
    if not changed:
        virq_unlock()
        return EMUL_DONE
    line = virq_lines_locked(v)
    virq_unlock()
    if done != 0:
        virq_guest_completed(vcpu_vm(v), done)
    virq_apply(line)
    return EMUL_DONE
