"""The network side of the security and fault suite, against real redis-servers started here.

Threat model (docs/operations.md): someone who can reach the network or read the process
table must not learn the Redis password, hang a scheduler or CLI process, or talk to
Redis in the clear when TLS is asked for. Each test starts its own server (unix socket,
or TCP on a free loopback port) and never touches 127.0.0.1:6379.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from rq import Queue, Worker
from test_rq_support import wait_for, worker_env

from schedcore.testing.redis_server import RedisServer, require_redis_server
from schedcore_rq import WorkerPool

PASSWORD = "s3cret-Pa55word-for-the-test"


@pytest.fixture
def password_server() -> Iterator[RedisServer]:
    """A private redis-server with ``requirepass``."""
    server = RedisServer(require_redis_server(), password=PASSWORD)
    try:
        server.start()
        yield server
    finally:
        server.close()


def _proc(pid: int, name: str) -> bytes:
    return Path(f"/proc/{pid}/{name}").read_bytes()


# -- secrets: the password never reaches a command line ------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")
def test_supervised_workers_get_the_password_through_their_environment_only(password_server: RedisServer) -> None:
    url = password_server.url
    conn = redis.Redis.from_url(url)
    pool = WorkerPool(url, ["default"], 2, worker_class="rq.worker.SimpleWorker", env=worker_env(), grace=5)
    assert PASSWORD not in " ".join(pool.command(0))
    pool.start()
    try:
        wait_for(lambda: len(Worker.all(connection=conn)) == 2, what="two workers to register")
        pids = pool.pids()
        assert len(pids) == 2
        for pid in pids:
            assert PASSWORD.encode() not in _proc(pid, "cmdline")
            # The URL reaches the worker through its environment, private to its user (mode 0400).
            assert f"RQ_REDIS_URL={url}".encode() in _proc(pid, "environ").split(b"\0")
            assert os.stat(f"/proc/{pid}/environ").st_mode & 0o077 == 0
        # And the workers are connected with it: they run jobs.
        Queue("default", connection=conn).enqueue("test_rq_tasks.incr", url, "n:secret")
        wait_for(lambda: conn.get("n:secret") == b"1", what="the job to run on the pool")
    finally:
        pool.stop()
        conn.close()
