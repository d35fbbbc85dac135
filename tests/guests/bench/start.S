/*
 * tests/guests/bench/start.S: the trap benchmark's entry, its second hart and its timed loops (guest.py).
 *
 * The image is position-independent (PC-relative addressing only), so one file runs wherever it is loaded:
 * as the management VM's kernel (QEMU's loader at mvm.toml's kernel_load_ipa: two vCPUs and the virtual interrupt
 * controller) and natively, as OpenSBI's next stage (`-kernel`, at 0x8020_0000). Its header is therefore both a
 * test-guest header (magic, size and instances at 8, 16, 24; the guest build checks them) and enough of a Linux
 * RISC-V Image header (Documentation/arch/riscv/boot-image-header.rst: magic2 "RSC\x05" at 0x38) for the
 * hypervisor to take it as the MVM's kernel. Entry: a0 = hart id (vCPU id), a1 = device tree.
 */
    .include "guest_image.S"
    .option norelax

    .equ SSTATUS_FS, 0x6000
    .equ SIE_SSIE, 0x2
    .equ EID_BASE, 0x10
    .equ EID_TIME, 0x54494D45
    .equ EID_IPI, 0x735049
    .equ EID_SRST, 0x53525354
    .equ SECONDARY_STACK, 0x1000

    .section .text.start, "ax", @progbits
    .globl _start
    .type _start, @function
_start:
    .option push
    .option norvc
    j       primary_entry           /* 0: code0 */
    .word   0                       /* 4: code1 */
    .quad   GUEST_MAGIC             /* 8: test-guest magic (Linux: text_offset, unused) */
    .quad   _image_size             /* 16: image size (Linux: image_size) */
    .quad   1                       /* 24: instances as a test guest (Linux: flags) */
    .word   0                       /* 32: Linux header version */
    .word   0                       /* 36: res1 */
    .quad   0                       /* 40: res2 */
    .ascii  "RISCV\0\0\0"           /* 48: magic (deprecated) */
    .ascii  "RSC\x05"               /* 56: magic2 */
    .word   0                       /* 60: res3 */
    .option pop

primary_entry:
    csrw    sie, zero
    csrci   sstatus, 2
    li      t0, SSTATUS_FS
    csrc    sstatus, t0
    mv      gp, zero
    mv      tp, zero
    lla     sp, __stack_top
    lla     t0, primary_trap
    csrw    stvec, t0
    lla     t0, __bss_start
    lla     t1, __bss_end
1:  bgeu    t0, t1, 2f
    sd      zero, 0(t0)
    addi    t0, t0, 8
    j       1b
2:  call    guest_main
    /* guest_main returned: SRST shutdown, reason 1 (failure) */
    li      a7, EID_SRST
    li      a6, 0
    li      a0, 0
    li      a1, 1
    ecall
3:  wfi
    j       3b
    .size _start, . - _start

/* Any trap on the timing hart is a failure: SRST shutdown, reason 1 (no table line follows, the host says so). */
    .section .text, "ax", @progbits
    .balign 4
primary_trap:
    li      a7, EID_SRST
    li      a6, 0
    li      a0, 0
    li      a1, 1
    ecall
1:  wfi
    j       1b

/*
 * The second hart (HSM hart_start at secondary_entry): it takes supervisor software interrupts (the IPIs the
 * timing hart sends), counts them in ipis_received and waits in WFI. Its loop keeps nothing in registers, so the
 * trap handler may use any.
 */
    .globl secondary_entry
    .balign 4
secondary_entry:
    lla     sp, secondary_stack_top
    lla     t0, secondary_trap
    csrw    stvec, t0
    li      t0, SIE_SSIE
    csrw    sie, t0
    lla     t0, secondary_started
    li      t1, 1
    fence   rw, rw
    sd      t1, 0(t0)
    csrsi   sstatus, 2
1:  wfi
    j       1b

    .balign 4
secondary_trap:
    csrci   sip, SIE_SSIE
    lla     t0, ipis_received
    li      t1, 1
    amoadd.d zero, t1, (t0)
    sret

    .globl secondary_entry_address
secondary_entry_address:
    lla     a0, secondary_entry
    ret

/*
 * The timed loops: bench_OP(n, arg, out) runs OP n times, then out[0] = instret and out[1] = time elapsed.
 * Every loop body is the same three instructions and the loop step two, so bench_nop (the same loop with a `nop`
 * for the operation) is the overhead the host subtracts: what is left is the operation's round trip alone.
 * SBI calls preserve every register but a0 and a1 (SBI 2.0, 3.1), so a7 and a6 are set before the loop.
 */
    .macro TIMED name, a7v, a6v, op:vararg
    .globl \name
    .type \name, @function
    .balign 4
\name:
    mv      t3, a0
    mv      t4, a1
    mv      t5, a2
    li      a7, \a7v              /* kept by every SBI call: set once, outside the timing */
    li      a6, \a6v
    fence   rw, rw
    rdtime  t0
    rdinstret t1
1:  mv      a0, t4
    li      a1, 0
    \op
    addi    t3, t3, -1
    bnez    t3, 1b
    rdinstret t2
    rdtime  a0
    sub     t2, t2, t1
    sub     a0, a0, t0
    sd      t2, 0(t5)
    sd      a0, 8(t5)
    ret
    .size \name, . - \name
    .endm

    .option push
    .option norvc                 /* the hypervisor steps over a trapping load or store by its length: keep 4 */
    TIMED bench_nop, 0, 0, nop
    TIMED bench_sbi_null, EID_BASE, 0, ecall                  /* sbi_get_spec_version */
    TIMED bench_mmio_load, 0, 0, lw a0, 0(t4)
    TIMED bench_mmio_store, 0, 0, sw zero, 0(t4)           /* the reset value: the guest set none */
    TIMED bench_set_timer, EID_TIME, 0, ecall                 /* sbi_set_timer(arg) */
    TIMED bench_ipi, EID_IPI, 0, ecall                        /* sbi_send_ipi(hart_mask = arg, base 0) */
    .option pop

/*
 * bench_regs_check(addr) -> a mask of the registers (bit n: xn) that did not keep what the guest put in them, 0
 * when all did. The hypervisor saves gp, tp and s1..s11 only when it needs them (runtime/trap.S SAVE_KEPT), so
 * they are checked where that matters: across an SBI call, and around an emulated load into each kept register
 * (it must give the device register's value, read first into t5) and an emulated store from it (of that value,
 * so the register does not change), after which every other kept register must still hold its own pattern.
 */
    .macro KEPT_REGS op
    \op gp, 3
    \op tp, 4
    \op s0, 8
    \op s1, 9
    \op s2, 18
    \op s3, 19
    \op s4, 20
    \op s5, 21
    \op s6, 22
    \op s7, 23
    \op s8, 24
    \op s9, 25
    \op s10, 26
    \op s11, 27
    .endm
    .macro SET_PAT r, n
    li      \r, 0x5A5A0000 + \n
    .endm
    .macro BAD n                  /* t0 |= 1 << n */
    li      t1, 1
    slli    t1, t1, \n
    or      t0, t0, t1
    .endm
    .macro CHECK_PAT r, n
    li      t1, 0x5A5A0000 + \n
    beq     \r, t1, 1f
    BAD     \n
1:
    .endm
    .macro LOAD_STORE r, n
    lw      \r, 0(t6)             /* emulated: the hypervisor writes the value into a kept register */
    beq     \r, t5, 1f
    BAD     \n
1:  sw      \r, 0(t6)             /* emulated: the hypervisor reads it from a kept register */
    lw      t2, 0(t6)
    beq     t2, t5, 2f
    BAD     \n
2:  SET_PAT \r, \n
    KEPT_REGS CHECK_PAT
    .endm
    .macro SAVE_REG r, n
    sd      \r, \n*8(sp)
    .endm
    .macro LOAD_REG r, n
    ld      \r, \n*8(sp)
    .endm

    .globl bench_regs_check
    .type bench_regs_check, @function
    .balign 4
bench_regs_check:
    addi    sp, sp, -256
    sd      ra, 8(sp)
    KEPT_REGS SAVE_REG
    mv      t6, a0
    lw      t5, 0(t6)             /* the device register's value, into a register every trap saves */
    li      t0, 0
    KEPT_REGS SET_PAT
    li      a7, EID_BASE
    li      a6, 0
    li      a0, 0
    ecall                         /* sbi_get_spec_version: only a0 and a1 change (SBI 2.0, 3.1) */
    KEPT_REGS CHECK_PAT
    KEPT_REGS LOAD_STORE
    mv      a0, t0
    ld      ra, 8(sp)
    KEPT_REGS LOAD_REG
    addi    sp, sp, 256
    ret
    .size bench_regs_check, . - bench_regs_check

    .section .bss, "aw", @nobits
    .balign 16
secondary_stack:
    .space  SECONDARY_STACK
secondary_stack_top:
    .globl secondary_started
secondary_started:
    .space  8
    .globl ipis_received
ipis_received:
    .space  8

    .section .text, "ax", @progbits
    .globl bench_secondary_started
bench_secondary_started:
    lla     t0, secondary_started
    ld      a0, 0(t0)
    ret
    .globl bench_ipis_received
bench_ipis_received:
    lla     t0, ipis_received
    ld      a0, 0(t0)
    ret
