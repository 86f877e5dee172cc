"""The engine on the memory store, in simulated time (plus a few real-clock loop tests)."""

from __future__ import annotations

import functools
import itertools
import logging
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import pytest

from schedcore import _planner
from schedcore.clock import FakeClock
from schedcore.exceptions import (
    CorruptScheduleData,
    ExecutorError,
    ScheduleExists,
    ScheduleNotFound,
    StoreUnavailable,
    ValidationError,
)
from schedcore.executors import ExecutorBase, LocalExecutor
from schedcore.hookspecs import hookimpl
from schedcore.memory import MemoryStore
from schedcore.model import RetryPolicy, Schedule
from schedcore.plugins import get_plugin_manager
from schedcore.records import AddResult, OutcomeStatus, PendingKind, Run, RunStatus
from schedcore.scheduler import Scheduler
from schedcore.storekit import StoreBase
from schedcore.testing import tasks
from schedcore.testing.executors import CallbackExecutor, Result
from schedcore.testing.factories import NOOP, T0, at
from schedcore.testing.simulation import Simulation
from schedcore.triggers import At, Cron, Interval

MINUTE = Interval(60, start=T0)


class Recorder:
    """A plugin recording lifecycle hooks as (name, detail) pairs."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    @hookimpl
    def schedcore_scheduler_started(self, scheduler: Any) -> None:
        self.events.append(("started", None))

    @hookimpl
    def schedcore_scheduler_stopped(self, scheduler: Any) -> None:
        self.events.append(("stopped", None))

    @hookimpl
    def schedcore_schedule_added(self, scheduler: Any, schedule: Schedule, result: str) -> None:
        self.events.append(("added", (schedule.id, result)))

    @hookimpl
    def schedcore_schedule_removed(self, scheduler: Any, schedule_id: str) -> None:
        self.events.append(("removed", schedule_id))

    @hookimpl
    def schedcore_schedule_paused(self, scheduler: Any, schedule_id: str) -> None:
        self.events.append(("paused", schedule_id))

    @hookimpl
    def schedcore_schedule_resumed(self, scheduler: Any, schedule_id: str, next_fire: datetime | None) -> None:
        self.events.append(("resumed", (schedule_id, next_fire)))

    @hookimpl
    def schedcore_run_dispatched(self, scheduler: Any, run: Run, record: Any) -> None:
        self.events.append(("dispatched", run.id))

    @hookimpl
    def schedcore_run_succeeded(self, scheduler: Any, outcome: Any) -> None:
        self.events.append(("succeeded", outcome.run_id))

    @hookimpl
    def schedcore_run_failed(self, scheduler: Any, outcome: Any) -> None:
        self.events.append(("failed", outcome.run_id))

    @hookimpl
    def schedcore_run_retry_scheduled(self, scheduler: Any, outcome: Any, retry_at: datetime, attempt: int) -> None:
        self.events.append(("retry", (outcome.run_id, retry_at, attempt)))

    @hookimpl
    def schedcore_run_exhausted(self, scheduler: Any, outcome: Any) -> None:
        self.events.append(("exhausted", outcome.run_id))

    @hookimpl
    def schedcore_misfire_skipped(self, scheduler: Any, schedule_id: str, nominal: datetime, reason: str) -> None:
        self.events.append(("skipped", (schedule_id, nominal, reason)))

    def named(self, name: str) -> list[Any]:
        return [detail for event, detail in self.events if event == name]


def sched(id: str = "s", **changes: Any) -> Schedule:
    fields: dict[str, Any] = {"id": id, "task": NOOP, "trigger": MINUTE}
    fields.update(changes)
    return Schedule(**fields)


def sim_with(handler: Callable[[Run], Any] | None = None, **options: Any) -> tuple[Simulation, Recorder]:
    recorder = Recorder()
    pm = get_plugin_manager(entry_points=False, plugins=(recorder,))
    return Simulation.create(handler, start=T0, plugins=pm, **options), recorder


def seconds(instants: Sequence[datetime]) -> list[float]:
    return [(i - T0).total_seconds() for i in instants]


def dispatched_of(sim: Simulation, schedule_id: str) -> list[float]:
    return seconds([r.nominal for r in sim.executor.executed if r.schedule_id == schedule_id])


def dispatched(sim: Simulation, kind: PendingKind | None = None) -> list[float]:
    return seconds([r.nominal for r in sim.executor.executed if kind is None or r.kind is kind])


# -- definitions ------------------------------------------------------------------------------------


def test_add_get_list_remove_and_their_hooks() -> None:
    sim, rec = sim_with()
    s = sim.scheduler
    assert s.add(sched("a")) is AddResult.ADDED
    assert s.add(sched("a")) is AddResult.UNCHANGED
    assert s.add(sched("a", queue="other")) is AddResult.REPLACED
    assert s.add(sched("a"), conflict="keep") is AddResult.KEPT
    for i in range(150):
        s.add(sched(f"b{i:03d}"))
    stored = s.get("a")
    assert stored is not None and stored.next_fire is not None and stored.next_fire.nominal == T0
    assert len(s.list()) == 151 and s.list()[0].schedule.id == "a"
    assert s.remove("a") is True and s.remove("a") is False
    assert s.get("a") is None
    assert rec.named("added")[:4] == [("a", "added"), ("a", "unchanged"), ("a", "replaced"), ("a", "kept")]
    assert rec.named("removed") == ["a"]


def picky_scheduler() -> Scheduler:
    """A scheduler whose executor refuses schedules of any queue but "default"."""

    class Picky(CallbackExecutor):
        def validate(self, schedule: Schedule) -> None:
            if schedule.queue != "default":
                raise ValidationError("queue", schedule.queue, "unknown queue")

    return Scheduler(MemoryStore(), Picky(), clock=FakeClock(T0), plugins=get_plugin_manager(entry_points=False))


def test_add_rejects_what_the_executor_rejects() -> None:
    s = picky_scheduler()
    with pytest.raises(ValidationError):
        s.add(sched(queue="nope"))
    assert s.get("s") is None


class _OneAtATime:
    """A store with :class:`StoreBase`'s default ``add_many`` (one ``add`` per item): a
    MemoryStore whose own batched ``add_many`` is not used."""

    def __init__(self) -> None:
        self.inner = MemoryStore()
        self.adds: list[str] = []

    def add(self, schedule: Schedule, first: Any, conflict: Any) -> AddResult:
        self.adds.append(schedule.id)
        return self.inner.add(schedule, first, conflict)

    def add_many(self, items: Sequence[tuple[Schedule, Any]], conflict: Any) -> list[AddResult]:
        return StoreBase.add_many(self, items, conflict)  # type: ignore[arg-type]  # the default, on this proxy

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _mixed(sim: Simulation) -> list[Schedule]:
    """Store a few schedules in ``sim``; return a batch meeting them in every way add knows."""
    s = sim.scheduler
    s.add(sched("same"))
    s.add(sched("args"))
    s.add(sched("timing"))
    s.add(sched("paused", paused=True))
    s.add(sched("capped", max_runs=1))
    sim.run_until(at(60))  # "capped" has run out of runs, the others have a run behind them
    return [
        sched("new"),
        sched("same"),
        sched("args", args=(1,)),
        sched("timing", trigger=Interval(90, start=T0)),
        sched("paused"),
        sched("capped", max_runs=1, args=(1,)),
        sched("more", max_runs=5),
        sched("jittered", jitter=30),
        sched("jittered2", jitter=30),
        sched("windowed", start_at=at(600), end_at=at(900)),
        sched("cron", trigger=Cron("*/5 * * * *")),
        sched("cron2", trigger=Cron("*/5 * * * *")),
        sched("gone", trigger=At(at(10))),
    ]


@pytest.mark.parametrize("conflict", ["replace", "keep"])
def test_add_many_does_what_add_does_for_each(conflict: str, caplog: pytest.LogCaptureFixture) -> None:
    one, one_rec = sim_with()
    many, many_rec = sim_with()
    batch = _mixed(one)
    assert _mixed(many) == batch
    expected = [one.scheduler.add(schedule, conflict) for schedule in batch]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="schedcore"):
        assert many.scheduler.add_many(iter(batch), conflict) == expected
    added = [(r.schedule_id, r.result) for r in caplog.records if getattr(r, "event", None) == "schedule_added"]
    assert added == [(schedule.id, result.value) for schedule, result in zip(batch, expected, strict=True)]
    assert many_rec.named("added") == one_rec.named("added")
    assert many.scheduler.list() == one.scheduler.list()
    one.run_until(at(3600))
    many.run_until(at(3600))
    assert many.executor.executed == one.executor.executed


def test_add_many_checks_every_schedule_before_writing() -> None:
    s = picky_scheduler()
    with pytest.raises(ValidationError):
        s.add_many([sched("a"), sched("b", queue="nope"), sched("c")])
    with pytest.raises(TypeError):
        s.add_many([sched("a"), "b"])  # type: ignore[list-item]
    with pytest.raises(ValidationError) as info:
        s.add_many([sched("a"), sched("b"), sched("a", args=(1,))])
    assert (info.value.field, info.value.value) == ("id", "a")
    with pytest.raises(ValueError):
        s.add_many([sched("a")], conflict="sometimes")
    assert s.list() == []
    assert s.add_many([]) == []


def test_add_many_with_conflict_error_writes_nothing_when_an_id_is_taken() -> None:
    for store in (MemoryStore(), _OneAtATime()):
        sim, rec = sim_with(store=store)
        sim.scheduler.add(sched("b"))
        with pytest.raises(ScheduleExists):
            sim.scheduler.add_many([sched("a"), sched("b", args=(1,)), sched("c")], conflict="error")
        assert [s.schedule for s in sim.scheduler.list()] == [sched("b")]
        assert rec.named("added") == [("b", "added")]
        assert sim.scheduler.add_many([sched("a"), sched("c")], conflict="error") == [AddResult.ADDED] * 2


def test_add_many_falls_back_to_add_on_a_store_without_it() -> None:
    store = _OneAtATime()
    sim, rec = sim_with(store=store)
    sim.scheduler.add(sched("a"))
    results = sim.scheduler.add_many([sched("a", args=(1,)), sched("b"), sched("a2", paused=True)])
    assert results == [AddResult.REPLACED, AddResult.ADDED, AddResult.ADDED]
    assert store.adds == ["a", "a", "b", "a2"]
    assert rec.named("added")[1:] == [("a", "replaced"), ("b", "added"), ("a2", "added")]
    sim.run_until(at(60))
    assert dispatched(sim) == [0, 0, 60, 60]


def test_default_components() -> None:
    s = Scheduler(plugins=get_plugin_manager(entry_points=False))
    assert isinstance(s.store, MemoryStore) and isinstance(s.executor, LocalExecutor)
    assert s.owner


def test_plugins_may_be_given_as_objects() -> None:
    rec = Recorder()
    s = Scheduler(MemoryStore(), CallbackExecutor(clock=FakeClock(T0)), clock=FakeClock(T0), plugins=[rec])
    s.add(sched())
    assert rec.named("added") == [("s", "added")]


def test_lifecycle_events_are_logged_with_structured_fields(caplog: pytest.LogCaptureFixture) -> None:
    sim, _ = sim_with(lambda run: OutcomeStatus.FAILED)
    with caplog.at_level(logging.DEBUG, logger="schedcore"):
        sim.scheduler.add(sched(trigger=At(at(1)), retry=RetryPolicy(max_attempts=2, initial_delay=1)))
        sim.run_until(at(10))
    events = [(r.event, getattr(r, "run_id", None)) for r in caplog.records if hasattr(r, "event")]  # type: ignore[attr-defined]
    assert events == [
        ("schedule_added", None),
        ("run_dispatched", "s@1735689601000.1"),
        ("schedule_finished", None),
        ("run_failed", "s@1735689601000.1"),
        ("run_retry_scheduled", "s@1735689601000.1"),
        ("run_dispatched", "s@1735689601000.2"),
        ("run_failed", "s@1735689601000.2"),
        ("run_exhausted", "s@1735689601000.2"),
    ]
    dispatched = next(r for r in caplog.records if getattr(r, "event", None) == "run_dispatched")
    assert dispatched.levelno == logging.DEBUG and dispatched.name.startswith("schedcore")
    assert dispatched.schedule_id == "s" and dispatched.lateness == 0  # type: ignore[attr-defined]


# -- firing ----------------------------------------------------------------------------------------


def test_fires_every_occurrence_on_time() -> None:
    sim, rec = sim_with()
    sim.scheduler.add(sched())
    sim.run_until(at(300))
    assert dispatched(sim) == [0, 60, 120, 180, 240, 300]
    history = sim.scheduler.history("s", 100)
    assert all(r.lateness == 0 for r in history)
    assert [r.status for r in history] == [RunStatus.SUCCEEDED] * 6
    assert len(rec.named("dispatched")) == 6 and len(rec.named("succeeded")) == 6


def test_loop_sleeps_until_the_next_due_instant() -> None:
    sim, _ = sim_with()
    sim.scheduler.add(sched(trigger=Interval(3600, start=T0)))
    ticks = sim.run_until(at(10 * 3600))
    assert ticks <= 2 * 11 + 1  # about one tick per occurrence, never polling


def test_cron_schedules_fire() -> None:
    sim, _ = sim_with()
    sim.scheduler.add(sched(trigger=Cron("*/15 * * * *")))
    sim.run_until(at(3600))
    assert dispatched(sim) == [0, 900, 1800, 2700, 3600]


@pytest.mark.parametrize(
    ("catchup", "expected"),
    [
        ("skip", [0, 60, 660]),
        ("latest", [0, 60, 600, 660]),
        ("all", [0, 60, 120, 180, 240, 300, 360, 420, 480, 540, 600, 660]),
    ],
)
def test_catchup_after_downtime(catchup: str, expected: list[float]) -> None:
    sim, rec = sim_with()
    sim.scheduler.add(sched(catchup=catchup, misfire_grace=30))
    sim.run_until(at(660), downtime=[(at(90), at(640))])  # 600 is 40 s late
    assert dispatched(sim) == expected
    skipped = {n for _, n, reason in rec.named("skipped") if reason == "catchup"}
    assert skipped == {at(s) for s in range(0, 661, 60)} - {at(e) for e in expected}


def test_jitter_delays_within_the_gap() -> None:
    sim, _ = sim_with()
    sim.scheduler.add(sched(jitter=45))
    sim.run_until(at(600))
    history = sim.scheduler.history("s", 100)
    assert len(history) == 10  # the one at 600 is jittered past 600
    assert all(0 <= (r.lateness or 0) < 45 for r in history)
    assert all(r.dispatched_at == r.due for r in history)
    assert len({r.lateness for r in history}) > 3


def test_start_at_end_at_and_max_runs() -> None:
    sim, _ = sim_with()
    sim.scheduler.add(sched("win", start_at=at(100), end_at=at(400)))
    sim.scheduler.add(sched("max", max_runs=3))
    sim.run_until(at(1000))
    assert seconds([r.nominal for r in sim.executor.executed if r.schedule_id == "win"]) == [120, 180, 240, 300, 360]
    assert seconds([r.nominal for r in sim.executor.executed if r.schedule_id == "max"]) == [0, 60, 120]
    for sid in ("win", "max"):
        stored = sim.scheduler.get(sid)
        assert stored is not None and stored.next_fire is None


def test_one_shot_just_past_fires_once_at_the_next_dispatch(caplog: pytest.LogCaptureFixture) -> None:
    sim, _ = sim_with()
    sim.clock.set(at(10))
    assert sim.scheduler.add(sched("late", trigger=At(at(9.99)))) is AddResult.ADDED  # 10 ms late: on time
    assert sim.scheduler.add(sched("soon", trigger=At(at(20)))) is AddResult.ADDED
    stored = sim.scheduler.get("late")
    assert stored is not None and stored.next_fire is not None and stored.next_fire.due == at(9.99)
    sim.run_until(at(100))
    assert [(r.schedule_id, r.nominal) for r in sim.executor.executed] == [("late", at(9.99)), ("soon", at(20))]
    assert [r.dispatched_at for r in sim.scheduler.history("late")] == [at(10)]  # at once, not at the next poll
    assert "schedule_expired" not in {getattr(r, "event", None) for r in caplog.records}


def test_one_shot_past_its_grace_is_reported_expired_and_never_fires(caplog: pytest.LogCaptureFixture) -> None:
    sim, _ = sim_with()
    sim.clock.set(at(100))
    caplog.set_level(logging.WARNING, logger="schedcore.scheduler")
    assert sim.scheduler.add(sched("old", trigger=At(at(30)), misfire_grace=60)) is AddResult.EXPIRED
    [line] = [r for r in caplog.records if getattr(r, "event", None) == "schedule_expired"]
    assert line.levelno == logging.WARNING and line.schedule_id == "old"  # type: ignore[attr-defined]
    assert "old will never fire" in line.getMessage() and "misfire_grace (60s)" in line.getMessage()
    # the same definition again: nothing is written, nothing to report
    assert sim.scheduler.add(sched("old", trigger=At(at(30)), misfire_grace=60)) is AddResult.UNCHANGED
    # add_many says it per schedule
    batch = [sched("a", trigger=At(at(0))), sched("b", trigger=At(at(50))), sched("c", trigger=At(at(200)))]
    assert sim.scheduler.add_many(batch) == [AddResult.EXPIRED, AddResult.ADDED, AddResult.ADDED]
    sim.run_until(at(300))
    assert [r.schedule_id for r in sim.executor.executed] == ["b", "c"]


def test_replacing_a_pending_one_shot_past_its_grace_keeps_its_entry() -> None:
    """A replace of the same timing keeps the fire entry: it will still fire, so not EXPIRED."""
    sim, _ = sim_with()
    assert sim.scheduler.add(sched("x", trigger=At(at(30)))) is AddResult.ADDED
    sim.clock.set(at(500))  # the scheduler was down: the entry is still in the index
    assert sim.scheduler.add(sched("x", trigger=At(at(30)), args=(1,))) is AddResult.REPLACED
    sim.run_until(at(600))
    assert [r.args for r in sim.executor.executed] == [(1,)]  # catch-up latest runs it late
    assert sim.scheduler.add(sched("x", trigger=At(at(30)), args=(2,))) is AddResult.EXPIRED  # fired: never again


def test_resumed_one_shot_does_not_run_what_fell_in_the_pause() -> None:
    sim, _ = sim_with()
    sim.scheduler.add(sched("p", trigger=At(at(30)), paused=True))
    sim.clock.set(at(31))
    sim.scheduler.resume("p")
    sim.run_until(at(100))
    assert sim.executor.executed == []


# -- overlap ---------------------------------------------------------------------------------------


def test_overlap_skip_skips_while_running() -> None:
    sim, rec = sim_with(lambda run: Result(duration=90))
    sim.scheduler.add(sched(overlap="skip"))
    sim.run_until(at(300))
    assert dispatched(sim) == [0, 120, 240]
    assert [seconds([n])[0] for _, n, reason in rec.named("skipped") if reason == "overlap"] == [60, 180, 300]


def test_overlap_buffer_one_runs_one_held_occurrence_after_the_running_one() -> None:
    sim, rec = sim_with(lambda run: Result(duration=150))
    sim.scheduler.add(sched(overlap="buffer_one"))
    sim.run_until(at(600))
    runs = sim.executor.executed
    starts = [r for r in sim.scheduler.history("s", 100) if r.status is not RunStatus.SKIPPED]
    starts.sort(key=lambda r: r.dispatched_at or T0)
    for a, b in itertools.pairwise(starts):  # never two at once
        assert a.dispatched_at is not None and b.dispatched_at is not None
        assert b.dispatched_at >= a.dispatched_at + timedelta(seconds=150)
    assert runs[0].kind is PendingKind.FIRE and runs[1].kind is PendingKind.BUFFERED
    assert seconds([runs[1].nominal]) == [60] and runs[1].due == at(60)
    assert {reason for _, _, reason in rec.named("skipped")} == {"overlap"}


def test_overlap_allow_overlaps() -> None:
    sim, _ = sim_with(lambda run: Result(duration=150))
    sim.scheduler.add(sched(overlap="allow"))
    sim.run_until(at(300))
    assert dispatched(sim) == [0, 60, 120, 180, 240, 300]


# -- retries --------------------------------------------------------------------------------------


def test_failed_runs_are_retried_with_backoff_until_exhausted() -> None:
    def handler(run: Run) -> None:
        raise RuntimeError(f"attempt {run.attempt}")

    sim, rec = sim_with(handler)
    policy = RetryPolicy(max_attempts=3, initial_delay=10, factor=2)
    sim.scheduler.add(sched(trigger=At(T0), retry=policy))
    sim.run_until(at(100))
    runs = sim.executor.executed
    assert [(r.attempt, r.kind) for r in runs] == [
        (1, PendingKind.FIRE),
        (2, PendingKind.RETRY),
        (3, PendingKind.RETRY),
    ]
    assert [r.due for r in runs] == [T0, at(10), at(30)]
    assert [(attempt, retry_at) for _, retry_at, attempt in rec.named("retry")] == [(2, at(10)), (3, at(30))]
    assert rec.named("exhausted") == ["s@1735689600000.3"]
    history = sim.scheduler.history("s")
    assert history[0].error == "RuntimeError: attempt 3" and history[0].status is RunStatus.FAILED
    assert history[1].retry_at == at(30)


def test_a_retry_succeeds() -> None:
    sim, rec = sim_with(lambda run: None if run.attempt == 2 else OutcomeStatus.LOST)
    sim.scheduler.add(sched(trigger=At(T0), retry=RetryPolicy(max_attempts=5, initial_delay=1)))
    sim.run_until(at(100))
    assert [r.attempt for r in sim.executor.executed] == [1, 2]
    assert rec.named("succeeded") == ["s@1735689600000.2"] and rec.named("exhausted") == []


def test_stopped_runs_are_not_retried() -> None:
    sim, rec = sim_with(lambda run: OutcomeStatus.STOPPED)
    sim.scheduler.add(sched(trigger=At(T0), retry=RetryPolicy(max_attempts=5, initial_delay=1)))
    sim.run_until(at(100))
    assert len(sim.executor.executed) == 1
    assert rec.named("failed") == ["s@1735689600000.1"] and rec.named("retry") == [] and rec.named("exhausted") == []


def test_duplicate_outcome_reports_emit_nothing() -> None:
    sim, rec = sim_with()
    sim.scheduler.add(sched(trigger=At(T0)))
    sim.run_until(at(1))
    [outcome] = sim.executor.outcomes
    sim.scheduler._report(outcome)  # a repeat, as the protocol allows
    sim.run_until(at(2))
    assert rec.named("succeeded") == ["s@1735689600000.1"]


def test_a_task_that_cannot_be_imported_fails_is_retried_and_the_loop_survives() -> None:
    clock = FakeClock(T0)
    store = MemoryStore()
    pm = get_plugin_manager(entry_points=False)
    tasks.reset()
    policy = RetryPolicy(max_attempts=2, initial_delay=5)
    first = Scheduler(store, LocalExecutor(clock=clock), clock=clock, plugins=pm)
    first.add(sched("broken", task="no_such_module_abc:job", trigger=At(T0), retry=policy))
    first.add(sched("fine", task="schedcore.testing.tasks:record", args=["ok"], trigger=Interval(5, start=T0)))
    first.run(burst=True)
    [failed] = first.history("broken")
    assert failed.status is RunStatus.FAILED and failed.error is not None
    assert failed.error.startswith("ImportError:") and failed.retry_at == at(5)
    clock.set(at(5))
    second = Scheduler(store, LocalExecutor(clock=clock), clock=clock, plugins=pm)
    second.run(burst=True)
    assert [r.attempt for r in second.history("broken")] == [2, 1]
    assert second.history("broken")[0].status is RunStatus.FAILED and second.history("broken")[0].retry_at is None
    assert tasks.CALLS == [(("ok",), {}), (("ok",), {})]


# -- pause, resume, trigger_now, backfill ----------------------------------------------------------


def test_pause_and_resume_skip_the_paused_occurrences() -> None:
    sim, rec = sim_with()
    sim.scheduler.add(sched())
    sim.run_until(at(90))
    sim.scheduler.pause("s")
    sim.scheduler.pause("s")  # already paused: no second event
    stored = sim.scheduler.get("s")
    assert stored is not None and stored.schedule.paused and stored.next_fire is None
    sim.run_until(at(330))
    sim.scheduler.resume("s")
    sim.scheduler.resume("s")  # not paused any more: nothing changes
    sim.run_until(at(500))
    assert dispatched(sim) == [0, 60, 360, 420, 480]
    assert rec.named("paused") == ["s"] and rec.named("resumed") == [("s", at(360))]
    with pytest.raises(ScheduleNotFound):
        sim.scheduler.pause("nope")
    with pytest.raises(ScheduleNotFound):
        sim.scheduler.resume("nope")


def test_trigger_now_runs_once_outside_the_timing() -> None:
    sim, _ = sim_with()
    sim.scheduler.add(sched(max_runs=2))
    sim.run_until(at(30))
    run_id = sim.scheduler.trigger_now("s")
    sim.run_until(at(200))
    manual = [r for r in sim.executor.executed if r.kind is PendingKind.MANUAL]
    assert [r.id for r in manual] == [run_id] and manual[0].due == at(30)
    assert dispatched(sim, PendingKind.FIRE) == [0, 60]  # a manual run does not count toward max_runs
    with pytest.raises(ScheduleNotFound):
        sim.scheduler.trigger_now("nope")


def test_trigger_now_at_an_occurrence_instant_gets_its_own_run_id() -> None:
    sim, _ = sim_with()
    sim.scheduler.add(sched())
    ids = {sim.scheduler.trigger_now("s"), sim.scheduler.trigger_now("s")}
    sim.run_until(at(0))
    executed = sim.executor.executed_ids()
    assert len(ids) == 2 and len(executed) == 3 and len(set(executed)) == 3


def test_backfill_runs_the_missing_occurrences_only() -> None:
    sim, _ = sim_with()
    sim.scheduler.add(sched(catchup="skip", misfire_grace=0))
    sim.run_until(at(600), downtime=[(at(150), at(450))])
    assert dispatched(sim, PendingKind.FIRE) == [0, 60, 120, 480, 540, 600]
    added = sim.scheduler.backfill("s", T0, at(10_000))  # the end is capped at now
    assert added == 5
    sim.run_until(at(601))
    assert dispatched(sim, PendingKind.BACKFILL) == [180, 240, 300, 360, 420]
    assert sim.scheduler.backfill("s", T0, at(600)) == 0
    sim.scheduler.add(sched("dense", trigger=Interval(1)))
    with pytest.raises(ValidationError):
        sim.scheduler.backfill("dense", T0 - timedelta(days=1), at(600))  # too many occurrences


# -- robustness ------------------------------------------------------------------------------------


def test_executor_unavailable_releases_the_claims_and_backs_off() -> None:
    sim, _ = sim_with()
    sim.scheduler.add(sched())
    sim.executor.unavailable = True
    wake = sim.scheduler.tick()
    assert wake is not None and wake > T0
    stored = sim.scheduler.get("s")
    assert stored is not None and stored.next_fire is not None and stored.next_fire.nominal == T0
    sim.executor.unavailable = False
    sim.run_until(at(60))
    assert dispatched(sim) == [0, 60]


def test_run_backs_off_from_an_unavailable_executor_without_spinning() -> None:
    clock = FakeClock(T0)
    executor = CallbackExecutor(clock=clock)
    executor.unavailable = True
    attempts: list[datetime] = []
    submit = executor.submit

    def counting_submit(runs: Sequence[Run]) -> None:
        attempts.append(clock.now())
        submit(runs)

    executor.submit = counting_submit  # type: ignore[method-assign]
    s = Scheduler(MemoryStore(), executor, clock=clock, plugins=get_plugin_manager(entry_points=False))
    s.add(sched())
    clock.call_at(at(100), s.stop)
    s.run()
    assert seconds(attempts) == [0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5, 61.5, 91.5]


@attrs.define
class FlakyStore:
    """A MemoryStore whose time index fails while ``down`` is set."""

    inner: MemoryStore
    down: bool = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name in ("claim_due", "next_due", "record_outcome", "record_outcomes", "commit") and self.down:

            def fail(*args: Any, **kwargs: Any) -> Any:
                raise StoreUnavailable("connection refused")

            return fail
        return attr


def test_store_outage_backs_off_exponentially_and_recovers() -> None:
    store = FlakyStore(MemoryStore())
    sim, _ = sim_with(store=store)
    sim.scheduler.add(sched())
    store.down = True
    delays = []
    for _ in range(8):
        wake = sim.scheduler.tick()
        assert wake is not None
        delays.append((wake - sim.clock.now()).total_seconds())
        sim.clock.set(wake)
    assert delays == [0.5, 1, 2, 4, 8, 16, 30, 30]
    store.down = False
    sim.run_until(sim.clock.now() + timedelta(seconds=60))
    # back at 91.5 s: 0 is missed by more than the grace, 60 is on time (catch-up "latest")
    assert dispatched(sim)[:2] == [60, 120]


@attrs.define
class CallLog:
    """A MemoryStore that logs its time-index calls (and, through :func:`_five_due`, the
    executor's hand-overs); ``fail_commits`` makes that many commits raise."""

    inner: MemoryStore
    calls: list[str] = attrs.field(factory=list)
    fail_commits: int = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in ("claim_due", "claim_due_nowait", "commit", "commit_and_next_due", "release"):
            return attr

        def logged(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            if name.startswith("commit") and self.fail_commits:
                self.fail_commits -= 1
                raise StoreUnavailable("connection reset")
            return attr(*args, **kwargs)

        return logged


def _five_due(batch: int, store: CallLog) -> Simulation:
    sim = Simulation.create(
        lambda run: Result(duration=60),  # no outcome during the tick: it would make the loop claim again
        start=T0,
        plugins=get_plugin_manager(entry_points=False),
        store=store,
        batch_size=batch,
    )
    submit = sim.executor.submit

    def logged_submit(runs: Sequence[Run]) -> None:
        store.calls.append("submit")
        submit(runs)

    sim.executor.submit = logged_submit  # type: ignore[method-assign]  # submit_nowait calls it too
    for i in range(5):
        sim.scheduler.add(sched(f"s{i}", trigger=At(T0)))
    return sim


def _claimable_now(store: MemoryStore) -> list[str]:
    """Ids of the entries another scheduler could claim now (not held under a lease)."""
    return sorted(c.schedule_id for c in store.claim_due(T0, limit=100, lease=timedelta(seconds=30), owner="other"))


def test_the_next_batch_is_claimed_before_the_runs_are_handed_over_and_planned_while_they_travel() -> None:
    store = CallLog(MemoryStore())
    sim = _five_due(2, store)
    planned: list[str] = []
    plan_batch = sim.scheduler._plan_batch

    def logged_plan_batch(claims: Any, now: Any, earlier: Any) -> Any:
        planned.append(f"{len(store.calls)}:" + ",".join(c.schedule_id for c in claims))
        return plan_batch(claims, now, earlier)

    sim.scheduler._plan_batch = logged_plan_batch  # type: ignore[method-assign]
    sim.scheduler.tick()
    # the last batch (one claim) is short: committed with the next due instant, nothing claimed ahead
    assert store.calls == [
        *("claim_due", "claim_due_nowait", "submit", "commit"),
        *("claim_due_nowait", "submit", "commit"),
        *("submit", "commit_and_next_due"),
    ]
    # each batch after the first is planned once, after its claim and the hand-over were sent
    assert planned == ["1:s0,s1", "3:s2,s3", "6:s4"]
    assert sorted(r.schedule_id for r in sim.executor.submitted) == [f"s{i}" for i in range(5)]
    assert all(s.next_fire is None for s in sim.scheduler.list())


def test_an_executor_with_the_default_submit_nowait_is_driven_like_any_other() -> None:
    """ExecutorBase's submit_nowait hands over at once: the engine takes its one path (the
    next batch claimed before this one is committed), and the runs go through ``submit``."""
    store = CallLog(MemoryStore())
    sim = _five_due(2, store)
    sim.executor.submit_nowait = functools.partial(ExecutorBase.submit_nowait, sim.executor)  # type: ignore[method-assign]
    sim.scheduler.tick()
    assert store.calls == [
        *("claim_due", "claim_due_nowait", "submit", "commit"),
        *("claim_due_nowait", "submit", "commit"),
        *("submit", "commit_and_next_due"),
    ]
    assert sorted(r.schedule_id for r in sim.executor.submitted) == [f"s{i}" for i in range(5)]


def test_a_failed_background_hand_over_releases_its_batch_and_the_one_claimed_ahead() -> None:
    store = CallLog(MemoryStore())
    sim = _five_due(2, store)
    sim.executor.nowait_fails = True
    wake = sim.scheduler.tick()
    assert wake is not None and wake > T0  # backing off
    assert store.calls == ["claim_due", "claim_due_nowait", "submit", "release"]
    assert _claimable_now(store.inner) == [f"s{i}" for i in range(5)]  # nothing left under a lease


def test_a_failed_commit_releases_the_batch_claimed_ahead() -> None:
    store = CallLog(MemoryStore(), fail_commits=1)
    sim = _five_due(2, store)
    wake = sim.scheduler.tick()
    assert wake is not None and wake > T0
    assert store.calls == ["claim_due", "claim_due_nowait", "submit", "commit", "release"]
    # the first batch stays leased (its runs were handed over: the lease paces the retry);
    # the batch claimed ahead is back in the index at once
    first = sorted(r.schedule_id for r in sim.executor.submitted)
    assert len(first) == 2
    assert _claimable_now(store.inner) == sorted({f"s{i}" for i in range(5)} - set(first))


def test_stopping_gives_back_the_batch_claimed_ahead() -> None:
    store = CallLog(MemoryStore())
    sim = _five_due(2, store)
    submit = sim.executor.submit

    def submit_then_stop(runs: Sequence[Run]) -> None:
        submit(runs)
        sim.scheduler.stop()

    sim.executor.submit = submit_then_stop  # type: ignore[method-assign]
    sim.scheduler.tick()
    assert store.calls == ["claim_due", "claim_due_nowait", "submit", "commit", "release"]
    assert len(sim.executor.submitted) == 2
    assert len(_claimable_now(store.inner)) == 3


def test_outcomes_reported_during_an_outage_are_recorded_afterwards() -> None:
    store = FlakyStore(MemoryStore())
    sim, rec = sim_with(lambda run: Result(duration=10), store=store)
    sim.scheduler.add(sched(trigger=At(T0)))
    sim.scheduler.tick()
    store.down = True
    sim.clock.set(at(10))  # the run reports while the store is down
    assert sim.scheduler.tick() == at(10.5)
    store.down = False
    sim.scheduler.tick()
    assert [r.status for r in sim.scheduler.history("s")] == [RunStatus.SUCCEEDED]
    assert rec.named("succeeded") == ["s@1735689600000.1"]


def test_an_outcome_that_cannot_be_applied_does_not_block_the_others() -> None:
    @attrs.define
    class CorruptOnGet:
        inner: MemoryStore
        corrupt: str = "bad"

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def get(self, schedule_id: str) -> Any:
            if schedule_id == self.corrupt:
                raise CorruptScheduleData(schedule_id, "cannot decode")
            return self.inner.get(schedule_id)

    store = CorruptOnGet(MemoryStore())
    sim, _ = sim_with(lambda run: OutcomeStatus.FAILED, store=store)
    retry = RetryPolicy(max_attempts=2, initial_delay=1)
    sim.scheduler.add(sched("bad", trigger=At(T0), retry=retry))
    sim.scheduler.add(sched("good", trigger=At(T0), retry=retry))
    sim.run_until(at(10))
    assert [(r.run_id, r.status) for r in store.history("bad")] == [("bad@1735689600000.1", RunStatus.FAILED)]
    assert [r.attempt for r in store.history("good")] == [2, 1]


def test_run_survives_a_store_whose_watch_fails_at_first() -> None:
    tasks.reset()

    @attrs.define
    class BadWatch:
        inner: MemoryStore
        failures: int = 1

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def watch(self, callback: Callable[[datetime], None]) -> Callable[[], None]:
            if self.failures:
                self.failures -= 1
                raise StoreUnavailable("pubsub down")
            return self.inner.watch(callback)

    store = BadWatch(MemoryStore())
    s = Scheduler(store, LocalExecutor(), plugins=get_plugin_manager(entry_points=False))
    when = datetime.now(timezone.utc) + timedelta(seconds=0.1)
    s.add(sched("soon", task="schedcore.testing.tasks:record", args=["soon"], trigger=At(when)))
    loop = threading.Thread(target=s.run, daemon=True)
    loop.start()
    deadline = time.monotonic() + 10
    while not tasks.CALLS and time.monotonic() < deadline:
        time.sleep(0.01)
    s.stop()
    loop.join(10)
    assert tasks.CALLS == [(("soon",), {})] and not loop.is_alive() and store.failures == 0


def test_an_entry_the_store_will_not_hand_out_is_polled_not_spun_on() -> None:
    @attrs.define
    class Withholding:
        inner: MemoryStore

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def claim_due(self, now: datetime, **kwargs: Any) -> list[Any]:
            return []  # like a store skipping an undecodable schedule

    store = Withholding(MemoryStore())
    sim, _ = sim_with(store=store)
    sim.scheduler.add(sched())
    sim.clock.set(at(5))
    assert sim.scheduler.tick() == at(6)


@attrs.frozen
class BrokenAfterFirst:
    """A trigger that fires at 60 s and then breaks (a bad plugin trigger)."""

    def next_after(self, instant: datetime) -> datetime | None:
        if instant < at(60):
            return at(60)
        if instant == at(60):
            return at(120)
        raise RuntimeError("trigger bug")

    def to_dict(self) -> dict[str, Any]:
        return {"type": "broken"}

    def describe(self) -> str:
        return "broken"


def test_one_bad_schedule_does_not_stop_the_others() -> None:
    sim, _ = sim_with()
    sim.scheduler.add(sched("bad", trigger=BrokenAfterFirst()))
    sim.scheduler.add(sched("good"))
    sim.run_until(at(120))
    assert dispatched_of(sim, "good") == [0, 60, 120]
    assert dispatched_of(sim, "bad") == [60]  # its trigger broke when asked what follows 60 s


def test_a_failing_plugin_does_not_break_the_engine() -> None:
    class Broken:
        @hookimpl
        def schedcore_run_dispatched(self, scheduler: Any, run: Run, record: Any) -> None:
            raise RuntimeError("plugin bug")

    pm = get_plugin_manager(entry_points=False, plugins=(Broken(),))
    sim = Simulation.create(start=T0, plugins=pm)
    sim.scheduler.add(sched())
    sim.run_until(at(120))
    assert dispatched(sim) == [0, 60, 120]


# -- several schedulers, crashes -------------------------------------------------------------------


def test_two_schedulers_sharing_a_store_dispatch_each_occurrence_once() -> None:
    clock = FakeClock(T0)
    store = MemoryStore(history_limit=1000)
    executor = CallbackExecutor(clock=clock)
    pm = get_plugin_manager(entry_points=False)
    a = Scheduler(store, executor, clock=clock, plugins=pm, owner="a", batch_size=3)
    b = Scheduler(store, executor, clock=clock, plugins=pm, owner="b", batch_size=3)
    for i in range(10):
        a.add(sched(f"s{i}", trigger=Interval(60 + i, start=T0)))
    while clock.now() < at(600):
        wakes = [w for w in (a.tick(), b.tick(), a.tick()) if w is not None]
        clock.set(min(wakes))
    ids = [r.id for r in executor.submitted]
    assert len(ids) == len(set(ids))
    for i in range(10):
        expected = list(range(0, 600, 60 + i))
        assert seconds([r.nominal for r in executor.executed if r.schedule_id == f"s{i}"]) == expected


def test_a_claim_whose_lease_expired_is_redispatched_with_the_same_run_id_and_runs_once() -> None:
    clock = FakeClock(T0)
    store = MemoryStore()
    executor = CallbackExecutor(lambda run: Result(duration=60), clock=clock)
    pm = get_plugin_manager(entry_points=False)
    crashed = Scheduler(store, executor, clock=clock, plugins=pm, owner="crashed", lease=timedelta(seconds=30))
    crashed.add(sched())
    # What the crashed scheduler did: claim, plan, hand over -- and die before committing.
    [claim] = store.claim_due(T0, limit=10, lease=timedelta(seconds=30), owner="crashed")
    runs = _planner.plan(claim, T0).runs
    executor.submit(runs)
    survivor = Scheduler(store, executor, clock=clock, plugins=pm, owner="survivor")
    assert survivor.tick() == at(30)  # the lease expiry is the next thing due
    clock.set(at(30))
    survivor.tick()
    assert [r.id for r in executor.submitted] == [runs[0].id, runs[0].id]
    assert executor.executed_ids() == [runs[0].id]  # handed over twice, executed once
    [record] = store.history("s")
    assert (record.run_id, record.status, record.lateness) == (runs[0].id, RunStatus.DISPATCHED, 30)
    clock.set(at(60))  # the run finishes; the survivor records it
    survivor.tick()
    assert [(r.run_id, r.status) for r in store.history("s")] == [
        ("s@1735689660000.1", RunStatus.DISPATCHED),
        (runs[0].id, RunStatus.SUCCEEDED),
    ]


# -- the real loop ---------------------------------------------------------------------------------


def test_run_burst_returns_after_the_due_runs_finished() -> None:
    tasks.reset()
    now = datetime.now(timezone.utc)
    s = Scheduler(MemoryStore(), LocalExecutor(max_workers=2), plugins=get_plugin_manager(entry_points=False))
    s.add(sched("due", task="schedcore.testing.tasks:record", args=["due"], trigger=At(now + timedelta(seconds=0.05))))
    s.add(sched("later", task="schedcore.testing.tasks:record", args=["later"], trigger=At(now + timedelta(hours=1))))
    s.add(
        sched(
            "flaky",
            task="schedcore.testing.tasks:fail",
            trigger=At(now + timedelta(seconds=0.05)),
            retry=RetryPolicy(max_attempts=3, initial_delay=3600),
        )
    )
    time.sleep(0.06)
    s.run(burst=True)
    assert tasks.CALLS == [(("due",), {})]
    [flaky] = s.history("flaky")
    assert flaky.status is RunStatus.FAILED and flaky.retry_at is not None  # the retry is not waited for
    with pytest.raises(RuntimeError):
        s.run(burst=True)


def test_run_wakes_early_when_a_sooner_schedule_is_added_from_another_thread() -> None:
    tasks.reset()
    rec = Recorder()
    s = Scheduler(MemoryStore(), LocalExecutor(), plugins=get_plugin_manager(entry_points=False, plugins=(rec,)))
    now = datetime.now(timezone.utc)
    s.add(sched("far", trigger=At(now + timedelta(hours=1))))
    loop = threading.Thread(target=s.run, daemon=True)
    loop.start()
    try:
        deadline = time.monotonic() + 10
        while ("started", None) not in rec.events and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)  # the loop is asleep until the far schedule
        near = At(datetime.now(timezone.utc) + timedelta(seconds=0.2))  # At(now) would already be past
        s.add(sched("near", task="schedcore.testing.tasks:record", args=["near"], trigger=near))
        while not tasks.CALLS and time.monotonic() < deadline:
            time.sleep(0.01)
        assert tasks.CALLS == [(("near",), {})]
    finally:
        s.stop()
        loop.join(10)
    assert not loop.is_alive()
    assert rec.events[-1] == ("stopped", None)
    assert rec.named("succeeded") == [s.history("near")[0].run_id]


def test_sigterm_stops_run_cleanly(tmp_path: Any) -> None:
    script = tmp_path / "loop.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            from datetime import datetime, timedelta, timezone
            from schedcore import Scheduler, Schedule, Interval, MemoryStore, LocalExecutor
            from schedcore.hookspecs import hookimpl
            from schedcore.plugins import get_plugin_manager

            class Announce:
                @hookimpl
                def schedcore_run_succeeded(self, scheduler, outcome):
                    print("ran", flush=True)

                @hookimpl
                def schedcore_scheduler_stopped(self, scheduler):
                    print("stopped", flush=True)

            pm = get_plugin_manager(entry_points=False, plugins=(Announce(),))
            s = Scheduler(MemoryStore(), LocalExecutor(), plugins=pm)
            start = datetime.now(timezone.utc)
            s.add(Schedule(id="tick", task="schedcore.testing.tasks:noop",
                           trigger=Interval(0.2, start=start), catchup="skip"))
            s.run()
            print("exited", flush=True)
            """
        )
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ran"
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0
    lines = out.split()
    assert lines[-2:] == ["stopped", "exited"]


def test_the_signal_handler_never_waits_for_a_lock_its_own_thread_holds() -> None:
    """A signal can land while the main thread is inside one of the scheduler's Events
    (holding its non-reentrant lock); the handler must not set that Event itself."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        """
        import signal
        from schedcore import Scheduler
        from schedcore.testing.executors import CallbackExecutor
        sched = Scheduler(executor=CallbackExecutor())
        restore = sched._install_signal_handlers()
        handler = signal.getsignal(signal.SIGTERM)
        with sched._wake._cond:  # the main thread is inside Event.wait/set when the signal lands
            handler(signal.SIGTERM, None)
        sched._stopping.wait(5)
        restore()
        print("stopping" if sched.stopping else "not stopping")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "stopping"


def test_an_executor_error_retrying_does_not_cure_is_logged_at_error_and_still_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sim, _ = sim_with()
    sim.scheduler.add(sched())

    def refuse(runs: Sequence[Run]) -> None:
        raise ExecutorError("cannot hand runs to RQ: NoPermissionError: NOPERM -- retrying will not help")

    sim.executor.submit = refuse  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="schedcore"):
        wake = sim.scheduler.tick()
    assert wake is not None and wake > T0  # backing off, not raising
    [line] = [r for r in caplog.records if getattr(r, "event", None) == "backoff"]
    assert line.levelno == logging.ERROR and "executor error" in line.getMessage() and not line.exc_info
    assert sim.scheduler.get("s") is not None and sim.executor.submitted == []
