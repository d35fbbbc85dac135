"""Long flat sums (valid Python): each `+` nests the tree one level, and the compiler takes up to 2000 levels
(LANGUAGE.md 3), under CPython as compiled; a constant of 1200 terms folds."""
from compiler.prelude import Final, i8, u64

TOTAL: Final = (
    3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
    + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3 + 3
)


def sum2000(x: u64) -> u64:
    return (
        x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
        + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x + x
    )


def wraps(y: i8) -> i8:
    return (
        y + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1
        + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y
        + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y
        + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1
        + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y
        + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y
        + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1
        + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y
        + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y
        + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1
        + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y
        + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y
        + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1
        + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y
        + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y
        + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1
        + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y
        + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y
        + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1
        + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y
        + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y
        + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1
        + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y
        + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y
        + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1
        + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y
        + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y
        + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1
        + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y
        + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y
        + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1
        + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y
        + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y
        + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1
        + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y
        + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y
        + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1
        + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y
        + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y
        + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1
        + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y
        + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y
        + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1
        + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y
        + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y
        + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1
        + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y
        + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y
        + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1
        + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y
        + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y
        + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1
        + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y
        + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y
        + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1
        + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y
        + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y
        + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1
        + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y
        + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y + 1 + y + y
    )


def folded() -> u64:
    return TOTAL


#: sum2000(3) == 6000
#: sum2000(0xFFFFFFFFFFFFFFFF) == 0xFFFFFFFFFFFFF830
#: wraps(1) == -36
#: folded() == 3600
