"""The intrinsics table (compiler/intrinsics.py) against the two sides it drives: every row names a type rule the
checker has, every prelude row is a function of compiler.prelude (so the same call runs under CPython), and every
row with an instruction expands from its marker."""

from compiler import intrinsics as intr
from compiler import prelude
from compiler.check.builtins import RULES
from compiler.check.declarations import PRELUDE_FUNCS


def test_every_row_names_a_checker_rule():
    assert {row.rule for row in intr.INTRINSICS.values()} <= set(RULES)


def test_every_prelude_row_runs_under_cpython():
    for row in intr.INTRINSICS.values():
        if row.prelude:
            assert row.name in prelude.__all__, row.name
            assert callable(getattr(prelude, row.name)), row.name
    assert PRELUDE_FUNCS - {"static"} == {r.name for r in intr.INTRINSICS.values() if r.prelude}


def test_every_instruction_row_expands_from_its_marker():
    for row in intr.INTRINSICS.values():
        if row.asm is None:
            continue
        if row.rule == "csr":
            assert intr.marker_asm(intr.marker_name(row.name, 0x100)) == row.asm.format(num="0x100")
        else:
            assert intr.marker_asm(intr.marker_name(row.marker or row.name)) == row.asm
    assert intr.marker_asm(intr.marker_name("no_such_op")) is None
    assert intr.marker_asm("memcpy") is None
