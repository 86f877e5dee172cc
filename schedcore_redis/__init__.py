"""Redis store for schedcore: a sorted-set time index with atomic, lease-based claims.

Any number of scheduler processes, on any number of machines, can share one store::

    from schedcore import Scheduler
    from schedcore_redis import RedisStore

    store = RedisStore.from_url("redis://localhost:6379/0", namespace="default")
    sched = Scheduler(store=store, executor=...)

See ``docs/redis.md`` for the key layout and the operational notes. Importing this
package does not import redis-py (the ``redis`` plugin is registered on every install);
``RedisStore`` does, on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from schedcore_redis._store import RedisStore

__all__ = ["RedisStore"]


def __getattr__(name: str) -> Any:
    if name == "RedisStore":
        from schedcore_redis._store import RedisStore

        return RedisStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
