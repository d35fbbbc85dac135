"""The CSR table: name -> number, from the RISC-V privileged spec (20240411), the H extension, Sstc, Smstateen
and the AIA spec (Ssaia).  The prelude re-exports every name as an int constant; the compiler generates the
`csrs_<name>_<op>` assembly stubs from this one table.  Names are the spec's, upper-cased."""

CSRS: dict[str, int] = {
    # unprivileged floating-point and counters
    "FFLAGS": 0x001,
    "FRM": 0x002,
    "FCSR": 0x003,
    "CYCLE": 0xC00,
    "TIME": 0xC01,
    "INSTRET": 0xC02,
    # supervisor
    "SSTATUS": 0x100,
    "SIE": 0x104,
    "STVEC": 0x105,
    "SCOUNTEREN": 0x106,
    "SENVCFG": 0x10A,
    "SSTATEEN0": 0x10C,
    "SSCRATCH": 0x140,
    "SEPC": 0x141,
    "SCAUSE": 0x142,
    "STVAL": 0x143,
    "SIP": 0x144,
    "STIMECMP": 0x14D,  # Sstc
    "SISELECT": 0x150,  # AIA
    "SIREG": 0x151,
    "STOPEI": 0x15C,
    "SATP": 0x180,
    "STOPI": 0xDB0,
    # hypervisor
    "HSTATUS": 0x600,
    "HEDELEG": 0x602,
    "HIDELEG": 0x603,
    "HIE": 0x604,
    "HTIMEDELTA": 0x605,
    "HCOUNTEREN": 0x606,
    "HGEIE": 0x607,
    "HVIEN": 0x608,  # AIA
    "HVICTL": 0x609,  # AIA
    "HENVCFG": 0x60A,
    "HSTATEEN0": 0x60C,
    "HTVAL": 0x643,
    "HIP": 0x644,
    "HVIP": 0x645,
    "HVIPRIO1": 0x646,  # AIA
    "HVIPRIO2": 0x647,  # AIA
    "HTINST": 0x64A,
    "HGATP": 0x680,
    "HGEIP": 0xE12,
    # virtual supervisor
    "VSSTATUS": 0x200,
    "VSIE": 0x204,
    "VSTVEC": 0x205,
    "VSSCRATCH": 0x240,
    "VSEPC": 0x241,
    "VSCAUSE": 0x242,
    "VSTVAL": 0x243,
    "VSIP": 0x244,
    "VSTIMECMP": 0x24D,  # Sstc
    "VSISELECT": 0x250,  # AIA
    "VSIREG": 0x251,
    "VSTOPEI": 0x25C,
    "VSATP": 0x280,
    "VSTOPI": 0xEB0,
}

# CSRs that are read-only (the number's top two bits are 0b11): csr_write/set/clear/swap on them is an error.
READ_ONLY: frozenset[str] = frozenset(name for name, num in CSRS.items() if (num >> 10) == 0b11)

assert len(set(CSRS.values())) == len(CSRS), "duplicate CSR number"
