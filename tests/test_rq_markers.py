"""Hand-off markers are bounded by the hand-overs in flight (issue 11, item 6): the engine's
``settled`` call drops the markers of committed claims; a claim that was never committed (a
scheduler died between submit and commit) keeps its markers, so the scheduler that re-claims
the entry still does not hand the runs over twice. A private real redis-server, simulated time."""

# ruff: noqa: F401, F811  (pytest fixtures imported from test_rq_support)
from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import redis
from rq.job import Job
from test_rq_support import rconn, rq_redis_url

from schedcore.clock import FakeClock
from schedcore.memory import MemoryStore
from schedcore.plugins import get_plugin_manager
from schedcore.records import Commit
from schedcore.scheduler import Scheduler
from schedcore.testing.factories import T0, make_schedule
from schedcore.triggers import Interval
from schedcore_rq import RQExecutor, job_id_for

LEASE = timedelta(seconds=30)


def markers(rconn: redis.Redis, executor: RQExecutor) -> list[bytes]:
    return sorted(rconn.scan_iter(match=executor.keys.handed_prefix + "*", count=1000))


def flush_settled(executor: RQExecutor) -> None:
    """Read the reply of the last UNLINK (sent without waiting), so the test sees it applied."""
    with executor._settle_lock:
        executor._read_settled()


def scheduler(store: Any, executor: RQExecutor, clock: FakeClock, owner: str) -> Scheduler:
    return Scheduler(
        store, executor, clock=clock, lease=LEASE, owner=owner, plugins=get_plugin_manager(entry_points=False)
    )


def test_no_marker_outlives_its_committed_claim(rconn: redis.Redis) -> None:
    clock = FakeClock(T0)
    executor = RQExecutor(rconn, reconcile_interval=3600, poll_interval=0.1)
    s = scheduler(MemoryStore(), executor, clock, "a")
    for i in range(150):  # more than one batch per tick, with the runs sent ahead
        s.add(make_schedule(f"m{i}", trigger=Interval(10, start=T0)))
    try:
        for step in range(1, 6):
            clock.set(T0 + timedelta(seconds=10 * step))
            s.tick()
            flush_settled(executor)
            assert markers(rconn, executor) == []
        assert executor.outstanding() == 6 * 150  # T0 to T0+50s, handed over indeed (no worker runs them)
    finally:
        executor.shutdown(wait=False)
    assert markers(rconn, executor) == []


class CrashingStore:
    """A MemoryStore whose next commit raises, as if the scheduler died right before it."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self.crash = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def commit(self, commits: Sequence[Commit]) -> list[bool]:
        if self.crash:
            raise SystemError("scheduler died between submit and commit")
        return self._store.commit(commits)

    def commit_and_next_due(self, commits: Sequence[Commit]) -> Any:
        return self.commit(commits), self._store.next_due()


def test_a_re_claim_after_a_crash_between_submit_and_commit_hands_nothing_over_twice(rconn: redis.Redis) -> None:
    clock = FakeClock(T0)
    memory = MemoryStore()
    crashing = CrashingStore(memory)
    first = RQExecutor(rconn, reconcile_interval=3600, poll_interval=0.1)
    second = RQExecutor(rconn, reconcile_interval=3600, poll_interval=0.1)
    a = scheduler(crashing, first, clock, "a")
    b = scheduler(memory, second, clock, "b")
    for i in range(20):
        a.add(make_schedule(f"c{i}", trigger=Interval(3600, start=T0)))
    try:
        clock.set(T0 + timedelta(seconds=1))
        a.tick()  # handed over, never committed: the claims stay leased, the markers stay
        handed = sorted(job_id_for(f"c{i}@{int(T0.timestamp() * 1000)}.1") for i in range(20))
        assert len(markers(rconn, first)) == 20
        assert rconn.llen("rq:queue:default") == 20
        # the jobs ran and RQ forgot them (result_ttl): only the markers recognise a repeat now
        rconn.delete(*[Job.key_for(job_id) for job_id in handed])
        clock.set(T0 + timedelta(seconds=1) + LEASE + timedelta(seconds=1))
        b.tick()  # re-claims after the lease, rebuilds the same run ids, commits
        assert rconn.llen("rq:queue:default") == 20  # not one job pushed again
        assert [r.status.value for i in range(20) for r in b.history(f"c{i}")] == ["dispatched"] * 20
        flush_settled(second)
        assert markers(rconn, first) == []  # committed now: settled by the scheduler that committed
    finally:
        first.shutdown(wait=False)
        second.shutdown(wait=False)


def test_a_poisoned_run_info_does_not_stop_the_retries_of_the_other_runs(rconn: redis.Redis) -> None:
    """Issue 11 item 3 through the engine: two runs vanish from RQ (LOST), one of them with a
    poisoned run info. The other's outcome is recorded and its retry is scheduled."""
    from schedcore.model import RetryPolicy

    clock = FakeClock(T0)
    executor = RQExecutor(rconn, reconcile_interval=3600, poll_interval=0.1)
    s = scheduler(MemoryStore(), executor, clock, "a")
    retry = RetryPolicy(max_attempts=3, initial_delay=timedelta(seconds=10))
    for sid in ("good", "bad"):
        s.add(make_schedule(sid, trigger=Interval(3600, start=T0), retry=retry))
    try:
        clock.set(T0 + timedelta(seconds=1))
        s.tick()
        jobs = {sid: job_id_for(f"{sid}@{int(T0.timestamp() * 1000)}.1") for sid in ("good", "bad")}
        # Held so that the executor's own first reconciler pass cannot report both runs
        # between the two writes (after them, whichever pass comes first sees the poison).
        with executor._reconcile_lock:
            rconn.delete(*[Job.key_for(j) for j in jobs.values()])  # both vanished: LOST
            rconn.hset(executor.keys.runs, jobs["bad"], b"\xff{not json")
        # The executor's own thread may reconcile (and take the outcome) first: then this pass
        # finds nothing left, so only the history below says what happened.
        assert executor.reconcile() in (0, 1)
        executor.process_outcomes()
        clock.set(T0 + timedelta(seconds=2))
        # Wait until the report reached the engine (a bounded wait for a thread, not a timing
        # assertion).
        deadline = time.monotonic() + 30
        while True:
            s.tick()
            good = s.history("good")
            if good[0].status.value != "dispatched" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert [r.status.value for r in good] == ["lost"] and good[0].retry_at is not None
        clock.set(good[0].retry_at + timedelta(seconds=1))  # from the outcome's (wall clock) end
        s.tick()
        retried = [r for r in s.history("good", 1000) if r.attempt == 2]
        assert [r.status.value for r in retried] == ["dispatched"]  # the retry was handed over
        assert rconn.hexists(executor.keys.quarantine, f"run-info:{jobs['bad']}")
    finally:
        executor.shutdown(wait=False)
