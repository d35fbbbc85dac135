/*
 * runtime/boot.S: the hypervisor's entry points in HS-mode.
 *
 * _start            OpenSBI's next stage (fw_dynamic), at the board load address: a0 = hartid, a1 = DTB address.
 *                   The first hart to arrive (an amoswap lottery, not "hartid 0": OpenSBI boots whichever hart
 *                   won its own lottery) clears BSS and calls hyp_main(hartid, dtb). A hart that loses stops
 *                   itself through SBI HSM, so hyp_main can start it later like any other.
 * _secondary_start  where hyp_main starts the other harts with sbi_hart_start(hartid, _secondary_start, opaque):
 *                   a0 = hartid, a1 = opaque; calls hyp_secondary_main(hartid, opaque).
 *
 * Each hart runs on its own stack in .stacks, indexed by its hartid (bounded by BOARD_MAX_HARTS). gp and tp are
 * zeroed: the hypervisor never uses gp-relative addressing, and tp is the hypervisor's to define.
 * If hyp_main or hyp_secondary_main return, the hart parks in a wfi loop with interrupts disabled.
 */
    .include "board.S"
    .include "runtime.S"    /* SSTATUS_*, SBI_EXT_HSM, SBI_HSM_HART_STOP: the hypervisor's own, generated */

    .option norelax

    .section .text.boot, "ax", @progbits

    .globl _start
    .type _start, @function
_start:
    call    boot_hart_setup
    /* The BSS lottery: the first hart to swap a 1 into boot_lottery clears BSS and runs hyp_main. */
    lla     t0, boot_lottery
    li      t1, 1
    amoswap.w.aqrl t1, t1, (t0)
    bnez    t1, boot_hart_stop

    lla     t0, __bss_start
    lla     t1, __bss_end
1:  bgeu    t0, t1, 2f
    sd      zero, 0(t0)
    addi    t0, t0, 8
    j       1b
2:  fence   rw, rw
    call    hyp_main
    j       boot_park
    .size _start, . - _start

    .globl _secondary_start
    .type _secondary_start, @function
_secondary_start:
    call    boot_hart_setup
    call    hyp_secondary_main
    j       boot_park
    .size _secondary_start, . - _secondary_start

/*
 * Per-hart setup before any compiled code runs; a0 = hartid, a1 kept. Uses t0-t2 only.
 * Returns with sp at the top of this hart's stack, painted whole with BOARD_HART_STACK_PAINT (the overflow guard
 * and the high-water mark of hypervisor/core/stack.py read it), or parks a hart whose id has no stack.
 */
    .type boot_hart_setup, @function
boot_hart_setup:
    csrw    sie, zero
    csrci   sstatus, SSTATUS_SIE
    li      t0, SSTATUS_FS                 /* FP off: the hypervisor has no FP code */
    csrc    sstatus, t0
    lla     t0, boot_early_trap            /* until hyp_main installs the real trap vector */
    csrw    stvec, t0
    mv      gp, zero
    mv      tp, zero
    li      t0, BOARD_MAX_HARTS
    bgeu    a0, t0, boot_park
    /* sp = __stacks_start + (hartid + 1) * BOARD_HART_STACK_SIZE */
    addi    t1, a0, 1
    li      t2, BOARD_HART_STACK_SIZE
    mul     t1, t1, t2
    lla     sp, __stacks_start
    add     sp, sp, t1
    sub     t0, sp, t2
    li      t1, BOARD_HART_STACK_PAINT
1:  sd      t1, 0(t0)
    addi    t0, t0, 8
    bltu    t0, sp, 1b
    ret
    .size boot_hart_setup, . - boot_hart_setup

/* A hart that lost the lottery: SBI HSM hart_stop (it does not return on success). */
    .type boot_hart_stop, @function
boot_hart_stop:
    li      a7, SBI_EXT_HSM
    li      a6, SBI_HSM_HART_STOP
    ecall
    j       boot_park
    .size boot_hart_stop, . - boot_hart_stop

/* Any trap before the hypervisor's vector is installed: nothing can be trusted, so park. */
    .balign 4
    .type boot_early_trap, @function
boot_early_trap:
    j       boot_park
    .size boot_early_trap, . - boot_early_trap

    .globl boot_park
    .type boot_park, @function
boot_park:
    csrw    sie, zero
    csrci   sstatus, SSTATUS_SIE
1:  wfi
    j       1b
    .size boot_park, . - boot_park

    .section .data, "aw", @progbits
    .balign 4
boot_lottery:
    .word   0
