"""The store conformance suite on RedisStore: against fakeredis (with Lua) and a real private redis-server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis_helpers import BACKENDS, make_store, redis_server_url  # noqa: F401  (fixture)

from schedcore.testing import StoreConformance
from schedcore_redis import RedisStore


class TestRedisStoreConformance(StoreConformance):
    history_limit = 50

    @pytest.fixture(params=BACKENDS)
    def store(self, request: pytest.FixtureRequest) -> Iterator[RedisStore]:
        store = make_store(request.param, request, history_limit=self.history_limit)
        yield store
        store.close()
