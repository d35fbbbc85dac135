/*
 * tests/guests/stress/start.S: instance 0 stresses the hypervisor (random SBI calls and emulated-MMIO accesses,
 * then an SRST reboot, STRESS_BOOTS times), instance 1 keeps a heartbeat meanwhile (guest.py).
 */
    .equ GUEST_INSTANCES, 2
    .include "guest_entry.S"

/*
 * One access each, always a 4-byte instruction (norvc): the trap handler skips a faulting one by sepc + 4.
 * mmio_OP(addr[, value]) -> the loaded (or old) value; a store returns 0.
 */
    .section .text, "ax", @progbits
    .option push
    .option norvc
    .macro LOAD name, insn
    .globl \name
    .type \name, @function
\name:
    mv      t0, a0
    li      a0, 0
    \insn   a0, 0(t0)
    ret
    .size \name, . - \name
    .endm
    .macro STORE name, insn
    .globl \name
    .type \name, @function
\name:
    \insn   a1, 0(a0)
    li      a0, 0
    ret
    .size \name, . - \name
    .endm
    .macro AMO name, insn
    .globl \name
    .type \name, @function
\name:
    mv      t0, a0
    li      a0, 0
    \insn   a0, a1, (t0)
    ret
    .size \name, . - \name
    .endm
    LOAD  mmio_lb, lb
    LOAD  mmio_lbu, lbu
    LOAD  mmio_lh, lh
    LOAD  mmio_lhu, lhu
    LOAD  mmio_lw, lw
    LOAD  mmio_lwu, lwu
    LOAD  mmio_ld, ld
    STORE mmio_sb, sb
    STORE mmio_sh, sh
    STORE mmio_sw, sw
    STORE mmio_sd, sd
    AMO   mmio_amoadd_w, amoadd.w
    AMO   mmio_amoswap_d, amoswap.d
    AMO   mmio_amoor_w, amoor.w
    .option pop
