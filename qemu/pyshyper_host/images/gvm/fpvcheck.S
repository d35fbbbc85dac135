# fpvcheck SECONDS: compute with the FP and vector registers for SECONDS seconds (CLOCK_MONOTONIC) and check every
# result, so that a hypervisor (or kernel) that loses or mixes up FP/vector state between switches is caught.
# A static Linux riscv64 program with no libc (GNU as + ld, raw syscalls).
#
# Round r (1, 2, ...): f0..f27 := r*32 + n and the vector group v24..v31 (e64) := r*7 + i, kept live through
# the round; then vector work over arrays (c[i] = a[i]*b[i] + a[i], a[i] = r + i, b[i] = 3r - i, strip-mined with
# vsetvli over FPV_N elements, in v0..v23) checked against scalar arithmetic, and double arithmetic with exact
# results (x = 4(r mod 2^20) + 1: x*x, x*x/x, sqrt(x*x), x*x + 0.5 - 0.5, in f28..f31) checked against integers;
# v24..v31 checked (live through the vector and FP work, where a timer interrupt may switch the task or the vCPU);
# a clock_gettime syscall (a way into the kernel, where switches happen); then f0..f27 checked again (Linux keeps
# FP registers across a syscall, but discards vector ones).
# Values depend on the round, so registers left from an earlier round (a missed restore) fail too.
# Prints `fpvcheck: ok ROUNDS rounds` (exit 0) or `fpvcheck: FAIL round N: WHAT` (exit 1); usage errors exit 2.
    .option norvc
    .option norelax                     # no gp-relative relaxation: this program never sets gp
    .option arch, +d, +v

    .equ SYS_WRITE, 64
    .equ SYS_EXIT, 93
    .equ SYS_CLOCK_GETTIME, 113
    .equ CLOCK_MONOTONIC, 1
    .equ FPV_N, 64                      # elements of the vector arrays
    .equ FPV_LIVE_N, 64                 # bytes of v24..v31 checked (8 e64 elements: VLEN >= 64 has them)

    .bss
    .balign 16
arr_a:  .space FPV_N * 8
arr_b:  .space FPV_N * 8
arr_c:  .space FPV_N * 8
live:   .space 8 * 1024                 # v24..v31 stored whole (8 * vlenb bytes, VLEN up to 8192)
ts:     .space 16
numbuf: .space 32

    .section .rodata
s_usage:    .asciz "usage: fpvcheck SECONDS\n"
s_ok:       .asciz "fpvcheck: ok "
s_rounds:   .asciz " rounds\n"
s_fail:     .asciz "fpvcheck: FAIL round "
s_vec:      .asciz ": vector a*b+a, element "
s_fmul:     .asciz ": double x*x\n"
s_fdiv:     .asciz ": double x*x/x\n"
s_fsqrt:    .asciz ": double sqrt(x*x)\n"
s_fadd:     .asciz ": double x*x+0.5-0.5\n"
s_flive:    .asciz ": f register kept through the round, f"
s_vlive:    .asciz ": vector register v24.. kept through the round, element "
s_nl:       .asciz "\n"
    .balign 8
d_half:     .double 0.5

    .text
    .globl _start
_start:
    ld      t0, 0(sp)                   # argc
    li      t1, 2
    bne     t0, t1, usage
    ld      a0, 16(sp)                  # argv[1]
    call    parse_dec
    bltz    a0, usage
    mv      s1, a0                      # SECONDS
    call    now_ns
    li      t0, 1000000000
    mul     t0, t0, s1
    add     s2, a0, t0                  # deadline in ns
    li      s0, 0                       # round

round:
    addi    s0, s0, 1
    # f0..f27 := r*32 + n
    slli    s3, s0, 5
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27
    addi    t0, s3, \n
    fcvt.d.l f\n, t0
    .endr
    # v24..v31 (e64, m8, every element) := r*7 + i
    li      t0, -1
    vsetvli t1, t0, e64, m8, ta, ma
    vid.v   v24
    li      t0, 7
    mul     t0, t0, s0
    vadd.vx v24, v24, t0

    # arrays: a[i] = r + i, b[i] = 3r - i
    la      t2, arr_a
    la      t3, arr_b
    li      t4, 0
    li      t5, FPV_N
    li      t6, 3
    mul     t6, t6, s0
1:  add     t0, s0, t4
    sd      t0, 0(t2)
    sub     t0, t6, t4
    sd      t0, 0(t3)
    addi    t2, t2, 8
    addi    t3, t3, 8
    addi    t4, t4, 1
    blt     t4, t5, 1b
    # c = a*b + a, strip-mined
    la      t2, arr_a
    la      t3, arr_b
    la      t4, arr_c
    li      t5, FPV_N
2:  vsetvli t0, t5, e64, m8, ta, ma
    vle64.v v0, (t2)
    vle64.v v8, (t3)
    vmul.vv v16, v0, v8
    vadd.vv v16, v16, v0
    vse64.v v16, (t4)
    slli    t1, t0, 3
    add     t2, t2, t1
    add     t3, t3, t1
    add     t4, t4, t1
    sub     t5, t5, t0
    bnez    t5, 2b
    # check against scalar arithmetic
    la      t2, arr_c
    li      t4, 0
3:  add     t0, s0, t4                  # a
    sub     t1, t6, t4                  # b
    mul     t3, t0, t1
    add     t3, t3, t0
    ld      t1, 0(t2)
    bne     t1, t3, fail_vec
    addi    t2, t2, 8
    addi    t4, t4, 1
    li      t0, FPV_N
    blt     t4, t0, 3b

    # doubles with exact results: x = 4 * (r mod 2^20) + 1
    li      t0, 0xFFFFF
    and     t0, s0, t0
    slli    t0, t0, 2
    addi    s4, t0, 1                   # x
    mul     s5, s4, s4                  # x*x (< 2^53: exact as a double)
    fcvt.d.l f28, s4
    fmul.d  f29, f28, f28
    fcvt.l.d t0, f29, rne
    bne     t0, s5, fail_fmul
    fdiv.d  f30, f29, f28
    fcvt.l.d t0, f30, rne
    bne     t0, s4, fail_fdiv
    fsqrt.d f31, f29
    fcvt.l.d t0, f31, rne
    bne     t0, s4, fail_fsqrt
    la      t0, d_half
    fld     f30, 0(t0)
    fadd.d  f31, f29, f30
    fsub.d  f31, f31, f30
    feq.d   t0, f31, f29
    beqz    t0, fail_fadd

    # v24..v31 still r*7 + i (stored whole, the first FPV_LIVE_N / 8 elements compared): checked before the
    # syscall, since Linux discards a task's vector registers at every syscall (the vector ABI: not preserved)
    la      t2, live
    vs8r.v  v24, (t2)
    li      t3, 7
    mul     t3, t3, s0
    li      t4, 0
4:  ld      t0, 0(t2)
    add     t1, t3, t4
    mv      a1, t4
    bne     t0, t1, fail_vlive
    addi    t2, t2, 8
    addi    t4, t4, 1
    li      t0, FPV_LIVE_N / 8
    blt     t4, t0, 4b

    # into the kernel and back
    call    now_ns
    mv      s6, a0

    # f0..f27 still r*32 + n
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27
    fcvt.l.d t0, f\n, rne
    addi    t1, s3, \n
    li      a1, \n
    bne     t0, t1, fail_flive
    .endr
    blt     s6, s2, round
    la      a0, s_ok
    call    puts
    mv      a0, s0
    call    put_dec
    la      a0, s_rounds
    call    puts
    li      a0, 0
    li      a7, SYS_EXIT
    ecall

usage:
    la      a0, s_usage
    call    puts
    li      a0, 2
    li      a7, SYS_EXIT
    ecall

fail_vec:
    mv      s7, t4
    call    fail_head
    la      a0, s_vec
    call    puts
    mv      a0, s7
    j       fail_num
fail_fmul:
    la      s7, s_fmul
    j       fail_str
fail_fdiv:
    la      s7, s_fdiv
    j       fail_str
fail_fsqrt:
    la      s7, s_fsqrt
    j       fail_str
fail_fadd:
    la      s7, s_fadd
    j       fail_str
fail_flive:
    mv      s7, a1
    call    fail_head
    la      a0, s_flive
    call    puts
    mv      a0, s7
    j       fail_num
fail_vlive:
    mv      s7, a1
    call    fail_head
    la      a0, s_vlive
    call    puts
    mv      a0, s7
    j       fail_num
fail_str:
    call    fail_head
    mv      a0, s7
    call    puts
    j       fail_exit
fail_num:
    call    put_dec
    la      a0, s_nl
    call    puts
fail_exit:
    li      a0, 1
    li      a7, SYS_EXIT
    ecall

# fail_head(): "fpvcheck: FAIL round N"
fail_head:
    addi    sp, sp, -16
    sd      ra, 0(sp)
    la      a0, s_fail
    call    puts
    mv      a0, s0
    call    put_dec
    ld      ra, 0(sp)
    addi    sp, sp, 16
    ret

# now_ns() -> a0: CLOCK_MONOTONIC in ns
now_ns:
    li      a0, CLOCK_MONOTONIC
    la      a1, ts
    li      a7, SYS_CLOCK_GETTIME
    ecall
    la      a1, ts
    ld      t0, 0(a1)
    ld      t1, 8(a1)
    li      a0, 1000000000
    mul     a0, a0, t0
    add     a0, a0, t1
    ret

# parse_dec(a0 = string) -> a0: its decimal value, -1 when it is empty or not all digits
parse_dec:
    li      t0, 0
    lbu     t1, 0(a0)
    beqz    t1, 2f
1:  lbu     t1, 0(a0)
    beqz    t1, 3f
    addi    t1, t1, -'0'
    li      t2, 9
    bgtu    t1, t2, 2f
    li      t2, 10
    mul     t0, t0, t2
    add     t0, t0, t1
    addi    a0, a0, 1
    j       1b
2:  li      a0, -1
    ret
3:  mv      a0, t0
    ret

# puts(a0 = NUL-terminated string) to stdout
puts:
    mv      a1, a0
    li      a2, 0
1:  add     t0, a1, a2
    lbu     t0, 0(t0)
    beqz    t0, 2f
    addi    a2, a2, 1
    j       1b
2:  li      a0, 1
    li      a7, SYS_WRITE
    ecall
    ret

# put_dec(a0) to stdout
put_dec:
    la      t0, numbuf + 31
    sb      zero, 0(t0)
    li      t1, 10
1:  remu    t2, a0, t1
    divu    a0, a0, t1
    addi    t2, t2, '0'
    addi    t0, t0, -1
    sb      t2, 0(t0)
    bnez    a0, 1b
    mv      a0, t0
    j       puts
