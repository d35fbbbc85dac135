"""E100: a file that is not valid UTF-8 and declares no other encoding (PEP 263), as CPython rejects it."""
# ruff: noqa
from compiler.prelude import u64


def f() -> u64:
    return 1  # café

#! E100 7:20
