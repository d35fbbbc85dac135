"""The management VM (VM 0): Debian's Linux, loaded by QEMU's loader at the addresses the board's MVM data
gives (boards/qemu-virt/mvm.toml), RAM identity-mapped (passthrough devices DMA to guest-physical addresses),
its devices passed through, its interrupt controller emulated."""

from compiler.prelude import Array, Final, Ptr, addr_of, cstr, null, static, u8, u32, u64
from hypervisor.arch.riscv.irqc import irqc_config_irq, irqc_vcpu_init, irqc_vm_init, irqc_window
from hypervisor.board import (
    IMSIC_PAGE_SIZE,
    MVM_DTB_IPA,
    MVM_HARTS,
    MVM_IMSIC_BASE,
    MVM_KERNEL_IPA,
    MVM_MEM_HOST,
    MVM_MEM_IPA,
    MVM_MEM_SIZE,
    MVM_NUM_VCPUS,
    MVM_PT_BASES,
    MVM_PT_COUNT,
    MVM_PT_IRQS,
    MVM_PT_SIZES,
    MVM_VCON_BASE,
    MVM_VCON_IRQ,
)
from hypervisor.core.fdt import fdt_rng_seed_fill, fdt_rng_seed_take, fdt_valid
from hypervisor.core.log import LOG_ERROR, LOG_INFO, LOG_WARN, log1, log5
from hypervisor.core.stats import stats_attach
from hypervisor.core.virtio_console import vcon_attach_mvm
from hypervisor.core.vm import Vm, vcpu_add, vm_log_stage2, vm_map_device, vm_mark_mvm, vm_set_name, vm_setup

# Linux RISC-V Image header (Documentation/arch/riscv/boot-image-header.rst): magic2 "RSC\x05" at 0x38
IMAGE_MAGIC2_OFFSET: Final = u64(0x38)
IMAGE_MAGIC2: Final = u32(0x05435352)


# The firmware's /chosen/rng-seed, kept from the start of boot (before the frame pool, which may cover the
# firmware's device tree, is handed out) until the MVM's device tree gets it, then wiped: bytes go to one boot only.
# QEMU's virt machine gives 32 fresh bytes on every reset; 64 leaves room for a firmware that gives more.
MVM_RNG_SEED_MAX: Final = 64
mvm_rng_seed = static(Array[u8, MVM_RNG_SEED_MAX])
mvm_rng_seed_len: u64 = 0


def mvm_rng_seed_take(fw_dtb: u64) -> None:
    """Take the firmware's /chosen/rng-seed (core/fdt.py fdt_rng_seed_take: it is wiped in the firmware's tree)."""
    global mvm_rng_seed_len
    mvm_rng_seed_len = fdt_rng_seed_take(fw_dtb, addr_of(mvm_rng_seed[0]), u64(MVM_RNG_SEED_MAX))


def mvm_rng_seed_give(dtb_host: u64) -> None:
    """Fill the MVM's /chosen/rng-seed placeholder with the firmware's seed, which is then wiped here: a second
    boot of the MVM finds none, and its placeholder is removed rather than given the same bytes again."""
    global mvm_rng_seed_len
    n = fdt_rng_seed_fill(dtb_host, addr_of(mvm_rng_seed[0]), mvm_rng_seed_len)
    if n != 0:
        log1(LOG_INFO, cstr(b"pyshyper: vm0: /chosen/rng-seed: %d fresh bytes from the firmware's device tree\n"), n)
    elif mvm_rng_seed_len == 0:
        log1(
            LOG_WARN,
            cstr(b"pyshyper: vm0: the firmware's device tree has no /chosen/rng-seed (%d bytes): the MVM gets none\n"),
            mvm_rng_seed_len,
        )
    for i in range(u64(MVM_RNG_SEED_MAX)):
        mvm_rng_seed[i] = 0
    mvm_rng_seed_len = 0


def mvm_image_present() -> bool:
    return Ptr[u32](MVM_MEM_HOST + (MVM_KERNEL_IPA - MVM_MEM_IPA) + IMAGE_MAGIC2_OFFSET)[0] == IMAGE_MAGIC2


def mvm_create(harts_present: u64) -> Ptr[Vm]:
    """Set up VM 0 if its kernel was loaded; null (and a line saying why) if not."""
    if not mvm_image_present():
        return null(Vm)
    dtb_host = MVM_MEM_HOST + (MVM_DTB_IPA - MVM_MEM_IPA)
    if not fdt_valid(dtb_host):
        log1(LOG_ERROR, cstr(b"pyshyper: the MVM's device tree is missing or invalid at %x\n"), MVM_DTB_IPA)
        return null(Vm)
    mvm_rng_seed_give(dtb_host)
    # Its memory is where mvm.toml puts it (qemu-virt: 1 GiB at 0xC000_0000, host and guest alike): one 1 GiB
    # leaf, the G-stage walk of every guest access one read (stage2_map takes the largest leaf that fits).
    vm = vm_setup(u64(0), MVM_MEM_IPA, MVM_MEM_HOST, MVM_MEM_SIZE, False)
    if vm.addr() == 0:
        return vm
    vm_mark_mvm()
    vm_set_name(vm, cstr(b"mvm"))
    vm.entry = MVM_KERNEL_IPA
    vm.dtb = MVM_DTB_IPA
    for i in range(MVM_PT_COUNT):
        if not vm_map_device(vm, MVM_PT_BASES[i], MVM_PT_BASES[i], MVM_PT_SIZES[i]):
            log1(LOG_ERROR, cstr(b"pyshyper: cannot map a passthrough device at %x\n"), MVM_PT_BASES[i])
    for i in range(MVM_NUM_VCPUS):
        if MVM_HARTS[i] < harts_present:
            vcpu_add(vm, MVM_HARTS[i], i == 0)
            vm.hart_mask = vm.hart_mask | (u64(1) << MVM_HARTS[i])
    # Its devices: the virtual interrupt controller with each vCPU's part of it, the sources it owns, the
    # statistics page and the virtio console (the control channel, the log and the GVMs' consoles).
    irqc_vm_init(vm, irqc_window(vm))
    for i in range(vm.vcpus):
        irqc_vcpu_init(vm, u64(i), MVM_HARTS[i], MVM_IMSIC_BASE + u64(i) * IMSIC_PAGE_SIZE)
    for i in range(MVM_PT_COUNT):
        if MVM_PT_IRQS[i] != 0:
            irqc_config_irq(vm, MVM_PT_IRQS[i], MVM_HARTS[0])
    stats_attach(vm)
    if not vcon_attach_mvm(vm, MVM_VCON_BASE, MVM_VCON_IRQ):
        log1(LOG_ERROR, cstr(b"pyshyper: cannot attach the MVM's virtio console at %x\n"), MVM_VCON_BASE)
    log5(
        LOG_INFO,
        cstr(b"pyshyper: vm0 (management VM): Linux at %x, device tree at %x, memory %x+%x, %d vCPUs\n"),
        MVM_KERNEL_IPA,
        MVM_DTB_IPA,
        MVM_MEM_IPA,
        MVM_MEM_SIZE,
        vm.vcpus,
    )
    vm_log_stage2(vm)
    return vm
