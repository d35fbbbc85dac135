"""E204: more init values than elements, at any level of an array of arrays (fewer are fine: the rest is zero)."""
# ruff: noqa
from compiler.prelude import Array, static, u8, u32

flat = static(Array[u32, 2], init=(1, 2, 3))
grid = static(Array[Array[u8, 2], 2], init=((1, 2), (3, 4, 5)))
fine = static(Array[Array[u8, 2], 2], init=((1,),))

#! E204 5:35
#! E204 6:53
