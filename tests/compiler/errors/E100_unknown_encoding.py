# coding: no-such-codec
"""E100: a coding line naming an encoding CPython does not know."""
# ruff: noqa
from compiler.prelude import u64

#! E100 1:1
