"""schedcore_rq.compat.Scheduler: rq-scheduler's public API, against a real redis-server and real
``rq worker`` processes. Time is simulated (a FakeClock) wherever the test does not need a real loop."""

# ruff: noqa: F401, F811  (pytest fixtures imported from test_rq_support)
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Queue
from rq.job import Job, JobStatus
from test_rq_support import TESTS_DIR, rconn, rq_redis_url, run_burst_worker, wait_for, worker_env

from schedcore.clock import FakeClock
from schedcore.exceptions import ValidationError
from schedcore.triggers import Cron, Interval
from schedcore_rq.compat import Scheduler
from schedcore_rq.compat._mapping import task_for

pytestmark = pytest.mark.redis

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)
WORKER = "rq.worker.SimpleWorker"


class Tasks:
    """Static and class methods: importable by name."""

    @staticmethod
    def static(x: int) -> int:
        return x

    @classmethod
    def klass(cls, x: int) -> int:
        return x


def count(conn: redis.Redis, key: str) -> int:
    return int(conn.get(key) or 0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def sched(rconn: redis.Redis, clock: FakeClock) -> Iterator[Scheduler]:
    scheduler = Scheduler(connection=rconn, clock=clock)
    yield scheduler
    scheduler.executor.shutdown(wait=False)


def test_enqueue_at_saves_the_job_and_runs_that_id_when_due(
    sched: Scheduler, rconn: redis.Redis, rq_redis_url: str, clock: FakeClock
) -> None:
    from test_rq_tasks import incr

    job = sched.enqueue_at(T0 + timedelta(minutes=5), incr, rq_redis_url, "ran", job_id="report-1", meta={"a": 1})
    assert isinstance(job, Job) and job.id == "report-1"
    fetched = Job.fetch("report-1", connection=rconn)
    assert fetched.get_status() == JobStatus.SCHEDULED and fetched.func_name == "test_rq_tasks.incr"
    assert fetched.args == (rq_redis_url, "ran") and fetched.meta == {"a": 1} and fetched.origin == "default"
    assert job in sched and "report-1" in sched and "other" not in sched
    assert sched.count() == 1 and sched.get_jobs_to_queue() == []
    sched.engine.tick()  # not due yet: nothing enqueued
    assert Queue("default", connection=rconn).job_ids == []
    clock.advance(timedelta(minutes=5))
    assert [j.id for j in sched.get_jobs_to_queue()] == ["report-1"]
    sched.engine.tick()
    assert Queue("default", connection=rconn).job_ids == ["report-1"]
    run_burst_worker(rq_redis_url, WORKER)
    assert count(rconn, "ran") == 1
    assert Job.fetch("report-1", connection=rconn).get_status() == JobStatus.FINISHED
    assert "report-1" not in sched and sched.count() == 0
    clock.advance(timedelta(hours=1))
    sched.engine.tick()
    assert Queue("default", connection=rconn).job_ids == []  # once


def test_enqueue_at_in_the_past_enqueues_at_once_and_naive_means_utc(
    sched: Scheduler, rconn: redis.Redis, clock: FakeClock
) -> None:
    job = sched.enqueue_at(datetime(2029, 1, 1), "builtins.print", "late")  # a year late, naive: UTC
    [(listed, when)] = list(sched.get_jobs(with_times=True))
    assert listed.id == job.id and when == datetime(2029, 1, 1) and when.tzinfo is None
    sched.engine.tick()
    assert Queue("default", connection=rconn).job_ids == [job.id]


def test_enqueue_in_uses_the_clock(sched: Scheduler, clock: FakeClock) -> None:
    job = sched.enqueue_in(timedelta(seconds=90), print, "x")
    [(_, when)] = list(sched.get_jobs(with_times=True))
    assert when == (T0 + timedelta(seconds=90)).replace(tzinfo=None)
    assert sched.store.get(job.id).schedule.task == "builtins:print"  # type: ignore[union-attr]


def test_several_schedulers_never_duplicate_a_run(rconn: redis.Redis, clock: FakeClock) -> None:
    a, b = Scheduler(connection=rconn, clock=clock), Scheduler(connection=rconn, clock=clock)
    try:
        for i in range(20):
            a.enqueue_at(T0, "builtins.print", i, job_id=f"j{i}")
        b.schedule(T0, "builtins.print", interval=60, id="every")
        clock.advance(timedelta(seconds=1))
        for _ in range(3):
            a.engine.tick()
            b.engine.tick()
        ids = Queue("default", connection=rconn).job_ids
        assert sorted(i for i in ids if i.startswith("j")) == sorted(f"j{i}" for i in range(20))
        assert len(ids) == 21  # and one run of "every"
    finally:
        a.executor.shutdown(wait=False)
        b.executor.shutdown(wait=False)


def test_schedule_interval_repeat_is_n_runs_without_drift(
    sched: Scheduler, rconn: redis.Redis, clock: FakeClock
) -> None:
    job = sched.schedule(T0 + timedelta(seconds=10), "builtins.print", args=["tick"], interval=60, repeat=3, id="tick")
    stored = sched.store.get("tick")
    assert stored is not None and stored.schedule.trigger == Interval(60, start=T0 + timedelta(seconds=10))
    assert stored.schedule.executor_options["result_ttl"] == -1  # rq-scheduler's default for periodic jobs
    assert Job.fetch(job.id, connection=rconn).get_status() == JobStatus.SCHEDULED
    for _ in range(10):
        clock.advance(timedelta(seconds=47))  # late ticks: fire times stay at start + k * 60
        sched.engine.tick()
    records = sorted(sched.engine.history("tick"), key=lambda r: r.nominal)
    assert [r.nominal for r in records] == [T0 + timedelta(seconds=10 + 60 * k) for k in range(3)]
    assert len(Queue("default", connection=rconn).job_ids) == 3 and "tick" not in sched
    with pytest.raises(ValueError, match="without interval"):
        sched.schedule(T0, "builtins.print", repeat=2)


def test_cron_utc_or_local_and_queue_name_travels(
    sched: Scheduler, rconn: redis.Redis, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    sched.cron("*/5 * * * *", "builtins.print", id="c", queue_name="foo", repeat=2, at_front=True)
    stored = sched.store.get("c")
    assert stored is not None and stored.schedule.trigger == Cron("*/5 * * * *", tz="UTC")
    assert stored.schedule.max_runs == 2 and stored.schedule.executor_options["at_front"] is True
    monkeypatch.setenv("TZ", "Europe/Paris")
    sched.cron("0 9 * * *", "builtins.print", id="local", use_local_timezone=True)
    local = sched.store.get("local")
    assert local is not None and local.schedule.trigger == Cron("0 9 * * *", tz="Europe/Paris")
    clock.advance(timedelta(minutes=5))
    sched.engine.tick()
    assert len(Queue("foo", connection=rconn).job_ids) == 1  # the scheduler is bound to "default"
    assert Queue("default", connection=rconn).job_ids == []


def test_at_front_is_honoured(sched: Scheduler, rconn: redis.Redis) -> None:
    queue = Queue("default", connection=rconn)
    queue.enqueue("builtins.print", "already there")
    sched.enqueue_at(T0, "builtins.print", job_id="first", at_front=True)
    sched.engine.tick()
    assert queue.job_ids[0] == "first"


def test_cancel_and_change_execution_time(sched: Scheduler, rconn: redis.Redis, clock: FakeClock) -> None:
    job = sched.enqueue_at(T0 + timedelta(hours=1), "builtins.print", job_id="gone")
    sched.cancel(job)
    assert "gone" not in sched and not rconn.exists(job.key)
    sched.cancel("never-existed")  # as rq-scheduler: no error
    moved = sched.enqueue_at(T0 + timedelta(hours=1), "builtins.print", job_id="moved")
    sched.change_execution_time(moved, datetime(2030, 1, 1, 0, 10))
    [(_, when)] = sched.get_jobs(with_times=True)
    assert when == datetime(2030, 1, 1, 0, 10)
    clock.advance(timedelta(minutes=10))
    sched.engine.tick()
    assert Queue("default", connection=rconn).job_ids == ["moved"]
    with pytest.raises(ValueError, match="not in scheduled jobs"):
        sched.change_execution_time(moved, T0)
    sched.cron("0 * * * *", "builtins.print", id="hourly")
    with pytest.raises(ValueError, match="cron"):
        sched.change_execution_time("hourly", T0)


def test_get_jobs_is_time_ordered_with_slices_and_count(sched: Scheduler) -> None:
    for minutes, job_id in ((30, "c"), (10, "a"), (20, "b"), (40, "d")):
        sched.enqueue_at(T0 + timedelta(minutes=minutes), "builtins.print", job_id=job_id)
    assert [j.id for j in sched.get_jobs()] == ["a", "b", "c", "d"]
    assert [j.id for j in sched.get_jobs(offset=1, length=2)] == ["b", "c"]
    assert [j.id for j in sched.get_jobs(until=T0 + timedelta(minutes=20))] == ["a", "b"]
    assert sched.count(until=timedelta(minutes=30)) == 3 and sched.count() == 4
    assert sched.count(until=(T0 + timedelta(minutes=10)).timestamp()) == 1
    with pytest.raises(ValueError):
        list(sched.get_jobs(offset=1))


def test_enqueue_job_and_get_queue_for_job(sched: Scheduler, rconn: redis.Redis) -> None:
    job = sched.enqueue_at(T0 + timedelta(days=1), "builtins.print", job_id="now", queue_name="low")
    assert sched.get_queue_for_job(job).name == "low"
    sched.enqueue_job(job)
    assert Queue("low", connection=rconn).job_ids == ["now"] and "now" not in sched
    sched.schedule(T0 + timedelta(days=1), "builtins.print", interval=3600, id="p")
    sched.enqueue_job("p")
    assert len(Queue("default", connection=rconn).job_ids) == 1 and "p" in sched  # it goes on


def test_callables_by_import_path(sched: Scheduler) -> None:
    assert task_for(Tasks.static) == "test_rq_compat:Tasks.static"
    assert task_for(Tasks.klass) == "test_rq_compat:Tasks.klass"
    assert task_for(len) == "builtins:len" and task_for("len") == "builtins:len"
    assert task_for("json.dumps") == "json:dumps"
    assert task_for("test_rq_compat.Tasks.static") == "test_rq_compat:Tasks.static"
    sched.enqueue_at(T0, Tasks.klass, 1)

    def local() -> None: ...

    for bad in (lambda: None, local, Tasks().__init__):
        with pytest.raises(ValidationError):
            sched.enqueue_at(T0, bad)
    with pytest.raises(ValidationError, match="cannot be imported"):
        sched.enqueue_at(T0, "no_such_module.func")


def test_job_ids_and_arguments_are_checked(sched: Scheduler, rconn: redis.Redis) -> None:
    with pytest.raises(ValidationError, match="A-Z a-z 0-9 _ -"):
        sched.enqueue_at(T0, "builtins.print", job_id="has:colon")
    with pytest.raises(ValidationError, match="JSON"):
        sched.enqueue_at(T0, "builtins.print", {1, 2}, job_id="pickled")
    assert not rconn.exists(Job.key_for("pickled"))  # nothing left behind
    with pytest.raises(ValidationError, match="A-Z a-z 0-9 _ -"):
        sched.enqueue_at(T0, "builtins.print", job_id="dep-bad", depends_on="has space")
    assert not rconn.exists(Job.key_for("dep-bad"))


def test_the_allow_list_applies(rconn: redis.Redis, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHEDCORE_ALLOWED_TASKS", "test_rq_tasks:*")
    sched = Scheduler(connection=rconn, clock=clock)
    with pytest.raises(ValidationError):
        sched.enqueue_at(T0, "os.system", "true", job_id="evil")
    assert not rconn.exists(Job.key_for("evil"))
    sched.executor.shutdown(wait=False)


@pytest.mark.slow
def test_drop_in_command_runs_jobs_and_stops_on_sigterm(rconn: redis.Redis, rq_redis_url: str, tmp_path: Path) -> None:
    from test_rq_tasks import incr

    client = Scheduler(connection=rconn)
    client.enqueue_in(timedelta(seconds=1), incr, rq_redis_url, "cmd", job_id="by-command")
    pid_file = tmp_path / "pid"
    env = {**worker_env(), "RQ_REDIS_URL": rq_redis_url}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "schedcore_rq.compat._command",
            "-i",
            "5",
            "--pid",
            str(pid_file),
            "--path",
            str(TESTS_DIR),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: Queue("default", connection=rconn).job_ids == ["by-command"], what="the job enqueued")
        assert pid_file.read_text() == str(process.pid)
        run_burst_worker(rq_redis_url, WORKER)
        assert count(rconn, "cmd") == 1
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    bad = subprocess.run([sys.executable, "-m", "schedcore_rq.compat._command", "--port", "x"], capture_output=True)
    assert bad.returncode == 2
