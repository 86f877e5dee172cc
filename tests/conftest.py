"""Shared test configuration: hypothesis profiles (``ci`` is selected in CI)."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

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

# The command line's default store is a SQLite file in the user's data directory. No test
# may write there: the default path of this process and of every subprocess it starts
# points into a temporary directory (each test gets its own, see below), and the session
# ends with a check that the real default file was not touched.
_REAL_DEFAULT = (
    Path(os.environ["SCHEDCORE_SQLITE_PATH"]).expanduser()
    if os.environ.get("SCHEDCORE_SQLITE_PATH")
    else (
        Path(os.environ["XDG_DATA_HOME"])
        if os.path.isabs(os.environ.get("XDG_DATA_HOME", ""))
        else Path.home() / ".local" / "share"
    )
    / "schedcore"
    / "schedcore.db"
)
os.environ.pop("SCHEDCORE_SQLITE_PATH", None)
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="schedcore-test-data-")


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size


_REAL_DEFAULT_BEFORE = _stamp(_REAL_DEFAULT)


@pytest.fixture(autouse=True)
def _private_default_store(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's default SQLite file is its own (a fresh data directory), so no test
    sees another's schedules."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("data", numbered=True)))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Fail the run if a test wrote the real default file of the user running the tests."""
    if _stamp(_REAL_DEFAULT) != _REAL_DEFAULT_BEFORE:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print(f"\nERROR: a test wrote the real default store file {_REAL_DEFAULT}")


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
