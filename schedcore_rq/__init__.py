"""schedcore on RQ: hand due runs to RQ queues exactly once, get their outcomes back.

::

    import redis
    from schedcore import Scheduler, MemoryStore
    from schedcore_rq import RQExecutor

    sched = Scheduler(store=MemoryStore(), executor=RQExecutor(redis.Redis()))

Workers are ordinary ``rq worker`` processes; :class:`WorkerPool` starts and supervises
a few of them for a one-box setup (``schedcore run --executor rq --workers N``).
"""

from schedcore_rq._executor import RQExecutor
from schedcore_rq._jobs import job_id_for
from schedcore_rq._supervisor import WorkerPool

__all__ = ["RQExecutor", "WorkerPool", "job_id_for"]
