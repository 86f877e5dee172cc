"""When a run really started (``Outcome.started_at`` -> ``RunRecord.started_at``), beside when it
was handed over: the executors that report it, the record's codec, and the engine carrying it
from the executor to the history (start lateness, ``RunRecord.start_lateness``)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schedcore import Interval, Schedule, Scheduler
from schedcore.clock import FakeClock
from schedcore.executors import LocalExecutor
from schedcore.memory import MemoryStore
from schedcore.plugins import get_plugin_manager
from schedcore.records import Outcome, OutcomeStatus, Pending, PendingKind, Run, RunRecord, RunStatus
from schedcore.testing.executors import CallbackExecutor, Result
from schedcore.testing.factories import T0, at

_GATE = threading.Event()


def wait_for_the_gate() -> None:
    """A task that holds its worker thread until the test opens the gate."""
    assert _GATE.wait(30), "the test never opened the gate"


def make_run(task: Any, sid: str, nominal: float = 0) -> Run:
    schedule = Schedule(id=sid, task=task, trigger=Interval(60, start=T0))
    return Run.create(schedule, Pending(kind=PendingKind.FIRE, nominal=at(nominal), due=at(nominal), attempt=1))


def test_local_executor_stamps_the_start_when_a_thread_picks_the_run_up() -> None:
    # One worker thread: the second run waits in the pool's queue while the first holds the
    # thread, so it starts when the first finishes -- not when it was handed over.
    clock = FakeClock(T0)
    executor = LocalExecutor(max_workers=1, clock=clock)
    outcomes: list[Outcome] = []
    done = threading.Event()

    def report(outcome: Outcome) -> None:
        outcomes.append(outcome)
        if len(outcomes) == 2:
            done.set()

    _GATE.clear()
    executor.start(report)
    try:
        executor.submit([make_run(wait_for_the_gate, "first"), make_run(wait_for_the_gate, "second")])
        clock.advance(2.5)  # the first run holds the only thread for 2.5 simulated seconds
        _GATE.set()
        assert done.wait(30)
    finally:
        _GATE.set()
        executor.shutdown(wait=True)
    first, second = sorted(outcomes, key=lambda o: o.schedule_id)
    assert first.started_at == T0  # picked up at once
    assert second.started_at == T0 + timedelta(seconds=2.5)  # picked up when the thread came free
    assert second.started_at <= second.finished_at


def test_local_executor_reports_a_start_on_the_real_clock_too() -> None:
    executor = LocalExecutor(max_workers=1)
    outcomes: list[Outcome] = []
    executor.start(outcomes.append)
    before = datetime.now(timezone.utc) - timedelta(milliseconds=1)  # stamps are truncated to ms
    executor.submit([make_run("schedcore.testing.tasks:noop", "a"), make_run("schedcore.testing.tasks:fail", "b")])
    executor.shutdown(wait=True)
    assert len(outcomes) == 2
    for outcome in outcomes:  # failures started too: the start is stamped before the task is imported
        assert outcome.started_at is not None and before <= outcome.started_at <= outcome.finished_at


def test_callback_executor_starts_a_run_after_the_wait_it_was_given() -> None:
    clock = FakeClock(T0)
    executor = CallbackExecutor(lambda run: Result(waited=3, duration=2), clock=clock)
    executor.start(lambda outcome: None)
    executor.submit([make_run("schedcore.testing.tasks:noop", "a")])
    assert executor.outcomes == [] and executor.running  # still waiting for a worker
    clock.advance(10)
    [outcome] = executor.outcomes
    assert (outcome.started_at, outcome.finished_at) == (T0 + timedelta(seconds=3), T0 + timedelta(seconds=5))


def test_callback_executor_finish_keeps_the_runs_real_start() -> None:
    clock = FakeClock(T0)
    executor = CallbackExecutor(lambda run: Result(duration=3600), clock=clock)
    executor.start(lambda outcome: None)
    run = make_run("schedcore.testing.tasks:noop", "a")
    executor.submit([run])
    clock.advance(30)
    executor.finish(run.id)
    [outcome] = executor.outcomes
    assert (outcome.started_at, outcome.finished_at) == (T0, T0 + timedelta(seconds=30))


def test_history_has_both_latenesses_through_the_engine() -> None:
    clock = FakeClock(T0)
    executor = CallbackExecutor(lambda run: Result(waited=0.04, duration=1), clock=clock)
    scheduler = Scheduler(MemoryStore(), executor, clock=clock, plugins=get_plugin_manager(entry_points=False))
    scheduler.add(Schedule(id="s", task="schedcore.demo:hello", trigger=Interval(60, start=T0 + timedelta(seconds=60))))
    clock.advance(60.008)
    scheduler.tick()  # handed over 8 ms late; starts 40 ms after that
    clock.advance(5)
    scheduler.tick()  # the outcome is recorded
    [record] = scheduler.history("s")
    assert record.status is RunStatus.SUCCEEDED
    assert record.lateness == 0.008 and record.start_lateness == 0.048
    assert record.started_at == at(60.048) and record.finished_at == at(61.048)


def _record(**changes: Any) -> RunRecord:
    return RunRecord(
        run_id="s@0.1",
        kind=PendingKind.FIRE,
        nominal=T0,
        due=T0,
        attempt=1,
        status=RunStatus.SUCCEEDED,
        dispatched_at=T0 + timedelta(milliseconds=2),
        **changes,
    )


def test_record_round_trips_its_start_and_truncates_it_to_milliseconds() -> None:
    record = _record(started_at=T0 + timedelta(microseconds=12_345_678))
    assert record.started_at == T0 + timedelta(milliseconds=12_345)  # what stores keep
    data = record.to_dict()
    assert data["started_at"] == "2025-01-01T00:00:12.345+00:00"
    assert RunRecord.from_dict(data) == record
    assert record.lateness == 0.002 and record.start_lateness == 12.345


def test_record_written_before_the_field_existed_has_no_start() -> None:
    data = _record().to_dict()
    del data["started_at"]
    record = RunRecord.from_dict(data)
    assert record.started_at is None and record.start_lateness is None and record.lateness == 0.002


@given(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True),
        st.text(max_size=40),
        st.lists(st.integers(), max_size=3),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
        st.sampled_from(["2025-01-01T00:00:01", "9999-12-31T23:59:59.999+00:00", "2025-13-01T00:00:00Z", "Z"]),
    )
)
def test_a_hostile_start_reads_as_none_and_never_loses_the_record(value: Any) -> None:
    data = _record().to_dict()
    data["started_at"] = value
    record = RunRecord.from_dict(data)  # never raises over this field
    assert record.run_id == "s@0.1" and record.status is RunStatus.SUCCEEDED
    if record.started_at is not None:  # only a well-formed, aware ISO-8601 instant survives
        assert isinstance(value, str) and record.started_at.tzinfo is not None


def test_outcome_start_is_truncated_to_milliseconds_and_naive_is_refused() -> None:
    outcome = Outcome(
        run_id="s@0.1",
        schedule_id="s",
        nominal=T0,
        attempt=1,
        status=OutcomeStatus.SUCCEEDED,
        finished_at=T0 + timedelta(seconds=1),
        started_at=T0 + timedelta(microseconds=1999),
    )
    assert outcome.started_at == T0 + timedelta(milliseconds=1)
    with pytest.raises(TypeError):
        Outcome(
            run_id="s@0.1",
            schedule_id="s",
            nominal=T0,
            attempt=1,
            status=OutcomeStatus.SUCCEEDED,
            finished_at=T0,
            started_at=datetime(2025, 1, 1),
        )
