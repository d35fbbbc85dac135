"""A file that starts with a UTF-8 byte order mark is valid Python: both sides read it (LANGUAGE.md 1)."""
from compiler.prelude import Ptr, cstr, u8, u64


def length(s: Ptr[u8]) -> u64:
    n: u64 = 0
    while s[n] != 0:
        n += 1
    return n


def cafe() -> u64:
    return length(cstr("café"))  # a str literal's UTF-8 bytes: 5


#: cafe() == 5
