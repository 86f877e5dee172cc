"""The store conformance suite on RedisStore: against fakeredis (with Lua) and a real private redis-server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, settings
from redis_helpers import make_store, redis_server_url  # noqa: F401  (fixture)

from schedcore.testing import StoreConformance
from schedcore_redis import RedisStore


class TestRedisStoreOnFakeredis(StoreConformance):
    """fakeredis runs the Lua scripts in lupa, an order of magnitude slower than Redis:
    the model-based test runs fewer examples here and in full against the real server."""

    history_limit = 50
    stateful_settings: ClassVar[settings] = settings(
        max_examples=8,
        stateful_step_count=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )

    @pytest.fixture
    def store(self, request: pytest.FixtureRequest) -> Iterator[RedisStore]:
        store = make_store("fakeredis", request, history_limit=self.history_limit)
        store.add_chunk_size = 7  # add_many batches of the suite cross chunk boundaries
        yield store
        store.close()


@pytest.mark.redis
class TestRedisStoreOnRedis(StoreConformance):
    """The same suite on a private redis-server (a fresh namespace per test)."""

    history_limit = 50

    @pytest.fixture
    def store(self, request: pytest.FixtureRequest) -> Iterator[RedisStore]:
        store = make_store("redis", request, history_limit=self.history_limit)
        store.add_chunk_size = 7  # add_many batches of the suite cross chunk boundaries
        yield store
        store.close()
