"""Boot tests: each test's call-phase report is kept on its item (`item.rep_call`), so that fixtures can tell at
teardown whether the test failed and save the serial log."""

from __future__ import annotations

import pytest


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    if rep.when == "call":
        item.rep_call = rep
    return rep
