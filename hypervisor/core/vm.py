"""Virtual machines and their vCPUs: the tables, creation from an image, and the end of a VM.

A VM made at boot (the MVM, the test guests) owns host memory mapped at its guest-physical base through its own
stage-2 table and VMID; a test guest that ends (power-off, or a fault that kills it) releases its memory and
tables; the other VMs run on. The end of the management VM is the end of the machine. A guest VM made through the
control protocol (core/gvm.py: `dynamic`) has up to MEM_REGIONS memory regions; its end keeps them (it may be
booted again) until VM_REMOVE frees them.

Slots: VMS[i] is VM slot i (the MVM's is 0; a guest VM's is its id); a vCPU takes the lowest free slot of VCPUS,
found from its VM through Vm.vcpu_slot. Each vCPU is placed on one hart for its life (Vcpu.hart); a hart's run
queue (core/sched.py) holds the vCPUs placed on it: one (partitioned placement, the fast path) or several.

Which harts touch what: VMS and VCPUS are written by the boot hart while it makes the VMs (before any vCPU runs:
`vms_created`), and afterwards, for guest VMs only, by the control server on a hart of the MVM, one request at a
time, on slots no vCPU runs (core/gvm.py says how). A VM's `state` leaves VM_RUNNING only through `vm_end`, which
one hart claims (`Vm.ending`; a VM_STOP claims it too); a vCPU's registers and counters are its own hart's while it
runs; mailboxes, fence counters, `running`, `released` and `event` are shared and accessed with AMOs; each VM's
console line is under its `console_spin`.
"""

from compiler.prelude import (
    Array,
    Callable,
    Final,
    Ptr,
    addr_of,
    amoadd_w,
    amoswap_w,
    cstr,
    fence,
    null,
    static,
    struct,
    u8,
    u32,
    u64,
)
from hypervisor.arch.riscv.hart import hart_time
from hypervisor.arch.riscv.ipi import hart_ipi
from hypervisor.arch.riscv.stage2 import (
    S2_COUNT_1G,
    S2_COUNT_2M,
    S2_COUNT_4K,
    S2_COUNT_64K,
    S2_COUNT_TABLES,
    S2_COUNTS,
    S2_PERM_RW,
    S2_PERM_RWX,
    stage2_count_leaves,
    stage2_create,
    stage2_destroy,
    stage2_flush,
    stage2_leaf_align,
    stage2_map,
)
from hypervisor.board import MAX_HARTS, MMIO_DECODE_FETCH, TIMEBASE_FREQUENCY
from hypervisor.core.console import (
    console_dec,
    console_field,
    console_lock,
    console_puts,
    console_unlock,
    console_write,
)
from hypervisor.core.frame_alloc import frame_alloc, frame_alloc_free_pages, frame_alloc_total_pages, frame_free
from hypervisor.core.log import LOG_ERROR, LOG_INFO, log1, log2, log_to, log_vm
from hypervisor.core.machine import machine_power_off
from hypervisor.core.spinlock import Spinlock, spin_lock, spin_unlock
from hypervisor.core.stack import stack_report, stack_top

VM_MAX: Final = 8
VCPU_MAX: Final = 16  # vCPUs of all VMs together (several may share a hart: core/sched.py)
RQ_MAX: Final = 8  # vCPUs placed on one hart
VMID_SLOTS: Final = VM_MAX + 1  # VMIDs are 1 .. VM_MAX (a VM's slot + 1)
PRIORITY_DEFAULT: Final = u64(0)  # cpu.priority: 0 .. 255, a higher number preempts a lower one
PRIORITY_MAX: Final = u64(255)
SLICE_DEFAULT_MS: Final = u64(10)  # cpu.time_slice_ms: equal priorities share a hart round-robin
SLICE_MAX_MS: Final = u64(1000)
MEM_REGIONS: Final = 4  # memory regions of a VM (its first is mem_gpa/mem_hpa/mem_size)
VM_NAME: Final = 32
VM_CONFIG_MAX: Final = 8192  # the config bytes a guest VM keeps for VM_CONFIG_GET (mvm-tools/PROTOCOL.md)
EMUL_MAX: Final = 6  # emulated MMIO regions per VM (core/emul.py): a GVM has 2 + a doorbell per shared region

VM_RUNNING: Final = u64(1)
VM_ENDED: Final = u64(2)
VM_CRASHED: Final = u64(3)  # killed by the hypervisor for a fault
VM_FAILED: Final = u64(4)  # powered itself off reporting a failure (SRST reason "system failure")
# Guest VMs made through the control protocol (core/gvm.py) also have these; a stopped one is VM_ENDED (or
# VM_FAILED), and VM_STOPPED is one the control protocol stopped.
VM_CREATED: Final = u64(5)  # configured, memory allocated, never booted
VM_REBOOTING: Final = u64(6)  # asked for a reboot (SRST): the MVM's daemon reloads it and boots it
VM_STOPPED: Final = u64(7)  # ended by VM_STOP

# Why a guest VM ended (VM record `reason`, mvm-tools/PROTOCOL.md)
END_NONE: Final = u32(0)
END_EXCEPTION: Final = u32(1)  # an exception the hypervisor does not handle
END_ACCESS: Final = u32(2)  # a guest access no device answers
END_FAILURE: Final = u32(3)  # it reported a failure (SRST)
END_STOPPED: Final = u32(4)  # VM_STOP

VCPU_STOPPED: Final = u64(0)
VCPU_STARTED: Final = u64(1)

# Vcpu.regs_written: how runtime/trap.S goes back to the guest
REGS_RELOAD_CALLER: Final = 0  # the registers the hypervisor's calls may change (the others still hold the guest's)
REGS_RELOAD_ALL: Final = 1  # all 31 from `regs`: the hypervisor wrote them all (a reset)
REGS_SAVE_KEPT: Final = 2  # save the kept registers into `regs`, then take the same trap again
REGS_LOAD_KEPT: Final = 3  # save the kept registers, write mmio_value over the emulated load's rd, reload all 31

# Messages to the hart running a vCPU (Vcpu.mailbox slots, set with amoswap, followed by an IPI)
# (remote fences are not a message: they are counted, Vcpu.fence_req / fence_done, and waited for)
MSG_VSSIP: Final = 0  # raise the guest's supervisor software interrupt
MSG_VSEIP: Final = 1  # re-evaluate the guest's external interrupt line
MSG_KICK: Final = 2  # its VM's idle work (the control server, console bytes) is due: trap.py vcpu_idle_work
MSG_COUNT: Final = 4

PAGE_SIZE: Final = u64(4096)
CONSOLE_LINE: Final = 160


@struct
class Vcpu:
    regs: Array[u64, 32]  # x0..x31 of the guest; runtime/trap.S saves and restores them (offset 0)
    sepc: u64  # the guest pc, saved and restored by runtime/trap.S
    hyp_sp: u64  # the top of its hart's hypervisor stack: every trap from the guest starts there (trap.S)
    vm: u64  # index into VMS
    vm_addr: u64  # &VMS[vm], set with it: the trap path's vcpu_vm is one load, no index check
    vcpu_id: u64
    hart: u64
    timer_deadline: u64  # SBI set_timer deadline when the hart has no Sstc
    wfi_exits: u64
    sbi_calls: u64
    state: u64  # VCPU_STOPPED or VCPU_STARTED (SBI HSM)
    vseip: u32  # the external-interrupt line last applied on its hart (PLIC mode, core/virq.py)
    running: u32  # 1 while its hart runs it (set on entry, cleared when the hart parks), read atomically
    parking: u32  # it leaves its hart when the trap ends (HSM stop, SRST reboot, its VM's end): trap.S unwinds
    # 1 while its own hart waits in the hypervisor at its trapped WFI, read atomically: it runs no guest code, and
    # fences before it does again, so remote fences asked meanwhile wait for that (arch/riscv/vsbi.py)
    idle: u32
    mailbox: Array[u32, MSG_COUNT]
    # Remote fences (SBI RFENCE) are synchronous: a requester takes a ticket from fence_req and waits until the
    # vCPU's hart has fenced and published fence_done >= ticket. Both only grow (never reset with the vCPU).
    fence_req: u64
    fence_done: u64
    vgein: u64  # AIA: the guest interrupt file of its hart it owns (hstatus.VGEIN); 0 with the PLIC
    # Exits to the hypervisor: vcpu_traps(v) = traps + mmio_exits (the emulated MMIO path counts its own only);
    traps: u64  # every exit but an emulated MMIO access; of which:
    irqs: u64  # the hypervisor's own interrupts (timer, IPI, external)
    mmio_exits: u64  # emulated MMIO accesses
    mmio_fetched: u64  # of which decoded from the instruction read back (no htinst); vcpu_mmio_fetched(v)
    mmio_access: u64  # the emulated load in progress, as a transformed instruction (arch/riscv/mmio.py)
    mmio_value: u64  # the value of an emulated load into a kept register, for runtime/trap.S (REGS_LOAD_KEPT)
    # How runtime/trap.S goes back to the guest: REGS_RELOAD_CALLER (0), reloading only the registers the
    # hypervisor's calls may change; REGS_RELOAD_ALL when the hypervisor wrote all of them (a reset);
    # REGS_SAVE_KEPT when an emulated store names a kept register that is not saved yet (arch/riscv/mmio.py):
    # trap.S saves them and takes the trap again; REGS_LOAD_KEPT when an emulated load's rd is a kept register.
    regs_written: u32
    # `regs` holds the guest's kept registers (gp, tp, s1..s11: trap.S saves them only when they are needed, as
    # the calling convention keeps s1..s11 and the hypervisor never uses gp and tp): 1 once trap.S saved them in
    # this trap (REGS_SAVE_KEPT: trap.S sets it around its second call only), else 0. They are saved whenever the
    # vCPU leaves its hart too, and before a load's value goes into one (REGS_LOAD_KEPT).
    kept_saved: u32
    # Scheduling (core/sched.py): written by the control server while the vCPU is made, then read by its hart
    used: u32  # the slot holds a vCPU
    fresh: u32  # reset since it last ran: vcpu_run gives it a fresh VS-level state instead of its saved one
    blocked: u32  # on a shared hart: it waits (a trapped WFI) until an interrupt is pending for it (its hart only)
    idle_due: u32  # a KICK came: its VM's idle work is due on its hart (arch/riscv/trap.py vcpu_idle_work)
    priority: u64  # 0 .. 255: the highest runnable priority of a hart runs; a higher one preempts at once
    slice: u64  # its round-robin time slice, in timebase ticks, among equal priorities
    last_run: u64  # its hart's switch count when it last entered (round-robin: the longest waiting goes first)
    switches: u64  # times a shared hart switched to it
    # Its VS-level state while it is off a shared hart (arch/riscv/vcpu.py vcpu_save / vcpu_restore, Priv 9.2)
    s_vsstatus: u64
    s_vsie: u64
    s_vstvec: u64
    s_vsscratch: u64
    s_vsepc: u64
    s_vscause: u64
    s_vstval: u64
    s_vsatp: u64
    s_vstimecmp: u64  # Sstc: its timer deadline (without Sstc it is timer_deadline)
    s_hvip: u64
    s_vsiselect: u64
    s_spp: u64  # the privilege it trapped from (sstatus.SPP: 0 VU, 1 VS), which its sret must return to
    # Its exits by cause, finely (core/stats.py stats_print_exits, at the MVM's power-off): one increment each on
    # the path it counts. SBI calls by extension and function:
    sbi_base_calls: u64
    sbi_timer_calls: u64  # TIME set_timer and the legacy set_timer
    sbi_ipi_calls: u64
    sbi_rfence_calls: Array[u64, 3]  # RFENCE by function: remote fence.i, sfence.vma, sfence.vma with an ASID
    sbi_hsm_calls: u64
    sbi_console_calls: u64  # DBCN and the legacy console
    ipis_posted: u64  # SBI IPI: messages posted to another vCPU of its VM (an IPI to that vCPU's hart each)
    vseip_posts: u64  # its external-interrupt line changed by another hart (PLIC mode: an IPI to its hart each)
    # Remote fences it asked of other vCPUs: sent with an IPI, left to the target's next entry (it was not on its
    # hart), waited for (not yet served when first looked at) and the looks while waiting; and fences its own
    # hart ran for requests made of it
    fences_sent: u64
    fences_deferred: u64
    fences_waited: u64
    fence_polls: u64
    fences_served: u64
    timer_irqs: u64  # the hypervisor's timer for its SBI deadline (no Sstc)
    ext_irqs: u64  # the physical PLIC's interrupts taken while it ran (PLIC mode)
    # Its MMIO exits into the virtual PLIC by register class, and into the statistics page
    plic_claims: u64
    plic_completes: u64
    plic_reads: u64  # every other load
    plic_stores: u64  # every other store
    stats_reads: u64
    # and into virtio-mmio transports (core/virtio_mmio.py): QueueNotify stores, InterruptStatus loads and
    # InterruptACK stores (an interrupt's handling)
    virtio_notifies: u64
    virtio_irq_regs: u64
    # The vCPU whose remote fence this one sleeps for (its address; 0: none): that vCPU's hart wakes it once it
    # has fenced or left (arch/riscv/vsbi.py vcpu_fence_wait, vcpu_fence_notify)
    fence_wait: u64


@struct
class EmulMem:
    """An emulated MMIO region of a VM (core/emul.py): [base, base + size) of guest-physical space, and the
    device model that performs an access at `offset` into it (width in bytes; a store takes *value, a load
    leaves the value there) and answers EMUL_DONE or EMUL_FAULT. An LW or SW (arch/riscv/mmio.py's word
    paths) goes to `read32` or `write32` instead, which pass the value in registers: the device's own, or
    emul.py's, which call `handler` with width 4. Both are given v, the region's address and the offset (any:
    they refuse a misaligned one as `handler` does); read32 answers the register sign-extended from bit 31
    (Unprivileged 2.6: what LW leaves in rd), or EMUL_WORD_FAULT, which is no such value; write32 takes the
    register in the value's low 32 bits and answers EMUL_DONE or EMUL_FAULT."""

    base: u64
    size: u64
    handler: Callable[[Ptr[Vcpu], u64, u64, bool, Ptr[u64]], u64]
    read32: Callable[[Ptr[Vcpu], u64, u64], u64]
    write32: Callable[[Ptr[Vcpu], u64, u64, u64], u64]


@struct
class MemRegion:
    """[gpa, gpa + size) of a VM's guest-physical memory is host memory at hpa (from the frame pool when the VM
    owns its memory)."""

    gpa: u64
    hpa: u64
    size: u64


@struct
class Vm:
    index: u64  # in VMS
    id: u64  # as users see it: 0 is the management VM
    vmid: u64
    state: u64
    stage2_root: u64
    mem_gpa: u64
    mem_hpa: u64
    mem_size: u64
    image_addr: u64
    image_size: u64
    entry: u64
    dtb: u64
    boot_arg: u64
    vcpu: u64  # index into VCPUS of its first vCPU
    vcpus: u64  # how many
    mem_owned: bool  # memory from the frame allocator (freed at the end) or a fixed region of the board
    console_len: u64
    ending: u32  # claimed (amoswap) by the one hart that ends the VM (vm_end)
    released: u32  # set by that hart once its tables and memory are back (vm_all_ended waits for it)
    boots: u64  # how many times it was started: 1, plus one per SRST reboot
    console_spin: Spinlock  # the VM's vCPUs may write their console on several harts at once
    emuls: u64  # how many of `emul` are in use (written while the VM is made, read by its vCPUs' traps)
    emul: Array[EmulMem, EMUL_MAX]
    irqc: bool  # it has a virtual interrupt controller (arch/riscv/irqc.py)
    # The address of that controller's state (core/virq.py's Vplic, core/vaplic.py's Vaplic), set with its window:
    # the lock-free register read of the MMIO trap path finds it in one load.
    irqc_regs: u64
    console: Array[u8, CONSOLE_LINE]
    # The slots of its vCPUs in VCPUS, by vCPU index (a vCPU's slot is its hart)
    vcpu_slot: Array[u8, VCPU_MAX]
    # Memory: `regions` of `region` (region 0 is also mem_gpa/mem_hpa/mem_size)
    regions: u64
    region: Array[MemRegion, MEM_REGIONS]
    # Guest VMs made through the control protocol (core/gvm.py); the fields below are theirs
    used: bool  # the slot holds a VM
    dynamic: bool  # made through the control protocol: its end keeps its memory until it is removed
    name: Array[u8, VM_NAME]  # NUL-padded
    hart_mask: u64
    master: u64  # the vCPU that starts at boot
    console_ipa: u64
    console_irq: u64
    boot_time: u64  # time CSR when it last started (0: never)
    reason: u32  # END_*: why it ended
    event: u32  # its state changed by itself (SRST, a fault): the control server reports it (amoswap)
    fault_scause: u64
    fault_stval: u64
    fault_sepc: u64
    fault_htval: u64
    config_len: u64
    config: Array[u8, VM_CONFIG_MAX]


@struct
class RunQueue:
    """The vCPUs placed on one hart (core/sched.py picks among them). `vcpu[0 .. count)` is written only under
    `spin` (by the boot hart while it makes VMs, then by the control server as it makes and removes guest VMs),
    and read by the hart itself under `spin`. `current` is the vCPU whose state the hart holds now (null: none):
    the hart's own, written with V=0 on that hart only."""

    spin: Spinlock
    count: u64
    vcpu: Array[Ptr[Vcpu], RQ_MAX]
    current: Ptr[Vcpu]
    clock: u64  # switches made on this hart (the round-robin order: Vcpu.last_run)
    slice_end: u64  # time when the current vCPU's round-robin slice ends (~0: no other vCPU of its priority waits)
    timer: u64  # the hypervisor's own timer deadline on this hart as last programmed by the scheduler
    hgeie: u64  # AIA: the guest interrupt files whose MSIs wake this hart (of its waiting vCPUs)
    # The cost of switching between vCPUs (the statistics page): instret when the last vCPU began to leave and
    # which one it was, then per switch to another vCPU the instructions from there to the sret into it
    left_instret: u64
    left: Ptr[Vcpu]
    switch_count: u64
    switch_instret: u64
    # Per VMID, the vCPU of that VMID last entered here: the hart's TLB may hold its VS-stage translations, tagged
    # with the VMID (core/sched.py sched_fences). Entries that fenced: all of the VMID's, or its VS stage only.
    last_of: Array[Ptr[Vcpu], VMID_SLOTS]
    fences_all: u64
    fences_vs: u64


VMS = static(Array[Vm, VM_MAX])
VCPUS = static(Array[Vcpu, VCPU_MAX])
RQ = static(Array[RunQueue, MAX_HARTS])
vm_count: u64 = 0
vcpu_count: u64 = 0
mvm_present: bool = False


harts_present: u64 = 0  # bit h: hart h is up and runs the idle loop (main.py, once the harts have checked in)
vms_created: bool = False  # the boot hart has made every VM it will make (until then none has "ended")


def vm_mark_created() -> None:
    global vms_created
    fence()
    vms_created = True
    fence()


def vm_harts_present_set(mask: u64) -> None:
    global harts_present
    harts_present = mask


def vm_harts_present() -> u64:
    return harts_present


def vm_set_name(vm: Ptr[Vm], name: Ptr[u8]) -> None:
    """The VM's name (NUL-padded, at most VM_NAME - 1 bytes kept)."""
    n = u64(0)
    while n < VM_NAME:
        vm.name[n] = u8(0)
        n += 1
    n = 0
    while n < VM_NAME - 1 and name[n] != 0:
        vm.name[n] = name[n]
        n += 1


def vm_mark_mvm() -> None:
    global mvm_present
    mvm_present = True


def vm_get(index: u64) -> Ptr[Vm]:
    return addr_of(VMS[index])


def vcpu_vm(v: Ptr[Vcpu]) -> Ptr[Vm]:
    return Ptr[Vm](v.vm_addr)


def vm_emul_clear(vm: Ptr[Vm]) -> None:
    """vm has no emulated regions (core/emul.py): every entry empty, the first included, which the trap path's
    emul_find probes without the count."""
    for i in range(EMUL_MAX):
        e = addr_of(vm.emul[i])
        e.base = 0
        e.size = 0
    vm.emuls = 0


def vcpu_traps(v: Ptr[Vcpu]) -> u64:
    """v's exits to the hypervisor: the emulated MMIO path counts only mmio_exits (arch/riscv/trap.py)."""
    return v.traps + v.mmio_exits


def vcpu_mmio_fetched(v: Ptr[Vcpu]) -> u64:
    """v's emulated MMIO accesses decoded from the instruction read back: all of them when the build decodes
    by fetch (board MMIO_DECODE_FETCH, not counted apart), else those the hart gave no htinst for."""
    if MMIO_DECODE_FETCH != 0:
        return v.mmio_exits
    return v.mmio_fetched


def vm_vcpu(vm: Ptr[Vm], index: u64) -> Ptr[Vcpu]:
    return addr_of(VCPUS[u64(vm.vcpu_slot[index])])


def vm_load_image(vm: Ptr[Vm]) -> None:
    """Copy the pristine image into the VM's memory (at its base); the rest of its memory is left as it is (zero
    from the frame allocator at the first boot, whatever the guest left there after a reboot)."""
    dst = Ptr[u64](vm.mem_hpa)
    src = Ptr[u64](vm.image_addr)
    words = (vm.image_size + 7) // 8
    for i in range(words):
        dst[i] = src[i]
    fence()


def vm_setup(vm_id: u64, gpa: u64, hpa: u64, mem_size: u64, owned: bool) -> Ptr[Vm]:
    """A new VM whose memory [gpa, gpa+size) is host memory at hpa, in a fresh stage-2 table; null on failure."""
    global vm_count
    if vm_count >= VM_MAX:
        return null(Vm)
    root = stage2_create()
    if root == 0:
        return null(Vm)
    if not stage2_map(root, gpa, hpa, mem_size, S2_PERM_RWX):
        stage2_destroy(root)
        return null(Vm)
    vm = addr_of(VMS[vm_count])
    vm.index = vm_count
    vm.id = vm_id
    vm.vmid = vm_count + 1
    vm.state = VM_RUNNING
    vm.stage2_root = root
    vm.mem_gpa = gpa
    vm.mem_hpa = hpa
    vm.mem_size = mem_size
    vm.regions = 1
    vm.region[0].gpa = gpa
    vm.region[0].hpa = hpa
    vm.region[0].size = mem_size
    vm.used = True
    vm.dynamic = False
    vm.mem_owned = owned
    vm.entry = gpa
    vm.vcpu = vcpu_count
    vm.vcpus = 0
    vm.console_len = 0
    vm_emul_clear(vm)
    vm.irqc = False
    vm.ending = 0
    vm.released = 0
    vm.boots = 1
    vm_count += 1
    return vm


def vm_mem_alloc(gpa: u64, size: u64) -> u64:
    """Zeroed host frames for VM memory at guest-physical [gpa, gpa + size), aligned so that stage-2 can map them
    with its largest leaves (stage2_leaf_align: a 128 MiB region at a 2 MiB aligned IPA gets a 2 MiB aligned run,
    1 GiB leaves a 1 GiB aligned one, a small region at a 64 KiB aligned IPA a 64 KiB aligned one for Svnapot);
    when no run that aligned is free, the next smaller alignment, down to 4 KiB; 0 when none at all."""
    align = stage2_leaf_align(gpa, size)
    while True:
        hpa = frame_alloc(size // PAGE_SIZE, align // PAGE_SIZE)
        if hpa != 0 or align <= PAGE_SIZE:
            return hpa
        align = align >> 1


def vm_log_stage2(vm: Ptr[Vm]) -> None:
    """One line with the leaves of the VM's stage-2 table: how much of its memory the large pages cover (a guest
    VM's on the MVM's log port only, as every line about it: core/log.py log_vm)."""
    c = Array[u64, S2_COUNTS]()
    stage2_count_leaves(vm.stage2_root, addr_of(c[0]))
    log_to(
        LOG_INFO,
        not vm.dynamic,
        cstr(b"pyshyper: vm%d stage 2: %d x 1G, %d x 2M, %d x 64K, %d x 4K leaves, %d table pages\n"),
        vm.id,
        c[S2_COUNT_1G],
        c[S2_COUNT_2M],
        c[S2_COUNT_64K],
        c[S2_COUNT_4K],
        c[S2_COUNT_TABLES],
        u64(6),
    )


def vm_map_device(vm: Ptr[Vm], gpa: u64, hpa: u64, size: u64) -> bool:
    """Passthrough: a device's registers mapped into the VM (read/write, no execute), at the device's own address:
    on qemu-virt every such region (the UART, the virtio-mmio slots, the RTC, an IMSIC guest file) is one 4 KiB
    page, a 4 KiB leaf."""
    return stage2_map(vm.stage2_root, gpa, hpa, size, S2_PERM_RW)


def vm_vcpu_count() -> u64:
    """vCPUs that exist (of every VM)."""
    return vcpu_count


def vcpu_slot_free() -> u64:
    """The lowest free slot of VCPUS, VCPU_MAX when none."""
    for i in range(u64(VCPU_MAX)):
        if VCPUS[i].used == 0:
            return i
    return u64(VCPU_MAX)


def hart_vcpus(hart: u64) -> u64:
    """How many vCPUs are placed on `hart` (0 for a hart the hypervisor has no data for)."""
    if hart >= MAX_HARTS:
        return u64(0)
    return RQ[hart].count


def hart_first_vcpu(hart: u64) -> Ptr[Vcpu]:
    """The first vCPU placed on `hart`, null when none."""
    if hart >= MAX_HARTS or RQ[hart].count == 0:
        return null(Vcpu)
    return RQ[hart].vcpu[0]


def vcpu_exits_reset(v: Ptr[Vcpu]) -> None:
    """The exits-by-cause counters of a vCPU slot taken again (core/stats.py stats_print_exits)."""
    v.sbi_base_calls = 0
    v.sbi_timer_calls = 0
    v.sbi_ipi_calls = 0
    for i in range(3):
        v.sbi_rfence_calls[i] = 0
    v.sbi_hsm_calls = 0
    v.sbi_console_calls = 0
    v.ipis_posted = 0
    v.vseip_posts = 0
    v.fences_sent = 0
    v.fences_deferred = 0
    v.fences_waited = 0
    v.fence_polls = 0
    v.fences_served = 0
    v.timer_irqs = 0
    v.ext_irqs = 0
    v.plic_claims = 0
    v.plic_completes = 0
    v.plic_reads = 0
    v.plic_stores = 0
    v.stats_reads = 0
    v.virtio_notifies = 0
    v.virtio_irq_regs = 0
    v.fence_wait = 0


def vcpu_add(vm: Ptr[Vm], hart: u64, started: bool) -> Ptr[Vcpu]:
    """The VM's next vCPU, placed on `hart` (its run queue; at its default priority and time slice); vCPU 0
    starts at the VM's entry, the others wait for HSM. Null when the hart, the vCPU slots, the VM's vCPUs or the
    hart's run queue are full."""
    global vcpu_count
    if hart >= MAX_HARTS or vm.vcpus >= VCPU_MAX or RQ[hart].count >= RQ_MAX:
        return null(Vcpu)
    slot = vcpu_slot_free()
    if slot >= VCPU_MAX:
        return null(Vcpu)
    v = addr_of(VCPUS[slot])
    if vm.vcpus == 0:
        vm.vcpu = slot
    vm.vcpu_slot[vm.vcpus] = u8(slot)
    v.used = u32(1)
    v.vm = vm.index
    v.vm_addr = vm.addr()
    v.vcpu_id = vm.vcpus
    v.hart = hart
    v.hyp_sp = stack_top(hart)
    v.vgein = 0
    v.traps = 0
    v.irqs = 0
    v.wfi_exits = 0
    v.sbi_calls = 0
    v.mmio_exits = 0
    v.mmio_fetched = 0
    vcpu_exits_reset(v)
    v.priority = PRIORITY_DEFAULT
    v.slice = SLICE_DEFAULT_MS * (TIMEBASE_FREQUENCY // 1000)
    v.switches = 0
    v.last_run = 0
    v.blocked = u32(0)
    v.running = u32(0)
    v.parking = u32(0)
    v.idle = u32(0)
    vcpu_reset(v)
    v.state = VCPU_STARTED if started else VCPU_STOPPED
    fence()
    rq = addr_of(RQ[hart])
    spin_lock(addr_of(rq.spin))
    rq.vcpu[rq.count] = v  # published under the lock: the hart's scheduler looks at it from now on
    rq.count += 1
    spin_unlock(addr_of(rq.spin))
    vm.vcpus += 1
    vcpu_count += 1
    return v


def vcpu_remove(v: Ptr[Vcpu]) -> None:
    """v (off its hart: not `running`, never to run again) leaves its hart's run queue and frees its slot."""
    global vcpu_count
    v.state = VCPU_STOPPED
    fence()
    rq = addr_of(RQ[v.hart])
    spin_lock(addr_of(rq.spin))
    k = u64(0)
    while k < rq.count and rq.vcpu[k].addr() != v.addr():
        k += 1
    if k < rq.count:
        while k + 1 < rq.count:
            rq.vcpu[k] = rq.vcpu[k + 1]
            k += 1
        rq.count -= 1
        rq.vcpu[rq.count] = null(Vcpu)
    spin_unlock(addr_of(rq.spin))
    v.used = u32(0)
    vcpu_count -= 1


def vm_create(image_addr: u64, image_size: u64, gpa: u64, mem_size: u64, boot_arg: u64, hart: u64) -> Ptr[Vm]:
    """Create a VM from an image with one vCPU pinned to `hart`; null on failure."""
    if image_size > mem_size or hart >= MAX_HARTS or RQ[hart].count != 0:
        return null(Vm)
    pages = mem_size // PAGE_SIZE
    hpa = vm_mem_alloc(gpa, mem_size)  # a test guest's 4 MiB at 0x8000_0000: 2 MiB aligned, two 2 MiB leaves
    if hpa == 0:
        return null(Vm)
    vm = vm_setup(vm_count + 1 - (1 if mvm_present else 0), gpa, hpa, mem_size, True)
    if vm.addr() == 0:
        frame_free(hpa, pages)
        return vm
    vm.image_addr = image_addr
    vm.image_size = image_size
    vm.boot_arg = boot_arg
    vm_load_image(vm)
    vcpu_add(vm, hart, True)
    return vm


def vcpu_post(t: Ptr[Vcpu], msg: u64) -> None:
    """Leave msg in t's mailbox and interrupt t's hart (an SBI IPI); that hart reads the mailbox after clearing
    its SSIP, so a message is never left unread (sbi.py vcpu_handle_messages)."""
    amoswap_w(addr_of(t.mailbox[msg]), u32(1))
    fence()
    hart_ipi(t.hart)


def vcpu_reset(v: Ptr[Vcpu]) -> None:
    vm = vcpu_vm(v)
    for i in range(32):
        v.regs[i] = 0
    v.regs_written = u32(REGS_RELOAD_ALL)
    v.kept_saved = u32(0)
    v.sepc = vm.entry
    v.regs[10] = v.vcpu_id  # a0: hart id as the guest sees it
    v.regs[11] = vm.dtb  # a1: the guest-physical address of its device tree (0: none)
    v.regs[12] = vm.boot_arg  # a2: the image's instance argument
    v.timer_deadline = ~u64(0)
    v.fresh = u32(1)
    v.blocked = u32(0)
    for i in range(MSG_COUNT):
        v.mailbox[i] = 0


def vm_console_lock(vm: Ptr[Vm]) -> None:
    spin_lock(addr_of(vm.console_spin))


def vm_console_unlock(vm: Ptr[Vm]) -> None:
    spin_unlock(addr_of(vm.console_spin))


def vm_console_flush(vm: Ptr[Vm]) -> None:
    """Print what the VM's console holds of an unfinished line (the VM's lock, then the console's)."""
    vm_console_lock(vm)
    vm_console_flush_locked(vm)
    vm_console_unlock(vm)


def vm_console_flush_locked(vm: Ptr[Vm]) -> None:
    if vm.console_len == 0:
        return
    console_lock()
    console_puts(cstr(b"[vm"))
    console_dec(vm.id)
    console_puts(cstr(b"] "))
    console_write(addr_of(vm.console[0]).addr(), vm.console_len)
    console_puts(cstr(b"\n"))
    console_unlock()
    vm.console_len = 0


def vm_console_putc(vm: Ptr[Vm], c: u8) -> None:
    """A guest's console byte; whole lines go out prefixed with the VM's id. (A guest VM made through the control
    protocol has its own console stream instead: arch/riscv/vsbi.py guest_console_byte.)"""
    vm_console_lock(vm)
    if c == 10:
        vm_console_flush_locked(vm)
    elif c != 13:
        vm.console[vm.console_len] = c
        vm.console_len += 1
        if vm.console_len == CONSOLE_LINE:
            vm_console_flush_locked(vm)
    vm_console_unlock(vm)


def vm_release(vm: Ptr[Vm]) -> None:
    """Give back the VM's stage-2 tables and, if the frame allocator gave it, its memory; say how many pages
    came back (the count is of the pool as a whole, so it is exact while no other VM allocates or frees)."""
    vm_console_flush(vm)
    before = frame_alloc_free_pages()
    stage2_flush(vm.vmid)
    stage2_destroy(vm.stage2_root)
    if vm.mem_owned:
        frame_free(vm.mem_hpa, vm.mem_size // PAGE_SIZE)
    vm.stage2_root = 0
    back = frame_alloc_free_pages() - before
    log_vm(LOG_INFO, vm.dynamic, cstr(b"pyshyper: vm%d released %d pages\n"), vm.id, back, u64(0), u64(0))


def vm_claim_end(vm: Ptr[Vm]) -> bool:
    """Whether this hart is the one that ends the VM: the first to swap `ending` from 0 (concurrent faults of
    two vCPUs, a last HSM stop racing an SRST, a fault racing a power-off: exactly one of them wins)."""
    return amoswap_w(addr_of(vm.ending), u32(1)) == 0


def vm_end(vm: Ptr[Vm], state: u64, current: Ptr[Vcpu]) -> bool:
    """The VM stops for good (VM_ENDED, VM_CRASHED or VM_FAILED); false if another hart ended it or is ending it
    (nothing changes then, and `current` leaves its hart). The winner calls the VM's other vCPUs off their harts
    (an IPI makes each trap and park, since the VM no longer runs) before its tables and memory are released,
    so no hart keeps translating through freed stage-2 tables; a hart that enters a vCPU checks the VM's state
    after publishing `running` (trap.py vcpu_run), so none slips in between. The management VM's end is the
    machine's: it powers off, reporting a failure unless the MVM ended cleanly."""
    current.parking = u32(1)  # whoever ends the VM, this vCPU leaves its hart (trap.S unwinds to the idle loop)
    if not vm_claim_end(vm):
        return False
    vm_end_claimed(vm, state, current)
    return True


def vm_end_claimed(vm: Ptr[Vm], state: u64, current: Ptr[Vcpu]) -> None:
    """vm_end for the hart that has claimed the end (vm_claim_end); `current` leaves its hart (null: the end
    comes from elsewhere, the control server's VM_STOP on a hart of the MVM). A guest VM made through the control
    protocol keeps its tables and memory until it is removed (core/gvm.py): once its vCPUs are off their harts it
    is marked settled (`released`), and, when it ended by itself, its `event` asks the control server to report
    its new state."""
    if current.addr() != 0:
        current.parking = u32(1)
    vm.state = state
    fence()
    vm_call_off(vm, current)
    if vm.dynamic:
        fence()
        amoswap_w(addr_of(vm.released), u32(1))
        if state != VM_STOPPED:
            amoswap_w(addr_of(vm.event), u32(1))
            vm_wake_mvm()  # its first vCPU's hart reports the event (core/control.py control_idle)
        return
    vm_release(vm)
    if vm.id != 0:
        fence()
        amoswap_w(addr_of(vm.released), u32(1))
        return
    # The management VM is never marked released: no other hart powers off meanwhile, this one does it.
    log1(
        LOG_ERROR if state != VM_ENDED else LOG_INFO,
        cstr(b"pyshyper: the management VM has ended (%s): the machine powers off\n"),
        vm_state_name(state).addr(),
    )
    vm_print_stats(vm)
    machine_report()
    machine_power_off(state != VM_ENDED)


def vm_wake_mvm() -> None:
    """Kick the management VM's first vCPU (if it has one): its hart runs the control server (trap.py
    vcpu_idle_work) at once on its own hart, at its next WFI on a shared one (a message makes it runnable)."""
    if mvm_present and VMS[0].vcpus != 0:
        vcpu_post(vm_vcpu(addr_of(VMS[0]), u64(0)), u64(MSG_KICK))


def vm_call_off(vm: Ptr[Vm], current: Ptr[Vcpu]) -> None:
    """Every vCPU of vm but `current` off its hart (vm.state no longer VM_RUNNING, published): an IPI makes a
    running one trap and park (trap.py hyp_guest_trap), and this waits until its hart has cleared `running`
    (arch/riscv/vcpu.py vcpu_leave, after its hgatp no longer names the VM's tables)."""
    for i in range(vm.vcpus):
        t = vm_vcpu(vm, u64(i))
        if t.addr() != current.addr() and amoadd_w(addr_of(t.running), u32(0)) != 0:
            hart_ipi(t.hart)
            while amoadd_w(addr_of(t.running), u32(0)) != 0:
                pass


def machine_report() -> None:
    """What the hypervisor holds at the end: free page frames and each hart's stack high-water mark."""
    log2(LOG_INFO, cstr(b"pyshyper: free pages %d of %d\n"), frame_alloc_free_pages(), frame_alloc_total_pages())
    stack_report()


def vm_state_name(state: u64) -> Ptr[u8]:
    if state == VM_RUNNING:
        return cstr(b"running")
    if state == VM_ENDED:
        return cstr(b"ended")
    if state == VM_CRASHED:
        return cstr(b"crashed")
    if state == VM_CREATED:
        return cstr(b"created")
    if state == VM_REBOOTING:
        return cstr(b"rebooting")
    if state == VM_STOPPED:
        return cstr(b"stopped")
    return cstr(b"failed")


def vm_vcpus_started(vm: Ptr[Vm]) -> u64:
    n = u64(0)
    for i in range(vm.vcpus):
        if vm_vcpu(vm, u64(i)).state == VCPU_STARTED:
            n += 1
    return n


def vm_all_ended() -> bool:
    """Every VM has ended and given its pages back (false while the boot hart is still making them)."""
    if not vms_created:
        return False
    for i in range(vm_count):
        if amoadd_w(addr_of(VMS[i].released), u32(0)) == 0:
            return False
    return True


def vm_any_failed() -> bool:
    """A VM reported a failure itself, or the management VM had to be killed: the machine's run failed."""
    for i in range(vm_count):
        if VMS[i].state == VM_FAILED or (VMS[i].state == VM_CRASHED and VMS[i].id == 0):
            return True
    return False


def vm_report(vm: Ptr[Vm], what: Ptr[u8], value: u64) -> None:
    log_vm(LOG_INFO, vm.dynamic, cstr(b"pyshyper: vm%d %s%x\n"), vm.id, what.addr(), value, u64(0))


def vm_print_stats(vm: Ptr[Vm]) -> None:
    """One line per vCPU: exits to the hypervisor, of which WFI and SBI calls, and the time base now."""
    for i in range(vm.vcpus):
        v = vm_vcpu(vm, u64(i))
        console_lock()
        console_field(cstr(b"pyshyper: vm"), vm.id)
        console_field(cstr(b" vcpu"), u64(i))
        console_field(cstr(b": traps "), vcpu_traps(v))
        console_field(cstr(b", wfi "), v.wfi_exits)
        console_field(cstr(b", sbi "), v.sbi_calls)
        console_field(cstr(b", time "), hart_time())
        console_field(cstr(b", irq "), v.irqs)
        console_field(cstr(b", mmio "), v.mmio_exits)
        console_field(cstr(b", fetched "), vcpu_mmio_fetched(v))
        console_puts(cstr(b"\n"))
        console_unlock()
