"""@extern("sym") functions (declared with a `...` body, defined in assembly on riscv64; on the host and under
CPython a call goes to prelude.mock.externs[sym], default 0), cstr(b"...") and extern_addr("sym")."""
from compiler.prelude import Ptr, cstr, extern, extern_addr, u8, u32, u64


@extern("asm_read_thing")
def asm_read_thing(x: u64, y: u32) -> u64: ...


@extern("asm_void")
def asm_void(x: u64) -> None:
    """A docstring is allowed before the `...`."""
    ...


def call_extern(n: u64) -> u64:
    asm_void(n)
    return asm_read_thing(n, 7) + n


def extern_result_type() -> u64:
    v = asm_read_thing(1, 2)  # a u64 (the declared result), also under CPython where the mock gives a plain 0
    v -= 1
    return v


def cstr_bytes() -> u32:
    p: Ptr[u8] = cstr(b"hi!")
    return u32(p[0]) + u32(p[1]) + u32(p[2]) + u32(p[3])


def cstr_same() -> bool:
    return cstr(b"x").addr() != 0


def addr_nonzero() -> bool:
    return extern_addr("_start") != 0


#: call_extern(5) == 5
#: extern_result_type() == 0xFFFFFFFFFFFFFFFF
#: cstr_bytes() == 242
#: cstr_same() == 1
#: addr_nonzero() == 1
