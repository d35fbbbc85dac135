"""The machine as a whole: checked against the build at boot, and powered off at the end.

Boot-time checks: what the firmware's device tree says the machine is (its interrupt controller, its memory) must
be what this image was built for (`hypervisor.board`). A mismatch is one line saying what the machine has and what
to do; the caller then powers off with a failure, before any VM is made. Interrupt controllers by their
device-tree bindings: a PLIC is `riscv,plic0` or `sifive,plic-1.0.0` (sifive,plic-1.0.0.yaml); an AIA is an IMSIC
`riscv,imsics` (riscv,imsics.yaml) whose `interrupts-extended` targets the harts' supervisor external interrupt
(cause 9: the S-level files; the M-level ones target 11), with an APLIC `riscv,aplic` in MSI mode in front of it.
The S-level IMSIC's `riscv,guest-index-bits` lays out each hart's guest interrupt files; how many the hart has is
hgeie's GEILEN (Priv 9.2.4), which the caller reads.

Reset (a reboot of the machine): every other hart first parks in the hypervisor, out of its guest
(machine_reset), then SBI SRST. The firmware's SRST halts the other harts by an M-mode IPI but does not wait for
them; a hart QEMU resets while it runs a guest (V=1) trips QEMU's PMU (target/riscv/pmu.c asserts priv <= S while
V is 1 and aborts the whole emulator), and on hardware the reset would cut a guest off mid-instruction anyway.

Power-off: SBI SRST carries no exit code out of QEMU, so a failed run also says so through the board's test
finisher (sifive,test0, QEMU hw/misc/sifive_test.c: FAIL with the exit code in bits 31:16) and falls back to SRST
with reason "system failure" when the finisher has not stopped the machine a while later.
"""

from compiler.prelude import (
    Array,
    Final,
    Mmio,
    addr_of,
    amoadd_w,
    amoswap_w,
    cstr,
    static,
    u32,
    u64,
    wfi,
)
from hypervisor.arch.riscv.encoding import IRQ_S_EXT
from hypervisor.arch.riscv.hart import hart_interrupts_off, hart_time
from hypervisor.arch.riscv.ipi import hart_ipi
from hypervisor.arch.riscv.sbi_call import (
    SBI_SRST_REASON_FAILURE,
    SBI_SRST_REASON_NONE,
    SBI_SRST_SHUTDOWN,
    sbi_system_reset,
)
from hypervisor.board import (
    AIA_GUESTS,
    IMSIC_GUEST_INDEX_BITS,
    IRQ_MODE,
    IRQ_MODE_AIA,
    MAX_HARTS,
    MVM_MEM_HOST,
    MVM_MEM_SIZE,
    TEST_FINISHER_BASE,
    TIMEBASE_FREQUENCY,
)
from hypervisor.core.console import console_dec, console_hex, console_lock, console_puts, console_unlock
from hypervisor.core.fdt import fdt_compatible, fdt_memory, fdt_prop_cell, fdt_prop_u64

TEST_FINISHER_FAIL: Final = u32(0x3333)  # sifive,test0: FAIL, exit code in bits 31:16
FINISHER_WAIT_SECONDS: Final = u64(10)  # QEMU acts on it within milliseconds; generous for a loaded host


RESET_PARK_WAIT_MS: Final = u64(100)  # how long a reset waits for the other harts to park

resetting = static(Array[u32, 1])  # 1 once a hart resets the machine (machine_reset): the others park
harts_parked = static(Array[u32, 1])  # how many have parked since


def machine_reset(kind: u64, reason: u64, present: u64) -> None:
    """Reset the machine (SBI SRST `kind`, a reboot) once the other harts of `present` (a mask of the harts
    that run the hypervisor, this one among them) have parked (machine_park): each is sent an IPI, which
    reaches the hypervisor from a guest or wakes its idle loop. A hart that has not parked within
    RESET_PARK_WAIT_MS (spinning with interrupts off, which it only does outside any guest) is not waited for.
    Returns only if the firmware does (a mock)."""
    amoswap_w(addr_of(resetting[0]), u32(1))
    others = u32(0)
    for h in range(MAX_HARTS):
        if (present >> u64(h)) & 1 != 0:
            others += 1
            hart_ipi(u64(h))  # this hart's own stays pending: its interrupts are off until the reset
    if others > 0:
        others -= 1
    until = hart_time() + RESET_PARK_WAIT_MS * (TIMEBASE_FREQUENCY // 1000)
    while amoadd_w(addr_of(harts_parked[0]), u32(0)) < others and hart_time() < until:
        pass
    sbi_system_reset(kind, reason)


def machine_resetting() -> bool:
    """Whether a hart is resetting the machine: then this one parks (machine_park) before anything else."""
    return amoadd_w(addr_of(resetting[0]), u32(0)) != 0


def machine_park() -> None:
    """Stop this hart in the hypervisor for the reset another hart makes: interrupts off, counted, WFI until the
    firmware's halt or the reset itself. Never returns."""
    hart_interrupts_off()
    amoadd_w(addr_of(harts_parked[0]), u32(1))
    while True:
        wfi()


def machine_power_off(failed: bool) -> None:
    """Power the machine off; never returns. `failed`: QEMU exits 1, else 0."""
    if failed:
        # QEMU queues the finisher's shutdown; an SRST right after it would overwrite its exit code with 0, so
        # SRST is only the fallback when the finisher has not stopped the machine a while later.
        Mmio[u32](TEST_FINISHER_BASE).write(TEST_FINISHER_FAIL | (u32(1) << 16))
        until = hart_time() + FINISHER_WAIT_SECONDS * TIMEBASE_FREQUENCY
        while hart_time() < until:
            pass  # no wfi: nothing may be armed to wake this hart
        sbi_system_reset(SBI_SRST_SHUTDOWN, SBI_SRST_REASON_FAILURE)
    sbi_system_reset(SBI_SRST_SHUTDOWN, SBI_SRST_REASON_NONE)
    while True:
        pass  # the firmware did not stop the machine: nothing else is safe to do


# --------------------------------------------------------------------------------------------------------------
# Boot-time checks

MACHINE_IRQ_NONE: Final = u64(0)
MACHINE_IRQ_PLIC: Final = u64(1)
MACHINE_IRQ_AIA: Final = u64(2)  # APLIC + S-level IMSIC
MACHINE_IRQ_APLIC: Final = u64(3)  # an APLIC in direct mode, no IMSIC
MEMORY_REGIONS_MAX: Final = u64(16)  # how many /memory regions a message lists


def machine_imsic_s(dtb: u64) -> u64:
    """The S-level IMSIC node: a usable riscv,imsics whose first interrupts-extended entry <phandle cause>
    targets the supervisor external interrupt; 0 if none."""
    i = u64(0)
    node = fdt_compatible(dtb, cstr(b"riscv,imsics"), i)
    while node != 0:
        if fdt_prop_cell(dtb, node, cstr(b"interrupts-extended"), u64(1), u64(0)) == IRQ_S_EXT:
            return node
        i += 1
        node = fdt_compatible(dtb, cstr(b"riscv,imsics"), i)
    return 0


def machine_irq(dtb: u64) -> u64:
    """MACHINE_IRQ_*: the interrupt controller the device tree describes."""
    if machine_imsic_s(dtb) != 0:
        return MACHINE_IRQ_AIA
    if fdt_compatible(dtb, cstr(b"riscv,plic0"), u64(0)) != 0:
        return MACHINE_IRQ_PLIC
    if fdt_compatible(dtb, cstr(b"sifive,plic-1.0.0"), u64(0)) != 0:
        return MACHINE_IRQ_PLIC
    if fdt_compatible(dtb, cstr(b"riscv,aplic"), u64(0)) != 0:
        return MACHINE_IRQ_APLIC
    return MACHINE_IRQ_NONE


def machine_puts_build() -> None:
    """The build options of this image, as `pyshyper build` takes them."""
    if IRQ_MODE == IRQ_MODE_AIA:
        console_puts(cstr(b"--irq aia --aia-guests "))
        console_dec(AIA_GUESTS)
    else:
        console_puts(cstr(b"--irq plic"))


def machine_irq_check(dtb: u64, geilen: u64) -> bool:
    """True when the machine's interrupt controller is the build's: a PLIC for --irq plic; for --irq aia an AIA
    whose harts have AIA_GUESTS guest interrupt files (GEILEN) laid out with IMSIC_GUEST_INDEX_BITS. Otherwise one
    line naming what the machine has and the build it needs, and False."""
    kind = machine_irq(dtb)
    index_bits = u64(0)
    if kind == MACHINE_IRQ_AIA:
        index_bits = fdt_prop_u64(dtb, machine_imsic_s(dtb), cstr(b"riscv,guest-index-bits"), u64(0))
    if IRQ_MODE == IRQ_MODE_AIA:
        if kind == MACHINE_IRQ_AIA and geilen == AIA_GUESTS and index_bits == IMSIC_GUEST_INDEX_BITS:
            return True
    elif kind == MACHINE_IRQ_PLIC:
        return True
    console_lock()
    console_puts(cstr(b"pyshyper: this machine has "))
    if kind == MACHINE_IRQ_AIA:
        console_puts(cstr(b"an AIA (APLIC+IMSIC, "))
        console_dec(geilen)
        console_puts(cstr(b" guest files per hart"))
        if IRQ_MODE == IRQ_MODE_AIA and geilen == AIA_GUESTS:  # then the layout is what differs
            console_puts(cstr(b" in "))
            console_dec(index_bits)
            console_puts(cstr(b" guest-index bits, not "))
            console_dec(IMSIC_GUEST_INDEX_BITS)
        console_puts(cstr(b")"))
    elif kind == MACHINE_IRQ_PLIC:
        console_puts(cstr(b"a PLIC"))
    elif kind == MACHINE_IRQ_APLIC:
        console_puts(cstr(b"an APLIC without an IMSIC"))
    else:
        console_puts(cstr(b"neither a PLIC nor an AIA"))
    console_puts(cstr(b"; this image was built for "))
    machine_puts_build()
    if kind == MACHINE_IRQ_AIA and IRQ_MODE == IRQ_MODE_AIA and geilen == AIA_GUESTS:
        console_puts(cstr(b": this board's IMSIC layout does not fit the machine's"))
    elif kind == MACHINE_IRQ_AIA and geilen != 0:
        console_puts(cstr(b": rebuild with pyshyper build --irq aia --aia-guests "))
        console_dec(geilen)
    elif kind == MACHINE_IRQ_AIA:
        console_puts(cstr(b": PyShyper needs guest interrupt files (hgeie GEILEN is 0)"))
    elif kind == MACHINE_IRQ_PLIC:
        console_puts(cstr(b": rebuild with pyshyper build --irq plic"))
    else:
        console_puts(cstr(b": PyShyper needs a PLIC or an APLIC with IMSICs"))
    console_puts(cstr(b"\n"))
    console_unlock()
    return False


def machine_mvm_memory_check(dtb: u64) -> bool:
    """True when the management VM's memory (MVM_MEM_HOST..+MVM_MEM_SIZE, from mvm.toml) lies inside one region of
    the firmware's /memory nodes (DT spec 3.4). Otherwise one line naming both ranges, and False: the MVM's
    kernel cannot even be looked for there."""
    region = Array[u64, 2]()
    i = u64(0)
    while fdt_memory(dtb, i, addr_of(region[0])):
        if (
            region[0] <= MVM_MEM_HOST
            and MVM_MEM_SIZE <= region[1]
            and MVM_MEM_HOST - region[0] <= region[1] - MVM_MEM_SIZE
        ):
            return True
        i += 1
    console_lock()
    console_puts(cstr(b"pyshyper: the management VM's memory "))
    machine_puts_range(MVM_MEM_HOST, MVM_MEM_SIZE)
    console_puts(cstr(b" (mvm.toml) is not inside the firmware's memory "))
    n = u64(0)
    while n < MEMORY_REGIONS_MAX and fdt_memory(dtb, n, addr_of(region[0])):
        if n > 0:
            console_puts(cstr(b", "))
        machine_puts_range(region[0], region[1])
        n += 1
    if n == 0:
        console_puts(cstr(b"(none)"))
    console_puts(cstr(b": no management VM\n"))
    console_unlock()
    return False


def machine_puts_range(base: u64, size: u64) -> None:
    console_hex(base)
    console_puts(cstr(b".."))
    console_hex(base + size)
