"""The executor conformance suite on LocalExecutor, CallbackExecutor and RQExecutor.

RQExecutor runs against a private redis-server (one per module, flushed between tests)
with real ``rq worker --burst`` subprocesses as its backend. They use RQ's
``SimpleWorker`` (no fork per job; the forking Worker is covered by ``test_rq_e2e``)
to keep the module fast.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import schedcore
from schedcore.executors import LocalExecutor
from schedcore.records import Run
from schedcore.testing import ExecutorConformance
from schedcore.testing.executor_suite import ExecutorHarness, Reports
from schedcore.testing.executors import CallbackExecutor

# -- LocalExecutor ---------------------------------------------------------------------------


class LocalHarness:
    """LocalExecutor runs tasks on its own threads: draining needs nothing."""

    def __init__(self) -> None:
        self.executor = LocalExecutor(max_workers=4)

    def drain(self, timeout: float) -> None:
        """Nothing to do: the thread pool works through the runs by itself."""


class TestLocalExecutor(ExecutorConformance):
    @pytest.fixture
    def harness(self) -> Iterator[ExecutorHarness]:
        harness = LocalHarness()
        yield harness
        harness.executor.shutdown(wait=True)


# -- CallbackExecutor ------------------------------------------------------------------------


def call_the_task(run: Run) -> None:
    """A CallbackExecutor handler that really imports and calls the run's task.

    CallbackExecutor reports a handler's exception as a failed run (``"Type: message"``),
    so an import failure or a raising task become failed runs exactly as in a real executor.
    """
    module_name, _, qualname = run.task.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    target(*run.args, **run.kwargs)


class CallbackHarness:
    """CallbackExecutor plays each run inside ``submit``: draining needs nothing."""

    def __init__(self) -> None:
        self.executor = CallbackExecutor(call_the_task)

    def drain(self, timeout: float) -> None:
        """Nothing to do: every run was played (and reported) when it was submitted."""


class TestCallbackExecutor(ExecutorConformance):
    """The test double keeps the contract too: with a handler that calls the task, every
    task-side test applies (runs execute synchronously inside ``submit``)."""

    quiet_period = 0.0  # reports come from inside submit; nothing can arrive later

    @pytest.fixture
    def harness(self) -> Iterator[ExecutorHarness]:
        harness = CallbackHarness()
        yield harness
        harness.executor.shutdown(wait=True)


# -- RQExecutor ------------------------------------------------------------------------------

_REPO_ROOT = str(Path(schedcore.__file__).resolve().parent.parent)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A private redis-server for this module (skips -- or fails in CI -- when missing)."""
    from schedcore.testing.redis_server import redis_server

    with redis_server() as server:
        yield server.url


class RQHarness:
    """RQExecutor on the private server; ``drain`` runs ``rq worker --burst`` on its queue."""

    worker_class = "rq.worker.SimpleWorker"

    def __init__(self, url: str, queue: str = "default", **options: Any) -> None:
        import redis

        from schedcore_rq import RQExecutor

        self.url = url
        self.queue = queue
        self.connection = redis.Redis.from_url(url)
        self.connection.flushall()
        self.executor = RQExecutor(self.connection, queue, poll_interval=0.1, **options)
        self._options = options

    def restart(self) -> Any:
        """A fresh, unstarted RQExecutor on the same server, queue and namespace."""
        from schedcore_rq import RQExecutor

        return RQExecutor(self.connection, self.queue, poll_interval=0.1, **self._options)

    def drain(self, timeout: float) -> None:
        """Run one burst worker (a subprocess of this interpreter) until the queue is empty."""
        env = dict(os.environ)
        # The worker imports schedcore.testing.tasks and schedcore_rq from this checkout.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_REPO_ROOT, env.get("PYTHONPATH", "")) if p)
        cmd = [sys.executable, "-m", "rq.cli", "worker", "--burst", "--quiet"]
        cmd += ["--url", self.url, "--worker-class", self.worker_class, self.queue]
        done = subprocess.run(cmd, env=env, timeout=timeout, check=False, capture_output=True)
        if done.returncode != 0:
            raise AssertionError(f"rq worker exited with {done.returncode}: {done.stderr.decode(errors='replace')}")

    def close(self) -> None:
        self.executor.shutdown(wait=False)
        self.connection.close()


@pytest.mark.redis
class TestRQExecutor(ExecutorConformance):
    """RQExecutor as ``schedcore run --executor rq`` builds it without ``--workers`` (defaults).

    Its workers are other processes, so ``shutdown(wait=True)`` does not wait for their
    jobs; the outcomes stay in Redis and the next executor reports them.
    """

    durable_outcomes = True

    @pytest.fixture
    def harness(self, redis_url: str) -> Iterator[ExecutorHarness]:
        harness = RQHarness(redis_url, self.queue)
        yield harness
        harness.close()


@pytest.mark.redis
def test_rq_shutdown_with_a_drain_timeout_lets_a_running_task_finish_and_report(redis_url: str, tmp_path: Path) -> None:
    """With ``drain_timeout`` set, RQExecutor keeps that part of the contract."""
    harness = RQHarness(redis_url, drain_timeout=30.0)
    try:
        ExecutorConformance().test_shutdown_with_wait_lets_a_running_task_finish_and_report(
            harness, Reports(), tmp_path
        )
    finally:
        harness.close()
