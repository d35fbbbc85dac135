"""Fixtures and helpers shared by the test layers."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest


def in_ci() -> bool:
    """CI=true: the environment `.ci/run` and CI services set, where `make test` has installed every host tool."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def missing_in_ci(why: str) -> None:
    """Something a test needs from the host is not there: skip on a developer's machine, but FAIL under CI=true,
    where `make test` has set the host up and a skip would hide every test behind it."""
    if in_ci():
        pytest.fail(f"{why}; CI=true: a test that cannot run fails instead of skipping", pytrace=False)
    pytest.skip(why)


def require_tool(*tools: str, hint: str = "qemu/setup-host.sh installs it") -> None:
    """A test that needs host programs (qemu-system-riscv64, riscv64-unknown-elf-as, gdb-multiarch, ...) calls
    this first: a missing one skips the test on a developer's machine and fails it under CI=true."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        missing_in_ci(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed ({hint})")


def pytest_itemcollected(item):
    """`make test` runs pytest-xdist workers (justfile `test`: -n, --dist loadgroup): the QEMU boot tests are one
    group, so one worker runs them all, one at a time and in file order (their module fixtures boot a machine once
    and the tests after build on what the ones before did), while the others share the host tests. Two QEMU
    machines never compete for the cores: test_mvm_boot's timer test holds the MVM's `sleep 5` to 5% of host
    time, which a second machine on a 2-core host broke (the guest's sleep ended 0.29 s late). Marked as each test
    is collected, before xdist's own pytest_collection_modifyitems reads the marks. Without xdist the mark changes
    nothing."""
    if item.get_closest_marker("qemu") is not None:
        item.add_marker(pytest.mark.xdist_group("qemu"))


@pytest.fixture(scope="session")
def mvm_image_cache() -> Path:
    """The MVM's images in the image cache, made or checked once per session by `pyshyper images` (a quick
    manifest check when they are current): every MVM boot of the session boots what the project's recipe makes
    today, never images an older checkout left in ~/.cache/pyshyper."""
    from pyshyper_host.images import initramfs as images

    cache = images.default_cache()
    if images.main(["--cache", str(cache)]) != 0:
        pytest.fail(f"`pyshyper images --cache {cache}` failed: the MVM's images cannot be made")
    return cache


@pytest.fixture(scope="session")
def boot_out(tmp_path_factory) -> Callable[..., Path]:
    """`boot_out(irq, aia_guests=3, mmio_decode="htinst")`: the OUT directory of the test run's build of the
    hypervisor for that configuration, for the boot tests that boot it (`mvm_qemu_command(..., out=...)`): the first
    one builds it, the others find it up to date (`stale_reason`) and only rewrite the MVM's device tree, so a
    configuration is built once per session, not once per test module or test (about 8 s each)."""

    def get(irq: str, aia_guests: int | None = 3, mmio_decode: str = "htinst") -> Path:
        key = f"{irq}{aia_guests if irq == 'aia' else ''}-{mmio_decode}"
        out = tmp_path_factory.getbasetemp() / "builds" / key
        out.mkdir(parents=True, exist_ok=True)
        return out

    return get
