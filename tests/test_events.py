"""The event table (schedcore/events.py): one place for each engine event's hook, log line
and level, which the engine logs from and docs/plugins.md renders."""

from __future__ import annotations

import inspect
import logging
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schedcore import FakeClock, Interval, RetryPolicy, Schedule, Scheduler, hookspecs
from schedcore.events import EVENTS, Event
from schedcore.plugins import get_plugin_manager
from schedcore.records import Run
from schedcore.scheduler import EVENT_LEVELS
from schedcore.testing.executors import CallbackExecutor
from schedcore.testing.simulation import run_until

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
T0 = datetime(2025, 3, 8, 12, 0, tzinfo=timezone.utc)


def render_table() -> str:
    """docs/plugins.md's event table, as the code's table says it should read."""
    lines = ["| `event` | level | log line | hook |", "|---|---|---|---|"]
    for event in EVENTS.values():
        line = f"`{event.message}`" + (f" and `{event.detail}` when set" if event.detail else "")
        hook = f"`{event.hook}`" if event.hook else "—"
        lines.append(f"| `{event.name}` | {logging.getLevelName(event.level)} | {line} | {hook} |")
    return "\n".join(lines)


def test_the_plugin_guide_renders_the_event_table() -> None:
    guide = (DOCS / "plugins.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- events-table: [^>]*-->\n(.*?)\n<!-- /events-table -->", guide, re.DOTALL)
    assert found, "docs/plugins.md lost its events-table markers"
    assert found.group(1) == render_table(), "docs/plugins.md's event table differs from schedcore/events.py:\n" + (
        render_table()
    )


def test_the_operations_guide_gives_the_tables_levels() -> None:
    guide = (DOCS / "operations.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (`[a-z_]+`(?:, `[a-z_]+`)*) \| ([A-Z]+) \|", guide, re.MULTILINE)
    assert rows, "docs/operations.md lost its event table"
    for names, level in rows:
        for name in re.findall(r"`([a-z_]+)`", names):
            assert logging.getLevelName(EVENTS[name].level) == level, name


def test_every_lifecycle_hook_has_exactly_one_event_named_after_it() -> None:
    # a lifecycle hook is one that tells about a scheduler: its first argument is that scheduler
    lifecycle = {
        name
        for name, spec in vars(hookspecs).items()
        if name.startswith("schedcore_") and list(inspect.signature(spec).parameters)[:1] == ["scheduler"]
    }
    assert len(lifecycle) >= 12
    hooks = [event.hook for event in EVENTS.values() if event.hook is not None]
    assert sorted(hooks) == sorted(lifecycle)
    for event in EVENTS.values():
        assert event.hook in (None, f"schedcore_{event.name}"), event.name


def test_every_event_the_engine_logs_through_the_table_is_in_it() -> None:
    from schedcore import scheduler

    source = inspect.getsource(scheduler)
    logged = set(re.findall(r"self\._event\(\s*\"([a-z_]+)\"", source))
    assert logged == set(EVENTS)
    # and the other lines it logs are named in the plugin guide
    guide = (DOCS / "plugins.md").read_text(encoding="utf-8")
    paragraph = guide[guide.index("Besides these, the scheduler logs") :].split("\n\n")[0]
    others = set(re.findall(r"\"event\": \"([a-z_]+)\"", source)) - set(EVENTS)
    assert others == set(re.findall(r"`([a-z_]+)`", paragraph))


def test_event_levels_come_from_the_table() -> None:
    assert {name: event.level for name, event in EVENTS.items()} == EVENT_LEVELS


def test_a_line_is_built_from_the_fields() -> None:
    failed = EVENTS["run_failed"]
    assert failed.message_for({"run_id": "a@1.1", "status": "failed", "error": "OSError: disk full"}) == (
        "run a@1.1 failed: OSError: disk full"
    )
    assert failed.message_for({"run_id": "a@1.1", "status": "lost", "error": None}) == "run a@1.1 lost"
    assert failed.message_for({"run_id": "a@1.1", "status": "stopped", "error": ""}) == "run a@1.1 stopped"
    retry = EVENTS["run_retry_scheduled"].message_for({"run_id": "a@1.1", "retry_at": T0})
    assert retry == "run a@1.1 will be retried at 2025-03-08T12:00:00+00:00"


@given(st.text(), st.text())
def test_field_values_are_never_read_as_templates(run_id: str, error: str) -> None:
    """A stored value such as ``{0.__class__}`` is shown as it is, never formatted."""
    line = EVENTS["run_failed"].message_for({"run_id": run_id, "status": "failed", "error": error})
    assert line == f"run {run_id} failed" + (f": {error}" if error else "")


def test_an_event_without_detail() -> None:
    event = Event("x_happened", "x {a} happened", logging.DEBUG)
    assert event.hook is None and event.message_for({"a": 1, "b": 2}) == "x 1 happened"


@pytest.fixture
def records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """A scheduler's life in simulated time, with every event of the table at least once."""

    def handler(run: Run) -> None:
        if run.schedule_id == "flaky":
            raise RuntimeError("boom")

    clock = FakeClock(T0)
    sched = Scheduler(
        executor=CallbackExecutor(handler, clock=clock), clock=clock, plugins=get_plugin_manager(entry_points=False)
    )
    with caplog.at_level(logging.DEBUG, logger="schedcore"):
        sched.add(Schedule(id="ok", task="schedcore.demo:hello", trigger=Interval(60)))
        retry = RetryPolicy(max_attempts=2, initial_delay=10)
        sched.add(Schedule(id="flaky", task="schedcore.demo:hello", trigger=Interval(60), retry=retry))
        sched.add(Schedule(id="twice", task="schedcore.demo:hello", trigger=Interval(60), max_runs=1))
        sched.add(Schedule(id="gone", task="schedcore.demo:hello", trigger=Interval(60)))
        sched.remove("gone")
        sched.pause("ok")
        sched.resume("ok")
        sched.trigger_now("ok")
        run_until(sched, T0.replace(minute=2))
        sched.backfill("ok", T0, T0.replace(minute=1))
        sched.run(burst=True)
    return [r for r in caplog.records if r.name == "schedcore.scheduler" and getattr(r, "event", None) in EVENTS]


def test_each_line_is_the_tables_line_at_the_tables_level(records: list[logging.LogRecord]) -> None:
    seen = set()
    for record in records:
        event = EVENTS[record.event]  # type: ignore[attr-defined]
        seen.add(event.name)
        fields = {k: v for k, v in vars(record).items() if k not in vars(logging.makeLogRecord({}))}
        assert record.getMessage() == event.message_for(fields)
        assert record.levelno == event.level
    # run_buffered (overlap buffer_one) and misfire_skipped are checked by test_observability's scenario
    assert seen >= set(EVENTS) - {"run_buffered", "misfire_skipped"}, sorted(set(EVENTS) - seen)
