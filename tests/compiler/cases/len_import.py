"""`len` imported from the prelude: u64 under CPython too, so `range(len(a))` counts in u64 both ways."""

from compiler.prelude import Array, len, u64


def total() -> u64:
    a = Array[u64, 4]()
    t = u64(0)
    for i in range(len(a)):
        a[i] = i * 3
        t += a[i]
    return t


def last_index_wraps() -> u64:
    a = Array[u64, 4]()
    return u64(0) - len(a)

#: total() == 18
#: last_index_wraps() == 18446744073709551612
