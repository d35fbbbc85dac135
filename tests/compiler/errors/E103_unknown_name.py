"""E103: a name the module does not define."""
from compiler.prelude import u32, no_such_name

#! E103 2:1
