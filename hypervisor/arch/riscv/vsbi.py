"""SBI emulation for guests (SBI spec v2.0): a VS-mode `ecall` (scause 10) lands here.

Arguments are in the guest's a0..a5, the function ID in a6 and the extension ID in a7; the result goes back
in a0 (error) and a1 (value). Extensions are found through a table of `SbiExtension` (`vsbi_init` fills it).
"""

from compiler.prelude import (
    HIE,
    HSTATUS,
    HVIP,
    SIP,
    VSTIMECMP,
    Array,
    Callable,
    Final,
    Ptr,
    addr_of,
    amoadd_d,
    amoadd_w,
    amoswap_d,
    amoswap_w,
    csr_clear,
    csr_read,
    csr_set,
    csr_write,
    cstr,
    fence,
    fence_i,
    hfence_vvma,
    i64,
    inline,
    noinline,
    null,
    static,
    struct,
    u8,
    u32,
    u64,
    wfi,
)
from hypervisor.arch.riscv.encoding import HSTATUS_VTW, MIP_SSIP, MIP_VSSIP, MIP_VSTIP
from hypervisor.arch.riscv.fpu import fpu_reset, fpu_test_switch
from hypervisor.arch.riscv.ipi import hart_ipi
from hypervisor.arch.riscv.sbi_call import (
    SBI_ERR_ALREADY_AVAILABLE,
    SBI_ERR_INVALID_ADDRESS,
    SBI_ERR_INVALID_PARAM,
    SBI_ERR_NOT_SUPPORTED,
    SBI_EXT_BASE,
    SBI_EXT_DBCN,
    SBI_EXT_HSM,
    SBI_EXT_IPI,
    SBI_EXT_LEGACY_GETCHAR,
    SBI_EXT_LEGACY_PUTCHAR,
    SBI_EXT_LEGACY_SET_TIMER,
    SBI_EXT_RFENCE,
    SBI_EXT_SRST,
    SBI_EXT_TIME,
    SBI_HSM_HART_GET_STATUS,
    SBI_HSM_HART_START,
    SBI_HSM_HART_STOP,
    SBI_HSM_STARTED,
    SBI_HSM_STOPPED,
    SBI_SRST_COLD_REBOOT,
    SBI_SRST_REASON_FAILURE,
    SBI_SRST_REASON_NONE,
    SBI_SRST_WARM_REBOOT,
    SBI_SUCCESS,
    sbi_set_timer,
    sbi_system_reset,
)
from hypervisor.arch.riscv.stage2 import stage2_translate
from hypervisor.board import DEBUG_FAULTS
from hypervisor.core.frame_alloc import frame_alloc_free_pages
from hypervisor.core.guest_mem import gmem_translate
from hypervisor.core.hart import hart_has_sstc
from hypervisor.core.machine import machine_reset
from hypervisor.core.sched import sched_shared, sched_timer_program
from hypervisor.core.stack import stack_high_water
from hypervisor.core.stats import stats_print_exits
from hypervisor.core.virq import virq_update_vcpu
from hypervisor.core.virtio_console import vcon_console_write
from hypervisor.core.vm import (
    END_FAILURE,
    MSG_KICK,
    MSG_VSEIP,
    MSG_VSSIP,
    VCPU_MAX,
    VCPU_STARTED,
    VCPU_STOPPED,
    VCPUS,
    VM_ENDED,
    VM_FAILED,
    VM_REBOOTING,
    VM_RUNNING,
    Vcpu,
    Vm,
    vcpu_post,
    vcpu_reset,
    vcpu_vm,
    vm_console_flush,
    vm_console_putc,
    vm_end,
    vm_harts_present,
    vm_load_image,
    vm_print_stats,
    vm_report,
    vm_vcpu,
    vm_vcpus_started,
)

SBI_EXT_PYSHYPER_TEST: Final = u64(0x0A505354)  # firmware-specific range 0x0A000000..0x0AFFFFFF
SBI_SPEC_VERSION: Final = u64(2) << 24  # 2.0 (SBI 4.1)
SBI_IMPL_ID: Final = u64(0x50595348)  # "PYSH": not a registered implementation ID
SBI_IMPL_VERSION: Final = u64(1)
DBCN_MAX_WRITE: Final = u64(4096)
DBCN_CHUNK: Final = u64(64)

A0: Final = 10
A1: Final = 11
A2: Final = 12
A6: Final = 16
A7: Final = 17


def sbi_return(v: Ptr[Vcpu], err: i64, value: u64) -> None:
    v.regs[A0] = u64(err)
    v.regs[A1] = value


def sbi_base(v: Ptr[Vcpu]) -> None:
    v.sbi_base_calls += 1
    fid = v.regs[A6]
    if fid == 0:
        sbi_return(v, SBI_SUCCESS, SBI_SPEC_VERSION)
    elif fid == 1:
        sbi_return(v, SBI_SUCCESS, SBI_IMPL_ID)
    elif fid == 2:
        sbi_return(v, SBI_SUCCESS, SBI_IMPL_VERSION)
    elif fid == 3:
        sbi_return(v, SBI_SUCCESS, u64(1) if sbi_extension_find(v.regs[A0]).addr() != 0 else u64(0))
    elif fid >= 4 and fid <= 6:
        sbi_return(v, SBI_SUCCESS, u64(0))  # mvendorid, marchid, mimpid: no real machine IDs are exposed
    else:
        sbi_return(v, SBI_ERR_NOT_SUPPORTED, u64(0))


def sbi_timer_program(v: Ptr[Vcpu], deadline: u64) -> None:
    """TIME set_timer: an exact deadline. With Sstc the hardware raises VSTIP at vstimecmp (Sstc 1.0);
    without it the hypervisor arms its own S-mode timer and injects VSTIP through hvip when it fires."""
    if hart_has_sstc():
        csr_write(VSTIMECMP, deadline)
        return
    csr_clear(HVIP, MIP_VSTIP)
    v.timer_deadline = deadline
    if sched_shared(v.hart):
        sched_timer_program(v.hart, v)  # the hart's one timer serves its other vCPUs too
    else:
        sbi_set_timer(deadline)


def sbi_time(v: Ptr[Vcpu]) -> None:
    v.sbi_timer_calls += 1
    if v.regs[A6] != 0:
        sbi_return(v, SBI_ERR_NOT_SUPPORTED, u64(0))
        return
    sbi_timer_program(v, v.regs[A0])
    sbi_return(v, SBI_SUCCESS, u64(0))


def sbi_legacy_set_timer(v: Ptr[Vcpu]) -> None:
    v.sbi_timer_calls += 1
    sbi_timer_program(v, v.regs[A0])
    v.regs[A0] = 0


def sbi_target_hit(idx: u64, mask: u64, base: u64) -> bool:
    """Whether vCPU `idx` is named by (hart_mask, hart_mask_base) (SBI 2.0, 3.3; base ~0: every hart)."""
    return base == ~u64(0) or (idx >= base and idx - base < 64 and (mask >> (idx - base)) & 1 != 0)


def sbi_targets_ok(v: Ptr[Vcpu], mask: u64, base: u64) -> i64:
    """SBI 2.0 section 3.3: INVALID_PARAM when any hart the (hart_mask, hart_mask_base) pair names is not one of
    the VM's vCPUs; base ~0 names them all."""
    if base == ~u64(0):
        return SBI_SUCCESS
    vcpus = vcpu_vm(v).vcpus
    if base >= vcpus:
        return SBI_ERR_INVALID_PARAM
    if vcpus - base < 64 and (mask >> (vcpus - base)) != 0:
        return SBI_ERR_INVALID_PARAM
    return SBI_SUCCESS


def sbi_for_each_target(v: Ptr[Vcpu], mask: u64, base: u64, msg: u64) -> i64:
    """Deliver msg to every started vCPU of the caller's VM named by (hart_mask, hart_mask_base)."""
    vm = vcpu_vm(v)
    ok = sbi_targets_ok(v, mask, base)
    if ok != SBI_SUCCESS:
        return ok
    for i in range(vm.vcpus):
        idx = u64(i)
        if sbi_target_hit(idx, mask, base):
            t = vm_vcpu(vm, idx)
            if t.state == VCPU_STARTED:
                if t.addr() == v.addr():  # this very vCPU: act at once
                    amoswap_w(addr_of(t.mailbox[msg]), u32(1))
                    vcpu_handle_messages(v)
                else:
                    vcpu_post(t, msg)
                    v.ipis_posted += 1
    return SBI_SUCCESS


def vcpu_fence_local(v: Ptr[Vcpu]) -> None:
    """Serve every fence requested of this vCPU so far: hfence.vvma (every VS-stage entry of the current VMID,
    which on this hart is v's VM: rs2 of hfence.vvma would be a guest ASID, Priv 9.3.2) and fence.i, then
    publish how many requests that covers and wake whoever waits for it. The count is read before fencing, so
    each request it covers was made (after its requester's page-table or code change) before these fences ran."""
    asked = amoadd_d(addr_of(v.fence_req), u64(0))
    if asked == amoadd_d(addr_of(v.fence_done), u64(0)):
        return
    hfence_vvma()
    fence_i()
    fence()
    amoswap_d(addr_of(v.fence_done), asked)
    v.fences_served += 1
    vcpu_fence_notify(v)
    # Its VM asks remote fences of it: from now on its WFI traps, even on its own hart, so that it waits in the
    # hypervisor (`idle`) where fences asked meanwhile cost its requesters nothing (vcpu_wfi_traps).
    csr_set(HSTATUS, HSTATUS_VTW)


def vcpu_wfi_traps(v: Ptr[Vcpu]) -> bool:
    """Whether v's WFI traps on its own hart (hstatus.VTW, Priv 9.2.1): once its VM has asked a remote fence of
    it. A requester must otherwise wake a vCPU idle in its guest's WFI (an IPI, an exit, the guest's spurious
    wake) and wait for its fence; one that waits in the hypervisor (`idle`) fences when it wakes instead, and its
    requesters go on at once (sbi_remote_fence). The cost is an exit per idle period, paid by an idle hart; a VM
    that never asks remote fences (a Linux with IMSIC IPIs, a single vCPU) keeps WFI in the guest."""
    return v.fence_req != 0


def vcpu_idle_enter(v: Ptr[Vcpu]) -> None:
    """v's own hart is about to wait in the hypervisor for its next interrupt: from the published `idle` on,
    requesters leave their fences for vcpu_idle_leave (sbi_remote_fence, vcpu_fence_pending). What was asked
    before it is served now, as a requester may sleep until it is."""
    amoswap_w(addr_of(v.idle), u32(1))
    fence()
    vcpu_fence_local(v)


def vcpu_idle_leave(v: Ptr[Vcpu]) -> None:
    """v's hart woke and v runs guest code again after this: `idle` is cleared, then the fences asked are read
    (a fence between, against the requester's AMO, fence, read of `idle`): a requester that saw `idle` set made
    its request before this read, so it is served here, before the guest runs."""
    amoswap_w(addr_of(v.idle), u32(0))
    fence()
    vcpu_fence_local(v)


def vcpu_fence_notify(t: Ptr[Vcpu]) -> None:
    """t served its fences or left its hart: an IPI to each vCPU that sleeps until then (vcpu_fence_wait). Its
    caller published that first (an AMO, then a fence): a requester that registers later sees it before it
    sleeps. Every slot is looked at, not t's VM's list: once t has left its hart its VM may be taken apart."""
    fence()
    for i in range(VCPU_MAX):
        w = addr_of(VCPUS[i])
        if w.fence_wait == t.addr() and w.addr() != t.addr():
            hart_ipi(w.hart)


def vcpu_fence_pending(v: Ptr[Vcpu], t: Ptr[Vcpu], ticket: u64) -> bool:
    """Whether the requester v still waits for t to serve `ticket`. A target that left its hart (parked,
    stopped, its VM ended) has nothing to serve: it fences in full when it is entered again (vcpu_run)."""
    if amoadd_d(addr_of(t.fence_done), u64(0)) >= ticket:
        return False
    if amoadd_w(addr_of(t.running), u32(0)) == 0 or t.state != VCPU_STARTED:
        return False
    if amoadd_w(addr_of(t.idle), u32(0)) != 0:
        return False  # it waits in the hypervisor and fences before its guest runs again (vcpu_idle_leave)
    return vcpu_vm(t).state == VM_RUNNING and vcpu_vm(v).state == VM_RUNNING


def vcpu_fence_wait(v: Ptr[Vcpu], t: Ptr[Vcpu], ticket: u64) -> None:
    """Wait until t has served `ticket` (or has nothing to serve). The hart sleeps in WFI rather than spin: a
    spinning hart holds its host CPU, and under QEMU's round-robin TCG the very time slice the target's hart
    needs. t wakes it (vcpu_fence_notify: an IPI, sip.SSIP); so does any other interrupt, after which it looks
    again. Meanwhile it takes its own messages, fences asked of v among them, so two harts fencing each other
    never deadlock. SSIP is cleared before the mailbox is read (as irq_software does); on a shared hart it is
    raised again afterwards, so that the scheduler's check (trap.py irq_software) still runs on the way out, and so
    it is after a KICK (its idle work). The guest's own interrupts (hie) do not wake it meanwhile: its guest waits
    in this call anyway, and one pending (its timer due) would end every WFI at once, a spin that under QEMU
    takes the host CPU the target's hart needs; hie is restored after."""
    if not vcpu_fence_pending(v, t, ticket):
        return
    v.fences_waited += 1
    hie = csr_read(HIE)
    csr_write(HIE, u64(0))
    amoswap_d(addr_of(v.fence_wait), t.addr())
    fence()
    took = False
    while True:
        if csr_read(SIP) & MIP_SSIP != 0:
            csr_clear(SIP, MIP_SSIP)
            took = True
            vcpu_handle_messages(v)
        else:
            vcpu_fence_local(v)
        if not vcpu_fence_pending(v, t, ticket):
            break
        v.fence_polls += 1
        wfi()
    amoswap_d(addr_of(v.fence_wait), u64(0))
    csr_write(HIE, hie)
    if took and (sched_shared(v.hart) or v.idle_due != 0):
        csr_set(SIP, MIP_SSIP)


def sbi_remote_fence(v: Ptr[Vcpu], mask: u64, base: u64) -> i64:
    """Remote fences are synchronous (SBI 2.0 chapter 8; Linux frees page tables and runs new code once the
    call returns): each other target hart is asked and this one waits until all of them have fenced. A target
    that is not on its hart is not asked: vcpu_run reads fence_req after it publishes `running`, and fences
    before the vCPU runs again (either it sees this request, or this sees it running)."""
    vm = vcpu_vm(v)
    ok = sbi_targets_ok(v, mask, base)
    if ok != SBI_SUCCESS:
        return ok
    tickets = Array[u64, VCPU_MAX]()
    for i in range(vm.vcpus):
        idx = u64(i)
        tickets[i] = 0
        t = vm_vcpu(vm, idx)
        if sbi_target_hit(idx, mask, base) and t.state == VCPU_STARTED and t.addr() != v.addr():
            ticket = amoadd_d(addr_of(t.fence_req), u64(1)) + 1
            fence()
            if amoadd_w(addr_of(t.running), u32(0)) == 0 or amoadd_w(addr_of(t.idle), u32(0)) != 0:
                v.fences_deferred += 1
            else:
                tickets[i] = ticket
                hart_ipi(t.hart)
                v.fences_sent += 1
    if sbi_target_hit(v.vcpu_id, mask, base):
        hfence_vvma()  # this hart runs v: the current VMID is its VM's
        fence_i()
    for i in range(vm.vcpus):
        if tickets[i] != 0:
            vcpu_fence_wait(v, vm_vcpu(vm, u64(i)), tickets[i])
    return SBI_SUCCESS


def vcpu_handle_messages(v: Ptr[Vcpu]) -> None:
    """Act on what other harts asked of this vCPU (on the hart that runs it: hvip and fences are per hart)."""
    if amoswap_w(addr_of(v.mailbox[MSG_VSSIP]), u32(0)) != 0:
        csr_set(HVIP, MIP_VSSIP)
    if amoswap_w(addr_of(v.mailbox[MSG_KICK]), u32(0)) != 0:
        v.idle_due = u32(1)  # done on the way back to it (trap.py irq_software, vcpu_run)
    vcpu_fence_local(v)
    if amoswap_w(addr_of(v.mailbox[MSG_VSEIP]), u32(0)) != 0:
        virq_update_vcpu(v)


def sbi_ipi(v: Ptr[Vcpu]) -> None:
    """send_ipi(hart_mask, hart_mask_base): the guest's supervisor software interrupt on each target."""
    v.sbi_ipi_calls += 1
    if v.regs[A6] != 0:
        sbi_return(v, SBI_ERR_NOT_SUPPORTED, u64(0))
        return
    sbi_return(v, sbi_for_each_target(v, v.regs[A0], v.regs[A1], u64(MSG_VSSIP)), u64(0))


def sbi_rfence(v: Ptr[Vcpu]) -> None:
    """Remote fences (SBI 2.0 chapter 8): each target hart runs hfence.vvma for the VM and fence.i.
    A request is over-approximated (the whole VMID), which the spec allows. The HFENCE functions (3..6) are
    NOT_SUPPORTED: they need the H extension on the targets, and no guest is given it."""
    fid = v.regs[A6]
    if fid > 2:
        sbi_return(v, SBI_ERR_NOT_SUPPORTED, u64(0))
        return
    v.sbi_rfence_calls[fid] += 1
    sbi_return(v, sbi_remote_fence(v, v.regs[A0], v.regs[A1]), u64(0))


def sbi_hsm(v: Ptr[Vcpu]) -> None:
    """Hart state management over the VM's vCPUs (SBI 2.0 chapter 9): hart IDs are vCPU indexes."""
    v.sbi_hsm_calls += 1
    fid = v.regs[A6]
    vm = vcpu_vm(v)
    target = v.regs[A0]
    if fid == SBI_HSM_HART_STOP:  # this vCPU waits for a hart_start; its hart goes idle
        v.state = VCPU_STOPPED
        v.parking = u32(1)  # leave through hart_wait even if a hart_start comes before this trap returns
        if vm_vcpus_started(vm) == 0:
            vm_report(vm, cstr(b"stopped its last vCPU, pc "), v.sepc)
            vm_end(vm, VM_ENDED, v)
        return
    if fid != SBI_HSM_HART_START and fid != SBI_HSM_HART_GET_STATUS:
        sbi_return(v, SBI_ERR_NOT_SUPPORTED, u64(0))
        return
    if target >= vm.vcpus:
        sbi_return(v, SBI_ERR_INVALID_PARAM, u64(0))
        return
    t = vm_vcpu(vm, target)
    if fid == SBI_HSM_HART_GET_STATUS:
        sbi_return(v, SBI_SUCCESS, SBI_HSM_STARTED if t.state == VCPU_STARTED else SBI_HSM_STOPPED)
        return
    if t.state == VCPU_STARTED:  # hart_start(hartid, start_addr, opaque)
        sbi_return(v, SBI_ERR_ALREADY_AVAILABLE, u64(0))
        return
    start = v.regs[A1]
    if gmem_translate(vm, start, u64(4)) == 0:
        # SBI 2.0 section 9.1: "start_addr is not valid, possibly due to ... not a valid physical address"
        sbi_return(v, SBI_ERR_INVALID_ADDRESS, u64(0))
        return
    vcpu_reset(t)
    fpu_reset(t)  # zeroed FP and vector registers at its next entry
    t.sepc = start
    t.regs[A0] = target
    t.regs[A1] = v.regs[A2]
    fence()
    t.state = VCPU_STARTED
    fence()
    hart_ipi(t.hart)
    sbi_return(v, SBI_SUCCESS, u64(0))


def sbi_srst(v: Ptr[Vcpu]) -> None:
    """system_reset acts on the calling VM only; the hypervisor and the other VMs run on (SBI 2.0 ch. 10)."""
    kind = v.regs[A0]
    reason = v.regs[A1]
    vm = vcpu_vm(v)
    if v.regs[A6] != 0:
        sbi_return(v, SBI_ERR_NOT_SUPPORTED, u64(0))
        return
    # SBI 2.0 section 10.1: types 3..0xEFFFFFFF and reasons 2..0xDFFFFFFF are reserved (and both are 32-bit);
    # vendor types 0xF0000000.. are not supported here, vendor/platform reasons are passed on.
    if kind > 0xFFFFFFFF or (kind > SBI_SRST_WARM_REBOOT and kind < 0xF0000000):
        sbi_return(v, SBI_ERR_INVALID_PARAM, u64(0))
        return
    if reason > 0xFFFFFFFF or (reason > SBI_SRST_REASON_FAILURE and reason < 0xE0000000):
        sbi_return(v, SBI_ERR_INVALID_PARAM, u64(0))
        return
    if kind >= 0xF0000000:
        sbi_return(v, SBI_ERR_NOT_SUPPORTED, u64(0))
        return
    if vm.id == 0:
        # The management VM's power-off or reboot is the machine's (DESIGN.md section 4).
        vm_report(vm, cstr(b"(management VM) resets the machine, type "), kind)
        vm_console_flush(vm)
        vm_print_stats(vm)
        stats_print_exits(vm)
        if kind == SBI_SRST_COLD_REBOOT or kind == SBI_SRST_WARM_REBOOT:
            machine_reset(kind, reason, vm_harts_present())  # the other harts park first (core/machine.py)
        else:
            sbi_system_reset(kind, reason)
        return
    if vm.dynamic:
        # A guest VM made through the control protocol: it stops (memory kept), or waits in `rebooting` for the
        # MVM's daemon to reload its images and boot it; the control server reports either (core/control.py).
        if kind == SBI_SRST_COLD_REBOOT or kind == SBI_SRST_WARM_REBOOT:
            vm_report(vm, cstr(b"asks for a reboot, reason "), reason)
            vm_end(vm, VM_REBOOTING, v)
            return
        vm_report(vm, cstr(b"powered off, reason "), reason)
        if reason != SBI_SRST_REASON_NONE:
            vm.reason = END_FAILURE
        vm_end(vm, VM_ENDED if reason == SBI_SRST_REASON_NONE else VM_FAILED, v)
        return
    if kind == SBI_SRST_COLD_REBOOT or kind == SBI_SRST_WARM_REBOOT:
        if not vm.mem_owned or vm.vcpus != 1:
            vm_report(vm, cstr(b"asked for a reboot, which it cannot have yet; it powers off, reason "), reason)
            vm_end(vm, VM_ENDED, v)
            return
        vm_report(vm, cstr(b"reboots, reason "), reason)
        vm.boots += 1
        vm_load_image(vm)
        vcpu_reset(v)
        fpu_reset(v)
        v.parking = u32(1)  # re-entered through hart_wait and vcpu_run: fences, fence.i, fresh VS-level state
        return
    vm_report(vm, cstr(b"powered off, reason "), reason)
    vm_end(vm, VM_ENDED if reason == SBI_SRST_REASON_NONE else VM_FAILED, v)


def guest_byte(vm: Ptr[Vm], gpa: u64, out: Ptr[u64]) -> bool:
    """One byte of the VM's RAM through its stage-2 table (false outside its RAM: a device window it has mapped,
    a passthrough UART or its IMSIC pages, is never read by the hypervisor on its behalf)."""
    if gmem_translate(vm, gpa, u64(1)) == 0:
        return False
    hpa = Array[u64, 1]()
    if not stage2_translate(vm.stage2_root, gpa, addr_of(hpa[0])):
        return False
    out[0] = u64(Ptr[u8](hpa[0])[0])
    return True


def sbi_dbcn(v: Ptr[Vcpu]) -> None:
    v.sbi_console_calls += 1
    fid = v.regs[A6]
    vm = vcpu_vm(v)
    if fid == 0:  # console_write(num_bytes, base_lo, base_hi)
        n = v.regs[A0]
        if n > DBCN_MAX_WRITE:
            n = DBCN_MAX_WRITE
        if v.regs[A2] != 0:
            sbi_return(v, SBI_ERR_INVALID_PARAM, u64(0))  # SBI 2.0 section 12.1: memory outside the VM's RAM
            return
        base = v.regs[A1]
        b = Array[u64, 1]()
        chunk = Array[u8, DBCN_CHUNK]()
        done = u64(0)
        while done < n:
            if not guest_byte(vm, base + done, addr_of(b[0])):
                break
            if vm.dynamic:  # a guest VM's console stream: its port in the MVM, in chunks
                chunk[done % DBCN_CHUNK] = u8(b[0])
                if done % DBCN_CHUNK == DBCN_CHUNK - 1:
                    vcon_console_write(vm, addr_of(chunk[0]).addr(), DBCN_CHUNK, v)
            else:
                vm_console_putc(vm, u8(b[0]))
            done += 1
        if vm.dynamic and done % DBCN_CHUNK != 0:
            vcon_console_write(vm, addr_of(chunk[0]).addr(), done % DBCN_CHUNK, v)
        if done == 0 and n != 0:
            sbi_return(v, SBI_ERR_INVALID_PARAM, u64(0))
        else:
            sbi_return(v, SBI_SUCCESS, done)
    elif fid == 1:  # console_read: no input for guests yet
        sbi_return(v, SBI_SUCCESS, u64(0))
    elif fid == 2:  # console_write_byte
        guest_console_byte(v, u8(v.regs[A0] & 255))
        sbi_return(v, SBI_SUCCESS, u64(0))
    else:
        sbi_return(v, SBI_ERR_NOT_SUPPORTED, u64(0))


def guest_console_byte(v: Ptr[Vcpu], c: u8) -> None:
    """One byte of a guest's console output: a guest VM's goes into its console stream (its port in the MVM,
    core/virtio_console.py), never onto the UART; a VM of the board's own goes to the hypervisor's console."""
    vm = vcpu_vm(v)
    if vm.dynamic:
        one = Array[u8, 1]()
        one[0] = c
        vcon_console_write(vm, addr_of(one[0]).addr(), u64(1), v)
    else:
        vm_console_putc(vm, c)


def sbi_legacy_putchar(v: Ptr[Vcpu]) -> None:
    v.sbi_console_calls += 1
    guest_console_byte(v, u8(v.regs[A0] & 255))
    v.regs[A0] = 0


def sbi_legacy_getchar(v: Ptr[Vcpu]) -> None:
    v.sbi_console_calls += 1
    v.regs[A0] = ~u64(0)  # -1: no character


@noinline
def sbi_test_fault(v: Ptr[Vcpu]) -> None:
    """In a `--debug-faults` build only, make the hypervisor load from an address with no memory, so tests see
    its own fault report."""
    if DEBUG_FAULTS == 0:
        sbi_return(v, SBI_ERR_NOT_SUPPORTED, u64(0))
        return
    sbi_return(v, SBI_SUCCESS, Ptr[u64](u64(8))[0])


def sbi_pyshyper_test(v: Ptr[Vcpu]) -> None:
    """The PyShyper test extension (firmware-specific EID space, SBI 2.0 section 3.x), for test guests that check
    the hypervisor loses nothing: FID 0 the fault above, 1 free page frames, 2 the calling hart's hypervisor
    stack high-water mark in bytes, 3 how many times the calling VM was started (1 + SRST reboots), 4 a switch of
    its FP and vector state out and back in (arch/riscv/fpu.py fpu_test_switch: a0 the pattern, a1 non-zero to
    clobber the registers in between; a1 of the answer says which saves and loads it took)."""
    fid = v.regs[A6]
    if fid == 0:
        sbi_test_fault(v)
    elif fid == 1:
        sbi_return(v, SBI_SUCCESS, frame_alloc_free_pages())
    elif fid == 2:
        sbi_return(v, SBI_SUCCESS, stack_high_water(v.hyp_sp))
    elif fid == 3:
        sbi_return(v, SBI_SUCCESS, vcpu_vm(v).boots)
    elif fid == 4:
        sbi_return(v, SBI_SUCCESS, fpu_test_switch(v, v.regs[A0], v.regs[A1] != 0))
    else:
        sbi_return(v, SBI_ERR_NOT_SUPPORTED, u64(0))


SBI_EXTENSIONS_MAX: Final = 16


@struct
class SbiExtension:
    eid: u64  # SBI 2.0 chapter 3: the extension ID the guest puts in a7
    handler: Callable[[Ptr[Vcpu]], None]


SBI_EXTENSIONS = static(Array[SbiExtension, SBI_EXTENSIONS_MAX])
sbi_extension_count: u64 = 0


def sbi_register(eid: u64, handler: Callable[[Ptr[Vcpu]], None]) -> None:
    global sbi_extension_count
    assert sbi_extension_count < SBI_EXTENSIONS_MAX
    e = addr_of(SBI_EXTENSIONS[sbi_extension_count])
    e.eid = eid
    e.handler = handler
    sbi_extension_count += 1


def vsbi_init() -> None:
    """The extensions guests get (once, on the boot hart, before any vCPU runs). PMU is not among them: no
    counters are offered, and BASE probe_extension says so."""
    global sbi_extension_count
    sbi_extension_count = 0
    sbi_register(SBI_EXT_BASE, sbi_base)
    sbi_register(SBI_EXT_TIME, sbi_time)
    sbi_register(SBI_EXT_IPI, sbi_ipi)
    sbi_register(SBI_EXT_RFENCE, sbi_rfence)
    sbi_register(SBI_EXT_HSM, sbi_hsm)
    sbi_register(SBI_EXT_SRST, sbi_srst)
    sbi_register(SBI_EXT_DBCN, sbi_dbcn)
    sbi_register(SBI_EXT_LEGACY_SET_TIMER, sbi_legacy_set_timer)
    sbi_register(SBI_EXT_LEGACY_PUTCHAR, sbi_legacy_putchar)
    sbi_register(SBI_EXT_LEGACY_GETCHAR, sbi_legacy_getchar)
    sbi_register(SBI_EXT_PYSHYPER_TEST, sbi_pyshyper_test)


def sbi_extension_find(eid: u64) -> Ptr[SbiExtension]:
    """The guests' extension with that ID, or null."""
    for i in range(sbi_extension_count):
        e = addr_of(SBI_EXTENSIONS[i])
        if e.eid == eid:
            return e
    return null(SbiExtension)


@inline
def sbi_handle_ecall(v: Ptr[Vcpu]) -> None:
    """scause 10 (ecall from VS): dispatch by extension ID; unknown extensions get NOT_SUPPORTED."""
    v.sepc += 4
    v.sbi_calls += 1
    eid = v.regs[A7]
    # TIME (a Linux guest's most frequent call without Sstc) and BASE (probes; its small EID is one compare)
    # called directly; the others through the table.
    if eid == SBI_EXT_BASE:
        sbi_base(v)
    elif eid == SBI_EXT_TIME:
        sbi_time(v)
    else:
        sbi_dispatch(v, eid)


@noinline
def sbi_dispatch(v: Ptr[Vcpu], eid: u64) -> None:
    """The other extensions, through the table (out of line: sbi_handle_ecall stays small enough to inline)."""
    e = sbi_extension_find(eid)
    if e.addr() != 0:
        e.handler(v)
    else:
        sbi_return(v, SBI_ERR_NOT_SUPPORTED, u64(0))


def sbi_timer_fired(v: Ptr[Vcpu], now: u64) -> None:
    """The hypervisor's own S-mode timer fired (no Sstc): inject VSTIP if the guest's deadline passed."""
    v.timer_irqs += 1
    if now >= v.timer_deadline:
        v.timer_deadline = ~u64(0)
        csr_set(HVIP, MIP_VSTIP)
        sbi_set_timer(~u64(0))
    else:
        sbi_set_timer(v.timer_deadline)
