/*
 * runtime/trap.S: the hypervisor's trap vector and the way into a vCPU.
 *
 * sscratch tells where a trap came from (Priv spec 4.1.4 suggests this use): while a vCPU runs it holds that
 * vCPU's address (struct Vcpu, registers at offset VCPU_REGS); while the hypervisor runs it holds 0.
 *   - from a guest: save sepc and the registers the hypervisor's calls may change into the vCPU (SAVE_CALLER),
 *     switch to the top of the hart's hypervisor stack (VCPU_HYP_SP, fixed when the vCPU was placed on the hart),
 *     call hyp_guest_mmio, hyp_guest_ecall or hyp_guest_trap(vcpu) by scause and resume it: reloading only the
 *     registers its calls may have changed when it wrote none of the others (VCPU_REGS_WRITTEN), else all
 *     through hyp_vcpu_enter. The kept registers (gp, tp, s1..s11) are saved only when `regs` must hold them
 *     (SAVE_KEPT, STORE_KEPT): an emulated store from one asks for them (REGS_SAVE_KEPT) and is taken again, an
 *     emulated load into one leaves its value to trap.S (REGS_LOAD_KEPT), and a vCPU that leaves its hart saves
 *     them. When the call returns 0 (the vCPU left the hart: stopped, rebooted, its VM ended) unwind to the
 *     stack's top again and call hyp_hart_idle(hart), which enters whatever runs next. So every entry into a
 *     guest starts from the same stack depth: a stop, start or reboot never nests.
 *   - from the hypervisor itself: a bug. Look up the function name in the embedded symbol table and call
 *     hyp_hs_fault(scause, sepc, stval, name, offset), which reports it and stops the hart.
 * Offsets come from the compiler's generated offsets.S (struct Vcpu in hypervisor/core/vm.py).
 */
    .include "offsets.S"
    .option norelax
    .cfi_sections .debug_frame          /* call-frame info for debuggers only: no .eh_frame */

    /* The registers the hypervisor's calls may change (the calling convention's caller-saved ones, and s0, which
       trap.S itself uses), saved on every entry. */
    .macro SAVE_CALLER base
    .irp n, 1, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 28, 29, 30, 31
    sd x\n, VCPU_REGS + \n*8(\base)
    .endr
    .endm

    /* The kept registers (arch/riscv/mmio.py REGS_KEPT): gp and tp, which the hypervisor never uses, and s1..s11,
       which its calls keep. They still hold the guest's values once a call returns to trap.S, so they are saved
       only when `regs` must hold them: the vCPU leaves its hart, or an emulated access names one. */
    .macro SAVE_KEPT base
    .irp n, 3, 4, 9, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27
    sd x\n, VCPU_REGS + \n*8(\base)
    .endr
    .endm

    /* The vCPU's kept registers into `regs` when it leaves its hart or goes back through hyp_vcpu_enter, by its
       regs_written (hypervisor/core/vm.py): none for REGS_RELOAD_ALL (the hypervisor wrote all 31: a reset);
       for REGS_LOAD_KEPT, then an emulated load's value (mmio_value) over its rd (bits 11:7 of mmio_access, a
       transformed load: arch/riscv/mmio.py). Uses t0..t2. */
    .macro STORE_KEPT base
    lw      t0, VCPU_REGS_WRITTEN(\base)
    addi    t1, t0, -REGS_RELOAD_ALL
    beqz    t1, 9f
    SAVE_KEPT \base
    addi    t1, t0, -REGS_LOAD_KEPT
    bnez    t1, 9f
    ld      t1, VCPU_MMIO_ACCESS(\base)
    srli    t1, t1, 7
    andi    t1, t1, 31
    slli    t1, t1, 3
    add     t1, t1, \base
    ld      t2, VCPU_MMIO_VALUE(\base)
    sd      t2, VCPU_REGS(t1)
9:
    .endm

    .section .text, "ax", @progbits
    .balign 4
    .globl hyp_trap_vector
    .type hyp_trap_vector, @function
hyp_trap_vector:
    .cfi_startproc
    .cfi_undefined ra                   /* the outermost frame: a debugger's backtrace ends here */
    csrrw   sp, sscratch, sp            /* sp = vCPU (guest trap) or 0 (hypervisor trap) */
    beqz    sp, hs_trap
    SAVE_CALLER sp
    csrr    t0, sscratch                /* the guest's sp */
    sd      t0, VCPU_REGS + 2*8(sp)
    csrr    t0, sepc
    sd      t0, VCPU_SEPC(sp)
    csrw    sscratch, zero              /* from here on, traps are the hypervisor's own */
    mv      a0, sp
    ld      sp, VCPU_HYP_SP(a0)
    mv      s0, a0                      /* the guest's s0 is saved; callees keep s0 */
    /* One entry per hot cause (arch/riscv/trap.py): a load or store guest-page fault (21 and 23 differ in bit 1
       only), an SBI call, the rest. Each returns the vCPU to resume, or 0. */
    csrr    t0, scause
    ori     t1, t0, EXC_LOAD_GUEST_PAGE_FAULT ^ EXC_STORE_GUEST_PAGE_FAULT
    addi    t1, t1, -EXC_STORE_GUEST_PAGE_FAULT
    bnez    t1, 3f
    call    hyp_guest_mmio              /* the hot cause: on into the way back, no jump */
5:  bne     a0, s0, 8f                  /* another vCPU, or 0 */
    lw      t0, VCPU_REGS_WRITTEN(a0)
    bnez    t0, 7f
    /*
     * REGS_RELOAD_CALLER: the same vCPU, and the hypervisor wrote none of the registers this way does not reload
     * (an SBI call's a0/a1, an emulated load's rd among those below): the kept ones (gp, tp, s1..s11) still hold
     * the guest's values. Reload the others only: ra, sp, t0..t2, s0 (trap.S's own), a0..a7, t3..t6; a0, the
     * base, last.
     */
    ld      t0, VCPU_SEPC(a0)
    csrw    sepc, t0
    csrw    sscratch, a0
    ld x1,  VCPU_REGS + 1*8(a0)
    ld x2,  VCPU_REGS + 2*8(a0)
    ld x5,  VCPU_REGS + 5*8(a0)
    ld x6,  VCPU_REGS + 6*8(a0)
    ld x7,  VCPU_REGS + 7*8(a0)
    ld x8,  VCPU_REGS + 8*8(a0)
    ld x11, VCPU_REGS + 11*8(a0)
    ld x12, VCPU_REGS + 12*8(a0)
    ld x13, VCPU_REGS + 13*8(a0)
    ld x14, VCPU_REGS + 14*8(a0)
    ld x15, VCPU_REGS + 15*8(a0)
    ld x16, VCPU_REGS + 16*8(a0)
    ld x17, VCPU_REGS + 17*8(a0)
    ld x28, VCPU_REGS + 28*8(a0)
    ld x29, VCPU_REGS + 29*8(a0)
    ld x30, VCPU_REGS + 30*8(a0)
    ld x31, VCPU_REGS + 31*8(a0)
    ld x10, VCPU_REGS + 10*8(a0)
    sret
3:  addi    t0, t0, -EXC_ECALL_VS
    bnez    t0, 4f
    call    hyp_guest_ecall
    j       5b
4:  call    hyp_guest_trap
    j       5b
8:  beqz    a0, 1f
    j       6f
7:  addi    t1, t0, -REGS_SAVE_KEPT
    beqz    t1, 10f
    STORE_KEPT a0                       /* REGS_RELOAD_ALL or REGS_LOAD_KEPT: then all 31 from `regs` */
    j       hyp_vcpu_enter
    /* REGS_SAVE_KEPT: an emulated store names a kept register; save them and take the trap again (its CSRs
       are as the guest's trap left them: arch/riscv/mmio.py mmio_kept). sp is the stack's top again. */
10: SAVE_KEPT a0
    li      t0, 1
    sw      t0, VCPU_KEPT_SAVED(a0)
    sw      zero, VCPU_REGS_WRITTEN(a0)
    call    hyp_guest_mmio
    sw      zero, VCPU_KEPT_SAVED(s0)   /* for this trap only: 0 again for the next one */
    j       5b
6:  STORE_KEPT s0                       /* another vCPU next: this one's kept registers into `regs` first */
    j       hyp_vcpu_enter
1:  STORE_KEPT s0                       /* it leaves the hart: the same */
    ld      sp, VCPU_HYP_SP(s0)         /* unwind: nothing below the stack's top is live any more */
    ld      a0, VCPU_HART(s0)
    call    hyp_hart_idle               /* never returns: it enters the next vCPU through hyp_vcpu_enter */
2:  wfi
    j       2b

/* hyp_vcpu_enter(vcpu): run the vCPU from its saved registers and sepc; never returns. Whatever the stack held
   is given up: the vCPU's next trap starts at VCPU_HYP_SP. */
    .globl hyp_vcpu_enter
    .type hyp_vcpu_enter, @function
hyp_vcpu_enter:
    sw      zero, VCPU_REGS_WRITTEN(a0)   /* all 31 are reloaded here */
    ld      t0, VCPU_SEPC(a0)
    csrw    sepc, t0
    csrw    sscratch, a0
    mv      t6, a0
    ld x1,  VCPU_REGS + 1*8(t6)
    ld x2,  VCPU_REGS + 2*8(t6)
    ld x3,  VCPU_REGS + 3*8(t6)
    ld x4,  VCPU_REGS + 4*8(t6)
    ld x5,  VCPU_REGS + 5*8(t6)
    ld x6,  VCPU_REGS + 6*8(t6)
    ld x7,  VCPU_REGS + 7*8(t6)
    ld x8,  VCPU_REGS + 8*8(t6)
    ld x9,  VCPU_REGS + 9*8(t6)
    ld x10, VCPU_REGS + 10*8(t6)
    ld x11, VCPU_REGS + 11*8(t6)
    ld x12, VCPU_REGS + 12*8(t6)
    ld x13, VCPU_REGS + 13*8(t6)
    ld x14, VCPU_REGS + 14*8(t6)
    ld x15, VCPU_REGS + 15*8(t6)
    ld x16, VCPU_REGS + 16*8(t6)
    ld x17, VCPU_REGS + 17*8(t6)
    ld x18, VCPU_REGS + 18*8(t6)
    ld x19, VCPU_REGS + 19*8(t6)
    ld x20, VCPU_REGS + 20*8(t6)
    ld x21, VCPU_REGS + 21*8(t6)
    ld x22, VCPU_REGS + 22*8(t6)
    ld x23, VCPU_REGS + 23*8(t6)
    ld x24, VCPU_REGS + 24*8(t6)
    ld x25, VCPU_REGS + 25*8(t6)
    ld x26, VCPU_REGS + 26*8(t6)
    ld x27, VCPU_REGS + 27*8(t6)
    ld x28, VCPU_REGS + 28*8(t6)
    ld x29, VCPU_REGS + 29*8(t6)
    ld x30, VCPU_REGS + 30*8(t6)
    ld x31, VCPU_REGS + 31*8(t6)
    sret
    .cfi_endproc
    .size hyp_vcpu_enter, . - hyp_vcpu_enter
    .size hyp_trap_vector, . - hyp_trap_vector

/*
 * hyp_guest_fetch_insn(gva) -> the instruction at a guest-virtual address, read with execute permission (hlvx,
 * Priv 9.3.x) as the hart fetches it, or -1 if a read faults: another vCPU may have unmapped the page meanwhile,
 * which must not touch the hypervisor. At a 4-byte-aligned address one hlvx.wu reads 32 bits (they never cross
 * a page); else hlvx.hu reads a halfword, and a second one when the first's bits 1:0 are 11 (a 32-bit
 * instruction, Unprivileged spec 1.5). Only the low 16 bits count when bits 1:0 are not 11.
 * A fault comes back through hs_trap to guest_read_failed. The caller then lets the guest take its instruction
 * again (arch/riscv/mmio.py), so of what the HS trap overwrote only what the sret to the guest reads is put back
 * (Priv 9.4.1, 9.4.2): hstatus.SPV is set (the trap came from V=1) and sstatus.SPP is the guest's privilege,
 * which hstatus.SPVP (the same bit, 8) still holds, as an HS trap taken with V=0 leaves SPVP alone. sepc is the
 * vCPU's own on the way back (trap.S), and scause, stval, htval and htinst are not read again.
 */
    .equ HSTATUS_SPV, 0x80
    .equ STATUS_PP, 0x100               /* sstatus.SPP and hstatus.SPVP */
    .globl hyp_guest_fetch_insn
    .type hyp_guest_fetch_insn, @function
hyp_guest_fetch_insn:
    andi    t0, a0, 2
    bnez    t0, 1f
guest_read_site:
    hlvx.wu a0, (a0)
    ret
1:
guest_read_site1:
    hlvx.hu a1, (a0)
    andi    t0, a1, 3
    addi    t0, t0, -3
    bnez    t0, 2f                      /* a 16-bit instruction */
    addi    a0, a0, 2
guest_read_site2:
    hlvx.hu t0, (a0)
    slli    t0, t0, 16
    or      a1, a1, t0
2:  mv      a0, a1
    ret
guest_read_failed:
    li      t1, STATUS_PP
    csrc    sstatus, t1
    csrr    t0, hstatus
    and     t0, t0, t1
    csrs    sstatus, t0
    li      t0, HSTATUS_SPV
    csrs    hstatus, t0
    li      a0, -1
    ret
    .size hyp_guest_fetch_insn, . - hyp_guest_fetch_insn

/* A trap in HS-mode: restore sp (sscratch is 0 again); a fault of one of hyp_guest_fetch_insn's reads returns
   -1 from it; anything else is a bug: report it and stop this hart. */
hs_trap:
    csrrw   sp, sscratch, sp
    csrr    t0, sepc
    lla     t1, guest_read_site
    beq     t0, t1, 2f
    lla     t1, guest_read_site1
    beq     t0, t1, 2f
    lla     t1, guest_read_site2
    bne     t0, t1, 1f
2:  lla     t0, guest_read_failed
    csrw    sepc, t0
    sret
1:
    addi    sp, sp, -16
    csrr    a0, sepc
    call    pyshyper_symtab_lookup      /* a0 = name or 0, a1 = offset into the function */
    mv      a3, a0
    mv      a4, a1
    csrr    a0, scause
    csrr    a1, sepc
    csrr    a2, stval
    call    hyp_hs_fault
1:  wfi
    j       1b
