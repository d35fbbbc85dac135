/*
 * runtime/fpu.S: a vCPU's floating-point (F/D) and vector (V) registers to and from its save area (struct FpuState,
 * hypervisor/arch/riscv/fpu.py), for when vCPUs share a hart. The hypervisor is built without F/D/V; only these
 * functions use those instructions (`.option arch` below), and only while fpu.py has sstatus.FS / sstatus.VS
 * non-Off (Priv 3.1.6.6: Off makes every FP or vector instruction and CSR access illegal).
 *
 * Vector registers go whole (V 1.0 section 7.9, vs8r.v / vl8re8.v: independent of vtype and vl, VLEN bits each)
 * in four groups of eight: 8 * vlenb bytes a group. vstart is read first and zeroed before the stores, since whole-
 * register stores start at element vstart (and reset it), then written back; on restore it is written last, after
 * the loads and the vsetvl that would reset it (V 1.0 section 3.7). vl and vtype come back with one vsetvl of the saved vl and vtype (section
 * 6.3): a vtype with vill set is unsupported for vsetvl, which sets vill again (and vl = 0, as it was).
 * Offsets (FPUSTATE_*) come from the compiler's generated offsets.S.
 */
    .include "offsets.S"
    .option norelax
    .option arch, +d, +v
    .section .text, "ax", @progbits

/* hyp_fpu_save_fp(a0 = FpuState *): f0..f31 and fcsr into the area. */
    .balign 4
    .globl hyp_fpu_save_fp
    .type hyp_fpu_save_fp, @function
hyp_fpu_save_fp:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    fsd     f\n, FPUSTATE_F + \n * 8(a0)
    .endr
    frcsr   t0
    sd      t0, FPUSTATE_FCSR(a0)
    ret
    .size hyp_fpu_save_fp, . - hyp_fpu_save_fp

/* hyp_fpu_load_fp(a0 = FpuState *): f0..f31 and fcsr from the area. */
    .balign 4
    .globl hyp_fpu_load_fp
    .type hyp_fpu_load_fp, @function
hyp_fpu_load_fp:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    fld     f\n, FPUSTATE_F + \n * 8(a0)
    .endr
    ld      t0, FPUSTATE_FCSR(a0)
    fscsr   t0
    ret
    .size hyp_fpu_load_fp, . - hyp_fpu_load_fp

/* hyp_fpu_save_v(a0 = FpuState *): vstart, vl, vtype, vcsr, then v0..v31 (32 * vlenb bytes at FPUSTATE_V); the
 * hart's registers are left as they were (vstart written back: fpu_enter may find them still the vCPU's). */
    .balign 4
    .globl hyp_fpu_save_v
    .type hyp_fpu_save_v, @function
hyp_fpu_save_v:
    csrr    t0, vstart
    sd      t0, FPUSTATE_VSTART(a0)
    csrw    vstart, zero
    csrr    t0, vl
    sd      t0, FPUSTATE_VL(a0)
    csrr    t0, vtype
    sd      t0, FPUSTATE_VTYPE(a0)
    csrr    t0, vcsr
    sd      t0, FPUSTATE_VCSR(a0)
    csrr    t1, vlenb
    slli    t1, t1, 3                   /* bytes in a group of eight registers */
    addi    t0, a0, FPUSTATE_V
    vs8r.v  v0, (t0)
    add     t0, t0, t1
    vs8r.v  v8, (t0)
    add     t0, t0, t1
    vs8r.v  v16, (t0)
    add     t0, t0, t1
    vs8r.v  v24, (t0)
    ld      t0, FPUSTATE_VSTART(a0)     /* the hart keeps the vCPU's registers: vstart too */
    csrw    vstart, t0
    ret
    .size hyp_fpu_save_v, . - hyp_fpu_save_v

/* hyp_fpu_load_v(a0 = FpuState *): v0..v31, then vl and vtype (vsetvl), vcsr and vstart last. */
    .balign 4
    .globl hyp_fpu_load_v
    .type hyp_fpu_load_v, @function
hyp_fpu_load_v:
    csrw    vstart, zero
    csrr    t1, vlenb
    slli    t1, t1, 3
    addi    t0, a0, FPUSTATE_V
    vl8re8.v v0, (t0)
    add     t0, t0, t1
    vl8re8.v v8, (t0)
    add     t0, t0, t1
    vl8re8.v v16, (t0)
    add     t0, t0, t1
    vl8re8.v v24, (t0)
    ld      t0, FPUSTATE_VL(a0)
    ld      t1, FPUSTATE_VTYPE(a0)
    vsetvl  zero, t0, t1
    ld      t0, FPUSTATE_VCSR(a0)
    csrw    vcsr, t0
    ld      t0, FPUSTATE_VSTART(a0)
    csrw    vstart, t0
    ret
    .size hyp_fpu_load_v, . - hyp_fpu_load_v

/* hyp_fpu_vlenb() -> a0: VLEN / 8 (the vlenb CSR, V 1.0 section 3.6). */
    .balign 4
    .globl hyp_fpu_vlenb
    .type hyp_fpu_vlenb, @function
hyp_fpu_vlenb:
    csrr    a0, vlenb
    ret
    .size hyp_fpu_vlenb, . - hyp_fpu_vlenb

/*
 * hyp_fpu_clobber(a0 = pattern): every FP and vector register and CSR gets a value made from the pattern (the
 * PyShyper test extension's save/restore check, arch/riscv/vsbi.py): f<n> = pattern + n, fcsr = pattern's low 8
 * bits; with a1 != 0 (the hart has V) every byte of v<n>..v<n+7> (n = 0, 8, 16, 24) = pattern's low byte + n,
 * vl = 1 with vtype e64/m1, vcsr = 1 (vxsat) and vstart = 1.
 */
    .balign 4
    .globl hyp_fpu_clobber
    .type hyp_fpu_clobber, @function
hyp_fpu_clobber:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    addi    t0, a0, \n
    fmv.d.x f\n, t0
    .endr
    andi    t0, a0, 0xff
    fscsr   t0
    beqz    a1, 1f                      /* a1 = 0: no vector registers on this hart */
    vsetvli t1, zero, e8, m8, ta, ma
    .irp n, 0,8,16,24
    addi    t0, a0, \n
    vmv.v.x v\n, t0
    .endr
    li      t0, 1
    vsetvli zero, t0, e64, m1, ta, ma
    csrw    vcsr, t0
    csrw    vstart, t0
1:  ret
    .size hyp_fpu_clobber, . - hyp_fpu_clobber
