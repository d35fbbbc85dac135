"""The second module of the imports case: constants, a global, a struct and functions used from main.py."""
from compiler.prelude import Array, Final, static, struct, u32
from tests.compiler.cases.imports.main import SCALE

BASE: Final = u32(1000)
calls: u32 = 0


@struct
class Point:
    x: u32
    y: u32


points = static(Array[Point, 2])


def add_base(v: u32) -> u32:
    global calls
    calls += 1
    return v + BASE


def scaled(v: u32) -> u32:
    return v * SCALE


def call_count() -> u32:
    return calls
