"""Helpers of the tests of the example plugins in ``examples/``."""

from __future__ import annotations

import importlib.metadata
import os

import pytest


def require_example(distribution: str) -> None:
    """Skip the calling test module when the example ``distribution`` is not installed.

    CI installs every example and sets ``SCHEDCORE_REQUIRE_EXAMPLES=1``, which makes a
    missing one an error instead of a skip.
    """
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        if os.environ.get("SCHEDCORE_REQUIRE_EXAMPLES") == "1":
            raise
        pytest.skip(
            f"the example plugin is not installed: pip install -e examples/{distribution}", allow_module_level=True
        )
