"""RISC-V privileged architecture constants: CSR fields, trap causes, interrupt bits (Priv spec v1.12,
chapters 4 "Supervisor-Level ISA" and 9 "Hypervisor Extension"). Declared once; every module imports them."""

from compiler.prelude import Final, u64

# sstatus (Priv 4.1.1)
SSTATUS_SIE: Final = u64(1) << 1
SSTATUS_SPIE: Final = u64(1) << 5
SSTATUS_SPP: Final = u64(1) << 8
SSTATUS_FS: Final = u64(3) << 13
SSTATUS_FS_INITIAL: Final = u64(1) << 13
SSTATUS_FS_CLEAN: Final = u64(2) << 13
SSTATUS_FS_DIRTY: Final = u64(3) << 13
SSTATUS_VS: Final = u64(3) << 9  # vector state (V extension); reads 0 on harts without V
SSTATUS_VS_INITIAL: Final = u64(1) << 9
SSTATUS_VS_CLEAN: Final = u64(2) << 9
SSTATUS_VS_DIRTY: Final = u64(3) << 9

# vtype (V 1.0 section 3.4): vill, its top bit, marks a configuration vsetvl could not set
VTYPE_VILL: Final = u64(1) << 63

# hstatus (Priv 9.2.1)
HSTATUS_GVA: Final = u64(1) << 6
HSTATUS_SPV: Final = u64(1) << 7
HSTATUS_SPVP: Final = u64(1) << 8
HSTATUS_HU: Final = u64(1) << 9
HSTATUS_VGEIN_SHIFT: Final = u64(12)
HSTATUS_VGEIN: Final = u64(0x3F) << 12
HSTATUS_VTVM: Final = u64(1) << 20
HSTATUS_VTW: Final = u64(1) << 21
HSTATUS_VTSR: Final = u64(1) << 22
HSTATUS_VSXL: Final = u64(3) << 32  # WARL, possibly read-only: kept as the hart has it

# Interrupt numbers (Priv 4.1.3 and 9.2.3): bit positions in sip/sie/hip/hie/hvip/hideleg
IRQ_S_SOFT: Final = u64(1)
IRQ_VS_SOFT: Final = u64(2)
IRQ_S_TIMER: Final = u64(5)
IRQ_VS_TIMER: Final = u64(6)
IRQ_S_EXT: Final = u64(9)
IRQ_VS_EXT: Final = u64(10)
IRQ_S_GEXT: Final = u64(12)
MIP_VSSIP: Final = u64(1) << 2
MIP_VSTIP: Final = u64(1) << 6
MIP_VSEIP: Final = u64(1) << 10
MIP_STIP: Final = u64(1) << 5
MIP_SSIP: Final = u64(1) << 1
MIP_SEIP: Final = u64(1) << 9
MIP_SGEIP: Final = u64(1) << 12

SCAUSE_INTERRUPT: Final = u64(1) << 63

# Exception codes (Priv 4.1.9, table 4.2, with the H extension's additions in 9.2.x)
EXC_INST_MISALIGNED: Final = u64(0)
EXC_INST_ACCESS: Final = u64(1)
EXC_ILLEGAL_INST: Final = u64(2)
EXC_BREAKPOINT: Final = u64(3)
EXC_LOAD_MISALIGNED: Final = u64(4)
EXC_LOAD_ACCESS: Final = u64(5)
EXC_STORE_MISALIGNED: Final = u64(6)
EXC_STORE_ACCESS: Final = u64(7)
EXC_ECALL_U: Final = u64(8)
EXC_ECALL_S: Final = u64(9)
EXC_ECALL_VS: Final = u64(10)
EXC_INST_PAGE_FAULT: Final = u64(12)
EXC_LOAD_PAGE_FAULT: Final = u64(13)
EXC_STORE_PAGE_FAULT: Final = u64(15)
EXC_INST_GUEST_PAGE_FAULT: Final = u64(20)
EXC_LOAD_GUEST_PAGE_FAULT: Final = u64(21)
EXC_VIRTUAL_INST: Final = u64(22)
EXC_STORE_GUEST_PAGE_FAULT: Final = u64(23)
EXC_COUNT: Final = 24

# Exceptions a guest handles itself (hedeleg, Priv 9.2.2): everything but VS ecalls, guest page faults
# and virtual instructions, which the hypervisor must see.
HEDELEG_GUEST: Final = (
    (u64(1) << EXC_INST_MISALIGNED)
    | (u64(1) << EXC_ILLEGAL_INST)
    | (u64(1) << EXC_BREAKPOINT)
    | (u64(1) << EXC_LOAD_MISALIGNED)
    | (u64(1) << EXC_STORE_MISALIGNED)
    | (u64(1) << EXC_ECALL_U)
    | (u64(1) << EXC_INST_PAGE_FAULT)
    | (u64(1) << EXC_LOAD_PAGE_FAULT)
    | (u64(1) << EXC_STORE_PAGE_FAULT)
)
# VS-level interrupts go to the guest (hideleg, Priv 9.2.2).
HIDELEG_GUEST: Final = MIP_VSSIP | MIP_VSTIP | MIP_VSEIP
# ... and are enabled in hie while a vCPU runs on the hart, which also lets them wake its WFI (Priv 9.2.3).
HIE_GUEST: Final = MIP_VSSIP | MIP_VSTIP | MIP_VSEIP

# hcounteren / scounteren (Priv 4.1.5): CY, TM, IR
COUNTEREN_CY_TM_IR: Final = u64(7)
# henvcfg (Priv 9.2.5)
HENVCFG_STCE: Final = u64(1) << 63
# hstateen0 (Smstateen 1.0): what VS-mode may touch where the hart has state-enable CSRs. Without these bits the
# guest's own AIA CSRs (siselect/sireg, stopei, stopi: its IMSIC driver), senvcfg and sstateen0 would each raise
# a virtual-instruction exception.
HSTATEEN0_GUEST: Final = (u64(1) << 63) | (u64(1) << 62) | (u64(1) << 60) | (u64(1) << 59) | (u64(1) << 58)
HENVCFG_PBMTE: Final = u64(1) << 62
HENVCFG_ADUE: Final = u64(1) << 61

# Instruction encodings needed to emulate trapped instructions (Unprivileged spec 2.8, Priv 3.3)
INSN_WFI: Final = u64(0x10500073)
