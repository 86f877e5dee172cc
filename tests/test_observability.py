"""Observability: one structured log line per lifecycle event, and firing lateness per run.

For every lifecycle hook of ``schedcore/hookspecs.py`` the engine logs exactly one record
per call -- ``event`` named after the hook -- with the event's fields, which both formats
of :mod:`schedcore.logs` keep (``--log-format text|json``).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from schedcore import FakeClock, Interval, RetryPolicy, Schedule, Scheduler
from schedcore.events import EVENTS
from schedcore.hookspecs import hookimpl
from schedcore.logs import JsonFormatter, TextFormatter, record_extras
from schedcore.plugins import get_plugin_manager
from schedcore.records import Run, RunStatus
from schedcore.scheduler import EVENT_LEVELS
from schedcore.testing.executors import CallbackExecutor, Result
from schedcore.testing.simulation import run_until

T0 = datetime(2025, 3, 8, 12, 0, tzinfo=timezone.utc)
#: The lifecycle hooks: those the event table (schedcore/events.py) calls; tests/test_events.py
#: checks that these are every hookspec about a scheduler.
LIFECYCLE = sorted(event.hook for event in EVENTS.values() if event.hook is not None)

#: The fields each event's log record carries (besides ``event``).
FIELDS = {
    "scheduler_started": {"owner"},
    "scheduler_stopped": {"owner"},
    "schedule_added": {"schedule_id", "result", "next_fire"},
    "schedule_removed": {"schedule_id"},
    "schedule_paused": {"schedule_id"},
    "schedule_resumed": {"schedule_id", "next_fire"},
    "run_dispatched": {"schedule_id", "run_id", "kind", "attempt", "nominal", "lateness"},
    "run_succeeded": {"schedule_id", "run_id", "attempt", "status", "nominal"},
    "run_failed": {"schedule_id", "run_id", "attempt", "status", "nominal", "error"},
    "run_retry_scheduled": {"schedule_id", "run_id", "attempt", "status", "nominal", "retry_at"},
    "run_exhausted": {"schedule_id", "run_id", "attempt", "status", "nominal"},
    "misfire_skipped": {"schedule_id", "run_id", "nominal", "reason"},
}


class Recorder:
    """Implements every lifecycle hook; keeps each call with its arguments."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _add(self, name: str, **kwargs: Any) -> None:
        self.calls.append((name.removeprefix("schedcore_"), kwargs))

    @hookimpl
    def schedcore_scheduler_started(self, scheduler: Scheduler) -> None:
        self._add("scheduler_started", owner=scheduler.owner)

    @hookimpl
    def schedcore_scheduler_stopped(self, scheduler: Scheduler) -> None:
        self._add("scheduler_stopped", owner=scheduler.owner)

    @hookimpl
    def schedcore_schedule_added(self, schedule: Schedule, result: str) -> None:
        self._add("schedule_added", schedule_id=schedule.id, result=result)

    @hookimpl
    def schedcore_schedule_removed(self, schedule_id: str) -> None:
        self._add("schedule_removed", schedule_id=schedule_id)

    @hookimpl
    def schedcore_schedule_paused(self, schedule_id: str) -> None:
        self._add("schedule_paused", schedule_id=schedule_id)

    @hookimpl
    def schedcore_schedule_resumed(self, schedule_id: str, next_fire: datetime | None) -> None:
        self._add("schedule_resumed", schedule_id=schedule_id, next_fire=next_fire)

    @hookimpl
    def schedcore_run_dispatched(self, run: Run, record: Any) -> None:
        self._add(
            "run_dispatched", schedule_id=run.schedule_id, run_id=run.id, nominal=run.nominal, lateness=record.lateness
        )

    @hookimpl
    def schedcore_run_succeeded(self, outcome: Any) -> None:
        self._add("run_succeeded", schedule_id=outcome.schedule_id, run_id=outcome.run_id, nominal=outcome.nominal)

    @hookimpl
    def schedcore_run_failed(self, outcome: Any) -> None:
        self._add("run_failed", schedule_id=outcome.schedule_id, run_id=outcome.run_id, error=outcome.error)

    @hookimpl
    def schedcore_run_retry_scheduled(self, outcome: Any, retry_at: datetime) -> None:
        self._add("run_retry_scheduled", schedule_id=outcome.schedule_id, run_id=outcome.run_id, retry_at=retry_at)

    @hookimpl
    def schedcore_run_exhausted(self, outcome: Any) -> None:
        self._add("run_exhausted", schedule_id=outcome.schedule_id, run_id=outcome.run_id)

    @hookimpl
    def schedcore_misfire_skipped(self, schedule_id: str, nominal: datetime, reason: str) -> None:
        self._add("misfire_skipped", schedule_id=schedule_id, nominal=nominal, reason=reason)


def handler(run: Run) -> Result | None:
    if run.schedule_id == "flaky":
        raise RuntimeError("boom")
    if run.schedule_id == "slow":
        return Result(duration=90)
    return None


@pytest.fixture
def scenario(caplog: pytest.LogCaptureFixture) -> tuple[Scheduler, Recorder, list[logging.LogRecord]]:
    """Every lifecycle event at least once: a scheduler's whole life in simulated time."""
    recorder = Recorder()
    clock = FakeClock(T0)
    sched = Scheduler(
        executor=CallbackExecutor(handler, clock=clock),
        clock=clock,
        plugins=get_plugin_manager(entry_points=False, plugins=(recorder,)),
    )
    with caplog.at_level(logging.DEBUG, logger="schedcore"):
        sched.add(Schedule(id="ok", task="schedcore.demo:hello", trigger=Interval(60)))
        sched.add(Schedule(id="ok", task="schedcore.demo:hello", trigger=Interval(60)))  # unchanged
        retry = RetryPolicy(max_attempts=2, initial_delay=10)
        sched.add(Schedule(id="flaky", task="schedcore.demo:hello", trigger=Interval(60), retry=retry))
        sched.add(Schedule(id="slow", task="schedcore.demo:hello", trigger=Interval(60), overlap="skip"))
        sched.add(Schedule(id="gone", task="schedcore.demo:hello", trigger=Interval(60)))
        sched.remove("gone")
        sched.pause("ok")
        sched.resume("ok")
        clock.advance(0.125)  # the first occurrences are dispatched 125 ms late
        run_until(sched, T0 + timedelta(seconds=130))
        sched.run(burst=True)  # started, one more tick, the slow run finishes, stopped
    records = [r for r in caplog.records if r.name == "schedcore.scheduler"]
    return sched, recorder, records


def by_event(records: list[logging.LogRecord]) -> dict[str, list[logging.LogRecord]]:
    found: dict[str, list[logging.LogRecord]] = {}
    for record in records:
        event = getattr(record, "event", None)
        if event is not None:
            found.setdefault(event, []).append(record)
    return found


def test_every_lifecycle_hook_is_covered_here() -> None:
    assert {name.removeprefix("schedcore_") for name in LIFECYCLE} == set(FIELDS)


def test_one_log_record_per_hook_call(scenario: tuple[Scheduler, Recorder, list[logging.LogRecord]]) -> None:
    _, recorder, records = scenario
    calls = Counter(name for name, _ in recorder.calls)
    assert set(calls) == set(FIELDS), "the scenario raises every lifecycle event"
    logged = by_event(records)
    for event in FIELDS:
        assert len(logged.get(event, [])) == calls[event], f"{event}: {calls[event]} hook calls"


def test_each_record_carries_the_fields_of_its_event(
    scenario: tuple[Scheduler, Recorder, list[logging.LogRecord]],
) -> None:
    _, recorder, records = scenario
    logged = by_event(records)
    for event, fields in FIELDS.items():
        for record in logged[event]:
            extras = record_extras(record)
            assert extras["event"] == event
            missing = fields - set(extras)
            assert not missing, f"{event} lacks {sorted(missing)}"
            assert record.levelno == EVENT_LEVELS.get(event, logging.INFO)
    # ... in the order of the hook calls, with the same values.
    for event in FIELDS:
        calls = [kwargs for name, kwargs in recorder.calls if name == event]
        for kwargs, record in zip(calls, logged[event], strict=True):
            extras = record_extras(record)
            for key, value in kwargs.items():
                assert extras[key] == value, f"{event}.{key}: logged {extras[key]!r}, hook got {value!r}"


def test_the_json_format_keeps_every_field(scenario: tuple[Scheduler, Recorder, list[logging.LogRecord]]) -> None:
    _, _, records = scenario
    formatter = JsonFormatter()
    for record in records:
        event = getattr(record, "event", None)
        if event not in FIELDS:
            continue
        line = formatter.format(record)
        assert "\n" not in line
        data = json.loads(line)
        assert {"ts", "level", "logger", "message", "event"} <= set(data)
        assert FIELDS[event] <= set(data), event
        if event == "run_dispatched":
            assert isinstance(data["lateness"], float)
            assert data["nominal"].endswith("Z")
    dispatched = next(r for r in records if getattr(r, "event", None) == "run_dispatched")
    text = TextFormatter().format(dispatched)
    assert "\n" not in text
    assert " event=run_dispatched " in text and " lateness=0.125" in text


def test_firing_lateness_is_recorded_per_run(scenario: tuple[Scheduler, Recorder, list[logging.LogRecord]]) -> None:
    sched, recorder, records = scenario
    logged = {record_extras(r)["run_id"]: record_extras(r)["lateness"] for r in by_event(records)["run_dispatched"]}
    hooks = {kwargs["run_id"]: kwargs["lateness"] for name, kwargs in recorder.calls if name == "run_dispatched"}
    history = {
        r.run_id: r.lateness
        for sid in ("ok", "flaky", "slow")
        for r in sched.history(sid)
        if r.status is not RunStatus.SKIPPED
    }
    assert logged == hooks == history
    assert history["ok@1741435200000.1"] == 0.125  # 12:00, dispatched at 12:00:00.125
    assert history["ok@1741435260000.1"] == 0.0  # 12:01, on time
    assert history["flaky@1741435200000.2"] == 10.125  # the retry: 10 s after the first attempt ended
    assert all(r.lateness is None for r in sched.history("slow") if r.status is RunStatus.SKIPPED)


@pytest.mark.slow
def test_schedcore_run_log_format_json_is_one_object_per_line(tmp_path: Path) -> None:
    """The real command: ``schedcore --log-format json run`` logs each event as one JSON line."""
    schedules = tmp_path / "schedules.toml"
    schedules.write_text('[[schedule]]\nid = "tick"\ntask = "schedcore.demo:hello"\nevery = 1\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDCORE_")}
    env.update(SCHEDCORE_PROMETHEUS_PORT="off")  # the example plugin, if installed, serves nothing
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "schedcore.cli",
            "--log-level",
            "debug",
            "--log-format",
            "json",
            "run",
            "--config",
            str(schedules),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    succeeded = threading.Event()

    def read() -> None:  # on a thread, so that a silent process cannot block the test
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if '"event": "run_succeeded"' in line:
                succeeded.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert succeeded.wait(60), "no run_succeeded line within 60 s:\n" + "".join(lines)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()  # never leave it behind; the assertion below reports the hang
            proc.wait()
        reader.join(timeout=10)
        proc.stderr.close()
    assert proc.returncode == 0, "".join(lines)
    entries = [json.loads(line) for line in lines if line.strip()]  # every line is one JSON object
    events = Counter(entry.get("event") for entry in entries)
    for event in ("scheduler_started", "schedule_added", "run_dispatched", "run_succeeded", "scheduler_stopped"):
        assert events[event] >= 1, (event, "".join(lines))
    assert events["scheduler_started"] == events["scheduler_stopped"] == 1
    dispatched = next(entry for entry in entries if entry.get("event") == "run_dispatched")
    assert dispatched["schedule_id"] == "tick" and dispatched["run_id"].startswith("tick@")
    assert dispatched["nominal"].endswith("Z") and 0 <= dispatched["lateness"] < 5
    assert dispatched["logger"] == "schedcore.scheduler" and dispatched["level"] == "DEBUG"


def test_levels_quiet_when_healthy_loud_when_failing(
    scenario: tuple[Scheduler, Recorder, list[logging.LogRecord]],
) -> None:
    """At the default level a healthy run says nothing; at ``warning`` a failing task still shows."""
    _, _, records = scenario
    logged = by_event(records)
    assert {r.levelno for r in logged["run_dispatched"] + logged["run_succeeded"]} == {logging.DEBUG}
    assert {r.levelno for r in logged["run_failed"]} == {logging.WARNING}
    assert {r.levelno for r in logged["run_exhausted"]} == {logging.ERROR}
