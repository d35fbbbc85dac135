/*
 * runtime/libc.S: the three memory routines LLVM's code generator may call by itself (for aggregate zeroing
 * and copies), since the hypervisor links no C library. Byte loops: correct for any alignment and overlap.
 */
    .option norelax
    .section .text, "ax", @progbits

    .globl memset
    .type memset, @function
memset:                         /* a0 = dst, a1 = byte, a2 = n; returns dst */
    mv      t0, a0
1:  beqz    a2, 2f
    sb      a1, 0(t0)
    addi    t0, t0, 1
    addi    a2, a2, -1
    j       1b
2:  ret
    .size memset, . - memset

    .globl memcpy
    .type memcpy, @function
memcpy:                         /* a0 = dst, a1 = src, a2 = n; returns dst */
    mv      t0, a0
1:  beqz    a2, 2f
    lb      t1, 0(a1)
    sb      t1, 0(t0)
    addi    t0, t0, 1
    addi    a1, a1, 1
    addi    a2, a2, -1
    j       1b
2:  ret
    .size memcpy, . - memcpy

    .globl memmove
    .type memmove, @function
memmove:                        /* overlapping copy: backwards when dst is above src */
    bleu    a0, a1, memcpy
    add     t0, a0, a2
    add     a1, a1, a2
1:  beqz    a2, 2f
    addi    t0, t0, -1
    addi    a1, a1, -1
    lb      t1, 0(a1)
    sb      t1, 0(t0)
    addi    a2, a2, -1
    j       1b
2:  ret
    .size memmove, . - memmove
