"""The public API: ``schedcore.__all__`` is exactly what the docs promise, and all of it imports."""

from __future__ import annotations

import re
from pathlib import Path

import schedcore

ROOT = Path(__file__).resolve().parent.parent

#: What docs/api.md documents and issue 2 promises users write.
EXPECTED = {
    # engine and the in-memory backend
    "Scheduler",
    "MemoryStore",
    "LocalExecutor",
    # schedules, triggers, policies
    "Schedule",
    "At",
    "Interval",
    "Cron",
    "RetryPolicy",
    "Catchup",
    "Overlap",
    "Conflict",
    "Serializer",
    # contracts
    "Store",
    "Executor",
    "Trigger",
    # clocks
    "Clock",
    "SystemClock",
    "FakeClock",
    # runs and outcomes
    "Run",
    "RunRecord",
    "RunStatus",
    "Outcome",
    "OutcomeStatus",
    # errors
    "SchedcoreError",
    "ValidationError",
    "ScheduleExists",
    "ScheduleNotFound",
    "StoreError",
    "StoreUnavailable",
    "CorruptScheduleData",
    "CorruptStore",
    "ExecutorError",
    "ExecutorUnavailable",
    "PluginError",
    "ConfigError",
}


def test_all_is_exactly_the_documented_set() -> None:
    assert set(schedcore.__all__) == EXPECTED
    assert len(schedcore.__all__) == len(set(schedcore.__all__)), "duplicates in __all__"


def test_every_public_name_is_importable() -> None:
    for name in schedcore.__all__:
        assert getattr(schedcore, name) is not None, name
    namespace: dict[str, object] = {}
    exec(f"from schedcore import {', '.join(sorted(EXPECTED))}", namespace)
    assert set(namespace) - {"__builtins__"} == EXPECTED


def test_issue_quick_start_import_line() -> None:
    from schedcore import At, Cron, Interval, LocalExecutor, MemoryStore, RetryPolicy, Schedule, Scheduler

    assert all(
        x is not None for x in (At, Cron, Interval, LocalExecutor, MemoryStore, RetryPolicy, Schedule, Scheduler)
    )


def test_api_doc_lists_exactly_the_public_names() -> None:
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^- `([A-Za-z_]+)`", text, flags=re.MULTILINE))
    assert documented == EXPECTED


def test_public_classes_have_docstrings() -> None:
    for name in schedcore.__all__:
        obj = getattr(schedcore, name)
        assert (getattr(obj, "__doc__", None) or "").strip(), f"schedcore.{name} has no docstring"


def test_errors_derive_from_schedcore_error() -> None:
    for name in EXPECTED:
        obj = getattr(schedcore, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, schedcore.SchedcoreError), name


def test_bulk_add_is_public_and_documented() -> None:
    assert callable(schedcore.Scheduler.add_many) and callable(schedcore.Store.add_many)
    assert (schedcore.Scheduler.add_many.__doc__ or "").strip() and (schedcore.Store.add_many.__doc__ or "").strip()
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    assert "add_many(schedules" in text
