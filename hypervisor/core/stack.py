"""The harts' hypervisor stacks: an overflow guard and a high-water mark.

runtime/boot.S fills each hart's stack with HART_STACK_PAINT before the hart uses it. The lowest
HART_STACK_GUARD bytes are the guard: a stack that grew into them has overflowed (the stacks are adjacent, so
the next thing below is the neighbouring hart's stack, or the `.bss` for the lowest one). The guard is checked after
every trap but the two hot ones, whose depth is fixed and shallow (an SBI call, an emulated register: trap.py
trap_other), so at least at each timer tick and each WFI, and in the idle loop; a broken guard stops the machine
with a line naming the hart,
since nothing the hypervisor holds can be trusted after it. The high-water mark is how deep the paint was worn.
"""

from compiler.prelude import Ptr, cstr, extern_addr, inline, noinline, u64
from hypervisor.board import HART_STACK_GUARD, HART_STACK_PAINT, HART_STACK_SIZE, MAX_HARTS
from hypervisor.core.console import console_dec, console_lock, console_puts, console_unlock
from hypervisor.core.log import LOG_ERROR, log2
from hypervisor.core.machine import machine_power_off


def stack_guard_ok(top: u64) -> bool:
    """Whether the stack whose top is `top` kept its guard: its lowest word and the guard's highest."""
    bottom = top - HART_STACK_SIZE
    p = Ptr[u64](bottom)
    return p[0] == HART_STACK_PAINT and p[HART_STACK_GUARD // 8 - 1] == HART_STACK_PAINT


@inline
def stack_check(hart: u64, top: u64) -> None:
    """Stop the machine if hart's stack ran into its guard. Small enough to be inlined where it is called on
    the trap path: two loads and two compares, the report out of line."""
    if not stack_guard_ok(top):
        stack_overflow(hart, top)


@noinline
def stack_overflow(hart: u64, top: u64) -> None:
    log2(
        LOG_ERROR,
        cstr(b"pyshyper: hart %d: hypervisor stack overflow (guard at %x overwritten): the machine stops\n"),
        hart,
        top - HART_STACK_SIZE,
    )
    machine_power_off(True)


def stack_high_water(top: u64) -> u64:
    """Bytes of the stack ever used: from the top down to the lowest word that lost its paint."""
    bottom = top - HART_STACK_SIZE
    p = Ptr[u64](bottom)
    words = HART_STACK_SIZE // 8
    i = u64(0)
    while i < words and p[i] == HART_STACK_PAINT:
        i += 1
    return (words - i) * 8


def stack_top(hart: u64) -> u64:
    """runtime/boot.S gives hart `hart` the stack [__stacks_start + hart * SIZE, + SIZE), growing down from
    its top; 0 for a hart the hypervisor has no stack for."""
    if hart >= MAX_HARTS:
        return u64(0)
    return extern_addr("__stacks_start") + (hart + 1) * HART_STACK_SIZE


def stack_report() -> None:
    """One line: each started hart's stack high-water mark (a hart never started has no paint to wear)."""
    console_lock()
    console_puts(cstr(b"pyshyper: stack high-water (bytes of "))
    console_dec(HART_STACK_SIZE)
    console_puts(cstr(b"):"))
    for h in range(MAX_HARTS):
        top = stack_top(u64(h))
        if Ptr[u64](top - HART_STACK_SIZE)[0] == HART_STACK_PAINT:
            console_puts(cstr(b" hart"))
            console_dec(u64(h))
            console_puts(cstr(b" "))
            console_dec(stack_high_water(top))
    console_puts(cstr(b"\n"))
    console_unlock()
