"""E140: one report per set of mutually recursive functions, at the def of the one that comes first in the program
(source order), whatever order the calls are followed in; a function calling into a cycle is not part of it."""
# ruff: noqa
from compiler.prelude import u64


def entry(n: u64) -> u64:
    return ping(n) + solo(n)


def pong(n: u64) -> u64:
    if n == 0:
        return 0
    return ping(n - 1) + tick(n)


def ping(n: u64) -> u64:
    if n == 0:
        return 1
    return pong(n - 1) + tock(n)


def tick(n: u64) -> u64:
    return tock(n) + pong(n)


def tock(n: u64) -> u64:
    return n


def solo(n: u64) -> u64:
    if n < 2:
        return n
    return solo(n - 1)

#! E140 11:1
#! E140 31:1
