"""The compiler tests' shared fixture: the driver, for the tests that compile."""

from __future__ import annotations

from types import ModuleType

import pytest


@pytest.fixture(scope="session")
def compiler_driver() -> ModuleType:
    """compiler.driver. A compiler (or llvmlite) that cannot be imported FAILS every test that compiles, never
    skips it; the CPython half of the cases, which needs only the prelude, still runs and reports."""
    try:
        from compiler import driver
    except Exception as e:
        pytest.fail(f"compiler.driver cannot be imported: {type(e).__name__}: {e}", pytrace=False)
    return driver
