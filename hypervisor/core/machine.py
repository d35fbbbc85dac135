"""The end of the machine: power-off through the firmware, with a failure status where the board can carry one.

SBI SRST carries no exit code out of QEMU, so a failed run also says so through the board's test finisher
(sifive,test0, QEMU hw/misc/sifive_test.c: FAIL with the exit code in bits 31:16) and falls back to SRST with
reason "system failure" when the finisher has not stopped the machine a while later.
"""

from compiler.prelude import TIME, Final, Mmio, csr_read, u32, u64
from hypervisor.arch.riscv.sbi_call import (
    SBI_SRST_REASON_FAILURE,
    SBI_SRST_REASON_NONE,
    SBI_SRST_SHUTDOWN,
    sbi_system_reset,
)
from hypervisor.board import TEST_FINISHER_BASE, TIMEBASE_FREQUENCY

TEST_FINISHER_FAIL: Final = u32(0x3333)  # sifive,test0: FAIL, exit code in bits 31:16
FINISHER_WAIT_SECONDS: Final = u64(10)  # QEMU acts on it within milliseconds; generous for a loaded host


def machine_power_off(failed: bool) -> None:
    """Power the machine off; never returns. `failed`: QEMU exits 1, else 0."""
    if failed:
        # QEMU queues the finisher's shutdown; an SRST right after it would overwrite its exit code with 0, so
        # SRST is only the fallback when the finisher has not stopped the machine a while later.
        Mmio[u32](TEST_FINISHER_BASE).write(TEST_FINISHER_FAIL | (u32(1) << 16))
        until = csr_read(TIME) + FINISHER_WAIT_SECONDS * TIMEBASE_FREQUENCY
        while csr_read(TIME) < until:
            pass  # no wfi: nothing may be armed to wake this hart
        sbi_system_reset(SBI_SRST_SHUTDOWN, SBI_SRST_REASON_FAILURE)
    sbi_system_reset(SBI_SRST_SHUTDOWN, SBI_SRST_REASON_NONE)
    while True:
        pass  # the firmware did not stop the machine: nothing else is safe to do
