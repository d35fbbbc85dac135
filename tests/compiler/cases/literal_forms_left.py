"""A literal form that is not constant (`1 << n`, `4 if c else 8`, arithmetic of them) takes its context's type
(LANGUAGE.md 3), the other operand included: on the left of every binary operator and comparison as on the right."""
from compiler.prelude import i8, u8, u16, u32, u64


def left_compare(m: u8, h: u16) -> u32:
    r: u32 = 0
    if (1 << m) == h:
        r |= 1
    if (1 << m) != h:
        r |= 2
    if (1 << m) < h:
        r |= 4
    if (1 << m) <= h:
        r |= 8
    if (1 << m) > h:
        r |= 16
    if (1 << m) >= h:
        r |= 32
    if h == (1 << m):
        r |= 64
    return r


def left_arith(m: u8, h: u16) -> u16:
    a = (1 << m) + h
    b = (1 << m) - h
    c = (1 << m) * h
    d = (1 << m) // h
    e = (1 << m) % h
    f = (1 << m) & h
    g = (1 << m) | h
    k = (1 << m) ^ h
    return a + b + c + d + e + f + g + k


def left_ternary(c: u8, h: u16) -> u16:
    x = (4 if c != 0 else 8) + h
    y = (4 if c != 0 else 8) * h
    if (4 if c != 0 else 8) == h:
        x += 1000
    return x + y


def nested_forms(m: u8, n: u8, h: u16) -> u16:
    both = ((1 << m) | (1 << n)) & h
    neg = -(1 << m) + h
    inv = ~(1 << m) & h
    sel = ((1 << m) if m > n else (1 << n)) + h
    return both + neg + inv + sel


def narrow_wraps(m: u8) -> u8:
    return (1 << m) + u8(250)


def signed_context(m: u8, h: i8) -> u32:
    r: u32 = 0
    if (1 << m) < h:  # i8(1) << 7 is -128
        r |= 1
    if (1 << m) == i8(-128):
        r |= 2
    if (2 if m == 7 else 3) - h > 0:
        r |= 4
    return r


def form_on_both_sides(m: u8, n: u8) -> u64:
    r: u64 = 0
    if (1 << m) == (1 << n):
        r += 1
    if (4 if m > n else 8) < (1 << n):
        r += 2
    return r


def counts_and_conversions(m: u8, n: u32) -> u64:
    a = u64(1 << m)
    b: u64 = 1 << (1 << m)  # a literal form as a shift count
    return a + b + u64(u8(1 << n))


def compound_narrow(m: u8, h: u16) -> u16:
    x: u16 = (1 << m) + 1  # the whole form is a u16: (u16(1) << m) + 1
    y = (1 << m) - 1 & h
    z = -(1 << m) + h
    return x + y + z


#: compound_narrow(17, 0xFFFF) == 1
#: compound_narrow(3, 0xFFFF) == 7
#: left_compare(3, 8) == 105
#: left_compare(2, 8) == 14
#: left_compare(4, 8) == 50
#: left_arith(3, 8) == 97
#: left_arith(2, 8) == 68
#: left_ternary(1, 4) == 1024
#: left_ternary(0, 4) == 44
#: nested_forms(3, 1, 0xFF) == 767
#: narrow_wraps(3) == 2
#: signed_context(7, -1) == 7
#: signed_context(6, -1) == 4
#: form_on_both_sides(3, 3) == 1
#: form_on_both_sides(4, 1) == 0
#: counts_and_conversions(2, 9) == 20
