"""An outcome that overtakes the commit of its own hand-off.

With several schedulers sharing one executor backend (RQ), scheduler B can receive the
outcome of a run that scheduler A has handed over but not yet committed. The store
refuses it then (the run is not running yet); B must keep it and apply it once A's
commit lands -- otherwise the run stays "running" forever and blocks overlap and retries.
"""

from __future__ import annotations

from datetime import timedelta

from schedcore import FakeClock, MemoryStore, Scheduler
from schedcore.records import OutcomeStatus, RunStatus
from schedcore.testing.executors import CallbackExecutor
from schedcore.testing.factories import T0, commit_for, fire_entry, make_schedule, outcome_for, run_id
from schedcore.testing.simulation import _plugin_manager


def _setup() -> tuple[FakeClock, MemoryStore, Scheduler]:
    clock = FakeClock(T0)
    store = MemoryStore()
    scheduler_b = Scheduler(
        store=store, executor=CallbackExecutor(clock=clock), clock=clock, plugins=_plugin_manager(), owner="B"
    )
    return clock, store, scheduler_b


def test_an_outcome_reported_before_the_commit_is_applied_after_it() -> None:
    clock, store, b = _setup()
    entry = fire_entry(0)
    store.add(make_schedule("s1"), entry, "error")
    [claim] = store.claim_due(T0, limit=10, lease=timedelta(seconds=30), owner="A")  # A claims and hands over...
    b._report(outcome_for("s1", entry, OutcomeStatus.FAILED, error="RuntimeError: boom"))
    b.tick()  # ...B hears the outcome first: the store refuses it, B keeps it
    assert store.get("s1").running == ()  # type: ignore[union-attr]
    assert store.commit([commit_for(claim, next_fire=fire_entry(60))]) == [True]  # A commits
    assert store.get("s1").running == (run_id("s1", entry),)  # type: ignore[union-attr]
    clock.advance(1)
    b.tick()
    stored = store.get("s1")
    assert stored is not None and stored.running == ()
    [record] = [r for r in store.history("s1") if r.run_id == run_id("s1", entry)]
    assert record.status is RunStatus.FAILED and record.error == "RuntimeError: boom"


def test_a_kept_outcome_makes_the_loop_wake_up_to_try_again() -> None:
    _, store, b = _setup()
    entry = fire_entry(0)
    store.add(make_schedule("s1", trigger={"type": "at", "when": T0.isoformat()}), entry, "error")
    store.claim_due(T0, limit=10, lease=timedelta(seconds=30), owner="A")
    b._report(outcome_for("s1", entry))
    wake = b.tick()
    assert wake is not None and wake <= T0 + timedelta(seconds=1)


def test_a_repeat_outcome_of_a_finished_run_is_not_kept() -> None:
    _, store, b = _setup()
    entry = fire_entry(0)
    store.add(make_schedule("s1"), entry, "error")
    [claim] = store.claim_due(T0, limit=10, lease=timedelta(seconds=30), owner="A")
    store.commit([commit_for(claim, next_fire=fire_entry(3600))])
    outcome = outcome_for("s1", entry)
    b._report(outcome)
    b._report(outcome)  # delivered twice (at-least-once reporting)
    b.tick()
    assert b._deferred == {}


def test_an_outcome_whose_run_is_never_committed_is_dropped_after_twice_the_lease() -> None:
    clock, store, b = _setup()
    entry = fire_entry(0)
    store.add(make_schedule("s1"), entry, "error")
    store.claim_due(T0, limit=10, lease=timedelta(seconds=30), owner="A")  # A dies before committing
    b._report(outcome_for("s1", entry))
    b.tick()
    assert run_id("s1", entry) in b._deferred
    clock.advance(2 * b.lease + timedelta(seconds=1))
    b.tick()
    assert b._deferred == {}
