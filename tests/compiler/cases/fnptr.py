"""Function pointers: functions as Callable values in globals, arrays (dispatch tables) and struct fields."""
from compiler.prelude import Array, Callable, Final, Ptr, addr_of, static, struct, u32, u64

NHANDLERS: Final = 4


@struct
class Frame:
    code: u64
    result: u64


@struct
class Ops:
    apply: Callable[[u32, u32], u32]
    name: u32


def h_add(f: Ptr[Frame]) -> None:
    f.result = f.code + 100


def h_mul(f: Ptr[Frame]) -> None:
    f.result = f.code * 3


def h_default(f: Ptr[Frame]) -> None:
    f.result = 0xDEAD


HANDLERS = static(Array[Callable[[Ptr[Frame]], None], NHANDLERS])
ops = static(Ops)


def add2(a: u32, b: u32) -> u32:
    return a + b


def sub2(a: u32, b: u32) -> u32:
    return a - b


def setup() -> None:
    HANDLERS[0] = h_add
    HANDLERS[1] = h_mul
    HANDLERS[2] = h_default
    HANDLERS[3] = h_default


def dispatch(code: u64) -> u64:
    setup()
    f = Frame()
    f.code = code
    HANDLERS[code % 4](addr_of(f))
    return f.result


def via_struct(which: u32) -> u32:
    if which == 0:
        ops.apply = add2
    else:
        ops.apply = sub2
    return ops.apply(10, 3)


def via_local(which: u32) -> u32:
    g: Callable[[u32, u32], u32] = add2
    if which != 0:
        g = sub2
    return g(u32(20), u32(5))


def table_len() -> u64:
    return len(HANDLERS)


#: dispatch(4) == 104
#: dispatch(5) == 15
#: dispatch(6) == 0xDEAD
#: via_struct(0) == 13
#: via_struct(1) == 7
#: via_local(0) == 25
#: via_local(1) == 15
#: table_len() == 4
