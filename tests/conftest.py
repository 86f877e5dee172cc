"""Shared test configuration: hypothesis profiles (``ci`` is selected in CI)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=60, deadline=None)
settings.register_profile(
    "ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=False
)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

# The example Prometheus plugin (examples/schedcore-prometheus, installed in CI) serves
# metrics from every scheduler process it loads into. Keep each test's server on a free
# port on loopback (subprocesses inherit this), so that tests never collide on 9464 or
# listen on other interfaces.
os.environ.setdefault("SCHEDCORE_PROMETHEUS_PORT", "0")
os.environ.setdefault("SCHEDCORE_PROMETHEUS_ADDR", "127.0.0.1")


@pytest.fixture
def clean_schedcore_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SCHEDCORE_* setting leaks in from the developer's shell (the metrics port above stays)."""
    for name in list(os.environ):
        if name.startswith("SCHEDCORE_") and not name.startswith("SCHEDCORE_PROMETHEUS_"):
            monkeypatch.delenv(name)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo the logging set-up a CLI invocation makes (level and handlers of the root logger)."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.setLevel(level)
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)


@pytest.fixture
def pickle_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[bytes]:
    """A pickle signing key for this test (pickled arguments are refused without one)."""
    from schedcore import signing

    key = b"test-pickle-key-0123456789abcdef"
    monkeypatch.setenv(signing.ENV_VAR, key.decode())
    signing._reset()
    yield key
    signing._reset()
