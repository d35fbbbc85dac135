"""Boot: the first hart (hyp_main) reads the device tree, sets up its hypervisor CSRs, prints the banner,
creates the VMs and starts the other harts through SBI HSM; each hart then runs the vCPU pinned to it.
"""

from compiler.prelude import (
    HCOUNTEREN,
    HEDELEG,
    HENVCFG,
    HGEIE,
    HIDELEG,
    HSTATEEN0,
    HTIMEDELTA,
    SSCRATCH,
    STVEC,
    TIME,
    VSTIMECMP,
    Array,
    Final,
    Ptr,
    addr_of,
    amoadd_w,
    amoswap_w,
    csr_read,
    csr_write,
    cstr,
    export,
    extern_addr,
    static,
    u8,
    u32,
    u64,
)
from hypervisor.arch.riscv.encoding import (
    COUNTEREN_CY_TM_IR,
    HEDELEG_GUEST,
    HENVCFG_STCE,
    HIDELEG_GUEST,
    HSTATEEN0_GUEST,
)
from hypervisor.arch.riscv.fpu import fpu_init
from hypervisor.arch.riscv.ipi import hart_ipi, ipi_init
from hypervisor.arch.riscv.irqc import irqc_banner, irqc_cpu_init, irqc_init
from hypervisor.arch.riscv.sbi_call import (
    SBI_EXT_DBCN,
    SBI_EXT_HSM,
    sbi_hart_start,
    sbi_probe_extension,
)
from hypervisor.arch.riscv.stage2 import (
    HGATP_NO_SV39X4,
    stage2_leaf_largest,
    stage2_leaf_napot,
    stage2_leaves_set,
    stage2_probe,
    stage2_vmid_len,
    stage2_vmids,
)
from hypervisor.arch.riscv.trap import trap_init_tables
from hypervisor.arch.riscv.vcpu import vcpu_hart_init
from hypervisor.board import (
    AIA_GUESTS,
    GUEST_GPA,
    GUEST_HDR_INSTANCES,
    GUEST_HDR_MAGIC,
    GUEST_HDR_SIZE,
    GUEST_IMAGE_ADDRESS,
    GUEST_IMAGE_MAX_SIZE,
    GUEST_INSTANCES_MAX,
    GUEST_MAGIC,
    GUEST_MEM_SIZE,
    HYP_REGION_END,
    MAX_HARTS,
    MVM_MEM_HOST,
    MVM_MEM_SIZE,
    SSWI_BASE,
    STAGE2_LEAF_MAX,
    TIMEBASE_FREQUENCY,
    VERSION_MAJOR,
    VERSION_MINOR,
    VERSION_PATCH,
)
from hypervisor.core.console import console_dec, console_hex, console_lock, console_puts, console_unlock
from hypervisor.core.fdt import fdt_cpu_count, fdt_cpu_hartid, fdt_cpu_has_extension, fdt_memory, fdt_valid
from hypervisor.core.frame_alloc import frame_alloc_init, frame_alloc_total_pages
from hypervisor.core.hart import hart_features_set, hart_has_smstateen, hart_has_sstc, hart_stateen_set
from hypervisor.core.idle import hart_wait
from hypervisor.core.log import LOG_ERROR, LOG_INFO, LOG_WARN, log1, log2, log3, log4, log6
from hypervisor.core.machine import machine_irq_check, machine_mvm_memory_check, machine_power_off
from hypervisor.core.mvm import mvm_create, mvm_image_present, mvm_rng_seed_take
from hypervisor.core.stats import stats_attach
from hypervisor.core.vm import vm_create, vm_harts_present_set, vm_log_stage2, vm_mark_created

HART_CHECKIN_SECONDS: Final = u64(10)  # a started hart checks in within milliseconds; generous for a loaded host
KIB: Final = u64(1) << 10
MIB: Final = u64(1) << 20

hartids = static(Array[u64, MAX_HARTS])
hart_up = static(Array[u32, MAX_HARTS])  # by index in hartids: the hart reached hyp_secondary_main


def yes_no(present: bool) -> u64:
    return cstr(b"yes").addr() if present else cstr(b"no").addr()


def hart_setup_csrs() -> None:
    """Per-hart hypervisor state (Priv 9.2): trap vector, delegation, counters, environment."""
    csr_write(STVEC, extern_addr("hyp_trap_vector"))
    csr_write(SSCRATCH, u64(0))
    csr_write(HEDELEG, HEDELEG_GUEST)
    csr_write(HIDELEG, HIDELEG_GUEST)
    csr_write(HCOUNTEREN, COUNTEREN_CY_TM_IR)
    csr_write(HENVCFG, HENVCFG_STCE if hart_has_sstc() else u64(0))
    csr_write(HTIMEDELTA, u64(0))
    if hart_has_smstateen():
        csr_write(HSTATEEN0, HSTATEEN0_GUEST)
    if hart_has_sstc():
        csr_write(VSTIMECMP, ~u64(0))  # Sstc: no VS timer interrupt until the guest sets one (reset value is 0)
    irqc_cpu_init()
    vcpu_hart_init()


def boot_fail(why: Ptr[u8]) -> None:
    console_lock()
    console_puts(cstr(b"pyshyper: cannot boot: "))
    console_puts(why)
    console_puts(cstr(b"\n"))
    console_unlock()
    machine_power_off(True)


def hgeie_geilen() -> u64:
    """GEILEN, the number of guest external interrupts (guest interrupt files) of this hart: Priv 9.2.4, hgeie bits
    GEILEN:1 are writable and the others read 0. Ones written, read back, hgeie cleared again."""
    csr_write(HGEIE, ~u64(1))
    back = csr_read(HGEIE)
    csr_write(HGEIE, u64(0))
    n = u64(0)
    while n < 63 and (back >> (n + 1)) & 1 != 0:
        n += 1
    return n


def vmid_left(vms_before: u64) -> bool:
    """The next VM gets VMID vms_before + 1 (core/vm.py gives VMs VMIDs from 1 in the order they are made): False,
    and a line saying so, when the harts have no such VMID (stage2_probe found VMIDLEN)."""
    if vms_before + 1 < stage2_vmids():
        return True
    console_puts(cstr(b"pyshyper: no VMID left for another VM: the harts have "))
    console_dec(stage2_vmids())
    console_puts(cstr(b" (hgatp VMIDLEN "))
    console_dec(stage2_vmid_len())
    console_puts(cstr(b") and VMs take VMIDs from 1\n"))
    return False


def boot_guests(boot_hart: u64, count: u64) -> u64:
    """Create the VMs of the guest image QEMU's loader placed at GUEST_IMAGE_ADDRESS, one hart each (no other VM
    exists then)."""
    if Ptr[u64](GUEST_IMAGE_ADDRESS + GUEST_HDR_MAGIC)[0] != GUEST_MAGIC:
        console_puts(cstr(b"pyshyper: no guest image at "))
        console_hex(GUEST_IMAGE_ADDRESS)
        console_puts(cstr(b"\n"))
        return u64(0)
    size = Ptr[u64](GUEST_IMAGE_ADDRESS + GUEST_HDR_SIZE)[0]
    instances = Ptr[u64](GUEST_IMAGE_ADDRESS + GUEST_HDR_INSTANCES)[0]
    if size == 0 or size > GUEST_IMAGE_MAX_SIZE or size > GUEST_MEM_SIZE:
        log1(LOG_ERROR, cstr(b"pyshyper: guest image size is wrong: %x\n"), size)
        return u64(0)
    if instances > GUEST_INSTANCES_MAX:
        instances = GUEST_INSTANCES_MAX
    made = u64(0)
    slot = u64(0)
    for i in range(instances):
        # Hart order: the boot hart first, then the others as the device tree lists them.
        hart_id = boot_hart
        while slot < count and i > 0:
            candidate = hartids[slot]
            slot += 1
            if candidate != boot_hart:
                hart_id = candidate
                break
        if i > 0 and hart_id == boot_hart:
            log1(LOG_WARN, cstr(b"pyshyper: not enough harts for guest instance %d\n"), u64(i))
            break
        if not vmid_left(made):
            break
        vm = vm_create(GUEST_IMAGE_ADDRESS, size, GUEST_GPA, GUEST_MEM_SIZE, u64(i), hart_id)
        if vm.addr() == 0:
            log1(LOG_ERROR, cstr(b"pyshyper: cannot create a VM for guest instance %d\n"), u64(i))
            break
        log6(
            LOG_INFO,
            cstr(b"pyshyper: vm%d: guest image %d bytes, memory %x+%x at host %x, vmid %d"),
            vm.id,
            size,
            vm.mem_gpa,
            vm.mem_size,
            vm.mem_hpa,
            vm.vmid,
        )
        log1(LOG_INFO, cstr(b", hart %d\n"), hart_id)
        vm_log_stage2(vm)
        stats_attach(vm)
        made += 1
    return made


@export("hyp_main")
def hyp_main(hartid: u64, dtb: u64) -> None:
    from_fdt = fdt_valid(dtb)
    if not from_fdt:
        boot_fail(cstr(b"no valid device tree from the firmware"))
        return
    mvm_rng_seed_take(dtb)  # first: before anything may reuse the memory of the firmware's device tree
    if not sbi_probe_extension(SBI_EXT_DBCN) or not sbi_probe_extension(SBI_EXT_HSM):
        boot_fail(cstr(b"the firmware lacks SBI DBCN or HSM"))
        return
    count = fdt_cpu_count(dtb)
    if count > MAX_HARTS:
        count = MAX_HARTS
    for i in range(count):
        hartids[i] = fdt_cpu_hartid(dtb, u64(i))
    has_h = fdt_cpu_has_extension(dtb, u64(0), cstr(b"h"))
    sstc = fdt_cpu_has_extension(dtb, u64(0), cstr(b"sstc"))
    svnapot = fdt_cpu_has_extension(dtb, u64(0), cstr(b"svnapot"))
    aia = fdt_cpu_has_extension(dtb, u64(0), cstr(b"ssaia"))
    hart_features_set(sstc, svnapot, aia)
    hart_stateen_set(fdt_cpu_has_extension(dtb, u64(0), cstr(b"smstateen")))
    mem = Array[u64, 2]()
    if not fdt_memory(dtb, u64(0), addr_of(mem[0])):
        boot_fail(cstr(b"the device tree has no memory node"))
        return
    ram_end = mem[0] + mem[1]

    log3(
        LOG_INFO,
        cstr(b"\nPyShyper %d.%d.%d: a Type-1 hypervisor for RISC-V, in HS-mode\n"),
        VERSION_MAJOR,
        VERSION_MINOR,
        VERSION_PATCH,
    )
    log2(LOG_INFO, cstr(b"  harts:      %d (boot hart %d)\n"), count, hartid)
    log3(LOG_INFO, cstr(b"  memory:     %x..%x (%d MiB)\n"), mem[0], ram_end, mem[1] // MIB)
    log1(LOG_INFO, irqc_banner(), AIA_GUESTS)
    log4(
        LOG_INFO,
        cstr(b"  extensions: H=%s Sstc=%s Svnapot=%s AIA=%s \n"),
        yes_no(has_h),
        yes_no(sstc),
        yes_no(svnapot),
        yes_no(aia),
    )
    if not has_h:
        boot_fail(cstr(b"the harts have no H extension"))
        return
    if not fpu_init(fdt_cpu_has_extension(dtb, u64(0), cstr(b"v"))):
        boot_fail(cstr(b"the vector registers do not fit the vCPUs' save areas"))
        return
    vmid_bits = stage2_probe()
    if vmid_bits == HGATP_NO_SV39X4:
        boot_fail(cstr(b"the harts' hgatp does not take MODE Sv39x4 (Priv 9.2.10): PyShyper's G-stage is Sv39x4"))
        return
    if not machine_irq_check(dtb, hgeie_geilen()):
        machine_power_off(True)
        return
    if ipi_init(dtb, addr_of(hartids[0]), count):
        log1(LOG_INFO, cstr(b"  IPIs:       ACLINT SSWI at %x\n"), SSWI_BASE)
    else:
        log1(
            LOG_INFO,
            cstr(b"  IPIs:       SBI IPI extension (the device tree shows no ACLINT SSWI at %x for every hart)\n"),
            SSWI_BASE,
        )
    # The largest leaves the build allows (pyshyper build --stage2-leaf), 64 KiB ones only on harts with Svnapot
    stage2_leaves_set(STAGE2_LEAF_MAX, svnapot)
    log4(
        LOG_INFO,
        cstr(b"  stage 2:    Sv39x4, %d VMIDs (VMIDLEN %d), leaves up to %d KiB, 64 KiB Svnapot leaves: %s\n"),
        stage2_vmids(),
        vmid_bits,
        stage2_leaf_largest() // KIB,
        yes_no(stage2_leaf_napot()),
    )

    # Frames for VMs and page tables: the larger of the RAM between the test-guest images and the management VM's
    # memory and the RAM above both (qemu-virt, 2G: the 896 MiB below the MVM's GiB, which ends RAM).
    pool = GUEST_IMAGE_ADDRESS + GUEST_IMAGE_MAX_SIZE
    pool_end = MVM_MEM_HOST if MVM_MEM_HOST < ram_end else ram_end
    above = MVM_MEM_HOST + MVM_MEM_SIZE
    if above < pool:
        above = pool
    if pool_end <= pool or (ram_end > above and ram_end - above > pool_end - pool):
        pool = above
        pool_end = ram_end
    if pool_end <= pool:
        # No RAM beside the management VM's: the gap between the hypervisor's region and the test-guest images.
        pool = HYP_REGION_END
        pool_end = GUEST_IMAGE_ADDRESS
    if not frame_alloc_init(pool, pool_end - pool):
        boot_fail(cstr(b"no memory for the frame allocator"))
        return
    log2(LOG_INFO, cstr(b"  frames:     %d pages of 4 KiB from %x\n"), frame_alloc_total_pages(), pool)

    trap_init_tables()
    irqc_init()
    hart_setup_csrs()
    harts_start_others(hartid, count)
    present = u64(0)
    for i in range(count):
        if hartids[i] < MAX_HARTS and (hartids[i] == hartid or amoadd_w(addr_of(hart_up[i]), u32(0)) != 0):
            present |= u64(1) << hartids[i]
    vm_harts_present_set(present)
    mvm_made = False
    if machine_mvm_memory_check(dtb) and mvm_image_present() and vmid_left(u64(0)):
        mvm_made = mvm_create(count).addr() != 0
    if not mvm_made:
        boot_guests(hartid, count)
    vm_mark_created()
    for i in range(count):  # the other harts wait in hart_wait: each now has its vCPU (or none) to look at
        if hartids[i] != hartid and amoadd_w(addr_of(hart_up[i]), u32(0)) != 0:
            hart_ipi(hartids[i])
    hart_wait(hartid)


def harts_start_others(hartid: u64, count: u64) -> None:
    """Start every other hart (SBI HSM) and wait until each has checked in from hyp_secondary_main. Only then
    are VMs made: a hart's start in the firmware resets that hart's own interrupt state (OpenSBI's warm
    start disables every source in the hart's PLIC contexts), which must not undo what the hypervisor sets up
    for it. OpenSBI's cold boot may run on any hart (hart 1 about one boot in fifty on QEMU), so the boot hart
    is not always hart 0 and hart 0 itself may start after it. A hart that does not check in within
    HART_CHECKIN_SECONDS (a loaded host may hold a started hart's thread for a while) is reported and left out."""
    for i in range(count):
        other = hartids[i]
        if other != hartid:
            if sbi_hart_start(other, extern_addr("_secondary_start"), u64(i)) != 0:
                console_puts(cstr(b"pyshyper: hart "))
                console_dec(other)
                console_puts(cstr(b" did not start\n"))
            else:
                deadline = csr_read(TIME) + HART_CHECKIN_SECONDS * TIMEBASE_FREQUENCY
                while amoadd_w(addr_of(hart_up[i]), u32(0)) == 0 and csr_read(TIME) < deadline:
                    pass
                if amoadd_w(addr_of(hart_up[i]), u32(0)) == 0:
                    console_puts(cstr(b"pyshyper: hart "))
                    console_dec(other)
                    console_puts(cstr(b" started but did not check in\n"))


@export("hyp_secondary_main")
def hyp_secondary_main(hartid: u64, index: u64) -> None:
    hart_setup_csrs()
    if index < MAX_HARTS:
        amoswap_w(addr_of(hart_up[index]), u32(1))  # through the firmware's start: the boot hart may go on
    hart_wait(hartid)
