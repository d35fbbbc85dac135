"""The interrupt controller behind one interface (Bao's arch/riscv/irqc: `irqc_init`, `irqc_cpu_init`,
`irqc_config_irq`, `irqc_handle`), whichever the build has: the PLIC, or the AIA's APLIC in MSI mode with IMSIC
guest interrupt files. The build's IRQ_MODE is a compile-time constant, so each function is one branch after
constant folding. The rest of the hypervisor calls these and never looks at IRQ_MODE.

Physical side: the hypervisor owns the controller; a VM owns the sources the board gives it (`irqc_config_irq`).
Virtual side: a VM with `irqc_vm_init` gets an emulated controller registered in its emulated-MMIO table
(core/emul.py): a virtual PLIC (core/vplic.py, core/virq.py) or a virtual APLIC (core/vaplic.py), and in AIA mode
each of its vCPUs a guest interrupt file of its hart mapped as its IMSIC page.
"""

from compiler.prelude import HGEIE, HIE, SIE, Array, Ptr, csr_write, cstr, static, u8, u64
from hypervisor.arch.riscv.aplic import aplic_init
from hypervisor.arch.riscv.encoding import HIE_GUEST, HSTATUS_VGEIN_SHIFT, MIP_SEIP, MIP_SSIP, MIP_STIP
from hypervisor.board import (
    AIA_GUESTS,
    APLIC_S_BASE,
    APLIC_SIZE,
    IMSIC_HART_STRIDE,
    IMSIC_PAGE_SIZE,
    IMSIC_S_BASE,
    IRQ_MODE,
    IRQ_MODE_AIA,
    MAX_HARTS,
    MVM_APLIC_BASE,
    MVM_APLIC_SIZE,
    MVM_PLIC_BASE,
    MVM_PLIC_SIZE,
    PLIC_BASE,
    PLIC_SIZE,
)
from hypervisor.core.emul import emul_add_words
from hypervisor.core.vaplic import (
    VGEIN_MVM,
    vaplic_emul,
    vaplic_of,
    vaplic_own,
    vaplic_read32,
    vaplic_reset,
    vaplic_set_line,
    vaplic_wire,
    vaplic_write32,
)
from hypervisor.core.virq import (
    virq_emul,
    virq_external,
    virq_gvm_init,
    virq_init,
    virq_read32,
    virq_route,
    virq_set_line,
    virq_update_vcpu,
    virq_vplic_of,
    virq_write32,
)
from hypervisor.core.vm import Vcpu, Vm, vcpu_vm, vm_map_device, vm_vcpu

# AIA mode: the guest interrupt files of each hart that vCPUs own (bit f: file f). Written by the boot hart while
# it makes the MVM, then by the control server (core/gvm.py, under its lock) when it makes or removes a guest VM.
irqc_files = static(Array[u64, MAX_HARTS])


def irqc_banner() -> Ptr[u8]:
    """The banner's line for the controller, a log format taking the guest interrupt files per hart."""
    if IRQ_MODE == IRQ_MODE_AIA:
        return cstr(b"  irq:        aia (APLIC + IMSIC, %d guest interrupt files per hart)\n")
    return cstr(b"  irq:        plic\n")


def irqc_init() -> None:
    """Once, on the boot hart: the physical controller's global state."""
    if IRQ_MODE == IRQ_MODE_AIA:
        aplic_init()


def irqc_cpu_init() -> None:
    """On each hart: which of the hypervisor's own interrupts it takes (sie). It runs with sstatus.SIE = 0 and
    takes them only while a guest runs (Priv 9.6). PLIC mode: its S-mode context interrupts it; AIA mode: devices'
    MSIs go straight to guest interrupt files, nothing targets the hypervisor's own file."""
    if IRQ_MODE == IRQ_MODE_AIA:
        csr_write(SIE, MIP_STIP | MIP_SSIP)
    else:
        csr_write(SIE, MIP_STIP | MIP_SSIP | MIP_SEIP)


def irqc_vm_init(vm: Ptr[Vm], base: u64) -> bool:
    """Give vm a virtual controller whose window starts at guest-physical `base` (the board's layout for it);
    its vCPUs are added already."""
    vm.irqc = True
    if IRQ_MODE == IRQ_MODE_AIA:
        vm.irqc_regs = vaplic_of(vm).addr()
        return emul_add_words(vm, base, MVM_APLIC_SIZE, vaplic_emul, vaplic_read32, vaplic_write32)
    virq_init(vm)
    vm.irqc_regs = virq_vplic_of(vm).addr()
    return emul_add_words(vm, base, MVM_PLIC_SIZE, virq_emul, virq_read32, virq_write32)


def irqc_gvm_init(vm: Ptr[Vm]) -> bool:
    """A guest VM's virtual controller at the board's address, its sources the lines of the devices the hypervisor
    emulates for it (its console): PLIC mode, a virtual PLIC of its own (core/virq.py vplic_gvm). AIA mode: an
    APLIC domain of its own (core/vaplic.py vaplic_gvm) forwarding into the guest interrupt files its vCPUs own
    (irqc_vcpu_file: their IMSIC pages)."""
    if IRQ_MODE == IRQ_MODE_AIA:
        vaplic_reset(vm, True)
        vm.irqc_regs = vaplic_of(vm).addr()
        if not emul_add_words(vm, APLIC_S_BASE, APLIC_SIZE, vaplic_emul, vaplic_read32, vaplic_write32):
            return False
        vm.irqc = True
        return True
    virq_gvm_init(vm)
    vm.irqc_regs = virq_vplic_of(vm).addr()
    if not emul_add_words(vm, PLIC_BASE, PLIC_SIZE, virq_emul, virq_read32, virq_write32):
        return False
    vm.irqc = True
    return True


def irqc_gvm_reset(vm: Ptr[Vm]) -> None:
    """A guest VM boots: its virtual controller as at reset."""
    if not vm.irqc:
        return
    if IRQ_MODE == IRQ_MODE_AIA:
        vaplic_reset(vm, False)
    else:
        virq_gvm_init(vm)


def irqc_window(vm: Ptr[Vm]) -> u64:
    """Where the management VM's board data puts its controller's window."""
    return MVM_APLIC_BASE if IRQ_MODE == IRQ_MODE_AIA else MVM_PLIC_BASE


def irqc_vcpu_init(vm: Ptr[Vm], index: u64, hart: u64, imsic_gpa: u64) -> bool:
    """vm's vCPU `index` runs on `hart`. AIA mode: its IMSIC page at imsic_gpa is that hart's guest interrupt file
    VGEIN (AIA 3.x; Priv 9.2.1 hstatus.VGEIN), mapped, never emulated. Nothing to do for the PLIC."""
    if IRQ_MODE == IRQ_MODE_AIA:
        return irqc_vcpu_file(vm, index, hart, imsic_gpa, VGEIN_MVM)
    return True


def irqc_vcpu_file(vm: Ptr[Vm], index: u64, hart: u64, imsic_gpa: u64, vgein: u64) -> bool:
    """AIA mode: vm's vCPU `index` on `hart` owns that hart's guest interrupt file `vgein` (1..GEILEN), mapped as
    its IMSIC page at imsic_gpa (AIA 3.x; Priv 9.2.1 hstatus.VGEIN); the file is taken until irqc_file_release."""
    file = IMSIC_S_BASE + hart * IMSIC_HART_STRIDE + vgein * IMSIC_PAGE_SIZE
    if not vm_map_device(vm, imsic_gpa, file, IMSIC_PAGE_SIZE):
        return False
    vm_vcpu(vm, index).vgein = vgein
    irqc_files[hart] = irqc_files[hart] | (u64(1) << vgein)
    return True


def irqc_file_free(hart: u64) -> u64:
    """AIA mode: the lowest guest interrupt file of `hart` no vCPU owns (1..AIA_GUESTS), 0 when none is free (and
    always with the PLIC)."""
    if IRQ_MODE != IRQ_MODE_AIA or hart >= MAX_HARTS:
        return u64(0)
    for f in range(u64(1), AIA_GUESTS + 1):
        if (irqc_files[hart] >> f) & 1 == 0:
            return f
    return u64(0)


def irqc_files_free(hart: u64) -> u64:
    """AIA mode: how many guest interrupt files of `hart` no vCPU owns (0 with the PLIC)."""
    if IRQ_MODE != IRQ_MODE_AIA or hart >= MAX_HARTS:
        return u64(0)
    n = u64(0)
    for f in range(u64(1), AIA_GUESTS + 1):
        if (irqc_files[hart] >> f) & 1 == 0:
            n += 1
    return n


def irqc_file_release(hart: u64, vgein: u64) -> None:
    """The vCPU that owned `hart`'s guest interrupt file `vgein` is gone (its VM was removed)."""
    if hart < MAX_HARTS and vgein != 0:
        irqc_files[hart] = irqc_files[hart] & ~(u64(1) << vgein)


def irqc_config_irq(vm: Ptr[Vm], src: u64, hart: u64) -> None:
    """Physical source `src` belongs to vm; in PLIC mode it interrupts `hart`'s S-mode context."""
    if IRQ_MODE == IRQ_MODE_AIA:
        vaplic_own(src)
    else:
        virq_route(vm, src, hart)


def irqc_wire_irq(vm: Ptr[Vm], src: u64) -> None:
    """Source `src` of vm's virtual controller is the line of a device the hypervisor emulates (irqc_set_line)."""
    if IRQ_MODE == IRQ_MODE_AIA:
        vaplic_wire(vm, src)


def irqc_set_line(vm: Ptr[Vm], src: u64, high: bool, current: Ptr[Vcpu]) -> None:
    """The line of a device the hypervisor emulates for vm, wired to source `src` of vm's virtual controller,
    goes high or low; from any hart (`current`: the vCPU this hart runs, of any VM, or null). A VM with no
    virtual controller of its own has no line to raise: nothing happens (never another VM's controller)."""
    if not vm.irqc:
        return
    if IRQ_MODE == IRQ_MODE_AIA:
        vaplic_set_line(vm, src, high)
    else:
        virq_set_line(vm, src, high, current)


def irqc_handle(v: Ptr[Vcpu]) -> bool:
    """The hypervisor's S-mode external interrupt, taken while v ran; false if this controller raises none."""
    if IRQ_MODE == IRQ_MODE_AIA:
        return False  # not enabled in sie: there is no PLIC to claim from
    virq_external(v, v.hart)
    return True


def irqc_vcpu_enter(v: Ptr[Vcpu]) -> u64:
    """v is about to run on this hart: bring its external-interrupt line up to date; the hstatus bits its
    controller needs (VGEIN in AIA mode)."""
    if IRQ_MODE == IRQ_MODE_AIA:
        if v.vgein == 0:
            return u64(0)
        # Its bit in hgeie too, while the vCPU is on this hart: an MSI into the file then also raises mip.SGEIP
        # (never taken: hie.SGEIE stays clear). By the spec hip.VSEIP alone wakes a waiting hart; QEMU (10.0)
        # wakes a halted hart only when its mip changes, which this makes an MSI do.
        csr_write(HGEIE, u64(1) << v.vgein)
        return v.vgein << HSTATUS_VGEIN_SHIFT
    if not vcpu_vm(v).irqc:
        return u64(0)
    # Its line as its VM's virtual PLIC has it now (the IPIs that said so may have been taken, and cleared,
    # while the hart was parked).
    virq_update_vcpu(v)
    return u64(0)


def irqc_vcpu_wait(v: Ptr[Vcpu]) -> None:
    """v waits in place on its own hart (a WFI): AIA mode, its guest interrupt file must wake the hart (hgeie, as
    irqc_vcpu_enter sets it) with hie.SGEIE clear, whatever a time when its hart was shared left there."""
    if IRQ_MODE == IRQ_MODE_AIA and v.vgein != 0:
        csr_write(HGEIE, u64(1) << v.vgein)
        csr_write(HIE, HIE_GUEST)


def irqc_vcpu_leave() -> None:
    """The hart's vCPU leaves it: no guest interrupt file may wake it any more."""
    csr_write(HGEIE, u64(0))
