"""The physical S-level APLIC in MSI delivery mode (RISC-V AIA spec 1.0, chapter 4), owned by the hypervisor:
its register map (one declaration, which the virtual APLIC of core/vaplic.py mirrors) and access to it.
"""

from compiler.prelude import Final, Mmio, u32, u64
from hypervisor.board import APLIC_NUM_SOURCES, APLIC_S_BASE

APLIC_SOURCES: Final = APLIC_NUM_SOURCES  # sources 1 .. APLIC_SOURCES - 1 (the board's count includes 0)
APLIC_WORDS: Final = (APLIC_NUM_SOURCES + 31) // 32  # 32-bit words of a per-source bitmap
APLIC_DOMAINCFG: Final = u64(0x0000)
APLIC_SOURCECFG: Final = u64(0x0004)  # 4.5.2: sourcecfg[i] at 0x0004 + 4 * (i - 1)
APLIC_MSIADDRCFG: Final = u64(0x1BC0)  # 4.5.3-4.5.4: m/s msiaddrcfg(h): root domain only
APLIC_SETIP: Final = u64(0x1C00)
APLIC_SETIPNUM: Final = u64(0x1CDC)
APLIC_CLRIP: Final = u64(0x1D00)
APLIC_CLRIPNUM: Final = u64(0x1DDC)
APLIC_SETIE: Final = u64(0x1E00)
APLIC_SETIENUM: Final = u64(0x1EDC)
APLIC_CLRIE: Final = u64(0x1F00)
APLIC_CLRIENUM: Final = u64(0x1FDC)
APLIC_SETIPNUM_LE: Final = u64(0x2000)  # 4.5.11: Linux's level re-trigger after each handled interrupt (4.9.2)
APLIC_SETIPNUM_BE: Final = u64(0x2004)
APLIC_GENMSI: Final = u64(0x3000)
APLIC_TARGET: Final = u64(0x3004)  # 4.5.16: target[i] at 0x3004 + 4 * (i - 1)
APLIC_SIZE_MSI: Final = u64(0x4000)  # an MSI-mode domain has no IDC (direct mode) registers after these

DOMAINCFG_RO1: Final = u32(0x80000000)  # 4.5.1: bit 31 reads as 1
DOMAINCFG_IE: Final = u32(1) << 8
DOMAINCFG_DM: Final = u32(1) << 2  # MSI delivery mode
SOURCECFG_D: Final = u32(1) << 10  # delegate: never granted to the guest
SOURCECFG_SM: Final = u32(7)  # 4.5.2: source mode; 2 and 3 are reserved
SM_RESERVED_2: Final = u32(2)
SM_RESERVED_3: Final = u32(3)
TARGET_HART_SHIFT: Final = u32(18)
TARGET_GUEST_SHIFT: Final = u32(12)
TARGET_EIID_MASK: Final = u32(0x7FF)


def aplic_read(offset: u64) -> u32:
    return Mmio[u32](APLIC_S_BASE + offset).read()


def aplic_write(offset: u64, value: u32) -> None:
    Mmio[u32](APLIC_S_BASE + offset).write(value)


def aplic_init() -> None:
    """The S-level domain: enabled, MSI delivery (4.5.1); each source stays inactive until a VM configures it."""
    aplic_write(APLIC_DOMAINCFG, DOMAINCFG_IE | DOMAINCFG_DM)
