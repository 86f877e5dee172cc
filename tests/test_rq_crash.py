# ruff: noqa: F401, F811  (pytest fixtures imported from test_rq_support)
"""The scheduler killed with SIGKILL at random points while dispatching a few thousand due
runs to RQ, restarted, several times: every run executes exactly once.

Scheduler processes share a RedisStore; their executor hands runs to RQ on the same Redis.
Executions are counted on the worker side (one hash field per schedule).
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone

import pytest
import redis
from rq import Queue
from test_rq_support import rconn, rq_redis_url, worker_env

from schedcore import At, Schedule
from schedcore_redis import RedisStore
from schedcore_rq import WorkerPool

pytestmark = pytest.mark.slow

N = 2000
NAMESPACE = "crash"

SCHEDULER = textwrap.dedent(
    """
    import sys
    from datetime import timedelta
    import redis
    from schedcore.scheduler import Scheduler
    from schedcore_redis import RedisStore
    from schedcore_rq import RQExecutor

    url = sys.argv[1]
    store = RedisStore.from_url(url, namespace="crash")
    executor = RQExecutor(redis.Redis.from_url(url), namespace="crash")
    Scheduler(store=store, executor=executor, lease=timedelta(seconds=2), batch_size=int(sys.argv[2])).run()
    """
)


def start_scheduler(url: str, batch: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", SCHEDULER, url, str(batch)],
        env=worker_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_scheduler_sigkilled_while_dispatching_runs_everything_exactly_once(
    rq_redis_url: str, rconn: redis.Redis
) -> None:
    rng = random.Random(4)
    store = RedisStore.from_url(rq_redis_url, namespace=NAMESPACE)
    due = datetime.fromtimestamp(int(time.time()) + 4, tz=timezone.utc)
    try:
        for i in range(N):
            store_add(store, i, rq_redis_url, due)
    finally:
        store.close()
    queue = Queue("default", connection=rconn)
    wait_until = due.timestamp()
    while time.time() < wait_until:
        time.sleep(0.05)

    kills = 0
    for _ in range(6):  # killed at a random point of its dispatching, then restarted
        before = queue.count
        if before >= N:
            break
        process = start_scheduler(rq_redis_url, batch=rng.choice([20, 50, 100]))
        deadline = time.monotonic() + 30
        while queue.count == before and time.monotonic() < deadline:  # dispatching has begun
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.8))
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
    assert kills >= 1
    # A last scheduler finishes the job (claims of the dead ones expire after their 2 s lease).
    process = start_scheduler(rq_redis_url, batch=100)
    try:
        deadline = time.monotonic() + 60
        while queue.count < N and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2.5)  # one more lease period: nothing else may appear
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert queue.count == N  # one job per run, repeats of the hand-off dropped

    with WorkerPool(
        rq_redis_url, ["default"], 4, worker_class="rq.worker.SimpleWorker", burst=True, env=worker_env()
    ) as pool:
        assert pool.wait(timeout=120)
    counts = {k.decode(): int(v) for k, v in rconn.hgetall("n:crash").items()}
    assert len(counts) == N
    assert set(counts.values()) == {1}


def store_add(store: RedisStore, i: int, url: str, due: datetime) -> None:
    from schedcore.records import Pending, PendingKind

    schedule = Schedule(id=f"s{i:04d}", task="test_rq_tasks:hincr", args=[url, "n:crash", f"s{i:04d}"], trigger=At(due))
    store.add(schedule, Pending(kind=PendingKind.FIRE, nominal=due, due=due), "error")
