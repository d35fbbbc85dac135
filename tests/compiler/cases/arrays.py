"""Arrays: checked a[i] (panics 1, index, length), unchecked a.unchecked[i], len(a), local arrays, 2-D arrays."""
from compiler.prelude import Array, i32, static, u8, u16, u32, u64

grid = static(Array[Array[u16, 3], 2])
data = static(Array[u32, 4], init=(5, 6, 7, 8))


def get(i: u32) -> u32:
    return data[i]


def get_signed(i: i32) -> u32:
    return data[i]


def put(i: u64, v: u32) -> u32:
    data[i] = v
    return data[i]


def unchecked_get(i: u32) -> u32:
    return data.unchecked[i]


def unchecked_put() -> u32:
    data.unchecked[1] = 60
    return data[1]


def length() -> u64:
    return len(data) + len(grid) * 10 + len(grid[0]) * 100


def local_array() -> u32:
    a = Array[u8, 10]()
    for i in range(u32(10)):
        a[i] = u8(i * 30)
    s: u32 = 0
    for i in range(u32(10)):
        s += u32(a[i])
    return s


def two_d() -> u32:
    for r in range(u32(2)):
        for c in range(u32(3)):
            grid[r][c] = u16(r * 10 + c)
    return u32(grid[1][2]) + u32(grid[0][1])


def bool_array() -> u32:
    b = Array[bool, 3]()
    b[1] = True
    n: u32 = 0
    for i in range(u32(3)):
        if b[i]:
            n += 1 << i
    return n


#: get(3) == 8
#: get(4) panics 1, 4, 4
#: get_signed(-1) panics 1, 0xFFFFFFFFFFFFFFFF, 4
#: put(2, 70) == 70
#: put(9, 1) panics 1, 9, 4
#: unchecked_get(2) == 7
#: unchecked_put() == 60
#: length() == 324
#: local_array() == 1094
#: two_d() == 13
#: bool_array() == 2
