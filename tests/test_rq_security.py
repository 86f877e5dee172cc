"""Issue 11, items 1-2 on real ``rq worker`` processes: the task allow-list at hand-off and on
the worker, and RQ's JSON serializer as a first-class choice (plain and supervised workers).

A refused task would ``touch`` a marker file through ``os:system``; the marker must never
appear. Scheduler time is a FakeClock started at the real now (see tests/test_rq_e2e.py).
"""

# ruff: noqa: F401, F811  (pytest fixtures imported from test_rq_support)
from __future__ import annotations

import json
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import redis
from test_rq_e2e import System
from test_rq_support import rconn, rq_redis_url, wait_for, worker_cmd, worker_env

from schedcore import At, FakeClock, RetryPolicy, Schedule, Scheduler, ValidationError
from schedcore.allowlist import TaskAllowList
from schedcore.plugins import get_plugin_manager
from schedcore.records import RunStatus
from schedcore_redis import RedisStore
from schedcore_rq import RQExecutor, WorkerPool
from schedcore_rq._plugin import create_executor
from schedcore_rq._serializers import JSON_PATH, serializer_path

JSON_FLAG = ("--serializer", JSON_PATH)


def _now() -> datetime:
    return datetime.fromtimestamp(int(time.time()) + 1, tz=timezone.utc)


def _burst(url: str, *, serializer: bool = False, env: dict[str, str] | None = None) -> None:
    """One ``rq worker --burst`` (the forking Worker) to completion."""
    cmd = worker_cmd(url, "rq.worker.Worker")
    if serializer:
        cmd[-1:-1] = JSON_FLAG  # before the queue name
    subprocess.run(
        cmd, env={**worker_env(), **(env or {})}, check=True, timeout=60,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture
def systems(rconn: redis.Redis, rq_redis_url: str) -> Iterator[Any]:
    """Systems of tests/test_rq_e2e.py on a RedisStore (so that tests can plant raw records)."""
    made: list[System] = []

    def make(**options: Any) -> System:
        store = RedisStore.from_url(rq_redis_url, namespace=f"sec{time.monotonic_ns()}")
        made.append(System(rconn, rq_redis_url, _now() - timedelta(seconds=1), store, **options))
        return made[-1]

    yield make
    for s in made:
        s.close()


def _statuses(sy: System, sid: str) -> list[RunStatus]:
    return [r.status for r in sy.history(sid)]


def _plant(store: RedisStore, sid: str, body: dict[str, Any], due: datetime) -> None:
    """A definition written straight into Redis, the way an attacker with write access would."""
    pipe = store._client.pipeline()
    pipe.hset(store.keys.schedules, sid, f"{int(due.timestamp() * 1000)};;\n1{json.dumps(body)}")
    pipe.zadd(store.keys.ids, {sid: 0})
    pipe.zadd(store.keys.index, {sid: int(due.timestamp() * 1000)})
    pipe.execute()


# -- the allow-list ----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_raw_os_system_definition_is_refused_at_hand_off(
    systems: Any, rq_redis_url: str, rconn: redis.Redis, tmp_path: Path
) -> None:
    sy = systems(allowed_tasks=["test_rq_tasks:*"])
    marker = tmp_path / "pwned"
    due = sy.clock.now() + timedelta(seconds=1)
    _plant(sy.store, "evil", {"k": "os:system", "t": {"y": "at", "when": due.isoformat()},
                              "a": [f"touch {marker}"], "r": {"m": 3}}, due)  # fmt: skip
    sy.scheduler.add(Schedule(id="good", task="test_rq_tasks:incr", args=[rq_redis_url, "n:good"], trigger=At(due)))
    sy.clock.set(due)
    sy.scheduler.tick()
    _burst(rq_redis_url)  # a worker without a list of its own: the scheduler must not have sent it
    sy.settle()
    assert not marker.exists()
    assert int(rconn.get("n:good") or 0) == 1
    [record] = sy.scheduler.history("evil")
    assert record.status is RunStatus.FAILED and record.retry_at is None
    assert record.error == "task 'os:system' is not in the allowed tasks"
    sy.clock.advance(3600)
    sy.scheduler.tick()
    assert _statuses(sy, "evil") == [RunStatus.FAILED]  # never retried


@pytest.mark.slow
def test_the_worker_refuses_a_task_outside_its_own_list(
    systems: Any, rq_redis_url: str, rconn: redis.Redis, tmp_path: Path
) -> None:
    sy = systems()  # a scheduler without a list: the worker's own list still holds
    marker = tmp_path / "pwned"
    due = sy.clock.now() + timedelta(seconds=1)
    sy.scheduler.add(Schedule(id="evil", task="os:system", args=[f"touch {marker}"], trigger=At(due)))
    sy.scheduler.add(Schedule(id="good", task="test_rq_tasks:incr", args=[rq_redis_url, "n:ok"], trigger=At(due)))
    sy.clock.set(due)
    sy.scheduler.tick()
    _burst(rq_redis_url, env={"SCHEDCORE_ALLOWED_TASKS": "test_rq_tasks:*"})
    sy.settle()
    assert not marker.exists()
    assert int(rconn.get("n:ok") or 0) == 1
    [record] = sy.scheduler.history("evil")
    assert record.status is RunStatus.FAILED
    assert "PermissionError: task 'os:system' is not in the allowed tasks" in (record.error or "")


# -- RQ's JSON serializer ------------------------------------------------------------------------


def test_serializer_names_become_the_workers_flag(rq_redis_url: str) -> None:
    from rq.serializers import JSONSerializer

    assert serializer_path("json") == serializer_path(JSONSerializer) == JSON_PATH
    assert serializer_path("pickle") is None and serializer_path(None) is None
    assert serializer_path("my.mod.Ser") == "my.mod.Ser"
    with pytest.raises(ValidationError):
        serializer_path(JSONSerializer())  # an instance has no name a worker could import
    for name in ("json", JSON_PATH):
        executor = create_executor({"redis_url": rq_redis_url, "serializer": name, "workers": 2})
        try:
            cmd = executor.workers.command(0)  # type: ignore[attr-defined]
            at = cmd.index("--serializer")
            assert cmd[at + 1] == JSON_PATH
        finally:
            executor.shutdown(wait=False)
    plain = create_executor({"redis_url": rq_redis_url, "workers": 1})
    assert "--serializer" not in plain.workers.command(0)  # type: ignore[attr-defined]
    plain.shutdown(wait=False)


def test_an_owned_pool_gets_the_executor_serializer_or_is_refused(rconn: redis.Redis, rq_redis_url: str) -> None:
    from rq.serializers import JSONSerializer

    pool = WorkerPool(rq_redis_url, ["default"], 1)
    RQExecutor(rconn, serializer=JSONSerializer, workers=pool)
    assert pool.serializer == JSON_PATH
    with pytest.raises(ValidationError, match="workers' serializer differs"):
        RQExecutor(rconn, workers=WorkerPool(rq_redis_url, ["default"], 1, serializer=JSON_PATH))
    with pytest.raises(ValidationError, match="workers' serializer differs"):
        RQExecutor(rconn, serializer="json", workers=WorkerPool(rq_redis_url, ["default"], 1, serializer="x.y.Z"))


@pytest.mark.slow
def test_json_jobs_on_a_plain_worker_succeed_fail_and_retry(
    systems: Any, rq_redis_url: str, rconn: redis.Redis
) -> None:
    sy = systems(serializer="json")
    due = sy.clock.now() + timedelta(seconds=1)
    sy.scheduler.add(
        Schedule(id="ok", task="test_rq_tasks:incr", args=[rq_redis_url, "n:json"], kwargs={}, trigger=At(due))
    )
    sy.scheduler.add(
        Schedule(id="flaky", task="test_rq_tasks:fail", args=[rq_redis_url, "n:jfail"], trigger=At(due),
                 retry=RetryPolicy(max_attempts=2, initial_delay=1))
    )  # fmt: skip
    sy.clock.set(due)
    sy.scheduler.tick()
    # The job data in Redis is JSON, not a pickle: a worker never unpickles it.
    jobs = [k for k in rconn.keys("rq:job:*") if rconn.type(k) == b"hash"]
    assert len(jobs) == 2
    for key in jobs:
        data = json.loads(zlib.decompress(rconn.hget(key, "data")))
        assert data[0] == "schedcore_rq._worker_side.run_task"
    _burst(rq_redis_url, serializer=True)
    sy.settle()
    retry_due = sy.store.next_due()
    assert retry_due is not None
    sy.clock.set(max(retry_due, sy.clock.now()))
    sy.scheduler.tick()
    _burst(rq_redis_url, serializer=True)
    sy.settle()
    assert int(rconn.get("n:json") or 0) == 1 and int(rconn.get("n:jfail") or 0) == 2
    assert _statuses(sy, "ok") == [RunStatus.SUCCEEDED]
    assert _statuses(sy, "flaky") == [RunStatus.FAILED, RunStatus.FAILED]
    assert "RuntimeError: task failed on purpose" in (sy.scheduler.history("flaky")[0].error or "")


@pytest.mark.slow
def test_json_jobs_on_a_supervised_pool(rq_redis_url: str, rconn: redis.Redis) -> None:
    """``schedcore run --executor rq --rq-serializer json --workers 2 --burst``."""
    store = RedisStore.from_url(rq_redis_url, namespace="jsonpool")
    due = _now()
    try:
        for i in range(4):
            store.add(
                Schedule(id=f"j{i}", task="test_rq_tasks:incr", args=[rq_redis_url, "n:pool"], trigger=At(due)),
                _fire(due),
                "error",
            )
        store.add(Schedule(id="bad", task="test_rq_tasks:fail", args=[rq_redis_url, "n:pbad"], trigger=At(due)),
                  _fire(due), "error")  # fmt: skip
        while datetime.now(timezone.utc) < due:
            time.sleep(0.05)
        result = subprocess.run(
            [sys.executable, "-m", "schedcore.cli", "--allowed-tasks", "test_rq_tasks:*", "run",
             "--store", "redis", "-S", f"url={rq_redis_url}", "-S", "namespace=jsonpool",
             "--executor", "rq", "-E", f"redis_url={rq_redis_url}", "-E", "namespace=jsonpool",
             "--rq-serializer", "json", "--workers", "2", "--burst"],
            env=worker_env(), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert int(rconn.get("n:pool") or 0) == 4 and int(rconn.get("n:pbad") or 0) == 1
        for i in range(4):
            assert [r.status for r in store.history(f"j{i}")] == [RunStatus.SUCCEEDED]
        [bad] = store.history("bad")
        assert bad.status is RunStatus.FAILED and "task failed on purpose" in (bad.error or "")
    finally:
        store.close()
    from rq import Worker

    wait_for(lambda: not Worker.all(connection=rconn), timeout=10, what="the workers to stop")


def _fire(due: datetime) -> Any:
    from schedcore.records import Pending, PendingKind

    return Pending(kind=PendingKind.FIRE, nominal=due, due=due)
