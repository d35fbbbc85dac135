"""E103: a name the module does not define."""
# ruff: noqa
from compiler.prelude import u32, no_such_name

#! E103 3:1
