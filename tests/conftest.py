"""Fixtures shared by the test layers."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def mvm_image_cache() -> Path:
    """The MVM's images in the image cache, made or checked once per session by `pyshyper images` (a quick
    manifest check when they are current): every MVM boot of the session boots what the project's recipe makes
    today, never images an older checkout left in ~/.cache/pyshyper."""
    from qemu import images

    cache = images.default_cache()
    if images.main(["--cache", str(cache)]) != 0:
        pytest.fail(f"`pyshyper images --cache {cache}` failed: the MVM's images cannot be made")
    return cache
