"""`len(a)` without importing `len`: a u64 compiled (the builtin is the language's), and under CPython too (the
import hook gives every module the prelude's len), so a local bound to it wraps as a u64 both ways."""
from compiler.prelude import Array, u8, u64


def count_down() -> u64:
    a = Array[u8, 3]()
    n = len(a)
    n -= 5
    return n


#: count_down() == 0xFFFFFFFFFFFFFFFE
