"""Inter-processor interrupts among the hypervisor's harts: the target hart's sip.SSIP (Priv 4.1.3), which
trap.py irq_software takes, then acts on the target vCPU's mailbox (vsbi.py vcpu_handle_messages).

There are two ways to raise it, and ipi_init chooses one at boot:
- The ACLINT SSWI (RISC-V ACLINT 1.0, chapter 4): a 32-bit store of 1 to the target's SETSSIP word. It is used
  when the machine's device tree shows one at the board's SSWI_BASE that serves every hart.
- Otherwise the firmware's SBI IPI extension (SBI 2.0 chapter 7). This costs an ecall on the sender. On the
  target it costs an M-mode trap, in which the firmware raises sip.SSIP, and an mret.

Why the SSWI: on QEMU, an M-mode trap taken by a hart that runs a guest changes V twice, and QEMU flushes the
hart's whole TLB at every change of V. An MVM boot in PLIC mode sends about 8,000 IPIs (a remote fence is two:
the request and the completion); with the SSWI it reached the shell at 1.07 of native where it had been at 1.19
and at 1.09 in two runs (README "IPIs").

Shared state: ipi_sswi and ipi_word are written by the boot hart in ipi_init, before it starts the other harts
(hyp_main), and only read afterwards.
"""

from compiler.prelude import Array, Mmio, Ptr, addr_of, cstr, fence_io, static, u32, u64
from hypervisor.arch.riscv.encoding import IRQ_S_SOFT
from hypervisor.arch.riscv.sbi_call import sbi_send_ipi
from hypervisor.board import MAX_HARTS, SSWI_BASE, SSWI_SIZE
from hypervisor.core.fdt import FDT_BAD, fdt_compatible, fdt_hart_irq_index, fdt_reg

ipi_sswi: u64 = 0  # the SSWI's base when the harts' IPIs go through it, else 0 (the firmware's)
ipi_word = static(Array[u32, MAX_HARTS])  # hart id -> the index of its SETSSIP word


def ipi_sswi_find(dtb: u64) -> u64:
    """The usable "riscv,aclint-sswi" node at SSWI_BASE, or 0."""
    if SSWI_BASE == 0:
        return 0
    reg = Array[u64, 2]()
    i = u64(0)
    while True:
        node = fdt_compatible(dtb, cstr(b"riscv,aclint-sswi"), i)
        if node == 0:
            return 0
        if fdt_reg(dtb, node, addr_of(reg[0])) and reg[0] == SSWI_BASE and reg[1] <= SSWI_SIZE:
            return node
        i += 1


def ipi_init(dtb: u64, hartids: Ptr[u64], count: u64) -> bool:
    """Use the SSWI if the device tree has one at SSWI_BASE and it serves each of the count harts in hartids
    (ACLINT 1.0, 4: hart i of its interrupts-extended list owns SETSSIP word i); True if so. Else the SBI IPI."""
    global ipi_sswi
    ipi_sswi = 0
    node = ipi_sswi_find(dtb)
    if node == 0:
        return False
    reg = Array[u64, 2]()
    fdt_reg(dtb, node, addr_of(reg[0]))
    for i in range(count):
        h = hartids[i]
        word = fdt_hart_irq_index(dtb, node, h, IRQ_S_SOFT)
        if h >= MAX_HARTS or word == FDT_BAD or (word + 1) * 4 > reg[1]:
            return False
        ipi_word[h] = u32(word)
    ipi_sswi = SSWI_BASE
    return True


def hart_ipi(hart: u64) -> None:
    """Raise sip.SSIP on hart `hart` (this one included)."""
    if ipi_sswi != 0 and hart < MAX_HARTS:
        # What the caller wrote for the target (its mailbox, a fence request) is seen before the target's SSIP:
        # only a FENCE with the I/O bits orders memory writes before a device write (unprivileged spec, 2.7).
        fence_io()
        Mmio[u32](ipi_sswi + 4 * u64(ipi_word[hart])).write(u32(1))  # ACLINT 1.0, 4.1: SETSSIP
    else:
        sbi_send_ipi(u64(1), hart)
