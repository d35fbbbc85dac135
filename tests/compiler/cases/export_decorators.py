"""@export("symbol"), @inline and @noinline change nothing about what a function computes."""
from compiler.prelude import export, inline, noinline, u32, u64


@export("pyshyper_trap_handler")
def trap_handler(cause: u64) -> u64:
    return helper(cause) + 1


@inline
def helper(x: u64) -> u64:
    return x * 2


@noinline
def cold(x: u32) -> u32:
    return x ^ 0xFF


@export("pyshyper_entry")
def entry(a: u32) -> u32:
    return cold(a) + u32(trap_handler(u64(a)))


#: trap_handler(20) == 41
#: entry(1) == 257
