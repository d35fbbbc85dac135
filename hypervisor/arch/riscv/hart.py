"""The CSRs of the running hart that core code needs, behind functions: core modules never name a CSR or use the
csr_* intrinsics themselves (tests/test_import_graph.py holds them to that).
"""

from compiler.prelude import HGEIP, HVIP, SIP, SSTATUS, TIME, csr_clear, csr_read, csr_set, u64
from hypervisor.arch.riscv.encoding import MIP_SSIP, MIP_VSEIP, SSTATUS_SIE


def hart_time() -> u64:
    """The `time` CSR (Priv 3.1.11, Zicntr): ticks of the board's timebase since reset."""
    return csr_read(TIME)


def hart_ipi_clear() -> None:
    """Acknowledge a supervisor software interrupt (an IPI from SBI sbi_send_ipi): clear sip.SSIP (Priv 4.1.3)."""
    csr_clear(SIP, MIP_SSIP)


def hart_interrupts_off() -> None:
    """No interrupt is taken on this hart from now on: sstatus.SIE cleared (Priv 4.1.1); a WFI still ends when
    one is pending."""
    csr_clear(SSTATUS, SSTATUS_SIE)


def hart_vseip_set(line: bool) -> None:
    """The running vCPU's external interrupt line: hvip.VSEIP (Priv 9.2.3) set when `line`, cleared otherwise."""
    if line:
        csr_set(HVIP, MIP_VSEIP)
    else:
        csr_clear(HVIP, MIP_VSEIP)


def hart_guest_files_pending() -> u64:
    """AIA: hgeip (Priv 9.2.4): bit f set when guest interrupt file f of this hart has an interrupt pending and
    enabled; 0 on a hart without guest interrupt files."""
    return csr_read(HGEIP)
