"""Processes the benchmark starts: ``python -m bench.proc ROLE JSON-PARAMETERS``.

Roles: ``sc-run`` (schedcore ``Scheduler.run()``), ``sc-burst`` (schedcore ticks until nothing
is due, after a start signal), ``rqs-run`` (rq-scheduler's ``Scheduler.run()``), ``rq-run``
(the RQScheduler loop ``rq worker --with-scheduler`` forks), ``observe`` (pops the RQ queue
and timestamps every job as it arrives) and ``work`` (an RQ ``SimpleWorker`` that runs the jobs,
then reads when RQ says each one started). Each prints one JSON line last.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

import redis

READY = "bench:ready"
GO = "bench:go"


def _conn(params: dict[str, Any]) -> redis.Redis:
    return redis.Redis(unix_socket_path=params["socket"], db=params.get("db", 0), socket_timeout=300)


def _ready(conn: redis.Redis) -> None:
    conn.rpush(READY, os.getpid())


def sc_run(params: dict[str, Any]) -> Any:
    from bench.common import NAMESPACE, QUEUE, sc_scheduler
    from schedcore_redis import RedisStore
    from schedcore_rq import RQExecutor

    conn = _conn(params)
    store = RedisStore(conn, namespace=NAMESPACE)
    executor = RQExecutor(_conn(params), queue=QUEUE, namespace=NAMESPACE)
    sched = sc_scheduler(store, executor, batch_size=params.get("batch_size", 256))
    _ready(conn)
    sched.run()
    return {"ok": True}


def sc_burst(params: dict[str, Any]) -> Any:
    from bench.common import NAMESPACE, QUEUE, sc_dispatch_due, sc_scheduler
    from schedcore_redis import RedisStore
    from schedcore_rq import RQExecutor

    conn = _conn(params)
    store = RedisStore(conn, namespace=NAMESPACE)
    executor = RQExecutor(_conn(params), queue=QUEUE, namespace=NAMESPACE)
    sched = sc_scheduler(store, executor, batch_size=params.get("batch_size", 256))
    sched.tick()  # starts the executor before the clock runs
    _ready(conn)
    conn.blpop([GO], timeout=120)
    elapsed = sc_dispatch_due(sched)
    executor.shutdown(wait=False)
    return {"elapsed": elapsed}


def rqs_run(params: dict[str, Any]) -> Any:
    from bench.common import rqs_scheduler

    conn = _conn(params)
    sch = rqs_scheduler(conn, interval=params["interval"])
    _ready(conn)
    sch.run()
    return {"ok": True}


def rq_run(params: dict[str, Any]) -> Any:
    from rq.scheduler import RQScheduler

    from bench.common import QUEUE

    conn = _conn(params)
    sch = RQScheduler([QUEUE], connection=conn, interval=params.get("interval", 1), logging_level="ERROR")
    sch.acquire_locks()
    _ready(conn)
    sch.work()
    return {"ok": True}


def observe(params: dict[str, Any]) -> Any:
    """Pop jobs off the RQ queue as they arrive; lateness = arrival - nominal (ms, from the job id)."""
    conn = _conn(params)
    key = params["queue_key"]
    expected = params["expected"]
    deadline = time.time() + params["timeout"]
    late: list[float] = []
    seen: set[bytes] = set()
    duplicates = 0
    _ready(conn)
    while len(seen) < expected and time.time() < deadline:
        got = conn.blpop([key], timeout=1)
        if got is None:
            continue
        arrived = time.time() * 1000.0
        batch = [got[1]]
        batch += conn.lpop(key, 1000) or []
        for job_id in batch:
            if job_id in seen:
                duplicates += 1
                continue
            seen.add(job_id)
            late.append(arrived - _nominal_ms(job_id.decode()))
    return {"lateness_ms": late, "duplicates": duplicates, "missing": expected - len(seen)}


def work(params: dict[str, Any]) -> Any:
    """Run the jobs of the RQ queue in one ``SimpleWorker`` until ``expected`` ran (or nothing came
    for ``timeout`` s); start lateness = RQ's ``started_at`` of each job - nominal (ms, from the job
    id). The same measure for every system: schedcore's ``RunRecord.started_at`` is this very
    ``started_at``, reported by its worker side."""
    from rq import Queue, SimpleWorker
    from rq.registry import FailedJobRegistry, FinishedJobRegistry

    from schedcore_rq._outcomes import stamp_ms

    conn = _conn(params)
    queue = Queue(params["queue"], connection=conn)
    worker = SimpleWorker([queue], connection=conn)
    _ready(conn)
    worker.work(burst=False, max_jobs=params["expected"], max_idle_time=int(params["timeout"]), logging_level="ERROR")
    ids = FinishedJobRegistry(queue=queue).get_job_ids() + FailedJobRegistry(queue=queue).get_job_ids()
    pipe = conn.pipeline(transaction=False)
    for job_id in ids:
        pipe.hget(f"rq:job:{job_id}", "started_at")
    late = []
    for job_id, stamp in zip(ids, pipe.execute(), strict=True):
        started = stamp_ms(stamp)
        if started is not None:
            late.append(float(started - _nominal_ms(job_id)))
    failed = FailedJobRegistry(queue=queue).count
    # A job id is run once by RQ (ids are unique per system), so duplicates are 0 by construction.
    return {"lateness_ms": late, "duplicates": 0, "missing": params["expected"] - len(late), "failed": failed}


def _nominal_ms(job_id: str) -> int:
    if job_id.startswith("sc_"):  # sc_<schedule id>_<nominal ms>_<attempt>_<hash>
        return int(job_id.split("_")[-3])
    return int(job_id.rsplit("-", 1)[1])  # ours for the peers: late-<n>-<nominal ms>


ROLES = {
    "sc-run": sc_run,
    "sc-burst": sc_burst,
    "rqs-run": rqs_run,
    "rq-run": rq_run,
    "observe": observe,
    "work": work,
}


def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    for name in ("rq", "rq_scheduler", "rq.scheduler", "schedcore"):
        logging.getLogger(name).setLevel(logging.ERROR)
    role = sys.argv[1]
    params = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    result = ROLES[role](params)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
