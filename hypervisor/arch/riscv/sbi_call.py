"""Calls from the hypervisor (HS-mode) to the SBI implementation below it (OpenSBI), SBI spec v2.0.

Extension and function IDs are declared once here and shared with the SBI emulation for guests."""

from compiler.prelude import Array, Final, addr_of, i64, null, sbi_ecall, u64

# Extension IDs (SBI 2.0, chapter 3 onwards)
SBI_EXT_LEGACY_SET_TIMER: Final = u64(0x00)
SBI_EXT_LEGACY_PUTCHAR: Final = u64(0x01)
SBI_EXT_LEGACY_GETCHAR: Final = u64(0x02)
SBI_EXT_BASE: Final = u64(0x10)
SBI_EXT_TIME: Final = u64(0x54494D45)
SBI_EXT_IPI: Final = u64(0x735049)
SBI_EXT_RFENCE: Final = u64(0x52464E43)
SBI_EXT_HSM: Final = u64(0x48534D)
SBI_EXT_SRST: Final = u64(0x53525354)
SBI_EXT_PMU: Final = u64(0x504D55)
SBI_EXT_DBCN: Final = u64(0x4442434E)

# Standard SBI errors (SBI 2.0, 3.2)
SBI_SUCCESS: Final = i64(0)
SBI_ERR_FAILED: Final = i64(-1)
SBI_ERR_NOT_SUPPORTED: Final = i64(-2)
SBI_ERR_INVALID_PARAM: Final = i64(-3)
SBI_ERR_DENIED: Final = i64(-4)
SBI_ERR_INVALID_ADDRESS: Final = i64(-5)
SBI_ERR_ALREADY_AVAILABLE: Final = i64(-6)
SBI_ERR_ALREADY_STARTED: Final = i64(-7)
SBI_ERR_ALREADY_STOPPED: Final = i64(-8)

# SRST (SBI 2.0, chapter 10)
SBI_SRST_SHUTDOWN: Final = u64(0)
SBI_SRST_COLD_REBOOT: Final = u64(1)
SBI_SRST_WARM_REBOOT: Final = u64(2)
SBI_SRST_REASON_NONE: Final = u64(0)
SBI_SRST_REASON_FAILURE: Final = u64(1)

# HSM functions (SBI 2.0, chapter 9)
SBI_HSM_HART_START: Final = u64(0)
SBI_HSM_HART_STOP: Final = u64(1)
SBI_HSM_HART_GET_STATUS: Final = u64(2)

# HSM states (SBI 2.0, 9.1)
SBI_HSM_STARTED: Final = u64(0)
SBI_HSM_STOPPED: Final = u64(1)
SBI_HSM_START_PENDING: Final = u64(2)
SBI_HSM_STOP_PENDING: Final = u64(3)


def sbi_call(eid: u64, fid: u64, a0: u64, a1: u64, a2: u64) -> i64:
    """An SBI call whose value is not needed: returns the error code."""
    return sbi_ecall(eid, fid, a0, a1, a2, u64(0), u64(0), u64(0), null(u64))


def sbi_call_value(eid: u64, fid: u64, a0: u64, err_value: u64) -> u64:
    """An SBI call returning its value, or err_value when it fails."""
    out = Array[u64, 1]()
    if sbi_ecall(eid, fid, a0, u64(0), u64(0), u64(0), u64(0), u64(0), addr_of(out[0])) != SBI_SUCCESS:
        return err_value
    return out[0]


def sbi_console_write(addr: u64, length: u64) -> u64:
    """DBCN console_write (FID 0, SBI 2.0 12.1): bytes at a physical address (the hypervisor runs with satp
    bare). The call returns an error in a0 and the number of bytes written in a1, which may be fewer than
    length: the bytes written, 0 when the call failed."""
    written = Array[u64, 1]()
    err = sbi_ecall(SBI_EXT_DBCN, u64(0), length, addr, u64(0), u64(0), u64(0), u64(0), addr_of(written[0]))
    if err != SBI_SUCCESS:
        return 0
    return written[0]


def sbi_legacy_putchar(c: u64) -> None:
    sbi_call(SBI_EXT_LEGACY_PUTCHAR, u64(0), c, u64(0), u64(0))


def sbi_probe_extension(eid: u64) -> bool:
    """BASE probe_extension (FID 3): non-zero value when the extension is there."""
    return sbi_call_value(SBI_EXT_BASE, u64(3), eid, u64(0)) != 0


def sbi_set_timer(deadline: u64) -> None:
    sbi_call(SBI_EXT_TIME, u64(0), deadline, u64(0), u64(0))


def sbi_hart_start(hartid: u64, start: u64, opaque: u64) -> i64:
    return sbi_call(SBI_EXT_HSM, SBI_HSM_HART_START, hartid, start, opaque)


def sbi_send_ipi(hart_mask: u64, hart_mask_base: u64) -> i64:
    return sbi_call(SBI_EXT_IPI, u64(0), hart_mask, hart_mask_base, u64(0))


def sbi_system_reset(reset_type: u64, reason: u64) -> None:
    sbi_call(SBI_EXT_SRST, u64(0), reset_type, reason, u64(0))
