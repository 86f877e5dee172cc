"""Redis store for schedcore: a sorted-set time index with atomic, lease-based claims.

Any number of scheduler processes, on any number of machines, can share one store::

    from schedcore import Scheduler
    from schedcore_redis import RedisStore

    store = RedisStore.from_url("redis://localhost:6379/0", namespace="default")
    sched = Scheduler(store=store, executor=...)

See ``docs/redis.md`` for the key layout and the operational notes.
"""

from schedcore_redis._store import RedisStore

__all__ = ["RedisStore"]
