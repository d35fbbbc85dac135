"""Imports across two modules (with a cycle: helper imports SCALE from here), names resolved after loading."""
from compiler.prelude import Final, Ptr, addr_of, u32
from tests.compiler.cases.imports.helper import BASE, Point, add_base, call_count, points, scaled

SCALE: Final = 3


def use_function(v: u32) -> u32:
    return add_base(v) + scaled(v)


def use_constant() -> u32:
    return BASE + SCALE


def use_global() -> u32:
    add_base(1)
    add_base(2)
    return call_count()


def use_struct() -> u32:
    p: Ptr[Point] = addr_of(points[1])
    p.x = 4
    p.y = 5
    q = Point()
    q.x = 6
    return points[1].x * points[1].y + q.x


#: use_function(10) == 1040
#: use_constant() == 1003
#: use_global() == 2
#: use_struct() == 26
