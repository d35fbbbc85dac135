"""static(..., export="sym") of every kind (LANGUAGE.md 4): the global gets that exact external symbol, keeps its
init, section and alignment, and extern_addr("sym") is its address; two @extern declarations of one symbol share it."""
from compiler.prelude import Array, Callable, Ptr, addr_of, extern, extern_addr, static, struct, u8, u32, u64


@struct
class Pair:
    a: u32
    b: u64


def twice(x: u64) -> u64:
    return x * 2


boot_hart = static(u64, init=0, export="boot_hart_id")
zeroed = static(u32, export="zeroed_word")
table = static(Array[u32, 4], init=(1, 2), export="boot_table", section=".data.boot", align=64)
stack = static(Array[u8, 4096], export="boot_stack", section=".bss.boot_stack", align=4096)
pair = static(Pair, export="boot_pair")
where = static(Ptr[u64], export="boot_where")
handler = static(Callable[[u64], u64], init=twice, export="boot_handler")
ready = static(bool, init=True, export="boot_ready")


@extern("asm_probe")
def probe(x: u64) -> u64: ...


@extern("asm_probe")
def probe_again(x: u64) -> u64: ...


def hart() -> u64:
    return boot_hart


def bump_hart() -> u64:
    global boot_hart
    boot_hart += 5
    return boot_hart


def table_sum() -> u32:
    return table[0] + table[1] + table[2] + table[3] + zeroed


def placed() -> u64:
    n: u64 = 0
    if extern_addr("boot_table") == addr_of(table).addr():
        n += 1
    if extern_addr("boot_stack") == addr_of(stack).addr():
        n += 2
    if extern_addr("boot_pair") == addr_of(pair).addr():
        n += 4
    if addr_of(table).addr() % 64 == 0 and addr_of(stack).addr() % 4096 == 0:
        n += 8
    return n


def use_all() -> u64:
    global where
    stack[4095] = 3
    pair.b = 40
    where = addr_of(pair.b)
    r: u64 = handler(u64(stack[4095])) + where[0]
    if ready:
        r += 100
    return r


def externs() -> u64:
    return probe(1) + probe_again(2)


#: hart() == 0
#: bump_hart() == 5
#: table_sum() == 3
#: placed() == 15
#: use_all() == 146
#: externs() == 0
