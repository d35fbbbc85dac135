"""E101: `as` renames are rejected."""
from compiler.prelude import u32 as word

#! E101 2:1
