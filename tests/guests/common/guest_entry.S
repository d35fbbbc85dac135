/*
 * tests/guests/common/guest_entry.S: a test guest's image header, entry and trap vector (VS-mode), included by
 * each guest's own start.S after it sets GUEST_INSTANCES (qemu/build.py puts this folder on the include path).
 *
 * The hypervisor's guest contract (hypervisor/main.py): the image is linked at guest-physical 0x8000_0000 and
 * starts with a `j` over a header: offset 8 the magic "PYSHGUST", 16 the image size in bytes (the file: the
 * hypervisor copies that much; VM memory beyond it is zero), 24 the number of VM instances to start.
 * Each instance enters _start with a0 = vCPU id, a1 = 0, a2 = instance index.
 */
    .option norelax

    .equ GUEST_MAGIC, 0x5453554748535950
    .equ SSTATUS_FS, 0x6000
    .equ EID_SRST, 0x53525354

    .section .text.start, "ax", @progbits
    .globl _start
    .type _start, @function
_start:
    .option push
    .option norvc
    j       guest_entry
    .option pop
    .balign 8
    .quad   GUEST_MAGIC
    .quad   _image_size           /* linker script: the file size, end of .data - _start */
    .quad   GUEST_INSTANCES

guest_entry:
    csrw    sie, zero
    csrci   sstatus, 2
    li      t0, SSTATUS_FS
    csrc    sstatus, t0
    mv      gp, zero
    mv      tp, zero
    lla     sp, __stack_top
    lla     t0, guest_trap_entry
    csrw    stvec, t0
    /* .bss: VM memory is zeroed, but a rebooted VM gets only the image again */
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

/*
 * Trap vector (direct mode): save the caller-saved registers, call guest_trap(scause, sepc, stval),
 * restore and sret. guest_trap may move sepc (csr_write(SEPC, ...)) to skip an instruction.
 */
    .section .text, "ax", @progbits
    .balign 4
    .globl guest_trap_entry
    .type guest_trap_entry, @function
guest_trap_entry:
    addi    sp, sp, -128
    sd      ra, 0(sp)
    sd      t0, 8(sp)
    sd      t1, 16(sp)
    sd      t2, 24(sp)
    sd      a0, 32(sp)
    sd      a1, 40(sp)
    sd      a2, 48(sp)
    sd      a3, 56(sp)
    sd      a4, 64(sp)
    sd      a5, 72(sp)
    sd      a6, 80(sp)
    sd      a7, 88(sp)
    sd      t3, 96(sp)
    sd      t4, 104(sp)
    sd      t5, 112(sp)
    sd      t6, 120(sp)
    csrr    a0, scause
    csrr    a1, sepc
    csrr    a2, stval
    call    guest_trap
    ld      ra, 0(sp)
    ld      t0, 8(sp)
    ld      t1, 16(sp)
    ld      t2, 24(sp)
    ld      a0, 32(sp)
    ld      a1, 40(sp)
    ld      a2, 48(sp)
    ld      a3, 56(sp)
    ld      a4, 64(sp)
    ld      a5, 72(sp)
    ld      a6, 80(sp)
    ld      a7, 88(sp)
    ld      t3, 96(sp)
    ld      t4, 104(sp)
    ld      t5, 112(sp)
    ld      t6, 120(sp)
    addi    sp, sp, 128
    sret
    .size guest_trap_entry, . - guest_trap_entry

/* memset/memcpy/memmove for what code generation may emit come from runtime/libc.S, linked into every guest. */
