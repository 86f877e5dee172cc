"""Tasks the RQ e2e tests run on real ``rq worker`` processes (imported as ``test_rq_tasks``).

Each task counts its executions in Redis (``INCR``), so that tests count what ran on the
worker side, not what was queued. No tests here.
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis

_CONNECTIONS: dict[tuple[int, str], redis.Redis] = {}


def _conn(url: str) -> redis.Redis:
    """One connection per process and URL (a forked work horse gets its own)."""
    key = (os.getpid(), url)
    if key not in _CONNECTIONS:
        _CONNECTIONS[key] = redis.Redis.from_url(url)
    return _CONNECTIONS[key]


def incr(url: str, key: str) -> int:
    """Count one execution."""
    return int(_conn(url).incr(key))


def fail(url: str, key: str) -> None:
    """Count one execution, then fail."""
    _conn(url).incr(key)
    raise RuntimeError("task failed on purpose")


def slow(url: str, key: str, seconds: float) -> None:
    """Count one execution, then take ``seconds``."""
    _conn(url).incr(key)
    time.sleep(seconds)


def slow_once(url: str, key: str, seconds: float) -> None:
    """Count one execution and record the pid; the first execution takes ``seconds``."""
    conn = _conn(url)
    conn.set(f"{key}:pid", os.getpid())
    if int(conn.incr(key)) == 1:
        time.sleep(seconds)


def hincr(url: str, key: str, field: str) -> None:
    """Count one execution of ``field`` in the hash ``key``."""
    _conn(url).hincrby(key, field, 1)


def shout(url: str, key: str, text: str) -> None:
    """Count one execution and print ``text`` on stdout (where a task's output goes)."""
    print(text, flush=True)
    _conn(url).incr(key)


def record_success(job: Any, connection: Any, result: Any, *args: Any, **kwargs: Any) -> None:
    """An RQ success callback: records the job id and its result in the hash ``callbacks:success``."""
    connection.hset("callbacks:success", job.id, repr(result))


def record_failure(job: Any, connection: Any, exc_type: Any, exc_value: Any, traceback: Any, *args: Any) -> None:
    """An RQ failure callback: records the job id and its error in the hash ``callbacks:failure``."""
    connection.hset("callbacks:failure", job.id, f"{exc_type.__name__}: {exc_value}")


def failing_callback(job: Any, connection: Any, result: Any, *args: Any, **kwargs: Any) -> None:
    """An RQ success callback that fails: RQ then fails the job."""
    raise RuntimeError("callback failed on purpose")
