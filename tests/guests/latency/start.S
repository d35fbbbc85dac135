/*
 * tests/guests/latency/start.S: one instance (guest.py), the common header and entry, plus the latency guest's
 * own trap vector and its switch recorder.
 *
 * latency_trap_entry reads `time` before anything else and leaves it in latency_trap_time, then goes on to the
 * common guest_trap_entry (which saves the registers and calls guest_trap): the sample is the deadline's distance
 * to the handler's third instruction, not to the end of the register saves. sscratch holds the address of
 * latency_trap_time (guest.py sets it before it points stvec here); t0 and t1 are kept in sscratch and the word
 * after latency_trap_time while they are borrowed.
 */
    .equ GUEST_INSTANCES, 1
    .include "guest_entry.S"

    .section .text, "ax", @progbits
    .balign 4
    .globl latency_trap_entry
    .type latency_trap_entry, @function
latency_trap_entry:
    csrrw   t0, sscratch, t0        /* t0 = &latency_trap_time, sscratch = the interrupted t0 */
    sd      t1, 8(t0)
    csrr    t1, time
    sd      t1, 0(t0)
    ld      t1, 8(t0)
    csrrw   t0, sscratch, t0        /* t0 back, sscratch = &latency_trap_time again */
    j       guest_trap_entry
    .size latency_trap_entry, . - latency_trap_entry

    .globl latency_trap_entry_address
latency_trap_entry_address:
    lla     a0, latency_trap_entry
    ret

    .globl latency_trap_time_address
latency_trap_time_address:
    lla     a0, latency_trap_time
    ret

/*
 * switch_record(max, gap, out, until) -> count: the context-switch recorder. It reads `instret` in a tight loop
 * (six instructions a turn); two reads more than `gap` apart mean the hart ran something else in between (the
 * hypervisor, another VM). Each uninterrupted stretch of this loop is one interval, [first read, last read],
 * stored as two u64 at out[2i], out[2i+1]. It stops after `max` intervals (the one in progress included) or once
 * `time` reaches `until`, and gives the number stored. The host merges the intervals of two VMs sharing a hart
 * (qemu/pyshyper_host/bench/latency.py, switch_costs): from one VM's last read to the other's first is a switch.
 * Under -icount shift=0 instret counts every instruction QEMU runs, so the gaps are in instructions.
 */
    .globl switch_record
    .type switch_record, @function
    .balign 4
switch_record:
    li      t6, 0                   /* intervals stored */
    beqz    a0, 4f
    rdinstret t0                    /* the last read */
    mv      t1, t0                  /* this interval's first read */
1:  rdinstret t2
    sub     t4, t2, t0
    bgtu    t4, a1, 2f
    mv      t0, t2
    rdtime  t3
    bltu    t3, a3, 1b
    j       3f
2:  sd      t1, 0(a2)               /* a gap: [t1, t0] ended, the next one starts at t2 */
    sd      t0, 8(a2)
    addi    a2, a2, 16
    addi    t6, t6, 1
    mv      t1, t2
    mv      t0, t2
    beq     t6, a0, 4f              /* no room for the interval that starts here */
    rdtime  t3
    bltu    t3, a3, 1b
3:  sd      t1, 0(a2)               /* the interval in progress */
    sd      t0, 8(a2)
    addi    t6, t6, 1
4:  mv      a0, t6
    ret
    .size switch_record, . - switch_record

    .section .bss, "aw", @nobits
    .balign 16
    .globl latency_trap_time
latency_trap_time:
    .space  16                      /* the handler's entry time, and t1 while it is borrowed */
