"""Guest VMs made, booted, stopped and removed at run time through the control protocol (core/control.py,
mvm-tools/PROTOCOL.md): the MVM's daemon asks, this module checks and does it.

A guest VM (GVM) takes the lowest free VM slot (ids 1 .. VM_MAX - 1; its slot in VMS is its id, its VMID id + 1),
up to MEM_REGIONS memory regions at the IPAs its config gives, each a zeroed run of the frame pool (aligned for
the largest stage-2 leaves its IPA allows), and its vCPUs placed on the harts of its hart mask (vCPU i on the
(i mod k)-th of the k set bits; each in the lowest free slot of VCPUS and in its hart's run queue, which other VMs'
vCPUs may share: core/sched.py), each with the VM's priority and slice. In AIA mode each vCPU owns the next free
guest interrupt file of its hart, mapped as its IMSIC page at the board's IMSIC address + i * IMSIC_PAGE_SIZE. Its
console output (SBI DBCN, legacy putchar) goes into its console ring (core/vm.py), never onto the UART.

States (Vm.state, as PROTOCOL.md numbers them in control.py): VM_CREATED, then VM_RUNNING after VM_BOOT; it
leaves VM_RUNNING through vm_end (core/vm.py): VM_STOPPED (VM_STOP), VM_ENDED / VM_FAILED (its SRST shutdown,
its last HSM stop), VM_CRASHED (trap.py trap_kill), VM_REBOOTING (its SRST reboot). Its memory and tables stay
until VM_REMOVE; a new VM_BOOT starts it afresh from VM_CREATED or any ended state.

Which harts touch a GVM's tables, and when (the SMP audit):
* Every function here runs on a hart of the MVM, in the control server, under `control_spin` (control.py): no two
  of them run at once, so the slot tables (Vm.used, run-queue entries, irqc_files, the VM's regions, vCPU slots)
  have one writer at a time (a run queue's list is also read by its hart: under the queue's lock, core/vm.py).
* A GVM's vCPUs run on their own harts. While the VM is not VM_RUNNING none of them enters (idle.py checks the
  VM's state; vcpu_run checks it again after publishing `running`). `released` is 1 once every other vCPU of an
  ended VM is off its hart (vm_end_claimed: vm_call_off, then `released`); the vCPU whose trap ended it parks
  just after, clearing hgatp before `running`. A VM is settled (gvm_settled) when `released` is 1 and every
  vCPU's `running` is 0: gvm_boot and gvm_load act only on a settled VM (else ESTATE), gvm_remove waits for it,
  and its event is reported only then, so a daemon that reboots it on the event finds it settled.
* VM_STOP and the VM's own end (SRST, a fault, a last HSM stop on its harts) race through `Vm.ending`: exactly
  one claims it (vm_claim_end). The loser of a VM_STOP waits for `released`, which the winner sets after a bounded
  call-off (IPIs, then each hart parks).
* Boot writes the vCPUs' registers while their harts are idle and cannot enter them (state not VM_RUNNING), then
  publishes VM_RUNNING behind a fence and wakes the master's hart with an IPI (idle.py sleeps in WFI).
* Remove: each vCPU is marked stopped and leaves its hart's run queue under the queue's lock (core/vm.py
  vcpu_remove: a hart that picked it just before sees VCPU_STOPPED and a VM that does not run), its slot is free
  for a later VM, and the stage-2 translations of a reused VMID are flushed by vcpu_run (a fresh vCPU's entry
  fences by VMID) on whichever hart enters it; vcpu_leave cleared hgatp on the VM's harts before their `running`
  went to 0, so no hart names the freed tables. Every frame of the VM (memory and tables) goes back to the pool.
"""

from compiler.prelude import (
    Array,
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
from hypervisor.arch.riscv.fpu import fpu_forget, fpu_reset
from hypervisor.arch.riscv.hart import hart_time
from hypervisor.arch.riscv.ipi import hart_ipi
from hypervisor.arch.riscv.irqc import (
    irqc_file_free,
    irqc_file_release,
    irqc_files_free,
    irqc_gvm_init,
    irqc_gvm_reset,
    irqc_vcpu_file,
)
from hypervisor.arch.riscv.stage2 import (
    S2_PERM_RWX,
    stage2_create,
    stage2_destroy,
    stage2_flush,
    stage2_map,
    stage2_vmids,
)
from hypervisor.board import (
    AIA_GUESTS,
    APLIC_S_BASE,
    APLIC_SIZE,
    IMSIC_PAGE_SIZE,
    IMSIC_S_BASE,
    IRQ_MODE,
    IRQ_MODE_AIA,
    MAX_HARTS,
    PLIC_BASE,
    PLIC_SIZE,
    TIMEBASE_FREQUENCY,
)
from hypervisor.core.frame_alloc import frame_alloc_free_pages, frame_free
from hypervisor.core.guest_mem import gmem_translate
from hypervisor.core.log import LOG_INFO, log_vm
from hypervisor.core.shmem import (
    SHM_DOOR_SIZE,
    SHM_MAX,
    SHM_VMS,
    shm_attach,
    shm_detach,
    shm_frames_for,
    shm_get,
    shm_map,
    shm_peer_of,
    shm_prepare,
    shm_unprepare,
    shm_user_count,
    shm_vm_boot,
)
from hypervisor.core.virtio_console import vcon_gvm_attach, vcon_gvm_detach, vcon_gvm_reset
from hypervisor.core.vm import (
    EMUL_MAX,
    END_NONE,
    END_STOPPED,
    MEM_REGIONS,
    PRIORITY_MAX,
    RQ_MAX,
    SLICE_MAX_MS,
    VCPU_MAX,
    VCPU_STARTED,
    VCPU_STOPPED,
    VM_CONFIG_MAX,
    VM_CREATED,
    VM_MAX,
    VM_NAME,
    VM_REBOOTING,
    VM_RUNNING,
    VM_STOPPED,
    VMS,
    Vcpu,
    Vm,
    hart_vcpus,
    vcpu_add,
    vcpu_remove,
    vcpu_reset,
    vm_claim_end,
    vm_emul_clear,
    vm_end_claimed,
    vm_harts_present,
    vm_log_stage2,
    vm_mem_alloc,
    vm_vcpu,
    vm_vcpu_count,
)

# Results (mvm-tools/PROTOCOL.md, "Error codes")
OK: Final = u32(0)
EPROTO: Final = u32(1)
EVERSION: Final = u32(2)
ETYPE: Final = u32(3)
EINVAL: Final = u32(4)
ENOVM: Final = u32(5)
ESTATE: Final = u32(6)
ENOMEM: Final = u32(7)
EBUSY: Final = u32(8)
ELIMIT: Final = u32(9)
EPERM: Final = u32(10)

MSG_MAX: Final = 200  # an error's message (PROTOCOL.md: at most 200 bytes, no NUL)
PAGE: Final = u64(4096)
GPA_LIMIT: Final = u64(1) << 41  # Sv39x4 (Priv 9.5.1)


@struct
class GvmConfig:
    """A VM_CREATE request, decoded (control.py): the CREATE record's fields, not yet checked."""

    name: Array[u8, VM_NAME]
    vcpus: u64
    master: u64  # the physical hart whose vCPU starts first
    hart_mask: u64
    entry: u64
    dtb: u64
    console_ipa: u64
    console_irq: u64
    regions: u64
    ipa: Array[u64, MEM_REGIONS]
    size: Array[u64, MEM_REGIONS]
    config: u64  # host address of the config bytes kept for VM_CONFIG_GET
    config_len: u64
    priority: u64  # of each of its vCPUs (core/sched.py)
    slice_ms: u64  # its vCPUs' round-robin time slice (0: the default)


# The message of the last refusal (ASCII, no NUL), for the control server's error response
gvm_msg = static(Array[u8, MSG_MAX])
gvm_msg_len: u64 = 0
gvm_new_id: u64 = 0  # the id gvm_create gave
lookup_code: u32 = 0  # why gvm_lookup gave null


# --------------------------------------------------------------------------------------------------------------
# Messages


def msg_clear() -> None:
    global gvm_msg_len
    gvm_msg_len = 0


def msg_byte(c: u8) -> None:
    global gvm_msg_len
    if gvm_msg_len < MSG_MAX:
        gvm_msg[gvm_msg_len] = c
        gvm_msg_len += 1


def msg_str(s: Ptr[u8]) -> None:
    i = u64(0)
    while s[i] != 0:
        msg_byte(s[i])
        i += 1


def msg_dec(v: u64) -> None:
    digits = Array[u8, 20]()
    n = u64(0)
    while True:
        digits[n] = u8(48 + v % 10)
        n += 1
        v = v // 10
        if v == 0:
            break
    while n > 0:
        n -= 1
        msg_byte(digits[n])


def msg_hex(v: u64) -> None:
    msg_str(cstr(b"0x"))
    started = False
    for k in range(u64(0), u64(16)):
        d = (v >> ((15 - k) * 4)) & 15
        if d != 0 or started or k == 15:
            started = True
            msg_byte(u8(48 + d) if d < 10 else u8(87 + d))


def msg_vm(vm: Ptr[Vm]) -> None:
    """A VM as users name it: its name, else vmN."""
    if vm.name[0] != 0:
        i = u64(0)
        while i < VM_NAME and vm.name[i] != 0:
            msg_byte(vm.name[i])
            i += 1
    else:
        msg_str(cstr(b"vm"))
        msg_dec(vm.id)


def fail(code: u32, text: Ptr[u8]) -> u32:
    msg_clear()
    msg_str(text)
    return code


def fail_region(code: u32, i: u64, text: Ptr[u8]) -> u32:
    msg_clear()
    msg_str(cstr(b"region["))
    msg_dec(i)
    msg_str(cstr(b"]: "))
    msg_str(text)
    return code


# --------------------------------------------------------------------------------------------------------------
# Lookups


def gvm_find(id: u64) -> Ptr[Vm]:
    """The VM with this id (the MVM is 0), or null."""
    if id >= VM_MAX:
        return null(Vm)
    vm = addr_of(VMS[id])
    if not vm.used or vm.id != id:
        return null(Vm)
    return vm


def gvm_settled(vm: Ptr[Vm]) -> bool:
    """None of its vCPUs runs or can run: created and never booted, or ended, called off its harts, and the vCPU
    that ended it (SRST, a fault) parked too (`released` is set before that one leaves its trap)."""
    if vm.state == VM_RUNNING or amoadd_w(addr_of(vm.released), u32(0)) == 0:
        return False
    for i in range(vm.vcpus):
        if amoadd_w(addr_of(vm_vcpu(vm, u64(i)).running), u32(0)) != 0:
            return False
    return True


def gvm_lookup(id: u64) -> Ptr[Vm]:
    """A guest VM by id for an operation the MVM must not be the object of; null with the refusal in gvm_msg
    (gvm_lookup_code tells which)."""
    global lookup_code
    vm = gvm_find(id)
    if vm.addr() == 0:
        msg_clear()
        msg_str(cstr(b"id: no VM "))
        msg_dec(id)
        lookup_code = ENOVM
        return vm
    if not vm.dynamic:
        msg_clear()
        msg_str(cstr(b"id: "))
        msg_vm(vm)
        msg_str(cstr(b" is the management VM"))
        lookup_code = EPERM
        return null(Vm)
    lookup_code = OK
    return vm


def gvm_lookup_code() -> u32:
    return lookup_code


def gvm_msg_length() -> u64:
    """The length of the message in gvm_msg."""
    return gvm_msg_len


def gvm_created_id() -> u64:
    return gvm_new_id


def popcount(x: u64) -> u64:
    n = u64(0)
    while x != 0:
        x &= x - 1
        n += 1
    return n


def overlaps(a: u64, asize: u64, b: u64, bsize: u64) -> bool:
    return a < b + bsize and b < a + asize


# --------------------------------------------------------------------------------------------------------------
# VM_CREATE


def gvm_check(c: Ptr[GvmConfig]) -> u32:
    """Every field of the request against the rules of PROTOCOL.md (CREATE record), before anything is taken."""
    # name: 1 .. 31 printable bytes, NUL-padded, unique
    n = u64(0)
    while n < VM_NAME and c.name[n] != 0:
        if c.name[n] < 0x21 or c.name[n] > 0x7E:
            return fail(EINVAL, cstr(b"name: not printable ASCII without spaces"))
        n += 1
    if n == 0:
        return fail(EINVAL, cstr(b"name: empty"))
    if n == VM_NAME:
        return fail(EINVAL, cstr(b"name: longer than 31 bytes"))
    for k in range(n, u64(VM_NAME)):
        if c.name[k] != 0:
            return fail(EINVAL, cstr(b"name: not NUL-padded"))
    for i in range(u64(VM_MAX)):
        other = addr_of(VMS[i])
        if other.used:
            same = True
            for k in range(u64(VM_NAME)):
                if other.name[k] != c.name[k]:
                    same = False
                    break
            if same:
                msg_clear()
                msg_str(cstr(b"name: vm"))
                msg_dec(other.id)
                msg_str(cstr(b" is already called so"))
                return EINVAL
    # harts: vCPU i on the (i mod k)-th of the k harts of hart_mask (one each when vcpus is k)
    if c.hart_mask == 0:
        return fail(EINVAL, cstr(b"hart_mask: no hart"))
    if c.vcpus < popcount(c.hart_mask):
        return fail(EINVAL, cstr(b"vcpus: fewer than the harts in hart_mask"))
    if c.vcpus > VCPU_MAX:
        return fail(EINVAL, cstr(b"vcpus: above 16"))
    if c.master >= 64 or (c.hart_mask >> c.master) & 1 == 0:
        return fail(EINVAL, cstr(b"master: not a hart of hart_mask"))
    for h in range(u64(0), u64(64)):
        if (c.hart_mask >> h) & 1 != 0:
            if h >= MAX_HARTS or (vm_harts_present() >> h) & 1 == 0:
                msg_clear()
                msg_str(cstr(b"hart_mask: hart "))
                msg_dec(h)
                msg_str(cstr(b" does not exist"))
                return EINVAL
    # memory regions: page-aligned, nonzero, below 2^41, apart from each other and from its devices
    if c.regions == 0 or c.regions > MEM_REGIONS:
        return fail(EINVAL, cstr(b"regions: not 1 .. 4"))
    for i in range(c.regions):
        ipa = c.ipa[i]
        size = c.size[i]
        if size == 0:
            return fail_region(EINVAL, i, cstr(b"size is 0"))
        if ipa & (PAGE - 1) != 0:
            return fail_region(EINVAL, i, cstr(b"ipa not a multiple of 4096"))
        if size & (PAGE - 1) != 0:
            return fail_region(EINVAL, i, cstr(b"size not a multiple of 4096"))
        if ipa >= GPA_LIMIT or size > GPA_LIMIT - ipa:
            return fail_region(EINVAL, i, cstr(b"beyond the 2^41 guest-physical space (Sv39x4)"))
        for j in range(i):
            if overlaps(ipa, size, c.ipa[j], c.size[j]):
                msg_clear()
                msg_str(cstr(b"region["))
                msg_dec(i)
                msg_str(cstr(b"]: overlaps region "))
                msg_dec(j)
                return EINVAL
        if IRQ_MODE == IRQ_MODE_AIA:
            if overlaps(ipa, size, APLIC_S_BASE, APLIC_SIZE):
                return fail_region(EINVAL, i, cstr(b"overlaps its APLIC"))
            if overlaps(ipa, size, IMSIC_S_BASE, c.vcpus * IMSIC_PAGE_SIZE):
                return fail_region(EINVAL, i, cstr(b"overlaps its IMSIC pages"))
        elif overlaps(ipa, size, PLIC_BASE, PLIC_SIZE):
            return fail_region(EINVAL, i, cstr(b"overlaps its PLIC"))
        if c.console_ipa != 0 and overlaps(ipa, size, c.console_ipa, PAGE):
            return fail_region(EINVAL, i, cstr(b"overlaps its console"))
    if not gvm_config_inside(c, c.entry):
        return fail(EINVAL, cstr(b"entry_ipa: not inside a memory region"))
    if not gvm_config_inside(c, c.dtb):
        return fail(EINVAL, cstr(b"dtb_ipa: not inside a memory region"))
    if c.console_ipa & (PAGE - 1) != 0 or c.console_ipa >= GPA_LIMIT:
        return fail(EINVAL, cstr(b"console_ipa: not a page below 2^41"))
    if c.console_ipa != 0:
        if IRQ_MODE == IRQ_MODE_AIA:
            if overlaps(c.console_ipa, PAGE, APLIC_S_BASE, APLIC_SIZE) or overlaps(
                c.console_ipa, PAGE, IMSIC_S_BASE, c.vcpus * IMSIC_PAGE_SIZE
            ):
                return fail(EINVAL, cstr(b"console_ipa: overlaps its interrupt controller"))
        elif overlaps(c.console_ipa, PAGE, PLIC_BASE, PLIC_SIZE):
            return fail(EINVAL, cstr(b"console_ipa: overlaps its interrupt controller"))
        if c.console_irq == 0 or c.console_irq >= 1024:
            return fail(EINVAL, cstr(b"console_irq: not an interrupt source 1 .. 1023"))
    if c.config_len > VM_CONFIG_MAX:
        return fail(EINVAL, cstr(b"config_len: above 8192"))
    code = gvm_check_shared(c)
    if code != OK:
        return code
    if c.priority > PRIORITY_MAX:
        return fail(EINVAL, cstr(b"priority: not 0 .. 255"))
    if c.slice_ms > SLICE_MAX_MS:
        return fail(EINVAL, cstr(b"time_slice_ms: above 1000"))
    # run queues, vCPU slots, guest interrupt files (a hart may be shared: core/sched.py)
    if vm_vcpu_count() + c.vcpus > VCPU_MAX:
        msg_clear()
        msg_str(cstr(b"cpu.num: "))
        msg_dec(c.vcpus)
        msg_str(cstr(b" vCPUs asked, "))
        msg_dec(VCPU_MAX - vm_vcpu_count())
        msg_str(cstr(b" vCPU slots free (the hypervisor has "))
        msg_dec(VCPU_MAX)
        msg_str(cstr(b")"))
        return ELIMIT
    for h in range(u64(0), MAX_HARTS):
        if (c.hart_mask >> h) & 1 != 0:
            mine = gvm_vcpus_on(c, h)
            if hart_vcpus(h) + mine > RQ_MAX:
                msg_clear()
                msg_str(cstr(b"hart "))
                msg_dec(h)
                msg_str(cstr(b" is full: "))
                msg_dec(RQ_MAX)
                msg_str(cstr(b" vCPUs share it already"))
                return EBUSY
            if IRQ_MODE == IRQ_MODE_AIA and irqc_files_free(h) < mine:
                msg_clear()
                msg_str(cstr(b"hart "))
                msg_dec(h)
                if irqc_files_free(h) == 0:
                    msg_str(cstr(b" has no free guest interrupt file: it has "))
                    msg_dec(AIA_GUESTS)
                    msg_str(cstr(b" (aia-guests), each taken by a vCPU placed on it"))
                else:
                    msg_str(cstr(b" has "))
                    msg_dec(irqc_files_free(h))
                    msg_str(cstr(b" free guest interrupt files of "))
                    msg_dec(AIA_GUESTS)
                    msg_str(cstr(b" (aia-guests), "))
                    msg_dec(mine)
                    msg_str(cstr(b" asked"))
                return EBUSY
    return OK


def fail_shared(i: u64, text: Ptr[u8]) -> u32:
    """A refusal about shared memory region slot i that names the VM being made."""
    msg_clear()
    msg_str(cstr(b"shared memory "))
    s = shm_get(i)
    k = u64(0)
    while k < VM_NAME and s.name[k] != 0:
        msg_byte(s.name[k])
        k += 1
    msg_str(cstr(b": "))
    msg_str(text)
    return EINVAL


def gvm_check_shared(c: Ptr[GvmConfig]) -> u32:
    """The shared regions that name the VM (core/shmem.py) against its own layout: each region and its doorbell
    page apart from its memory and its console, its doorbell on another source than the console's, and room in
    its emulated-device table (its interrupt controller, its console, one doorbell per region)."""
    name = addr_of(c.name[0])
    if shm_user_count(name) + 2 > EMUL_MAX:
        return fail(EINVAL, cstr(b"name: more shared memory regions name this VM than it has doorbell windows"))
    for i in range(u64(SHM_MAX)):
        s = shm_get(i)
        if not s.used or shm_peer_of(s, name) == SHM_VMS:
            continue
        for r in range(c.regions):
            if overlaps(s.ipa, s.size, c.ipa[r], c.size[r]):
                return fail_shared(i, cstr(b"the region overlaps the VM's memory"))
            if overlaps(s.doorbell, SHM_DOOR_SIZE, c.ipa[r], c.size[r]):
                return fail_shared(i, cstr(b"the doorbell overlaps the VM's memory"))
        if c.console_ipa != 0:
            if overlaps(s.ipa, s.size, c.console_ipa, PAGE) or s.doorbell == c.console_ipa:
                return fail_shared(i, cstr(b"overlaps the VM's console"))
            if s.irq == c.console_irq:
                return fail_shared(i, cstr(b"the doorbell's irq is the console's"))
        if IRQ_MODE == IRQ_MODE_AIA and (
            overlaps(s.ipa, s.size, IMSIC_S_BASE, c.vcpus * IMSIC_PAGE_SIZE)
            or overlaps(s.doorbell, SHM_DOOR_SIZE, IMSIC_S_BASE, c.vcpus * IMSIC_PAGE_SIZE)
        ):
            return fail_shared(i, cstr(b"overlaps the VM's IMSIC pages"))
    return OK


def gvm_vcpu_hart(c: Ptr[GvmConfig], i: u64) -> u64:
    """The hart of vCPU i: the (i mod k)-th of the k harts set in hart_mask."""
    n = i % popcount(c.hart_mask)
    for h in range(u64(0), u64(64)):
        if (c.hart_mask >> h) & 1 != 0:
            if n == 0:
                return h
            n -= 1
    return u64(0)


def gvm_vcpus_on(c: Ptr[GvmConfig], h: u64) -> u64:
    """How many of its vCPUs the config places on hart h."""
    n = u64(0)
    for i in range(c.vcpus):
        if gvm_vcpu_hart(c, u64(i)) == h:
            n += 1
    return n


def gvm_config_inside(c: Ptr[GvmConfig], ipa: u64) -> bool:
    for i in range(c.regions):
        if ipa >= c.ipa[i] and ipa - c.ipa[i] < c.size[i]:
            return True
    return False


def gvm_free_slot() -> u64:
    """The lowest free VM id (1 .. VM_MAX - 1), 0 when none."""
    for i in range(u64(1), u64(VM_MAX)):
        if not VMS[i].used:
            return i
    return u64(0)


def gvm_region_alloc(ipa: u64, size: u64) -> u64:
    """A zeroed run of frames for a region, aligned for stage-2's largest leaves (vm_mem_alloc): the shipped
    vm1/vm2 regions (128 MiB at 0x8000_0000) get a 2 MiB aligned run and 64 2 MiB leaves, the tiny guest's 1 MiB a
    64 KiB aligned one and 16 Svnapot leaves on a hart with Svnapot; 0 when none."""
    return vm_mem_alloc(ipa, size)


def gvm_create(c: Ptr[GvmConfig]) -> u32:
    """VM_CREATE: check, then take a VM slot, the memory, the stage-2 table, the vCPUs and their guest interrupt
    files; gvm_new_id is its id. On a refusal nothing is kept (every frame taken is given back)."""
    global gvm_new_id
    code = gvm_check(c)
    if code != OK:
        return code
    id = gvm_free_slot()
    if id == 0:
        return fail(ELIMIT, cstr(b"no free VM slot (ids 1 .. 7)"))
    if id + 1 >= stage2_vmids():
        return fail(ELIMIT, cstr(b"no VMID for another VM (hgatp VMIDLEN)"))
    pages = shm_frames_for(addr_of(c.name[0]))  # shared regions it is the first to map
    for i in range(c.regions):
        pages += c.size[i] // PAGE
    free = frame_alloc_free_pages()
    if pages > free:
        msg_clear()
        msg_str(cstr(b"memory: "))
        msg_dec(pages)
        msg_str(cstr(b" pages asked, "))
        msg_dec(free)
        msg_str(cstr(b" free"))
        return ENOMEM
    if not shm_prepare(addr_of(c.name[0])):
        return fail(ENOMEM, cstr(b"memory: no contiguous run of free pages for a shared memory region"))
    vm = addr_of(VMS[id])
    vm.regions = 0
    root = stage2_create()
    if root == 0:
        shm_unprepare()
        return fail(ENOMEM, cstr(b"memory: no frames for its stage-2 table"))
    vm.stage2_root = root
    for i in range(c.regions):
        hpa = gvm_region_alloc(c.ipa[i], c.size[i])
        if hpa == 0 or not stage2_map(root, c.ipa[i], hpa, c.size[i], S2_PERM_RWX):
            if hpa != 0:
                frame_free(hpa, c.size[i] // PAGE)
            gvm_free_memory(vm)
            msg_clear()
            msg_str(cstr(b"region["))
            msg_dec(i)
            msg_str(cstr(b"]: no contiguous run of "))
            msg_dec(c.size[i] // PAGE)
            msg_str(cstr(b" free pages"))
            return ENOMEM
        r = addr_of(vm.region[i])
        r.gpa = c.ipa[i]
        r.hpa = hpa
        r.size = c.size[i]
        vm.regions = i + 1
    if not shm_map(addr_of(c.name[0]), root):
        gvm_free_memory(vm)
        return fail(ENOMEM, cstr(b"memory: no frames for the stage-2 tables of its shared memory"))
    # The slot: the VM's own fields, then its vCPUs (vcpu_add publishes each in its hart's run queue last)
    vm.index = id
    vm.id = id
    vm.vmid = id + 1
    vm.state = VM_CREATED
    vm.dynamic = True
    vm.mem_owned = True
    vm.mem_gpa = vm.region[0].gpa
    vm.mem_hpa = vm.region[0].hpa
    vm.mem_size = vm.region[0].size
    vm.image_addr = 0
    vm.image_size = 0
    vm.entry = c.entry
    vm.dtb = c.dtb
    vm.boot_arg = 0
    vm.vcpus = 0
    vm_emul_clear(vm)
    vm.irqc = False
    vm.console_len = 0
    vm.ending = 0
    vm.released = 1  # settled: no vCPU of it has run
    vm.boots = 0
    vm.boot_time = 0
    vm.reason = END_NONE
    vm.event = 0
    vm.fault_scause = 0
    vm.fault_stval = 0
    vm.fault_sepc = 0
    vm.fault_htval = 0
    vm.hart_mask = c.hart_mask
    vm.console_ipa = c.console_ipa
    vm.console_irq = c.console_irq
    for k in range(u64(VM_NAME)):
        vm.name[k] = c.name[k]
    src = Ptr[u8](c.config)
    for k in range(c.config_len):
        vm.config[k] = src[k]
    vm.config_len = c.config_len
    vm.master = c.vcpus
    for i in range(c.vcpus):
        h = gvm_vcpu_hart(c, u64(i))
        if h == c.master and vm.master == c.vcpus:
            vm.master = vm.vcpus  # the first vCPU on the master hart starts
        v = vcpu_add(vm, h, False)
        v.priority = c.priority
        if c.slice_ms != 0:
            v.slice = c.slice_ms * (TIMEBASE_FREQUENCY // 1000)
        if IRQ_MODE == IRQ_MODE_AIA:
            irqc_vcpu_file(vm, v.vcpu_id, h, IMSIC_S_BASE + v.vcpu_id * IMSIC_PAGE_SIZE, irqc_file_free(h))
    # Its interrupt controller, then its console: a single-port virtio console whose bytes are the MVM's port `id`
    irqc_gvm_init(vm)
    if c.console_ipa != 0:
        vcon_gvm_attach(vm, c.console_ipa, c.console_irq)
    shm_attach(vm)  # the shared regions it maps: their doorbells and lines (room checked by gvm_check_shared)
    fence()
    vm.used = True
    gvm_new_id = id
    log_vm(LOG_INFO, True, cstr(b"pyshyper: vm%d created: %d vCPUs, %d pages\n"), id, vm.vcpus, pages, u64(0))
    vm_log_stage2(vm)
    return OK


def gvm_free_memory(vm: Ptr[Vm]) -> None:
    """Every frame of the VM back to the pool: its regions, the shared regions it was the last to map (or was
    to be the first to, when its creation failed), then its stage-2 tables."""
    shm_detach(vm)
    shm_unprepare()
    for i in range(vm.regions):
        frame_free(vm.region[i].hpa, vm.region[i].size // PAGE)
    vm.regions = 0
    if vm.stage2_root != 0:
        stage2_flush(vm.vmid)
        stage2_destroy(vm.stage2_root)
        vm.stage2_root = 0


# --------------------------------------------------------------------------------------------------------------
# VM_LOAD, VM_BOOT, VM_STOP, VM_REMOVE


def gvm_load(id: u64, ipa: u64, src: Ptr[u8], n: u64) -> u32:
    """VM_LOAD: copy n bytes into the VM's memory at ipa (inside one region); the VM must not run."""
    vm = gvm_lookup(id)
    if vm.addr() == 0:
        return gvm_lookup_code()
    if not gvm_settled(vm):
        return gvm_state_refusal(vm, cstr(b" runs: it cannot be loaded"))
    dst = gmem_translate(vm, ipa, n)
    if dst == 0:
        msg_clear()
        msg_str(cstr(b"ipa: "))
        msg_hex(ipa)
        msg_str(cstr(b" + "))
        msg_dec(n)
        msg_str(cstr(b" is not inside one memory region of "))
        msg_vm(vm)
        return EINVAL
    d = Ptr[u8](dst)
    for k in range(n):
        d[k] = src[k]
    fence()
    return OK


def gvm_state_refusal(vm: Ptr[Vm], why: Ptr[u8]) -> u32:
    msg_clear()
    msg_vm(vm)
    msg_str(why)
    return ESTATE


def gvm_boot(id: u64) -> u32:
    """VM_BOOT: reset its vCPUs (the master at the entry, a0 its guest hart id, a1 the device tree; the others
    stopped until SBI HSM starts them), publish VM_RUNNING and wake the master's hart."""
    vm = gvm_lookup(id)
    if vm.addr() == 0:
        return gvm_lookup_code()
    if not gvm_settled(vm):
        return gvm_state_refusal(vm, cstr(b" is running"))
    for i in range(vm.vcpus):
        v = vm_vcpu(vm, u64(i))
        vcpu_reset(v)
        fpu_reset(v)  # zeroed FP and vector registers: nothing of the slot's former vCPU
        v.state = VCPU_STARTED if u64(i) == vm.master else VCPU_STOPPED
    vm.reason = END_NONE
    vm.fault_scause = 0
    vm.fault_stval = 0
    vm.fault_sepc = 0
    vm.fault_htval = 0
    amoswap_w(addr_of(vm.event), u32(0))
    amoswap_w(addr_of(vm.released), u32(0))
    amoswap_w(addr_of(vm.ending), u32(0))
    irqc_gvm_reset(vm)
    shm_vm_boot(vm)
    vcon_gvm_reset(vm)  # its console as at power-on (the bytes not yet read by the MVM stay)
    vm.boots += 1
    vm.boot_time = hart_time()
    fence()
    vm.state = VM_RUNNING
    fence()
    hart_ipi(vm_vcpu(vm, vm.master).hart)
    log_vm(LOG_INFO, True, cstr(b"pyshyper: vm%d boots at %x\n"), vm.id, vm.entry, u64(0), u64(0))
    return OK


def gvm_end(vm: Ptr[Vm]) -> None:
    """End a running VM at once (VM_STOP); if its own end (SRST, a fault) got there first, wait until that has
    called its vCPUs off their harts."""
    if vm_claim_end(vm):
        vm.reason = END_STOPPED
        vm_end_claimed(vm, VM_STOPPED, null(Vcpu))
        return
    while amoadd_w(addr_of(vm.released), u32(0)) == 0:
        pass
    # the vCPU that ended it leaves its trap and parks on its own hart (a bounded wait: no lock is involved)
    for i in range(vm.vcpus):
        while amoadd_w(addr_of(vm_vcpu(vm, u64(i)).running), u32(0)) != 0:
            pass


def gvm_stop(id: u64) -> u32:
    """VM_STOP: a running VM ends at once; its memory is kept for the next boot."""
    vm = gvm_lookup(id)
    if vm.addr() == 0:
        return gvm_lookup_code()
    if vm.state != VM_RUNNING:
        if vm.state == VM_REBOOTING or not gvm_settled(vm):
            gvm_end(vm)  # settles an end in progress
        if vm.state == VM_REBOOTING:
            # it asked for a reboot and waits for the daemon: stopping it is what the daemon asks instead
            vm.state = VM_STOPPED
            vm.reason = END_STOPPED
            return OK
        return gvm_state_refusal(vm, cstr(b" is not running"))
    gvm_end(vm)
    return OK


def gvm_remove(id: u64) -> u32:
    """VM_REMOVE: stop it if it runs, then give everything back: its harts, their guest interrupt files, its
    memory, its tables, its slot."""
    vm = gvm_lookup(id)
    if vm.addr() == 0:
        return gvm_lookup_code()
    if not gvm_settled(vm):
        gvm_end(vm)
    before = frame_alloc_free_pages()
    for i in range(vm.vcpus):
        v = vm_vcpu(vm, u64(i))
        irqc_file_release(v.hart, v.vgein)
        v.vgein = 0
        fpu_forget(v)  # no hart keeps its FP and vector registers as a vCPU's of the slot's next owner
        vcpu_remove(v)  # off its hart's run queue; its slot is free
    vm.vcpus = 0
    if vm.console_ipa != 0:
        vcon_gvm_detach(vm)
    vm_emul_clear(vm)
    vm.irqc = False
    gvm_free_memory(vm)
    vm.used = False
    vm.state = VM_STOPPED
    vm.name[0] = 0
    back = frame_alloc_free_pages() - before
    log_vm(LOG_INFO, True, cstr(b"pyshyper: vm%d removed, %d pages back\n"), id, back, u64(0), u64(0))
    return OK
