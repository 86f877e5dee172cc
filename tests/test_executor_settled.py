"""The engine tells the executor which hand-overs are committed (``Executor.settled``, issue 11
item 6): the ids of the runs of every claim the store accepted, and never of a claim whose
commit was refused or failed -- another scheduler re-claims that one and rebuilds the same runs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from schedcore.clock import FakeClock
from schedcore.memory import MemoryStore
from schedcore.plugins import get_plugin_manager
from schedcore.records import Commit
from schedcore.scheduler import Scheduler
from schedcore.testing.executors import CallbackExecutor
from schedcore.testing.factories import T0, make_schedule


class RefusingStore:
    """A MemoryStore whose commits of the schedules named in ``refuse`` are refused (lease lost)."""

    def __init__(self, store: MemoryStore, refuse: set[str]) -> None:
        self._store = store
        self.refuse = refuse

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def commit(self, commits: Sequence[Commit]) -> list[bool]:
        kept = [c for c in commits if c.claim.schedule_id not in self.refuse]
        results = iter(self._store.commit(kept))
        out = []
        for c in commits:
            if c.claim.schedule_id in self.refuse:
                self._store.release([c.claim])
                out.append(False)
            else:
                out.append(next(results))
        return out

    def commit_and_next_due(self, commits: Sequence[Commit]) -> Any:
        return self.commit(commits), self._store.next_due()


def scheduler(store: Any, executor: CallbackExecutor, clock: FakeClock) -> Scheduler:
    return Scheduler(store, executor, clock=clock, plugins=get_plugin_manager(entry_points=False))


def ticked(executor: CallbackExecutor) -> Scheduler:
    """A scheduler on ``executor`` (and its clock) with schedule ``a``, ticked once when it is due."""
    assert isinstance(executor.clock, FakeClock)
    s = scheduler(MemoryStore(), executor, executor.clock)
    s.add(make_schedule("a"))
    executor.clock.set(T0 + timedelta(seconds=1))
    s.tick()
    return s


def test_settled_gets_the_runs_of_committed_claims_only() -> None:
    clock = FakeClock(T0)
    executor = CallbackExecutor(clock=clock)
    store = RefusingStore(MemoryStore(), refuse={"refused"})
    s = scheduler(store, executor, clock)
    for sid in ("a", "b", "refused"):
        s.add(make_schedule(sid))
    clock.set(T0 + timedelta(seconds=1))
    s.tick()
    submitted = {run.id for run in executor.submitted}
    assert {run.schedule_id for run in executor.submitted} == {"a", "b", "refused"}
    assert set(executor.settled_ids) == {r for r in submitted if not r.startswith("refused@")}
    assert len(executor.settled_ids) == len(set(executor.settled_ids))


def test_a_failing_settled_is_only_logged() -> None:
    class Failing(CallbackExecutor):
        def settled(self, run_ids: Sequence[str]) -> None:
            raise RuntimeError("bookkeeping down")

    s = ticked(Failing(clock=FakeClock(T0)))
    s.tick()
    assert [h.status.value for h in s.history("a")] == ["succeeded"]
