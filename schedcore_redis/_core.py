"""What the parts of :class:`~schedcore_redis.RedisStore` share: its construction (argument
checks, keys, scripts, the sets of unreadable data). Stored definitions are decoded, once per
text, by :func:`schedcore_redis._codec.decode_schedule`."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from datetime import timedelta

import redis
from redis.cluster import RedisCluster
from redis.commands.core import Script

from schedcore.exceptions import ValidationError
from schedcore.storekit import StoreBase
from schedcore_redis import _scripts
from schedcore_redis._keys import Keys, check_namespace

log = logging.getLogger("schedcore.redis")


def _ttl_seconds(value: float | timedelta | None) -> int:
    if value is None:
        return 0
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ValidationError("history_ttl", value, "expected seconds, a timedelta or None")
    if not math.isfinite(seconds) or seconds < 1:
        raise ValidationError("history_ttl", value, "must be at least one second")
    return math.ceil(seconds)


class _StoreCore(StoreBase):
    """The state of a :class:`~schedcore_redis.RedisStore` (its parameters are documented there)."""

    def __init__(
        self,
        client: redis.Redis | RedisCluster,
        *,
        namespace: str = "default",
        history_limit: int = 50,
        history_ttl: float | timedelta | None = None,
    ) -> None:
        if not isinstance(client, redis.Redis | RedisCluster):
            raise ValidationError("client", client, "expected a redis.Redis or redis.cluster.RedisCluster client")
        if isinstance(history_limit, bool) or not isinstance(history_limit, int) or history_limit < 1:
            raise ValidationError("history_limit", history_limit, "must be an integer >= 1")
        self.namespace = check_namespace(namespace)
        self.keys = Keys(namespace)
        self.history_limit = history_limit
        self.history_ttl = _ttl_seconds(history_ttl)
        self._client = client
        self._owns_client = False
        self._lock = threading.Lock()
        # Unreadable data, skipped by claim_due (left in place) and looked past by next_due:
        self._unreadable: dict[str, str] = {}  # schedule id -> its definition that failed to decode
        self._bad_members: set[str] = set()  # index members the claim script refused
        self._reported: set[tuple[str, str]] = set()  # (schedule id, reason) logged already
        self._watchers: list[Callable[[], None]] = []
        self._closed = False
        self._claim = self._script(_scripts.CLAIM)
        self._commit = self._script(_scripts.COMMIT)
        self._release = self._script(_scripts.RELEASE)
        self._outcome = self._script(_scripts.RECORD_OUTCOME)
        self._add = self._script(_scripts.ADD)
        self._add_many = self._script(_scripts.ADD_MANY)
        self._set_paused = self._script(_scripts.SET_PAUSED)
        self._enqueue = self._script(_scripts.ENQUEUE)
        self._remove = self._script(_scripts.REMOVE)
        self._heartbeat = self._script(_scripts.HEARTBEAT)

    _TYPES = {"index": "zset", "leases": "zset", "claims": "hash", "schedules": "hash", "ids": "zset"}

    def _shared(self, *names: str) -> list[tuple[str, str]]:
        """(key, type) of the named namespace-wide keys (attributes of :class:`Keys`)."""
        return [(getattr(self.keys, name), self._TYPES[name]) for name in names]

    def _script(self, source: str) -> Script:
        return self._client.register_script(source)  # EVALSHA, falling back to EVAL on NOSCRIPT

    @property
    def _beat_keys(self) -> list[str]:
        # ``beats``: owner -> {"beat": ms, "expires": ms, "info": {...}}; ``beatx``: owner -> expiry ms
        return [self.keys.prefix + "beats", self.keys.prefix + "beatx"]
