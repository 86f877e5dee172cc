# ruff: noqa: F401, F811  (pytest fixtures imported from test_rq_support)
"""WorkerPool: N real ``rq worker`` subprocesses, restarted when they crash, stopped together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

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
    assert cmd[:4] == [sys.executable, "-m", "schedcore_rq._worker_main", "worker"]
    assert not [arg for arg in cmd if "redis" in arg or "unix://" in arg]  # the URL is in the environment
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


def test_workers_killed_while_starting_leave_no_registration_behind(rq_redis_url: str, rconn: redis.Redis) -> None:
    """SIGTERM in the window where a worker is registered but has no signal handlers yet kills
    it without unregistering (widened here to 3 s by the worker class): the pool removes the
    registrations of the workers it started that ended, so no ghost stays for rq's tooling."""
    slow = "rq_workers.SlowStartWorker"
    pool = WorkerPool(rq_redis_url, ["default", "other"], 2, worker_class=slow, env=worker_env())
    pool.start()
    try:
        wait_for(lambda: len(rconn.keys("ready:*")) == 2, what="two workers to register")
        assert len(Worker.all(connection=rconn)) == 2
        pids = pool.pids()
    finally:
        pool.stop()
    assert not any(alive(pid) for pid in pids)
    assert Worker.all(connection=rconn) == []
    assert Worker.all(queue=Queue("other", connection=rconn)) == []
    assert rconn.scard("rq:workers") == 0


def test_a_crashed_worker_is_unregistered_and_restarted(rq_redis_url: str, rconn: redis.Redis) -> None:
    pool = WorkerPool(rq_redis_url, ["default"], 1, worker_class="rq_workers.SlowStartWorker", env=worker_env())
    pool.backoff = (0.2, 1.0)
    pool.start()
    try:
        wait_for(lambda: len(rconn.keys("ready:*")) == 1, what="the worker to register")
        [first] = Worker.all(connection=rconn)
        os.kill(pool.pids()[0], signal.SIGKILL)
        wait_for(lambda: pool.restarts == 1, what="the killed worker to be restarted")
        assert first.name not in [w.name for w in Worker.all(connection=rconn)]
    finally:
        pool.stop()
    assert Worker.all(connection=rconn) == []


def test_stopping_at_any_moment_of_start_up_leaves_no_worker_registered(rq_redis_url: str, rconn: redis.Redis) -> None:
    """Start and stop a pool again and again, the stop landing anywhere in the workers' start."""
    for attempt in range(8):
        pool = WorkerPool(rq_redis_url, ["default"], 2, worker_class="rq.worker.SimpleWorker", env=worker_env())
        pool.start()
        time.sleep(attempt * 0.08)
        pool.stop()
        assert Worker.all(connection=rconn) == [], f"ghost workers after a stop {attempt * 0.08:.2f}s in"


def _serve(url: str, n: int) -> str:
    return textwrap.dedent(
        f"""
        import logging
        logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s %(message)s")
        from schedcore_rq import WorkerPool
        WorkerPool({url!r}, ["default"], {n}, worker_class="rq.worker.SimpleWorker").serve()
        """
    )


def test_ctrl_c_stops_the_pool_without_restarting_anything(rq_redis_url: str, rconn: redis.Redis) -> None:
    """Ctrl-C in a terminal: SIGINT to the whole foreground process group."""
    process = subprocess.Popen(
        [sys.executable, "-c", _serve(rq_redis_url, 2)],
        env=worker_env(),
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a shell gives a foreground job
    )
    try:
        wait_for(lambda: len(Worker.all(connection=rconn)) == 2, what="two workers to register")
        os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert "restarting" not in err and "exited with" not in err, err
    assert err.count("started rq worker") == 2
    assert Worker.all(connection=rconn) == []


def test_worker_logs_go_to_stderr_and_task_output_to_stdout(rq_redis_url: str, rconn: redis.Redis) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", _serve(rq_redis_url, 1)],
        env=worker_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: len(Worker.all(connection=rconn)) == 1, what="the worker to register")
        Queue("default", connection=rconn).enqueue("test_rq_tasks.shout", rq_redis_url, "n:shout", "TASK-SAYS-HI")
        wait_for(lambda: rconn.get("n:shout") == b"1", what="the task to run")
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert out.splitlines() == ["TASK-SAYS-HI"]  # the task's output, and nothing else
    assert "Listening on" in err and "Job OK" in err  # RQ's own lines
    assert "started rq worker 0" in err  # the supervisor's
