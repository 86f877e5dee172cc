"""When an RQ job really started: reported by the worker side (RQ's ``started_at`` in the outcome
payload) and by the reconciler (read from the raw job hash, hostile values read as none), and
carried into the history by a scheduler with a real ``rq worker``."""

# ruff: noqa: F401, F811  (pytest fixtures imported from test_rq_support and test_rq_unit)
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st
from test_rq_support import Collector, rconn, rq_redis_url, run_burst_worker
from test_rq_unit import executor, handed_job

from schedcore import At, FakeClock, Schedule
from schedcore.allowlist import TaskAllowList
from schedcore.memory import MemoryStore
from schedcore.records import OutcomeStatus, RunStatus
from schedcore.scheduler import Scheduler
from schedcore_rq import RQExecutor
from schedcore_rq._outcomes import stamp_ms

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def test_stamp_ms_reads_both_of_rqs_layouts() -> None:
    assert stamp_ms(b"2025-01-01T00:00:03.250000Z") == 1735689603250
    assert stamp_ms("2025-01-01T00:00:03Z") == 1735689603000
    assert stamp_ms(None) is None and stamp_ms(b"") is None


@given(st.one_of(st.binary(max_size=80), st.text(max_size=80), st.integers(), st.none()))
def test_stamp_ms_reads_anything_else_as_none_and_never_raises(raw: Any) -> None:
    ms = stamp_ms(raw)
    assert ms is None or isinstance(ms, int)


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        (b"2025-01-01T00:00:03.250999Z", T0 + timedelta(seconds=3.25)),  # kept to the millisecond
        (b"not a time", None),
        (b"\xff\xfe\x00" * 4, None),
        (b"9" * 100_000, None),  # a hostile megabyte is not parsed
        (None, None),  # not started (or RQ did not say)
    ],
)
def test_the_reconciler_reads_the_start_from_the_job_hash(
    executor: RQExecutor, rconn: redis.Redis, stamp: bytes | None, expected: datetime | None
) -> None:
    got = Collector()
    run, job = handed_job(executor, rconn)
    rconn.hset(job.key, "status", "finished")
    if stamp is None:
        rconn.hdel(job.key, "started_at")
    else:
        rconn.hset(job.key, "started_at", stamp)
    assert executor.reconcile() == 1  # a bad start time never costs the outcome
    executor.start(got)
    got.wait(executor, 1)
    [outcome] = got.outcomes
    assert (outcome.run_id, outcome.status, outcome.started_at) == (run.id, OutcomeStatus.SUCCEEDED, expected)


@pytest.mark.slow
def test_a_real_worker_reports_when_each_run_started(rconn: redis.Redis, rq_redis_url: str) -> None:
    # Scheduler time is a FakeClock a little behind the real now: the worker stamps real time,
    # so each run is handed over (fake time) before it starts (real time).
    now = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=2)
    clock = FakeClock(now - timedelta(seconds=1))
    ex = RQExecutor(rconn, heartbeat_interval=0.3, reconcile_interval=0.3, poll_interval=0.1)
    scheduler = Scheduler(MemoryStore(), ex, clock=clock, allowed_tasks=TaskAllowList(None))
    try:
        scheduler.add(Schedule(id="ok", task="test_rq_tasks:incr", args=[rq_redis_url, "n"], trigger=At(now)))
        scheduler.add(Schedule(id="bad", task="no_such_module:task", trigger=At(now)))
        clock.set(now)
        scheduler.tick()
        before = datetime.now(timezone.utc) - timedelta(milliseconds=1)
        run_burst_worker(rq_redis_url, "rq.worker.SimpleWorker")
        after = datetime.now(timezone.utc)
        deadline = time.monotonic() + 30
        while any(s.running for s in scheduler.list()):
            assert time.monotonic() < deadline, "outcomes never recorded"
            ex.process_outcomes()
            scheduler.tick()
            time.sleep(0.05)
        for sid, status in (("ok", RunStatus.SUCCEEDED), ("bad", RunStatus.FAILED)):
            [record] = scheduler.history(sid)
            assert record.status is status
            assert record.started_at is not None and record.finished_at is not None
            assert before <= record.started_at <= record.finished_at <= after + timedelta(seconds=1)
            assert record.lateness == 0 and record.start_lateness is not None and record.start_lateness > 0
    finally:
        ex.shutdown(wait=False)
