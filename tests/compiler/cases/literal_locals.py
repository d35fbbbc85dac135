"""A local first bound to a bare literal (or literal form, or untyped constant) is an i64 and wraps as one; a literal
later assigned to a typed local or global takes its type (LANGUAGE.md 3), under CPython as compiled."""
from compiler.prelude import Final, i64, u8, u16, u64

LIMIT: Final = 0x7FFFFFFFFFFFFFFF
small: u8 = 0


def bare_literal() -> u64:
    z = 0x7FFFFFFFFFFFFFFF
    z += 1
    r: u64 = 0
    if z < 0:
        r += 1
    if z == -0x8000000000000000:
        r += 2
    return r


def shifted_local(n: u8) -> i64:
    q = 1 << n
    q = q * 2
    return q


def final_local() -> i64:
    k = LIMIT
    k = k + 1
    return k


def literal_into_typed() -> u64:
    global small
    x = u8(0)
    x = 255
    x += 1
    small = 255
    small += 1
    return u64(x) + u64(small)


def form_into_typed(m: u8) -> u16:
    x: u16 = 1 << m
    y = u16(0)
    y = 1 << m
    return x + y + ((1 << m) & u16(0xFFFF))


def loop_rebinds(n: u8) -> i64:
    acc = 0
    for _i in range(n):
        acc = 0x4000000000000000
        acc = acc + acc
    return acc


#: bare_literal() == 3
#: shifted_local(62) == -0x8000000000000000
#: shifted_local(63) == 0
#: final_local() == -0x8000000000000000
#: literal_into_typed() == 0
#: form_into_typed(17) == 6
#: form_into_typed(3) == 24
#: loop_rebinds(2) == -0x8000000000000000
