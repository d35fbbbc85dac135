"""static(Array[...], init=(...)) with fewer values than elements: the rest are zero (LANGUAGE.md 4), at every level
of an array of arrays, and `init=()` is all zeros; under CPython as compiled."""
from compiler.prelude import Array, i16, static, u8, u32, u64

short = static(Array[u32, 5], init=(7, 8))
empty = static(Array[u64, 3], init=())
grid = static(Array[Array[u8, 3], 4], init=((1, 2, 3), (4,), ()))
signed = static(Array[i16, 4], init=(-1, -2))
flags = static(Array[bool, 3], init=(True,))


def short_sum() -> u32:
    s: u32 = 0
    for i in range(len(short)):
        s = s * 10 + short[i]
    return s


def empty_sum() -> u64:
    return empty[0] + empty[1] + empty[2]


def grid_digits() -> u64:
    s: u64 = 0
    for r in range(len(grid)):
        for c in range(len(grid[r])):
            s = s * 10 + u64(grid[r][c])
    return s


def signed_sum() -> i16:
    return signed[0] + signed[1] + signed[2] + signed[3]


def flag_count() -> u32:
    n: u32 = 0
    for i in range(len(flags)):
        if flags[i]:
            n += 1
    return n


#: short_sum() == 78000
#: empty_sum() == 0
#: grid_digits() == 123400000000
#: signed_sum() == -3
#: flag_count() == 1
