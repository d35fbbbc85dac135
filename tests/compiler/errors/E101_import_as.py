"""E101: `as` renames are rejected."""
# ruff: noqa
from compiler.prelude import u32 as word

#! E101 3:1
