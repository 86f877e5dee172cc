"""RQExecutor start and shutdown: a shutdown ends the outcome thread's blocking read at once
(``run --burst`` from a system cron or a Kubernetes CronJob pays no poll interval), and no
outcome is lost or reported twice because of it."""

# ruff: noqa: F401, F811  (pytest fixtures imported from test_rq_support)
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from typing import Any

import pytest
import redis
from rq.job import Job
from test_rq_support import Collector, rconn, rq_redis_url

from schedcore import Interval, Schedule, Scheduler
from schedcore.plugins import get_plugin_manager
from schedcore.records import Outcome, Pending, PendingKind, Run
from schedcore_redis import RedisStore
from schedcore_rq import RQExecutor, job_id_for

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
LONG_POLL = 30.0  # an outcome poll no test may wait out: a shutdown that does takes 30 s
BOUND = 5.0  # generous: well below LONG_POLL, far above what an unblocked shutdown takes


def blocked(executor: RQExecutor) -> None:
    """Wait until the outcome thread knows its blocking connection's id (it then blocks)."""
    deadline = time.monotonic() + 10
    while executor._blocked_id is None:
        assert time.monotonic() < deadline, "the outcome thread never blocked"
        time.sleep(0.01)
    time.sleep(0.05)  # into the blocking read itself


def a_run(sid: str) -> Run:
    trigger = Interval(60, start=T0)
    schedule = Schedule(id=sid, task="test_rq_tasks:incr", args=["unix:///nowhere", "k"], trigger=trigger)
    return Run.create(schedule, Pending(kind=PendingKind.FIRE, nominal=T0, due=T0, attempt=1))


@pytest.mark.parametrize("wait", [True, False])
def test_shutdown_does_not_wait_out_the_outcome_poll(rconn: redis.Redis, wait: bool) -> None:
    executor = RQExecutor(rconn, poll_interval=LONG_POLL, reconcile_interval=3600)
    executor.start(Collector())
    blocked(executor)
    thread = executor._thread
    assert thread is not None
    started = time.monotonic()
    executor.shutdown(wait=wait)
    assert time.monotonic() - started < BOUND
    assert not thread.is_alive()
    # The blocking connection went back to the pool: nothing of the executor stays blocked.
    clients = rconn.client_list()
    # ("cmd" is a client's last command, which an idle pooled connection keeps: flag b is "blocked")
    assert not [c for c in clients if "b" in str(c.get("flags", ""))]


def test_without_client_unblock_shutdown_waits_at_most_the_poll(
    rconn: redis.Redis, rq_redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An ACL that refuses CLIENT UNBLOCK (or CLIENT ID): the thread still ends, by its poll."""
    rconn.execute_command("ACL", "SETUSER", "nounblock", "reset", "on", ">pw", "~*", "&*", "+@all", "-client|unblock")
    try:
        limited = redis.Redis.from_url(rq_redis_url, username="nounblock", password="pw")
        executor = RQExecutor(limited, poll_interval=0.5, reconcile_interval=3600)
        executor.start(Collector())
        blocked(executor)
        thread = executor._thread
        assert thread is not None
        with caplog.at_level(logging.DEBUG, logger="schedcore.rq"):
            executor.shutdown(wait=False)
        assert not thread.is_alive()
        assert [r for r in caplog.records if "CLIENT UNBLOCK refused" in r.getMessage()]
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        limited.close()
    finally:
        rconn.execute_command("ACL", "DELUSER", "nounblock")


def test_no_outcome_is_lost_or_reported_twice_across_shutdowns(rconn: redis.Redis) -> None:
    """Outcomes arrive while the executor shuts down (its blocking read unblocked meanwhile):
    each is reported once, or left in the outcome list for the next executor -- never taken
    into the processing list and dropped."""
    rounds = 25
    got = Collector()
    for index in range(rounds):
        executor = RQExecutor(rconn, poll_interval=LONG_POLL, reconcile_interval=3600)
        run = a_run(f"s{index}")
        executor.submit([run])
        rconn.hset(Job.key_for(job_id_for(run.id)), "status", "finished")
        executor.start(got)
        blocked(executor)
        # The reconciler finds the job finished and pushes its outcome while shutdown runs.
        pusher = threading.Thread(target=executor.reconcile)
        time.sleep((index % 5) * 0.002)
        pusher.start()
        executor.shutdown(wait=False)
        pusher.join()
    assert rconn.llen(RQExecutor(rconn).keys.processing) == 0
    # What the shut-down executors did not report, the next one does (at start).
    last = RQExecutor(rconn, poll_interval=0.1, reconcile_interval=3600)
    last.start(got)
    last.process_outcomes()
    last.shutdown(wait=True)
    reported = sorted(o.schedule_id for o in got.outcomes)
    assert reported == sorted(f"s{index}" for index in range(rounds))


def test_burst_with_nothing_due_returns_without_waiting_for_polls(rconn: redis.Redis, rq_redis_url: str) -> None:
    """``run(burst=True)`` on an empty store: no outcome poll and no store subscription waited out."""
    store = RedisStore.from_url(rq_redis_url, namespace="empty")
    watched: list[Any] = []
    real_watch = store.watch

    def spy(callback: Any) -> Any:
        watched.append(callback)
        return real_watch(callback)

    store.watch = spy  # type: ignore[method-assign]
    executor = RQExecutor(rconn, namespace="empty", poll_interval=LONG_POLL, reconcile_interval=3600)
    scheduler = Scheduler(store=store, executor=executor, plugins=get_plugin_manager(entry_points=False))
    started = time.monotonic()
    scheduler.run(burst=True)
    assert time.monotonic() - started < BOUND
    assert watched == []  # a burst never waits, so it does not subscribe
    assert executor._thread is None
    store.close()


def test_a_burst_with_runs_outstanding_still_waits_for_their_outcomes(rconn: redis.Redis, rq_redis_url: str) -> None:
    """The drain is skipped only when nothing this executor handed over is outstanding."""
    executor = RQExecutor(rconn, poll_interval=LONG_POLL, reconcile_interval=3600, drain_timeout=30)
    got = Collector()
    executor.start(got)
    run = a_run("pending")
    executor.submit([run])
    finisher = threading.Timer(0.5, rconn.hset, args=(Job.key_for(job_id_for(run.id)), "status", "finished"))
    finisher.start()
    executor.shutdown(wait=True)
    finisher.join()
    assert [o.run_id for o in got.outcomes] == [run.id]
    assert executor.outstanding() == 0
