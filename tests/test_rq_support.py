"""Shared fixtures and helpers of the RQ executor tests (no tests here).

A private ``redis-server`` (:mod:`schedcore.testing.redis_server`: a unix socket in a
temporary directory), started once per test module and flushed between tests -- never a
Redis the tests did not start. Without ``redis-server`` the tests skip, unless
``SCHEDCORE_REQUIRE_REDIS=1``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from schedcore.records import Outcome

TESTS_DIR = Path(__file__).resolve().parent
WORKER_CLASSES = ["rq.worker.Worker", "rq.worker.SimpleWorker"]


@pytest.fixture(scope="session")
def rq_redis_url() -> Iterator[str]:
    """URL of a private redis-server started for this session (skips/fails when missing)."""
    from schedcore.testing.redis_server import redis_server

    with redis_server() as server:
        yield server.url


@pytest.fixture
def rconn(rq_redis_url: str) -> Iterator[redis.Redis]:
    """A connection to the private server, emptied before each test."""
    conn = redis.Redis.from_url(rq_redis_url)
    conn.flushall()
    yield conn
    conn.close()


def worker_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS_DIR), env.get("PYTHONPATH", "")) if p)
    return env


def worker_cmd(url: str, worker_class: str, *, burst: bool = True, queues: tuple[str, ...] = ("default",)) -> list[str]:
    cmd = [sys.executable, "-m", "rq.cli", "worker", "--url", url, "--worker-class", worker_class, "--quiet"]
    if burst:
        cmd.append("--burst")
    return cmd + list(queues)


def run_burst_worker(url: str, worker_class: str, queues: tuple[str, ...] = ("default",), timeout: float = 60) -> None:
    """Run one ``rq worker --burst`` to completion."""
    subprocess.run(
        worker_cmd(url, worker_class, queues=queues),
        env=worker_env(),
        check=True,
        timeout=timeout,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def start_worker(url: str, worker_class: str, *, burst: bool = False) -> subprocess.Popen[bytes]:
    """Start an ``rq worker`` in the background."""
    return subprocess.Popen(
        worker_cmd(url, worker_class, burst=burst),
        env=worker_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_for(condition, timeout: float = 20.0, interval: float = 0.05, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM (RQ's warm shutdown), SIGKILL after ``timeout``; always reaped."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait()


class Collector:
    """An executor's report callback that keeps the outcomes (thread-safe)."""

    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []
        self.lock = threading.Lock()

    def __call__(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)

    def wait(self, executor: Any, n: int, timeout: float = 5.0) -> list[Outcome]:
        """Wait until ``n`` outcomes arrived (the background thread may be reporting them)."""
        deadline = time.monotonic() + timeout
        while True:
            executor.process_outcomes()
            with self.lock:
                if len(self.outcomes) >= n:
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {n} outcomes, got {self.outcomes}")
            time.sleep(0.02)
        time.sleep(0.1)  # and no more than n
        executor.process_outcomes()
        return list(self.outcomes)
