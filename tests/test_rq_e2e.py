"""End to end: Scheduler + MemoryStore + RQExecutor + real ``rq worker`` subprocesses
(the forking Worker and SimpleWorker) on a private redis-server.

Executions are counted on the worker side (each task INCRs a key). Scheduler time is a
FakeClock started at the real now, because outcomes carry the worker's wall-clock
finish time (a retry is due that long after the run finished).
"""

# ruff: noqa: F401, F811  (pytest fixtures imported from test_rq_support)
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis
from rq import Queue
from test_rq_support import (
    WORKER_CLASSES,
    rconn,
    rq_redis_url,
    run_burst_worker,
    start_worker,
    stop_process,
    wait_for,
)

from schedcore import At, Cron, FakeClock, Interval, RetryPolicy, Schedule, Store
from schedcore.allowlist import TaskAllowList
from schedcore.hookspecs import hookimpl
from schedcore.memory import MemoryStore
from schedcore.records import Commit, Outcome, RunRecord, RunStatus
from schedcore.scheduler import Scheduler
from schedcore_rq import RQExecutor

pytestmark = pytest.mark.slow


class Spy:
    """A plugin recording exhausted runs."""

    def __init__(self) -> None:
        self.exhausted: list[Outcome] = []

    @hookimpl
    def schedcore_run_exhausted(self, scheduler: Any, outcome: Outcome) -> None:
        self.exhausted.append(outcome)


def real_now(align: int = 1) -> datetime:
    """The real now, rounded up to a multiple of ``align`` seconds."""
    now = time.time()
    return datetime.fromtimestamp((int(now) // align + 1) * align, tz=timezone.utc)


class System:
    """One scheduler on a FakeClock with an RQ executor on the private Redis."""

    def __init__(
        self, conn: redis.Redis, url: str, start: datetime, store: Store | None = None, **options: Any
    ) -> None:
        """``options``: ``serializer`` for the executor, ``allowed_tasks`` for the scheduler."""
        self.url = url
        self.conn = conn
        self.clock = FakeClock(start)
        self.store: Store = store or MemoryStore()
        self.executor = RQExecutor(
            conn,
            serializer=options.get("serializer"),
            heartbeat_interval=0.3,
            reconcile_interval=0.3,
            poll_interval=0.1,
        )
        self.spy = Spy()
        self.scheduler = Scheduler(
            store=self.store,
            executor=self.executor,
            clock=self.clock,
            plugins=[self.spy],
            allowed_tasks=options.get("allowed_tasks", TaskAllowList(None)),
        )

    def count(self, key: str) -> int:
        return int(self.conn.get(key) or 0)

    def running(self) -> int:
        return sum(len(s.running) for s in self.scheduler.list())

    def settle(self, timeout: float = 30.0) -> None:
        """Report outcomes and tick until no run is running."""
        deadline = time.monotonic() + timeout
        while True:
            self.executor.reconcile()
            self.executor.process_outcomes()
            self.scheduler.tick()
            if self.running() == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"runs still running: {[s.running for s in self.scheduler.list()]}")
            time.sleep(0.05)

    def history(self, sid: str) -> list[RunRecord]:
        return list(reversed(self.scheduler.history(sid)))

    def close(self) -> None:
        self.executor.shutdown(wait=False)
        self.store.close()


@pytest.fixture
def system(rconn: redis.Redis, rq_redis_url: str) -> Iterator[Callable[..., System]]:
    made: list[System] = []

    def make(start: datetime, store: Store | None = None) -> System:
        s = System(rconn, rq_redis_url, start, store)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def statuses(records: Sequence[RunRecord]) -> list[str]:
    return [r.status.value for r in records]


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_cron_interval_and_one_shot_run_the_right_number_of_times(
    system: Callable[..., System],
    rq_redis_url: str,
    worker_class: str,
) -> None:
    start = real_now(align=300)
    sy = system(start - timedelta(seconds=30))
    url = rq_redis_url
    sy.scheduler.add(
        Schedule(
            id="every-minute", task="test_rq_tasks:incr", args=[url, "n:interval"], trigger=Interval(60, start=start)
        )
    )
    sy.scheduler.add(Schedule(id="cron", task="test_rq_tasks:incr", args=[url, "n:cron"], trigger=Cron("*/5 * * * *")))
    sy.scheduler.add(
        Schedule(id="once", task="test_rq_tasks:incr", args=[url, "n:once"], trigger=At(start + timedelta(seconds=90)))
    )
    sy.scheduler.add(
        Schedule(id="no-import", task="no_such_module:task", trigger=At(start + timedelta(seconds=30)), retry=1)
    )
    for second in range(0, 601, 30):  # ten minutes in 30 s steps
        sy.clock.set(start + timedelta(seconds=second))
        sy.scheduler.tick()
    assert Queue("default", connection=sy.conn).count == 11 + 3 + 1 + 1
    run_burst_worker(url, worker_class)
    sy.settle()
    assert (sy.count("n:interval"), sy.count("n:cron"), sy.count("n:once")) == (11, 3, 1)
    for sid, n in (("every-minute", 11), ("cron", 3), ("once", 1)):
        assert statuses(sy.history(sid)) == ["succeeded"] * n
    [bad] = sy.history("no-import")
    assert bad.status is RunStatus.FAILED
    assert "ModuleNotFoundError" in (bad.error or "") and "no_such_module" in (bad.error or "")
    assert sy.executor.outstanding() == 0
    # Ticking again at the same instant hands nothing over again.
    sy.scheduler.tick()
    assert Queue("default", connection=sy.conn).count == 0


@pytest.mark.parametrize(
    ("worker_class", "store_kind"),
    [("rq.worker.Worker", "memory"), ("rq.worker.SimpleWorker", "memory"), ("rq.worker.SimpleWorker", "redis")],
)
def test_failing_task_runs_exactly_max_attempts_with_backoff_then_is_exhausted(
    system: Callable[..., System],
    rq_redis_url: str,
    worker_class: str,
    store_kind: str,
) -> None:
    start = real_now()
    store: Store | None = None
    if store_kind == "redis":
        from schedcore_redis import RedisStore

        store = RedisStore.from_url(rq_redis_url, namespace="e2e")
    sy = system(start - timedelta(seconds=1), store)
    sy.scheduler.add(
        Schedule(
            id="flaky",
            task="test_rq_tasks:fail",
            args=[rq_redis_url, "n:fail"],
            trigger=At(start),
            retry=RetryPolicy(max_attempts=3, initial_delay=10, factor=2),
        )
    )
    sy.clock.set(start)
    sy.scheduler.tick()
    for attempt in (1, 2, 3):
        run_burst_worker(rq_redis_url, worker_class)
        sy.settle()
        assert sy.count("n:fail") == attempt
        due = sy.store.next_due()
        if attempt < 3:
            assert due is not None
            sy.clock.set(max(due, sy.clock.now()))
            sy.scheduler.tick()
        else:
            assert due is None
    records = sy.history("flaky")
    assert [(r.attempt, r.status) for r in records] == [
        (1, RunStatus.FAILED),
        (2, RunStatus.FAILED),
        (3, RunStatus.FAILED),
    ]
    assert all("RuntimeError: task failed on purpose" in (r.error or "") for r in records)
    # The task's traceback, from the worker through the outcome payload into the store.
    for r in records:
        assert r.traceback is not None and r.traceback.startswith("Traceback (most recent call last):")
        assert r.traceback.endswith("RuntimeError: task failed on purpose")
        assert "test_rq_tasks.py" in r.traceback and ", in fail" in r.traceback
    # Backoff: 10 s after the first failure, 20 s after the second, none after the last.
    first, second, third = records
    assert first.retry_at is not None and first.finished_at is not None
    assert first.retry_at - first.finished_at == timedelta(seconds=10)
    assert second.retry_at is not None and second.finished_at is not None
    assert second.retry_at - second.finished_at == timedelta(seconds=20)
    assert third.retry_at is None
    assert second.dispatched_at is not None and second.dispatched_at >= first.retry_at
    assert third.dispatched_at is not None and third.dispatched_at >= second.retry_at
    assert [o.attempt for o in sy.spy.exhausted] == [3]
    # Nothing more is handed over.
    sy.clock.advance(3600)
    sy.scheduler.tick()
    assert Queue("default", connection=sy.conn).count == 0


@pytest.mark.parametrize(
    ("worker_class", "victim"),
    [("rq.worker.SimpleWorker", "worker"), ("rq.worker.Worker", "worker"), ("rq.worker.Worker", "horse")],
)
def test_worker_killed_mid_job_the_run_is_retried(
    system: Callable[..., System],
    rq_redis_url: str,
    worker_class: str,
    victim: str,
) -> None:
    start = real_now()
    sy = system(start - timedelta(seconds=1))
    sy.scheduler.add(
        Schedule(
            id="victim",
            task="test_rq_tasks:slow_once",
            args=[rq_redis_url, "n:slow", 60],
            trigger=At(start),
            retry=RetryPolicy(max_attempts=2, initial_delay=1),
        )
    )
    sy.clock.set(start)
    sy.scheduler.tick()
    worker = start_worker(rq_redis_url, worker_class)
    try:
        wait_for(lambda: sy.conn.get("n:slow:pid") is not None and sy.count("n:slow") == 1, what="the task to start")
        task_pid = int(sy.conn.get("n:slow:pid") or 0)
        os.kill(task_pid, signal.SIGKILL)
        if victim == "worker" and task_pid != worker.pid:
            os.kill(worker.pid, signal.SIGKILL)
        if victim == "worker":
            worker.wait(10)
        sy.settle()
        records = sy.history("victim")
        assert [(r.attempt, r.status) for r in records] == [(1, RunStatus.LOST)]
        assert "died" in (records[0].error or "")
        due = sy.store.next_due()
        assert due is not None
        sy.clock.set(max(due, sy.clock.now()))
        sy.scheduler.tick()
        if victim == "worker":
            run_burst_worker(rq_redis_url, worker_class)
        sy.settle()
    finally:
        stop_process(worker)
    assert sy.count("n:slow") == 2
    assert [(r.attempt, r.status) for r in sy.history("victim")] == [(1, RunStatus.LOST), (2, RunStatus.SUCCEEDED)]


def test_overlap_skip_never_starts_a_long_job_twice(
    system: Callable[..., System],
    rq_redis_url: str,
) -> None:
    start = real_now()
    sy = system(start - timedelta(seconds=1))
    sy.scheduler.add(
        Schedule(
            id="long",
            task="test_rq_tasks:slow",
            args=[rq_redis_url, "n:long", 2],
            trigger=Interval(60, start=start),
            overlap="skip",
        )
    )
    sy.clock.set(start)
    sy.scheduler.tick()
    worker = start_worker(rq_redis_url, "rq.worker.SimpleWorker", burst=True)
    try:
        wait_for(lambda: sy.count("n:long") == 1, what="the long job to start")
        sy.clock.set(start + timedelta(seconds=60))  # the next occurrence, while the first still runs
        sy.scheduler.tick()
        assert Queue("default", connection=sy.conn).count == 0
        worker.wait(30)
    finally:
        stop_process(worker)
    sy.settle()
    sy.clock.set(start + timedelta(seconds=120))
    sy.scheduler.tick()
    run_burst_worker(rq_redis_url, "rq.worker.SimpleWorker")
    sy.settle()
    assert sy.count("n:long") == 2
    records = sy.history("long")
    assert statuses(records) == ["succeeded", "skipped", "succeeded"]
    assert "overlap" in (records[1].note or "")


def test_a_stopped_job_is_recorded_stopped_and_not_retried(system: Callable[..., System], rq_redis_url: str) -> None:
    from rq.command import send_stop_job_command

    from schedcore_rq import job_id_for

    start = real_now()
    sy = system(start - timedelta(seconds=1))
    sy.scheduler.add(
        Schedule(
            id="stop-me",
            task="test_rq_tasks:slow",
            args=[rq_redis_url, "n:stop", 30],
            trigger=At(start),
            retry=RetryPolicy(max_attempts=3, initial_delay=1),
        )
    )
    sy.clock.set(start)
    sy.scheduler.tick()
    worker = start_worker(rq_redis_url, "rq.worker.Worker")
    try:
        wait_for(lambda: sy.count("n:stop") == 1, what="the job to start")
        [record] = sy.history("stop-me")
        send_stop_job_command(sy.conn, job_id_for(record.run_id))
        sy.settle()
    finally:
        stop_process(worker)
    [record] = sy.history("stop-me")
    assert record.status is RunStatus.STOPPED
    assert sy.store.next_due() is None  # no retry
    assert sy.count("n:stop") == 1


class CrashingStore(MemoryStore):
    """A store whose first commit 'crashes' the scheduler after the hand-off."""

    def __init__(self) -> None:
        super().__init__()
        self.crashes = 1

    def commit(self, commits: Sequence[Commit]) -> list[bool]:
        if self.crashes:
            self.crashes -= 1
            raise RuntimeError("scheduler died between submit and commit")
        return super().commit(commits)


def test_scheduler_dying_between_hand_off_and_commit_runs_each_occurrence_once(
    system: Callable[..., System],
    rq_redis_url: str,
) -> None:
    start = real_now()
    store = CrashingStore()
    first = system(start - timedelta(seconds=1), store)
    for i in range(20):
        first.scheduler.add(
            Schedule(id=f"s{i}", task="test_rq_tasks:incr", args=[rq_redis_url, "n:once"], trigger=At(start))
        )
    first.clock.set(start)
    first.scheduler.tick()  # hands all 20 over, then the commit fails: the claims stay leased
    assert Queue("default", connection=first.conn).count == 20
    first.close()
    second = system(start + timedelta(seconds=31), store)  # after the lease expired
    second.scheduler.tick()  # claims them again, rebuilds the same runs: the executor drops the repeats
    assert Queue("default", connection=second.conn).count == 20
    run_burst_worker(rq_redis_url, "rq.worker.SimpleWorker")
    second.settle()
    assert second.count("n:once") == 20
    assert all(statuses(second.history(f"s{i}")) == ["succeeded"] for i in range(20))


def test_one_command_runs_scheduler_and_worker_pool(rq_redis_url: str, rconn: redis.Redis, tmp_path: Any) -> None:
    """``schedcore run --executor rq --workers 2``: scheduler + supervised RQ workers, stopped by SIGTERM."""
    from rq import Worker
    from test_rq_support import worker_env

    config = tmp_path / "schedules.toml"
    config.write_text(
        f'[[schedule]]\nid = "tick"\ntask = "test_rq_tasks:incr"\nargs = ["{rq_redis_url}", "n:cli"]\nevery = 1\n'
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "schedcore.cli",
            "run",
            "--config",
            str(config),
            "--executor",
            "rq",
            "-E",
            f"redis_url={rq_redis_url}",
            "--workers",
            "2",
        ],
        env=worker_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: int(rconn.get("n:cli") or 0) >= 3, timeout=30, what="three runs on the pool")
        assert len(Worker.all(connection=rconn)) == 2
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    wait_for(lambda: not Worker.all(connection=rconn), timeout=10, what="the workers to stop")


def test_burst_with_workers_dispatches_waits_for_the_runs_and_records_them(
    rq_redis_url: str, rconn: redis.Redis
) -> None:
    """``schedcore run --store redis --executor rq --workers 2 --burst``: one command, then exit."""
    from test_rq_support import worker_env

    from schedcore.records import Pending, PendingKind
    from schedcore_redis import RedisStore

    store = RedisStore.from_url(rq_redis_url, namespace="burst")
    due = datetime.fromtimestamp(int(time.time()) + 1, tz=timezone.utc)
    try:
        for i in range(5):
            schedule = Schedule(id=f"b{i}", task="test_rq_tasks:incr", args=[rq_redis_url, "n:burst"], trigger=At(due))
            store.add(schedule, Pending(kind=PendingKind.FIRE, nominal=due, due=due), "error")
        while datetime.now(timezone.utc) < due:
            time.sleep(0.05)
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "schedcore.cli",
                "run",
                "--store",
                "redis",
                "-S",
                f"url={rq_redis_url}",
                "-S",
                "namespace=burst",
                "--executor",
                "rq",
                "-E",
                f"redis_url={rq_redis_url}",
                "-E",
                "namespace=burst",
                "--workers",
                "2",
                "--burst",
            ],
            env=worker_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert int(rconn.get("n:burst") or 0) == 5
        for i in range(5):
            [record] = store.history(f"b{i}")
            assert record.status is RunStatus.SUCCEEDED
    finally:
        store.close()
