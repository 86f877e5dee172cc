"""schedcore on RQ: hand due runs to RQ queues exactly once, get their outcomes back.

::

    import redis
    from schedcore import Scheduler, MemoryStore
    from schedcore_rq import RQExecutor

    sched = Scheduler(store=MemoryStore(), executor=RQExecutor(redis.Redis()))

Workers are ordinary ``rq worker`` processes; :class:`WorkerPool` starts and supervises
a few of them for a one-box setup (``schedcore run --executor rq --workers N``).

Importing this package imports neither redis nor rq (the plugin entry point loads it on
installs without the ``rq`` extra); :class:`RQExecutor` does, on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from schedcore_rq._jobs import job_id_for
from schedcore_rq._supervisor import WorkerPool

if TYPE_CHECKING:
    from schedcore_rq._executor import RQExecutor

__all__ = ["RQExecutor", "WorkerPool", "job_id_for"]


def __getattr__(name: str) -> Any:
    if name == "RQExecutor":
        from schedcore_rq._executor import RQExecutor

        return RQExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
