# -*- coding: latin-1 -*-
"""A file in latin-1 that says so in a PEP 263 coding line: the compiler decodes it as CPython does (é, ü)."""
from compiler.prelude import Ptr, cstr, u8, u64


def length(s: Ptr[u8]) -> u64:
    n: u64 = 0
    while s[n] != 0:
        n += 1
    return n


def cafe() -> u64:
    """Le café, déjà."""
    return length(cstr("café")) * 10 + u64(cstr("ü")[0] == 0xC3)  # UTF-8 of the decoded text: 5 bytes, 0xC3 0xBC


#: cafe() == 51
