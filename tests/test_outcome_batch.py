"""The engine records outcomes a batch at a time (``Store.record_outcomes``).

One store call per batch (a SQLite transaction, a round trip), the schedule read only when
a retry may follow, and one bad outcome never blocking the others.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import attrs
import pytest

from schedcore import FakeClock, MemoryStore, Scheduler
from schedcore.records import OutcomeStatus, RunStatus
from schedcore.testing.executors import CallbackExecutor
from schedcore.testing.factories import T0, commit_for, fire_entry, make_schedule, outcome_for
from schedcore.testing.simulation import _plugin_manager

LEASE = timedelta(seconds=30)


@attrs.define
class Counting:
    """A MemoryStore counting the calls of the outcome path; ``batch``: expose record_outcomes."""

    inner: MemoryStore
    batch: bool = True
    fail_batch: bool = False
    calls: list[str] = attrs.field(factory=list)

    def __getattr__(self, name: str) -> Any:
        if name == "record_outcomes" and not self.batch:
            raise AttributeError(name)
        attr = getattr(self.inner, name)
        if name not in ("get", "record_outcome", "record_outcomes"):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            if name == "record_outcomes" and self.fail_batch:
                raise RuntimeError("the store cannot take this batch")
            return attr(*args, **kwargs)

        return counted


def _dispatched(store: Counting, n: int) -> Scheduler:
    """``n`` schedules whose runs are committed as running (claimed and committed as another
    scheduler would), and an engine that will hear their outcomes."""
    clock = FakeClock(T0)
    retry = {"max_attempts": 3, "initial_delay": 10, "jitter": 0}
    for i in range(n):
        store.inner.add(make_schedule(f"s{i}", retry=retry), fire_entry(0), "error")
    claims = store.inner.claim_due(T0, limit=n, lease=LEASE, owner="A")
    assert store.inner.commit([commit_for(c, next_fire=fire_entry(3600)) for c in claims]) == [True] * n
    return Scheduler(store=store, executor=CallbackExecutor(clock=clock), clock=clock, plugins=_plugin_manager())


def test_outcomes_are_recorded_in_one_store_call_reading_schedules_only_for_retries() -> None:
    store = Counting(MemoryStore())
    engine = _dispatched(store, 6)
    for i in range(5):
        engine._report(outcome_for(f"s{i}", fire_entry(0), OutcomeStatus.SUCCEEDED))
    engine._report(outcome_for("s5", fire_entry(0), OutcomeStatus.FAILED, error="RuntimeError: boom"))
    engine._apply_outcomes()
    assert store.calls == ["get", "record_outcomes"]  # the failed run's schedule, for its retry policy
    assert all(store.inner.get(f"s{i}").running == () for i in range(6))  # type: ignore[union-attr]
    [failed] = store.inner.history("s5")
    assert failed.status is RunStatus.FAILED
    assert failed.retry_at == T0 + timedelta(seconds=11)  # finished at 1 s, plus 10


def test_a_store_without_record_outcomes_gets_them_one_by_one() -> None:
    store = Counting(MemoryStore(), batch=False)
    engine = _dispatched(store, 3)
    for i in range(3):
        engine._report(outcome_for(f"s{i}", fire_entry(0)))
    engine._apply_outcomes()
    assert store.calls == ["record_outcome"] * 3
    assert [r.status for i in range(3) for r in store.inner.history(f"s{i}")] == [RunStatus.SUCCEEDED] * 3


def test_a_batch_the_store_refuses_is_recorded_one_by_one(caplog: pytest.LogCaptureFixture) -> None:
    store = Counting(MemoryStore(), fail_batch=True)
    engine = _dispatched(store, 3)
    for i in range(3):
        engine._report(outcome_for(f"s{i}", fire_entry(0)))
    engine._apply_outcomes()
    assert store.calls == ["record_outcomes"] + ["record_outcome"] * 3
    assert "recording them one by one" in caplog.text
    assert all(store.inner.get(f"s{i}").running == () for i in range(3))  # type: ignore[union-attr]
    assert not engine._unapplied


def test_a_kept_outcome_is_let_go_once_its_schedule_is_removed() -> None:
    store = Counting(MemoryStore())
    clock = FakeClock(T0)
    store.inner.add(make_schedule("s1"), fire_entry(0), "error")
    store.inner.claim_due(T0, limit=10, lease=LEASE, owner="A")  # handed over by A, not committed yet
    engine = Scheduler(store=store, executor=CallbackExecutor(clock=clock), clock=clock, plugins=_plugin_manager())
    engine._report(outcome_for("s1", fire_entry(0)))
    engine.tick()
    assert len(engine._deferred) == 1  # kept: its hand-off may still be committed
    store.inner.remove("s1")
    clock.advance(1)
    engine.tick()
    assert engine._deferred == {}  # not retried every second forever
