"""Reserving a job id for a schedule: shared by the compatible ``Scheduler`` and the migration.

An rq-scheduler job exists in Redis before it is due (``Job.fetch(id)`` works). schedcore
keeps that promise with a *placeholder*: an RQ job saved under the id, plus the id's
hand-off marker set to :data:`~schedcore_rq._jobs.RESERVED`. When the run is handed over,
the hand-off script sees the marker and replaces the placeholder with the real job (a
job under an id without that marker is never touched). Both are written before the
schedule is added, and removed again if adding it fails.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redis import Redis

from schedcore.model import Conflict, Schedule
from schedcore.records import AddResult
from schedcore.scheduler import Scheduler as Engine
from schedcore_rq._jobs import RESERVED
from schedcore_rq._outcomes import Keys

__all__ = ["RELEASE_LUA", "add_reserved", "placeholder_job", "release"]

# KEYS: 1 the id's hand-off marker, 2 the job key. Drops a placeholder job (and its
# reservation) that no hand-off has replaced yet; a job already handed over is left alone.
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 1
end
return 0
"""


def placeholder_job(
    job_class: Any,
    connection: Redis,
    schedule: Schedule,
    *,
    func: Callable[..., Any] | str,
    args: Any,
    kwargs: Any,
    serializer: Any = None,
) -> Any:
    """The RQ job (not saved yet) standing for ``schedule`` until its run is handed over:
    ``func(*args, **kwargs)`` with the schedule's id, queue and RQ options, status ``scheduled``."""
    from rq.job import JobStatus

    options = schedule.executor_options
    job = job_class.create(
        func,
        args=tuple(args or ()),
        kwargs=dict(kwargs or {}),
        connection=connection,
        id=schedule.id,
        timeout=options.get("job_timeout"),
        result_ttl=options.get("result_ttl"),
        ttl=options.get("ttl"),
        description=options.get("description"),
        meta=dict(options.get("meta") or {}),
        depends_on=list(options.get("depends_on") or ()) or None,
        status=JobStatus.SCHEDULED,
        serializer=serializer,
    )
    job.origin = schedule.queue
    job.enqueue_at_front = bool(options.get("at_front"))
    return job


def release(connection: Redis, keys: Keys, job_id: str, job_key: str | None) -> bool:
    """Drop ``job_id``'s reservation, and the placeholder at ``job_key`` (None: keep the job
    there), unless a hand-off has replaced it already. Returns whether it was dropped."""
    script = connection.register_script(RELEASE_LUA)
    marker = keys.handed(job_id)
    return bool(script(keys=[marker, job_key or marker], args=[RESERVED]))


def add_reserved(
    engine: Engine,
    schedule: Schedule,
    *,
    connection: Redis,
    keys: Keys,
    job: Any = None,
    conflict: Conflict = Conflict.REPLACE,
) -> AddResult:
    """Reserve ``schedule.id`` (saving ``job`` as its placeholder in the same round trip; with
    None, the job already in Redis under that id is the placeholder), then add the schedule;
    undo the reservation if adding fails."""
    marker = keys.handed(schedule.id)
    with connection.pipeline() as pipe:
        if job is not None:
            job.save(pipeline=pipe)
        pipe.set(marker, RESERVED)
        pipe.execute()
    try:
        return engine.add(schedule, conflict)
    except BaseException:
        release(connection, keys, schedule.id, job.key if job is not None else None)
        raise
