"""Every key the Redis store writes lives in one Redis Cluster hash slot.

That is what lets the Lua scripts touch several keys atomically on a cluster: all keys
of a namespace share the hash tag ``{schedcore:<namespace>}``. The test drives every
kind of write the store makes, then looks at every key on a private server.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from redis.crc import key_slot
from redis_helpers import private_server  # noqa: F401

from schedcore.model import Conflict
from schedcore.records import OutcomeStatus, PendingKind
from schedcore.testing.factories import T0, at, commit_for, entry, fire_entry, make_schedule, outcome_for
from schedcore.testing.redis_server import RedisServer
from schedcore_redis import RedisStore


@pytest.mark.redis
def test_all_keys_of_a_namespace_share_one_hash_slot(private_server: RedisServer) -> None:  # noqa: F811
    store = RedisStore.from_url(private_server.url, namespace="prod.eu-1", history_ttl=3600)
    try:
        store.add(make_schedule("a", retry={"max_attempts": 3}), fire_entry(0), Conflict.ERROR)
        store.add(make_schedule("b", overlap="buffer_one"), fire_entry(0), Conflict.ERROR)
        store.enqueue("a", [entry(PendingKind.MANUAL, 5)])
        claims = store.claim_due(at(10), limit=10, lease=timedelta(seconds=30), owner="s1")
        store.commit([commit_for(c, next_fire=fire_entry(60)) if c.entry.kind is PendingKind.FIRE else commit_for(c)
                      for c in claims])  # fmt: skip
        store.record_outcome(outcome_for("a", fire_entry(0), OutcomeStatus.FAILED), entry(PendingKind.RETRY, 0, 20, 2))
        later = store.claim_due(at(70), limit=10, lease=timedelta(seconds=30), owner="s2")
        store.release(later)
        store.set_paused("b", True, None)
        store.heartbeat("s1", {"host": "h"}, now=T0, ttl=timedelta(seconds=15))
        store.stats(T0)

        client = store._client  # the test may look at everything; the store never scans
        keys = list(client.scan_iter(count=1000))
        assert len(keys) >= 6, keys  # index, claims, definitions, history, heartbeats, tokens...
        slots = {key_slot(key) for key in keys}
        assert slots == {key_slot(b"{schedcore:prod.eu-1}")}, keys
        assert all(key.startswith(b"{schedcore:prod.eu-1}:") for key in keys), keys
    finally:
        store.close()
