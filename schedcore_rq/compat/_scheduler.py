"""``schedcore_rq.compat.Scheduler``: rq-scheduler 0.14's public API on RedisStore + RQExecutor."""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from redis import Redis

from schedcore.clock import Clock, SystemClock
from schedcore.exceptions import ValidationError
from schedcore.model import Conflict, Schedule
from schedcore.records import StoredSchedule
from schedcore.scheduler import Scheduler as Engine
from schedcore.triggers import At, Interval
from schedcore_redis import RedisStore
from schedcore_rq._executor import RQExecutor
from schedcore_rq._outcomes import Keys
from schedcore_rq.compat._mapping import (
    COMPAT_META,
    as_utc,
    check_job_id,
    cron_trigger,
    interval_trigger,
    one_shot_schedule,
    periodic_schedule,
)
from schedcore_rq.compat._reserve import add_reserved, placeholder_job, release

__all__ = ["Scheduler"]

log = logging.getLogger("schedcore.rq.compat")


def _import(value: Any, default: Any) -> Any:
    if value is None:
        return default
    if isinstance(value, str):
        from rq.utils import import_attribute

        return import_attribute(value)
    return value


class Scheduler:
    """A drop-in replacement for ``rq_scheduler.Scheduler`` (0.14), run by schedcore.

    Takes rq-scheduler's constructor arguments; ``connection`` (a ``redis.Redis`` with
    ``decode_responses=False``, as RQ needs) is required. Schedules live in a
    :class:`~schedcore_redis.RedisStore` under ``namespace`` on that connection, and runs are
    handed to RQ by an :class:`~schedcore_rq.RQExecutor` (RQ's default serializer unless
    ``serializer`` is given, so that existing ``rq worker`` processes run them unchanged).
    ``clock`` is for tests (a :class:`~schedcore.clock.FakeClock`). Naive datetimes mean UTC.

    Each job returned is an ``rq.job.Job`` saved in Redis at once (``Job.fetch(id)`` works,
    with status ``scheduled``). A one-shot's run is enqueued under that same job id when it
    is due; each run of a periodic job gets a job id of its own (the returned job stays as
    the definition's record). Differences from rq-scheduler are listed in docs/migrating.md.
    """

    queue_class: Any = None
    job_class: Any = None

    def __init__(  # noqa: PLR0917  (rq-scheduler's signature, positional arguments included)
        self,
        queue_name: str = "default",
        queue: Any = None,
        interval: float = 60,
        connection: Redis | None = None,
        job_class: Any = None,
        queue_class: Any = None,
        name: str | None = None,
        *,
        namespace: str = "default",
        serializer: Any = None,
        clock: Clock | None = None,
    ) -> None:
        if connection is None:
            raise ValueError("`connection` argument is required")
        from rq import Queue
        from rq.job import Job

        self.connection = connection
        self._queue = queue
        self.queue_name: str = queue.name if queue is not None else queue_name
        self._interval = interval
        self.job_class = _import(job_class, Job)
        self.queue_class = _import(queue_class, Queue)
        self.name = name or uuid.uuid4().hex
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.store = RedisStore(connection, namespace=namespace)
        self.executor = RQExecutor(connection, queue=self.queue_name, serializer=serializer, namespace=namespace)
        self.engine = Engine(self.store, self.executor, clock=self.clock, owner=self.name)
        self._serializer = serializer
        self._keys = Keys(namespace)

    def __repr__(self) -> str:
        return f"<schedcore_rq.compat.Scheduler {self.name} queue={self.queue_name!r}>"

    # -- scheduling --------------------------------------------------------------------------

    def enqueue_at(self, scheduled_time: datetime, func: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> Any:
        """Run ``func(*args, **kwargs)`` once at ``scheduled_time`` (at once when it has passed).

        Keyword options, as rq-scheduler's: ``timeout``, ``job_id``, ``job_ttl``,
        ``job_result_ttl``, ``job_description``, ``depends_on`` (a job, a job id, an
        ``rq.job.Dependency`` or a list: the run waits in RQ's deferred registry until they
        finished), ``meta``, ``queue_name``, ``on_success``/``on_failure`` (an ``rq.Callback``,
        a function or a ``"module.function"`` string, run on the worker) and ``at_front``;
        every other keyword goes to ``func``.
        """
        options = {name: kwargs.pop(name, None) for name in _ENQUEUE_OPTIONS}
        job_id = options["job_id"] or uuid.uuid4().hex
        schedule = one_shot_schedule(
            job_id,
            scheduled_time,
            func,
            args,
            kwargs,
            queue=options["queue_name"] or self.queue_name,
            timeout=options["timeout"],
            result_ttl=options["job_result_ttl"],
            ttl=options["job_ttl"],
            description=options["job_description"],
            meta=options["meta"],
            at_front=options["at_front"],
            depends_on=options["depends_on"],
            on_success=options["on_success"],
            on_failure=options["on_failure"],
        )
        return self._add(schedule, func, args, kwargs)

    def enqueue_in(self, time_delta: timedelta, func: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> Any:
        """:meth:`enqueue_at` at now + ``time_delta``."""
        return self.enqueue_at(self.clock.now() + time_delta, func, *args, **kwargs)

    def schedule(  # noqa: PLR0917  (rq-scheduler's signature)
        self,
        scheduled_time: datetime,
        func: Callable[..., Any] | str,
        args: Any = None,
        kwargs: Any = None,
        interval: float | None = None,
        repeat: int | None = None,
        result_ttl: int | None = None,
        ttl: int | None = None,
        timeout: Any = None,
        id: str | None = None,
        description: str | None = None,
        queue_name: str | None = None,
        meta: Mapping[str, Any] | None = None,
        depends_on: Any = None,
        on_success: Any = None,
        on_failure: Any = None,
        at_front: bool | None = None,
    ) -> Any:
        """Run ``func`` at ``scheduled_time``, then every ``interval`` seconds (without drift),
        ``repeat`` times in all (None: forever); without ``interval``, once. The other options
        are :meth:`enqueue_at`'s; each run of a periodic job waits for ``depends_on``."""
        extra = {"depends_on": depends_on, "on_success": on_success, "on_failure": on_failure}
        if repeat is not None and interval is None:
            raise ValueError("Can't repeat a job without interval argument")
        job_id = id or uuid.uuid4().hex
        queue = queue_name or self.queue_name
        schedule: Schedule
        if interval is None:
            schedule = one_shot_schedule(
                job_id, scheduled_time, func, args, kwargs, queue=queue, timeout=timeout, result_ttl=result_ttl,
                ttl=ttl, description=description, meta=meta, at_front=at_front, **extra,
            )  # fmt: skip
        else:
            schedule = periodic_schedule(
                job_id, interval_trigger(scheduled_time, interval), func, args, kwargs, queue=queue, repeat=repeat,
                timeout=timeout, result_ttl=result_ttl, ttl=ttl, description=description, meta=meta,
                at_front=at_front, **extra,
            )  # fmt: skip
        return self._add(schedule, func, args, kwargs)

    def cron(  # noqa: PLR0917  (rq-scheduler's signature)
        self,
        cron_string: str,
        func: Callable[..., Any] | str,
        args: Any = None,
        kwargs: Any = None,
        repeat: int | None = None,
        queue_name: str | None = None,
        result_ttl: int | None = -1,
        ttl: int | None = None,
        id: str | None = None,
        timeout: Any = None,
        description: str | None = None,
        meta: Mapping[str, Any] | None = None,
        use_local_timezone: bool = False,
        depends_on: Any = None,
        on_success: Any = None,
        on_failure: Any = None,
        at_front: bool = False,
    ) -> Any:
        """Run ``func`` at each time of ``cron_string`` (UTC unless ``use_local_timezone``),
        ``repeat`` times in all (None: forever); the other options are :meth:`schedule`'s."""
        schedule = periodic_schedule(
            id or uuid.uuid4().hex, cron_trigger(cron_string, use_local_timezone), func, args, kwargs,
            queue=queue_name or self.queue_name, repeat=repeat, timeout=timeout, result_ttl=result_ttl, ttl=ttl,
            description=description, meta=meta, at_front=at_front, depends_on=depends_on, on_success=on_success,
            on_failure=on_failure,
        )  # fmt: skip
        return self._add(schedule, func, args, kwargs)

    def _add(self, schedule: Schedule, func: Callable[..., Any] | str, args: Any, kwargs: Any) -> Any:
        """Save the job (a placeholder with the id reserved), then the schedule; undo on failure."""
        job = placeholder_job(
            self.job_class, self.connection, schedule, func=func, args=args, kwargs=kwargs, serializer=self._serializer
        )
        add_reserved(self.engine, schedule, connection=self.connection, keys=self._keys, job=job)
        return job

    # -- managing ----------------------------------------------------------------------------

    def cancel(self, job: Any) -> None:
        """Unschedule a job (a Job or its id). A run already enqueued is left to its worker."""
        job_id = job if isinstance(job, str) else job.id
        self.engine.remove(job_id)
        release(self.connection, self._keys, job_id, self.job_class.key_for(job_id))

    def _scheduled(self, item: Any) -> StoredSchedule | None:
        job_id = item if isinstance(item, str) else getattr(item, "id", None)
        if not isinstance(job_id, str):
            return None
        try:
            check_job_id(job_id)
        except ValidationError:
            return None
        stored = self.store.get(job_id)
        return stored if stored is not None and stored.next_fire is not None else None

    def __contains__(self, item: Any) -> bool:
        """Whether a job (or job id) is scheduled: it has a run still to come."""
        return self._scheduled(item) is not None

    def change_execution_time(self, job: Any, date_time: datetime) -> None:
        """Move a scheduled job's next run to ``date_time`` (ValueError when it is not scheduled).

        An interval job continues every ``interval`` from there; a cron job follows its cron
        string, so it cannot be moved (ValueError).
        """
        stored = self._scheduled(job)
        if stored is None:
            raise ValueError("Job not in scheduled jobs queue")
        schedule, when = stored.schedule, as_utc(date_time)
        trigger = schedule.trigger
        if isinstance(trigger, At):
            moved = schedule.evolve(trigger=At(when))
        elif isinstance(trigger, Interval):
            moved = schedule.evolve(trigger=Interval(trigger.every, start=when))
        else:
            raise ValueError("a cron job runs at its cron string's times: cancel it and schedule it again")
        self.engine.add(moved, Conflict.REPLACE)

    def get_jobs(
        self, until: Any = None, with_times: bool = False, offset: int | None = None, length: int | None = None
    ) -> Iterator[Any]:
        """The scheduled jobs due by ``until`` (datetime, timedelta from now, epoch seconds,
        None: all), ordered by their next run; with ``with_times``, ``(job, naive UTC time)``
        pairs. ``offset`` and ``length`` slice the ordered list (both or neither; a negative
        ``length``: to the end). Lazy: read from the store's time index a page at a time,
        so taking the first few jobs reads only the first page."""
        if (offset is None) != (length is None):
            raise ValueError("offset and length must be given together")
        from rq.exceptions import NoSuchJobError

        due: Iterator[StoredSchedule] = self._scheduled_by_time(until)
        if offset is not None and length is not None:
            due = itertools.islice(due, offset, offset + length if length >= 0 else None)
        for stored in due:
            when = stored.next_fire.due if stored.next_fire is not None else None
            job_id = stored.schedule.id
            try:
                job = self.job_class.fetch(job_id, connection=self.connection, serializer=self._serializer)
            except NoSuchJobError:
                log.warning("scheduled job %s has no RQ job in Redis; skipped", job_id)
                continue
            if with_times and when is not None:
                yield job, when.astimezone(timezone.utc).replace(tzinfo=None)
            else:
                yield job

    def _scheduled_by_time(self, until: Any) -> Iterator[StoredSchedule]:
        """The compat layer's schedules with a next run, by ``until``, earliest first."""
        for stored in self.store.iter_by_due(self._until(until)):
            if COMPAT_META in stored.schedule.meta:
                yield stored

    def get_jobs_to_queue(self, with_times: bool = False) -> list[Any]:
        """The jobs due now."""
        return list(self.get_jobs(self.clock.now(), with_times=with_times))

    def count(self, until: Any = None) -> int:
        """How many jobs are scheduled (by ``until``, as in :meth:`get_jobs`): a walk over the
        time index up to ``until``, a page at a time, without fetching the RQ jobs."""
        return sum(1 for _ in self._scheduled_by_time(until))

    def _until(self, until: Any) -> datetime | None:
        if until is None:
            return None
        if isinstance(until, datetime):
            return as_utc(until)
        if isinstance(until, timedelta):
            return self.clock.now() + until
        if isinstance(until, (int, float)) and not isinstance(until, bool):
            return datetime.fromtimestamp(until, timezone.utc)
        raise ValidationError("until", until, "expected a datetime, a timedelta or epoch seconds")

    def get_queue_for_job(self, job: Any) -> Any:
        """The queue ``job`` goes to (its origin)."""
        return self.queue_class(job.origin or self.queue_name, connection=self.connection, job_class=self.job_class)

    def enqueue_job(self, job: Any) -> None:
        """Enqueue a scheduled job now: a one-shot's run (its own id), or an extra run of a
        periodic job (whose schedule goes on); ValueError when it is not scheduled."""
        stored = self._scheduled(job)
        if stored is None:
            raise ValueError("Job not in scheduled jobs queue")
        if isinstance(stored.schedule.trigger, At):
            self.engine.add(stored.schedule.evolve(trigger=At(self.clock.now())), Conflict.REPLACE)
        else:
            self.engine.trigger_now(stored.schedule.id)
        self.engine.tick()

    def enqueue_jobs(self) -> list[Any]:
        """Enqueue every job due now (one pass of the scheduler); returns them."""
        jobs = self.get_jobs_to_queue()
        self.engine.tick()
        return jobs

    # -- running -----------------------------------------------------------------------------

    def run(self, burst: bool = False) -> None:
        """Enqueue due jobs until SIGINT/SIGTERM (or, with ``burst``, what is due now).

        schedcore wakes at each job's due time (not every ``interval`` seconds), and any
        number of these schedulers may run at once: each run is enqueued once.
        """
        log.info("schedcore rq-scheduler compatible scheduler %s starting (burst=%s)", self.name, burst)
        self.engine.run(burst=burst)


_ENQUEUE_OPTIONS = (
    "timeout",
    "job_id",
    "job_ttl",
    "job_result_ttl",
    "job_description",
    "depends_on",
    "meta",
    "queue_name",
    "on_success",
    "on_failure",
    "at_front",
)
