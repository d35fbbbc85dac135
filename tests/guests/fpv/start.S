/*
 * tests/guests/fpv/start.S: two instances (guest.py); the FP and vector work the compiled guest cannot do (it is
 * built without F/D/V, so nothing between these functions touches that state).
 */
    .equ GUEST_INSTANCES, 2
    .include "guest_entry.S"
    .include "offsets.S"            /* FPVSTATE_*: struct FpvState in guest.py */

    .option arch, +d, +v
    .section .text, "ax", @progbits

/* fpv_enable(): sstatus.FS and .VS Initial (VS-mode's sstatus is vsstatus; guest_entry left FS Off). */
    .globl fpv_enable
    .type fpv_enable, @function
fpv_enable:
    li      t0, 0x2200
    csrs    sstatus, t0
    ret
    .size fpv_enable, . - fpv_enable

/* fpv_vlenb() -> vlenb */
    .globl fpv_vlenb
    .type fpv_vlenb, @function
fpv_vlenb:
    csrr    a0, vlenb
    ret
    .size fpv_vlenb, . - fpv_vlenb

/*
 * fpv_fill(a0 = FpvState *want): every FP and vector register and CSR from the state given: f0..f31 and fcsr as
 * they are; every byte j of the group v<g>..v<g+7> (g = 0, 8, 16, 24) = j + vbase + g (mod 256); then vl and
 * vtype with one vsetvl of want's avl (FPV_VL) and vtype (a vtype with vill set makes vsetvl set vill), vcsr, and
 * vstart last (any vector instruction resets it). Gives the vl the hart set.
 */
    .globl fpv_fill
    .type fpv_fill, @function
fpv_fill:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    fld     f\n, FPVSTATE_F + \n * 8(a0)
    .endr
    ld      t0, FPVSTATE_FCSR(a0)
    fscsr   t0
    ld      t1, FPVSTATE_VBASE(a0)
    li      t2, -1
    vsetvli t2, t2, e8, m8, ta, ma         /* vl = VLMAX: every byte of the group */
    .irp g, 0,8,16,24
    vid.v   v\g
    addi    t0, t1, \g
    vadd.vx v\g, v\g, t0
    .endr
    ld      t0, FPVSTATE_VL(a0)
    ld      t1, FPVSTATE_VTYPE(a0)
    vsetvl  t2, t0, t1
    ld      t0, FPVSTATE_VCSR(a0)
    csrw    vcsr, t0
    ld      t0, FPVSTATE_VSTART(a0)
    csrw    vstart, t0
    mv      a0, t2
    ret
    .size fpv_fill, . - fpv_fill

/*
 * fpv_dump(a0 = FpvState *got, a1 = buffer of 32 * vlenb bytes): the registers and CSRs as they are now: vstart,
 * vl, vtype, vcsr, fcsr and f0..f31 read first (reading changes nothing), then vstart = 0 for the whole-register
 * stores of v0..v31 (which start at element vstart).
 */
    .globl fpv_dump
    .type fpv_dump, @function
fpv_dump:
    csrr    t0, vstart
    sd      t0, FPVSTATE_VSTART(a0)
    csrr    t0, vl
    sd      t0, FPVSTATE_VL(a0)
    csrr    t0, vtype
    sd      t0, FPVSTATE_VTYPE(a0)
    csrr    t0, vcsr
    sd      t0, FPVSTATE_VCSR(a0)
    frcsr   t0
    sd      t0, FPVSTATE_FCSR(a0)
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    fsd     f\n, FPVSTATE_F + \n * 8(a0)
    .endr
    csrw    vstart, zero
    csrr    t1, vlenb
    slli    t1, t1, 3
    vs8r.v  v0, (a1)
    add     a1, a1, t1
    vs8r.v  v8, (a1)
    add     a1, a1, t1
    vs8r.v  v16, (a1)
    add     a1, a1, t1
    vs8r.v  v24, (a1)
    ret
    .size fpv_dump, . - fpv_dump

/*
 * fpv_switch(a0 = pattern, a1 = clobber) -> a0 SBI error, a1 the hypervisor's answer: the PyShyper test
 * extension's FP/vector switch (FID 4), made here so that no compiled code runs between fill and dump.
 */
    .equ EID_PYSHYPER_TEST, 0x0A505354
    .globl fpv_switch
    .type fpv_switch, @function
fpv_switch:
    li      a7, EID_PYSHYPER_TEST
    li      a6, 4
    ecall
    sd      a1, 0(a2)
    ret
    .size fpv_switch, . - fpv_switch
