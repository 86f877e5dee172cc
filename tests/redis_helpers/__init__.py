"""Fixtures and helpers shared by the Redis store tests (imported by ``tests/test_redis_*.py``)."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("redis", reason="redis-py is not installed (pip install 'schedcore-engine[redis]')")

from schedcore.testing.redis_server import RedisServer, require_redis_server
from schedcore_redis import RedisStore

_names = itertools.count()


def fresh_namespace() -> str:
    """A namespace no other test (or process) uses."""
    return f"t{next(_names)}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    """URL of a private redis-server shared by the session (each test uses its own namespace)."""
    server = RedisServer(require_redis_server())
    try:
        server.start()
        yield server.url
    finally:
        server.close()


@pytest.fixture
def private_server() -> Iterator[RedisServer]:
    """A private redis-server of the test's own (for outages: stop / start)."""
    server = RedisServer(require_redis_server())
    try:
        server.start()
        yield server
    finally:
        server.close()


BACKENDS = ["fakeredis", pytest.param("redis", marks=pytest.mark.redis)]


def make_store(backend: str, request: pytest.FixtureRequest, **options: object) -> RedisStore:
    """A store on a fresh namespace of ``backend`` ("fakeredis" or the private "redis")."""
    if backend == "fakeredis":
        fakeredis = pytest.importorskip("fakeredis", reason="fakeredis is not installed")
        return RedisStore(fakeredis.FakeRedis(), namespace=fresh_namespace(), **options)  # type: ignore[arg-type]
    url = request.getfixturevalue("redis_server_url")
    return RedisStore.from_url(url, namespace=fresh_namespace(), **options)  # type: ignore[arg-type]


def store_fixture() -> Any:
    """A ``store`` fixture for a test module (``store = store_fixture()``): a RedisStore on a
    fresh namespace of each of :data:`BACKENDS`, closed afterwards."""

    @pytest.fixture(params=BACKENDS)
    def store(request: pytest.FixtureRequest) -> Iterator[RedisStore]:
        s = make_store(request.param, request)
        yield s
        s.close()

    return store
