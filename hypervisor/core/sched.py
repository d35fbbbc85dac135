"""The vCPU scheduler: a run queue per hart, fixed priorities, round-robin among equals.

Every vCPU is placed on one hart for its life (core/vm.py vcpu_add: `RQ[hart]`). A hart with one vCPU is
partitioned: that vCPU's WFI does not even trap (the hart waits in the guest) and nothing here runs on its traps
(the fast path). A hart with
several is shared:
* the runnable vCPU of the highest `priority` runs; among equals the one that waited longest (`last_run`), each
  for its time `slice` while another of its priority waits;
* a vCPU is runnable when it is started, its VM runs, and it is not `blocked`. A trapped WFI blocks it (and its
  hart switches away) unless an interrupt it has enabled is pending; it is unblocked once one is (vcpu_pending);
* whatever makes a vCPU runnable reaches its hart at once: a message (an IPI, a virtual interrupt line, an HSM
  start, a VM boot) comes with an IPI to that hart, an MSI into its guest interrupt file raises the hart's SGEI
  while the vCPU waits (AIA), its timer deadline is the hart's own timer while it waits. That hart then checks
  (sched_check): a higher priority preempts the running vCPU at once (it leaves its hart at the end of this trap).
* A hart with nothing runnable sleeps in WFI (core/idle.py) with the hypervisor's timer at the earliest deadline
  of its waiting vCPUs.

Which harts touch what: a run queue's list (`RQ[h].vcpu`, `count`) is written under its lock by the boot hart and
the control server (core/gvm.py) and read under it by hart h; everything else of RQ[h], and a placed vCPU's
`blocked`, `last_run`, `switches` and saved state, is hart h's alone (the control server resets them only while
the VM is settled: none of its vCPUs is on a hart). Mailboxes are AMOs (core/vm.py vcpu_post).
"""

from compiler.prelude import Final, Ptr, addr_of, amoadd_w, null, u32, u64
from hypervisor.arch.riscv.encoding import MIP_VSEIP, MIP_VSTIP
from hypervisor.arch.riscv.hart import hart_guest_files_pending
from hypervisor.arch.riscv.sbi_call import sbi_set_timer
from hypervisor.core.hart import hart_has_sstc
from hypervisor.core.spinlock import spin_lock, spin_unlock
from hypervisor.core.vm import (
    MSG_COUNT,
    RQ,
    VCPU_STARTED,
    VM_RUNNING,
    VMID_SLOTS,
    RunQueue,
    Vcpu,
    vcpu_vm,
)

NEVER: Final = ~u64(0)
FENCE_NONE: Final = u64(0)  # the hart's TLB holds nothing stale for the vCPU entering
FENCE_VS: Final = u64(1)  # hfence.vvma for its VMID and fence.i
FENCE_ALL: Final = u64(2)  # hfence.gvma for its VMID too, then as FENCE_VS


def sched_rq(hart: u64) -> Ptr[RunQueue]:
    return addr_of(RQ[hart])


def sched_shared(hart: u64) -> bool:
    """Whether several vCPUs are placed on the hart (then it schedules; else its one vCPU owns it)."""
    return RQ[hart].count > 1


def vcpu_deadline(t: Ptr[Vcpu]) -> u64:
    """t's timer deadline while it is off its hart: its saved vstimecmp (Sstc) or its SBI set_timer deadline."""
    if hart_has_sstc():
        return t.s_vstimecmp
    return t.timer_deadline


def vcpu_pending(t: Ptr[Vcpu], now: u64) -> bool:
    """Whether t, not running, has an interrupt pending that it has enabled (vsie), as a WFI would see it
    (Priv 3.3.3): a message for it, its saved hvip bits, its timer deadline passed, an MSI in its guest interrupt
    file (AIA: hgeip, on its own hart). vsie's bits sit one place below their VS-level hip bits (Priv 9.2.3)."""
    for i in range(MSG_COUNT):
        if amoadd_w(addr_of(t.mailbox[i]), u32(0)) != 0:
            return True
    p = t.s_hvip
    if vcpu_deadline(t) <= now:
        p |= MIP_VSTIP
    if t.vgein != 0 and (hart_guest_files_pending() >> t.vgein) & 1 != 0:
        p |= MIP_VSEIP
    return p & (t.s_vsie << 1) != 0


def vcpu_runnable(t: Ptr[Vcpu], now: u64) -> bool:
    """Whether t may run now; a blocked t with something pending is unblocked (on its hart only)."""
    if t.state != VCPU_STARTED:
        return False
    vm = vcpu_vm(t)
    if vm.state != VM_RUNNING or amoadd_w(addr_of(vm.ending), u32(0)) != 0:
        return False
    if t.blocked == 0:
        return True
    if vcpu_pending(t, now):
        t.blocked = u32(0)
        return True
    return False


def sched_better(a: Ptr[Vcpu], b: Ptr[Vcpu]) -> bool:
    """Whether a goes before b: a higher priority, or the same and a waited longer."""
    if b.addr() == 0:
        return True
    if a.priority != b.priority:
        return a.priority > b.priority
    return a.last_run < b.last_run


def sched_pick(hart: u64, now: u64) -> Ptr[Vcpu]:
    """The vCPU the hart runs next (null: nothing is runnable)."""
    rq = sched_rq(hart)
    best = null(Vcpu)
    spin_lock(addr_of(rq.spin))
    for k in range(rq.count):
        t = rq.vcpu[k]
        if vcpu_runnable(t, now) and sched_better(t, best):
            best = t
    spin_unlock(addr_of(rq.spin))
    return best


VSIE_STIE: Final = u64(1) << 5  # vsie's bits (Priv 9.2.3: the VS-level interrupts' enables, sie's layout)
VSIE_SEIE: Final = u64(1) << 9
RIVAL_NONE: Final = u64(0)
RIVAL_EQUAL: Final = u64(1)  # a runnable vCPU of the same priority waits
RIVAL_HIGHER: Final = u64(2)  # a runnable vCPU of a higher priority waits


def sched_rival(hart: u64, c: Ptr[Vcpu], now: u64) -> u64:
    """What waits on the hart against c (running, or about to): RIVAL_HIGHER, RIVAL_EQUAL or RIVAL_NONE."""
    rq = sched_rq(hart)
    rival = RIVAL_NONE
    spin_lock(addr_of(rq.spin))
    for k in range(rq.count):
        t = rq.vcpu[k]
        if t.addr() != c.addr() and vcpu_runnable(t, now):
            if t.priority > c.priority:
                rival = RIVAL_HIGHER
            elif t.priority == c.priority and rival == RIVAL_NONE:
                rival = RIVAL_EQUAL
    spin_unlock(addr_of(rq.spin))
    return rival


def sched_switch_to(hart: u64, v: Ptr[Vcpu], now: u64) -> None:
    """v enters the hart: its place in the round-robin order, and its slice if another of its priority waits."""
    rq = sched_rq(hart)
    rq.clock += 1
    v.last_run = rq.clock
    if rq.current.addr() != v.addr():
        v.switches += 1
    rq.current = v
    rq.slice_end = NEVER
    if sched_rival(hart, v, now) != RIVAL_NONE:
        rq.slice_end = now + v.slice


def sched_check(c: Ptr[Vcpu], now: u64) -> None:
    """On c's shared hart, after an IPI, an SGEI or its timer: c leaves its hart at the end of this trap
    (`parking`, core/idle.py picks again) when a runnable vCPU of a higher priority waits, or when its slice is
    over and one of its own priority waits; a slice starts when such a one appears (round-robin)."""
    rq = sched_rq(c.hart)
    rival = sched_rival(c.hart, c, now)
    if rival == RIVAL_HIGHER:
        c.parking = u32(1)
    elif rival == RIVAL_EQUAL:
        if rq.slice_end == NEVER:
            rq.slice_end = now + c.slice
        elif now >= rq.slice_end:
            c.parking = u32(1)
    else:
        rq.slice_end = NEVER
    sched_timer_program(c.hart, c)


def sched_timer_program(hart: u64, c: Ptr[Vcpu]) -> None:
    """The hypervisor's own timer on a shared hart: the end of the running vCPU's slice, its own SBI deadline
    (no Sstc: vstimecmp is the hardware's), and each waiting (blocked) vCPU's deadline, whichever is first.
    c is the vCPU the hart runs (null: none). Always written: that clears a timer interrupt already pending."""
    rq = sched_rq(hart)
    t = rq.slice_end if c.addr() != 0 else NEVER
    if c.addr() != 0 and not hart_has_sstc() and c.timer_deadline < t:
        t = c.timer_deadline
    spin_lock(addr_of(rq.spin))
    for k in range(rq.count):
        u = rq.vcpu[k]
        # (a waiting vCPU whose timer interrupt is disabled (vsie.STIE) is not woken by it: its deadline would
        # fire, wake nothing, and fire again at once)
        if u.addr() != c.addr() and u.blocked != 0 and u.state == VCPU_STARTED and u.s_vsie & VSIE_STIE != 0:
            if vcpu_deadline(u) < t:
                t = vcpu_deadline(u)
    spin_unlock(addr_of(rq.spin))
    sbi_set_timer(t)


def sched_waiting_files(hart: u64, c: Ptr[Vcpu]) -> u64:
    """AIA: the guest interrupt files (hgeie bits) of the hart's blocked vCPUs other than c: an MSI into one of
    them must wake the hart (AIA 6.3.1; Priv 9.2.4 hgeie, SGEIP)."""
    rq = sched_rq(hart)
    files = u64(0)
    spin_lock(addr_of(rq.spin))
    for k in range(rq.count):
        u = rq.vcpu[k]
        if u.addr() != c.addr() and u.blocked != 0 and u.vgein != 0 and u.s_vsie & VSIE_SEIE != 0:
            files |= u64(1) << u.vgein  # (not while it disables them: the level would wake the hart for nothing)
    spin_unlock(addr_of(rq.spin))
    return files


def sched_fences(v: Ptr[Vcpu], vmid: u64, vmids: u64, fence_asked: bool) -> u64:
    """The TLB fences v needs as it enters its hart with hgatp.VMID = vmid (the hart has `vmids` VMIDs), and v
    recorded as the last vCPU of that VMID there (RunQueue.last_of). Translations are tagged by VMID (Priv
    9.3.2): another VM's vCPU that ran here in between used its own VMID's entries and left v's alone, so a
    switch between VMs needs no fence. Another vCPU of the same VM did use v's VMID: its VS-stage entries (made
    from its own vsatp, under guest ASIDs the guest keeps per hart) must go, and its instruction fetches too,
    while the G-stage entries, of the VM's one stage-2 table, are v's as well (as KVM's
    kvm_riscv_local_tlb_sanitize). Everything of the VMID goes when v enters afresh (a new VM may have taken the
    VMID of one removed; a reset VM's images were just written), when a remote fence was asked of v while it was
    off its hart, or when the VMID does not fit the hart's (VMIDLEN too small: VMs would share it)."""
    rq = sched_rq(v.hart)
    kind = FENCE_NONE
    if v.fresh != 0 or fence_asked or vmid >= vmids or vmid >= VMID_SLOTS:
        kind = FENCE_ALL
        rq.fences_all += 1
    elif rq.last_of[vmid].addr() != v.addr():
        kind = FENCE_VS
        rq.fences_vs += 1
    if vmid < VMID_SLOTS:
        rq.last_of[vmid] = v
    return kind
