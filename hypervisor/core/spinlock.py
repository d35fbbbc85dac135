"""Spinlocks: one ticket lock for everything shared between harts (Bao's `spinlock_t` is the model).

A hart takes a ticket from `next` and spins until `owner` reaches it, so harts enter in the order they asked and
none starves. Both counters only grow (they wrap at 2^32, harmlessly: only equality is compared). The AMOs are
`.aqrl` (compiler/LANGUAGE.md section 5): an AMO with both bits set is sequentially consistent (Unpriv 17.1.1 and
the RVWMO rules 5-7 of 17.1.2), so the critical section's loads and stores cannot move above the acquiring AMO
(the one that read `owner` == ticket) nor below the releasing one; no separate fence is needed on either side.
"""

from compiler.prelude import Ptr, addr_of, amoadd_w, struct, u32


@struct
class Spinlock:
    next: u32  # the next ticket to hand out
    owner: u32  # the ticket allowed in now


def spin_lock(lock: Ptr[Spinlock]) -> None:
    ticket = amoadd_w(addr_of(lock.next), u32(1))
    while amoadd_w(addr_of(lock.owner), u32(0)) != ticket:
        pass


def spin_unlock(lock: Ptr[Spinlock]) -> None:
    amoadd_w(addr_of(lock.owner), u32(1))


def spin_held(lock: Ptr[Spinlock]) -> bool:
    """Whether some hart holds (or waits for) the lock: for assertions and reports, never for deciding."""
    return amoadd_w(addr_of(lock.next), u32(0)) != amoadd_w(addr_of(lock.owner), u32(0))
