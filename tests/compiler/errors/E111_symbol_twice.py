"""E111: an external symbol defined twice in the program (export= statics, @export functions, @extern signatures)."""
# ruff: noqa
from compiler.prelude import u32, u64, static, export, extern

boot_hart = static(u64, export="boot_hart_id")
other_hart = static(u32, export="boot_hart_id")
entry_word = static(u32, export="hyp_entry")


@export("hyp_entry")
def entry() -> u64:
    return boot_hart + u64(other_hart) + u64(entry_word)


@extern("asm_helper")
def helper(x: u64) -> u64: ...


@extern("asm_helper")
def helper_same(x: u64) -> u64: ...


@extern("asm_helper")
def helper_other(x: u32) -> u64: ...

#! E111 6:1
#! E111 10:2
#! E111 23:2
