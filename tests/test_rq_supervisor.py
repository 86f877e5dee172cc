# ruff: noqa: F401, F811  (pytest fixtures imported from test_rq_support)
"""WorkerPool: N real ``rq worker`` subprocesses, restarted when they crash, stopped together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
import redis
from rq import Queue, Worker
from test_rq_support import rconn, rq_redis_url, wait_for, worker_env

from schedcore.exceptions import ValidationError
from schedcore_rq import WorkerPool

pytestmark = pytest.mark.slow


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child counts as gone
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done == 0


def test_pool_starts_restarts_a_killed_worker_and_stops_them_all(rq_redis_url: str, rconn: redis.Redis) -> None:
    pool = WorkerPool(
        rq_redis_url,
        ["default"],
        2,
        worker_class="rq.worker.SimpleWorker",
        backoff=(0.2, 1.0),
        grace=5,
        env=worker_env(),
    )
    pool.start()
    try:
        wait_for(lambda: len(Worker.all(connection=rconn)) == 2, what="two workers to register")
        first_pids = pool.pids()
        assert len(first_pids) == 2
        os.kill(first_pids[0], signal.SIGKILL)
        wait_for(lambda: pool.restarts == 1 and len(pool.pids()) == 2, what="the killed worker to be restarted")
        assert first_pids[0] not in pool.pids() and first_pids[1] in pool.pids()
        # The pool's workers really work: a job on their queue is executed.
        job = Queue("default", connection=rconn).enqueue("test_rq_tasks.incr", rq_redis_url, "n:pool")
        wait_for(lambda: rconn.get("n:pool") == b"1", what="the job to run on the pool")
        assert job.id
    finally:
        pids = pool.pids()
        pool.stop()
    assert not any(alive(pid) for pid in pids)
    assert pool.pids() == []


def test_burst_pool_drains_the_queue_and_is_not_restarted(rq_redis_url: str, rconn: redis.Redis) -> None:
    q = Queue("jobs", connection=rconn)
    for _ in range(5):
        q.enqueue("test_rq_tasks.incr", rq_redis_url, "n:burst")
    with WorkerPool(
        rq_redis_url, ["jobs"], 2, worker_class="rq.worker.SimpleWorker", burst=True, env=worker_env()
    ) as pool:
        assert pool.wait(timeout=60)
        assert pool.restarts == 0
    assert rconn.get("n:burst") == b"5"


def test_pool_worker_command_line(rq_redis_url: str) -> None:
    pool = WorkerPool(
        rq_redis_url, ["high", "low"], 1, burst=True, serializer="rq.serializers.JSONSerializer", extra_args=["-q"]
    )
    cmd = pool.command(0)
    assert cmd[:4] == [sys.executable, "-m", "rq.cli", "worker"]
    assert cmd[-2:] == ["high", "low"]
    assert "--burst" in cmd and "rq.serializers.JSONSerializer" in cmd and "-q" in cmd
    assert cmd[cmd.index("--worker-class") + 1] == "rq.worker.Worker"


@pytest.mark.parametrize(("kwargs", "field"), [({"n": -1}, "workers"), ({"queues": []}, "queues")])
def test_pool_refuses_bad_arguments(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"redis_url": "redis://x", "queues": ["default"], "n": 1}
    args.update(kwargs)
    with pytest.raises(ValidationError) as info:
        WorkerPool(**args)  # type: ignore[arg-type]
    assert info.value.field == field


def test_serve_stops_the_workers_on_sigterm(rq_redis_url: str, rconn: redis.Redis) -> None:
    script = textwrap.dedent(
        f"""
        from schedcore_rq import WorkerPool
        WorkerPool({rq_redis_url!r}, ["default"], 2, worker_class="rq.worker.SimpleWorker").serve()
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script], env=worker_env())
    try:
        wait_for(lambda: len(Worker.all(connection=rconn)) == 2, what="two workers to register")
        pids = [int(w.pid) for w in Worker.all(connection=rconn)]
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    wait_for(lambda: not any(alive(pid) for pid in pids), what="the workers to exit")
    assert Worker.all(connection=rconn) == []
