# rdtime: print the RISC-V `time` CSR (QEMU virt: 10 MHz ticks of QEMU's virtual clock since reset) in
# decimal and exit. A static Linux program with no libc, for boot-time measurements inside the MVM.
    .option norvc
    .text
    .globl _start
_start:
    rdtime  a0
    addi    sp, sp, -32
    addi    t0, sp, 31          # last byte of the buffer: '\n'
    li      t1, 10
    sb      t1, 0(t0)
    mv      a1, t0
1:  remu    t2, a0, t1
    divu    a0, a0, t1
    addi    t2, t2, '0'
    addi    a1, a1, -1
    sb      t2, 0(a1)
    bnez    a0, 1b
    addi    a2, t0, 1
    sub     a2, a2, a1          # length, newline included
    li      a0, 1               # write(1, a1, a2)
    li      a7, 64
    ecall
    li      a0, 0               # exit(0)
    li      a7, 93
    ecall
