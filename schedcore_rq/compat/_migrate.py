"""``schedcore migrate rq-scheduler``: the jobs rq-scheduler 0.14 stored become schedcore schedules.

What it reads: the sorted set ``rq:scheduler:scheduled_jobs`` (job id -> next run, epoch
seconds) and each job's raw hash (``HGETALL rq:job:<id>``: ``Job.fetch`` misreads ids with
``:`` or spaces on rq >= 2.8). The pickled ``data`` and ``meta`` are read by
:mod:`schedcore_rq.compat._pickle`, which runs none of their code.

What it creates, through the same mapping (:mod:`schedcore_rq.compat._mapping`) and id
reservation (:mod:`schedcore_rq.compat._reserve`) as :class:`schedcore_rq.compat.Scheduler`:
a one-shot, an interval (+ repeat) or a cron (+ ``use_local_timezone``) schedule per job,
with its queue, timeout, ttl, result_ttl, description and meta, keeping its next run time.
Each is marked with :data:`SOURCE_META` (the source job id), so that a second run skips it.

Ids: rq >= 2.8 accepts only ``[A-Za-z0-9_-]``. Another id is refused, naming the id it would
get (:func:`new_id_for`: each other character becomes ``_``, plus ``-`` and 8 hex digits of
the id's SHA-256); with ``rename_invalid_ids`` the job is migrated under that id.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import attrs
from redis import Redis

from schedcore._validate import TASK_RE, check_queue, task_module_found
from schedcore.allowlist import TaskAllowList
from schedcore.clock import Clock, SystemClock
from schedcore.exceptions import SchedcoreError, ValidationError
from schedcore.model import Conflict, Schedule
from schedcore.scheduler import Scheduler as Engine
from schedcore.triggers import Cron
from schedcore_redis import RedisStore
from schedcore_rq._executor import RQExecutor
from schedcore_rq._outcomes import Keys
from schedcore_rq.compat._mapping import (
    COMPAT_META,
    check_job_id,
    cron_trigger,
    interval_trigger,
    one_shot_schedule,
    periodic_schedule,
)
from schedcore_rq.compat._pickle import UnreadablePickle, decode_data, loads, not_json_safe
from schedcore_rq.compat._reserve import add_reserved, placeholder_job

__all__ = [
    "LOCK_KEY",
    "SCHEDULED_JOBS_KEY",
    "SOURCE_META",
    "MigrationRefused",
    "Report",
    "Row",
    "migrate",
    "new_id_for",
]

log = logging.getLogger("schedcore.rq.migrate")

#: rq-scheduler 0.14's keys.
SCHEDULED_JOBS_KEY = "rq:scheduler:scheduled_jobs"
LOCK_KEY = "rq:scheduler_lock"
JOB_PREFIX = "rq:job:"
#: ``Schedule.meta`` key holding the rq-scheduler job id a schedule was migrated from.
SOURCE_META = "rq_scheduler_job"
#: How many fire times of a cron job are compared with croniter's.
CRON_CHECKS = 20
#: rq-scheduler's own keys in a job's meta (the rest is the user's meta).
_SCHEDULER_META = ("interval", "repeat", "cron_string", "use_local_timezone", "queue_class_name")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_BATCH = 500

MIGRATED, SKIPPED, REFUSED, FAILED = "migrated", "skipped", "refused", "failed"


class MigrationRefused(SchedcoreError):
    """The migration does not start (rq-scheduler is running); nothing was read or written."""


class _Refusal(Exception):
    """One job cannot be migrated; the message says why."""


@attrs.frozen(kw_only=True)
class Row:
    """What happened to one rq-scheduler job."""

    source_id: str
    schedule_id: str
    kind: str  #: at, interval, cron, or ? when the job could not be read
    outcome: str  #: migrated, skipped, refused or failed
    reason: str = ""
    next_run: datetime | None = None  #: the score in rq-scheduler's sorted set
    #: cron jobs: the first of the next :data:`CRON_CHECKS` times where schedcore and croniter differ
    cron_difference: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (times in ISO 8601)."""
        data = attrs.asdict(self)
        data["next_run"] = self.next_run.isoformat() if self.next_run else None
        return data


@attrs.frozen(kw_only=True)
class Report:
    """The migration's report: a row per job, in rq-scheduler's order (next run first)."""

    rows: tuple[Row, ...]
    dry_run: bool
    removed: int = 0  #: source jobs removed (``remove_source``)

    def count(self, outcome: str) -> int:
        """How many rows have ``outcome``."""
        return sum(1 for row in self.rows if row.outcome == outcome)

    @property
    def cron_differences(self) -> list[Row]:
        """Cron jobs whose next times differ between schedcore and croniter."""
        return [row for row in self.rows if row.cron_difference]

    @property
    def exit_code(self) -> int:
        """0 when every job was migrated or skipped, 1 when one was refused or failed."""
        return 1 if self.count(REFUSED) or self.count(FAILED) else 0

    def summary(self) -> str:
        """One line: the counts."""
        verb = "would migrate" if self.dry_run else "migrated"
        text = (
            f"{verb} {self.count(MIGRATED)}, skipped {self.count(SKIPPED)} (already migrated), "
            f"refused {self.count(REFUSED)}, failed {self.count(FAILED)}"
        )
        if self.removed:
            text += f"; removed {self.removed} source job(s)"
        return text + (" (dry run: nothing written)" if self.dry_run else "")

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-able data."""
        return {
            "dry_run": self.dry_run,
            "counts": {name: self.count(name) for name in (MIGRATED, SKIPPED, REFUSED, FAILED)},
            "removed": self.removed,
            "jobs": [row.to_dict() for row in self.rows],
            "cron_differences": [
                {"source_id": row.source_id, "first_difference": row.cron_difference} for row in self.cron_differences
            ],
        }


def new_id_for(source_id: str) -> str:
    """The id a job whose id RQ >= 2.8 refuses gets: other characters become ``_``, then
    ``-`` and 8 hex digits of the old id's SHA-256 (so ``a:b`` and ``a b`` stay apart)."""
    digest = hashlib.sha256(source_id.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{_UNSAFE.sub('_', source_id)[:150]}-{digest}"


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "replace")


def _number(fields: Mapping[bytes, bytes], name: str) -> int | None:
    raw = fields.get(name.encode())
    if raw is None or raw == b"":
        return None
    try:
        return int(raw)
    except ValueError:
        raise _Refusal(f"its {name} {_text(raw)!r} is not a whole number of seconds") from None


def _task(func_name: Any) -> str:
    """``"module.function"`` (RQ's form) -> ``"module:function"``, found without importing anything."""
    if not isinstance(func_name, str) or not func_name:
        raise _Refusal("its callable is not named (not a 'module.function' string)")
    if ":" in func_name:
        candidates = [func_name]
    else:
        parts = func_name.split(".")
        candidates = [f"{'.'.join(parts[:cut])}:{'.'.join(parts[cut:])}" for cut in range(len(parts) - 1, 0, -1)]
        if len(parts) == 1:
            candidates = [f"builtins:{func_name}"]
    for reference in candidates:
        if TASK_RE.match(reference) and task_module_found(reference):
            return reference
    raise _Refusal(f"its callable {func_name!r} cannot be imported here (no such module on the path)")


def _plain(value: Any, path: str) -> None:
    problem = not_json_safe(value, path)
    if problem is not None:
        raise _Refusal(f"{problem}: not JSON-safe (schedcore stores arguments and meta as JSON)")


@attrs.frozen(kw_only=True)
class _Plan:
    schedule: Schedule
    func_name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


def _kind(meta: Mapping[str, Any]) -> str:
    return "cron" if meta.get("cron_string") else "interval" if meta.get("interval") else "at"


def _plan(source_id: str, new_id: str, when: datetime, fields: Mapping[bytes, bytes]) -> _Plan:
    """The schedule of one job (raises _Refusal saying why it cannot be migrated)."""
    if not fields:
        raise _Refusal(f"its job hash {JOB_PREFIX}{source_id} is missing")
    for name in ("dependency_ids", "dependency_id", "success_callback_name", "failure_callback_name"):
        if fields.get(name.encode()):
            raise _Refusal(f"it has {name} (depends_on/on_success/on_failure are not migrated)")
    if b"data" not in fields:
        raise _Refusal("its job hash has no data field")
    try:
        data = decode_data(fields[b"data"])
        meta = loads(fields[b"meta"]) if fields.get(b"meta") else {}
    except UnreadablePickle as exc:
        raise _Refusal(f"its pickled data cannot be read safely: {exc}") from None
    if not (isinstance(data, tuple) and len(data) == 4):
        raise _Refusal("its data is not RQ's (function, instance, args, kwargs)")
    func_name, instance, args, kwargs = data
    if instance is not None:
        raise _Refusal("its callable is a method bound to an object, which cannot be named by import path")
    if not isinstance(args, (tuple, list)) or not isinstance(kwargs, dict):
        raise _Refusal("its args are not a list or its kwargs not a dict")
    if not isinstance(meta, dict):
        raise _Refusal("its meta is not a dict")
    task = _task(func_name)
    _plain(list(args), "args")
    _plain(kwargs, "kwargs")
    user_meta = {k: v for k, v in meta.items() if k not in _SCHEDULER_META}
    _plain(user_meta, "meta")
    queue = _text(fields.get(b"origin")) or "default"
    try:
        check_queue(queue, "origin")
    except ValidationError as exc:
        raise _Refusal(str(exc)) from None
    options: dict[str, Any] = {
        "queue": queue,
        "timeout": _number(fields, "timeout"),
        "ttl": _number(fields, "ttl"),
        "description": _text(fields.get(b"description")),
        "meta": user_meta or None,
        "at_front": fields.get(b"enqueue_at_front") == b"1",
    }
    result_ttl = _number(fields, "result_ttl")
    repeat = meta.get("repeat")
    if repeat is not None and (isinstance(repeat, bool) or not isinstance(repeat, int)):
        raise _Refusal(f"its repeat {repeat!r} is not a number of runs")
    # rq-scheduler's repeat is the runs left after the next one, less one; 0 still runs once
    runs = None if repeat is None else max(repeat, 1)
    try:
        if meta.get("cron_string"):
            trigger: Any = cron_trigger(str(meta["cron_string"]), bool(meta.get("use_local_timezone")))
            schedule = periodic_schedule(
                new_id, trigger, task, args, kwargs, repeat=runs, result_ttl=result_ttl, **options
            )
        elif meta.get("interval"):
            trigger = interval_trigger(when, meta["interval"])
            schedule = periodic_schedule(
                new_id, trigger, task, args, kwargs, repeat=runs, result_ttl=result_ttl, **options
            )
        else:
            schedule = one_shot_schedule(new_id, when, task, args, kwargs, result_ttl=result_ttl, **options)
    except ValidationError as exc:
        raise _Refusal(str(exc)) from None
    schedule = schedule.evolve(meta={**schedule.meta, SOURCE_META: source_id})
    return _Plan(schedule=schedule, func_name=func_name, args=tuple(args), kwargs=kwargs)


def cron_difference(trigger: Cron, after: datetime, count: int = CRON_CHECKS) -> str | None:
    """The first of the next ``count`` fire times (after ``after``) where schedcore's rule and
    croniter's differ, as ``"#k: schedcore <time>, croniter <time>"``; None when all agree."""
    from zoneinfo import ZoneInfo

    from croniter import croniter

    zone = ZoneInfo(trigger.tz)
    start = after.astimezone(zone)
    try:
        theirs: Any = croniter(trigger.expr, start, hash_id=trigger.seed)
    except Exception as exc:  # croniter refuses what schedcore accepts
        return f"croniter cannot read {trigger.expr!r} ({type(exc).__name__}: {exc})"
    mine: datetime | None = start
    for k in range(1, count + 1):
        mine = trigger.next_after(mine) if mine is not None else None
        try:
            other: datetime | None = theirs.get_next(datetime)
        except Exception:  # croniter finds no further time
            other = None
        same = (
            mine is not None and other is not None and mine.astimezone(timezone.utc) == other.astimezone(timezone.utc)
        )
        if not same and not (mine is None and other is None):
            return f"#{k}: schedcore {_iso(mine)}, croniter {_iso(other)}"
        if mine is None:
            return None
    return None


def _iso(value: datetime | None) -> str:
    return "never" if value is None else value.isoformat()


def _source(connection: Redis) -> Iterator[tuple[str, float, dict[bytes, bytes]]]:
    """rq-scheduler's jobs, next run first: (id, score, raw hash); one round trip per batch."""
    entries: list[tuple[bytes, float]] = connection.zrange(SCHEDULED_JOBS_KEY, 0, -1, withscores=True)  # type: ignore[assignment]
    for start in range(0, len(entries), _BATCH):
        batch = entries[start : start + _BATCH]
        with connection.pipeline(transaction=False) as pipe:
            for raw_id, _ in batch:
                pipe.hgetall(JOB_PREFIX.encode() + raw_id)
            hashes = pipe.execute(raise_on_error=False)
        for (raw_id, score), fields in zip(batch, hashes, strict=True):
            source_id = raw_id.decode("utf-8", "surrogateescape")
            yield source_id, score, fields if isinstance(fields, dict) else {}


def migrate(
    connection: Redis,
    *,
    namespace: str = "default",
    dry_run: bool = False,
    remove_source: bool = False,
    force: bool = False,
    rename_invalid_ids: bool = False,
    allowed_tasks: TaskAllowList | None = None,
    clock: Clock | None = None,
) -> Report:
    """Migrate rq-scheduler's stored jobs into schedcore's store on the same Redis (see the module).

    ``connection`` must not decode responses. Raises :class:`MigrationRefused` while
    rq-scheduler holds its lock (unless ``force``). ``dry_run`` reads only. ``remove_source``
    removes each migrated (or already migrated) job from rq-scheduler's sorted set, and its
    old hash when it was renamed; a refused job is never removed. Every job is reported in
    the returned :class:`Report`; one that cannot be migrated never stops the others.
    """
    if connection.get_connection_kwargs().get("decode_responses"):
        raise ValidationError("connection", connection, "must not decode responses (RQ stores bytes)")
    if not force and connection.exists(LOCK_KEY):
        raise MigrationRefused(f"rq-scheduler is running (its lock {LOCK_KEY} is held): stop it first, or pass --force")
    clock = clock or SystemClock()
    store = RedisStore(connection, namespace=namespace)
    executor = RQExecutor(connection, namespace=namespace)
    engine = Engine(store, executor, clock=clock, heartbeat=None, allowed_tasks=allowed_tasks)
    keys = Keys(namespace)
    rows: list[Row] = []
    removable: list[tuple[str, bool]] = []  # (source id, whether its old hash goes too)
    try:
        for source_id, score, fields in _source(connection):
            when = datetime.fromtimestamp(score, timezone.utc)
            row = _one(engine, connection, keys, source_id, when, fields, dry_run, rename_invalid_ids)
            rows.append(row)
            if row.outcome == REFUSED:
                log.warning("rq-scheduler job %r not migrated: %s", source_id, row.reason)
            elif row.outcome == FAILED:
                log.error("rq-scheduler job %r failed to migrate: %s", source_id, row.reason)
            elif remove_source and not dry_run:
                removable.append((source_id, row.schedule_id != source_id))
    finally:
        executor.shutdown(wait=False)
        store.close()
    removed = _remove(connection, removable) if removable else 0
    return Report(rows=tuple(rows), dry_run=dry_run, removed=removed)


def _one(  # noqa: PLR0917  (private; one job's context)
    engine: Engine,
    connection: Redis,
    keys: Keys,
    source_id: str,
    when: datetime,
    fields: Mapping[bytes, bytes],
    dry_run: bool,
    rename_invalid_ids: bool,
) -> Row:
    try:
        check_job_id(source_id)
        new_id, renamed = source_id, False
    except ValidationError:
        new_id, renamed = new_id_for(source_id), True
    kind = "?"
    try:
        existing = engine.store.get(new_id)
        if existing is not None:
            if existing.schedule.meta.get(SOURCE_META) == source_id:
                return Row(source_id=source_id, schedule_id=new_id, kind=_stored_kind(existing.schedule),
                           outcome=SKIPPED, reason="already migrated", next_run=when)  # fmt: skip
            raise _Refusal(f"schedcore already has a schedule {new_id!r} not migrated from this job")
        plan = _plan(source_id, new_id, when, fields)
        kind = _stored_kind(plan.schedule)
        engine.allowed_tasks.check(plan.schedule.task)
        engine.executor.validate(plan.schedule)
        difference = None
        if isinstance(plan.schedule.trigger, Cron):
            difference = cron_difference(plan.schedule.trigger, engine.clock.now())
        if renamed and not rename_invalid_ids:
            raise _Refusal(
                f"its id is not a valid RQ job id (A-Z a-z 0-9 _ - only); it would become {new_id!r} "
                "(pass --rename-invalid-ids to migrate it under that id)"
            )
    except (_Refusal, ValidationError) as exc:
        return Row(source_id=source_id, schedule_id=new_id, kind=kind, outcome=REFUSED, reason=str(exc), next_run=when)
    except Exception as exc:  # a store or Redis failure on this job: report it, go on with the others
        return Row(source_id=source_id, schedule_id=new_id, kind=kind, outcome=FAILED,
                   reason=f"{type(exc).__name__}: {exc}", next_run=when)  # fmt: skip
    reason = f"renamed from {source_id!r}" if renamed else ""
    if not dry_run:
        try:
            _write(engine, connection, keys, plan, when=when, keep_source_job=not renamed)
        except Exception as exc:
            return Row(source_id=source_id, schedule_id=new_id, kind=kind, outcome=FAILED,
                       reason=f"{type(exc).__name__}: {exc}", next_run=when)  # fmt: skip
    return Row(source_id=source_id, schedule_id=new_id, kind=kind, outcome=MIGRATED, reason=reason, next_run=when,
               cron_difference=difference)  # fmt: skip


def _stored_kind(schedule: Schedule) -> str:
    return str(schedule.meta.get(COMPAT_META, "?"))


def _write(
    engine: Engine, connection: Redis, keys: Keys, plan: _Plan, when: datetime, *, keep_source_job: bool
) -> None:
    """Add the schedule with its id reserved. Under the same id, the source job itself is the
    placeholder (left as rq-scheduler wrote it, so that rolling back finds it unchanged);
    under a new id, a placeholder job is saved there."""
    schedule = plan.schedule
    job = None
    if not keep_source_job:
        from rq.job import Job

        job = placeholder_job(Job, connection, schedule, func=plan.func_name, args=plan.args, kwargs=plan.kwargs)
    add_reserved(engine, schedule, connection=connection, keys=keys, job=job, conflict=Conflict.ERROR)
    if _stored_kind(schedule) != "at" and when < engine.clock.now():
        # rq-scheduler enqueues an overdue periodic job at its next pass; schedcore's first fire
        # is the next time to come, so the overdue run is triggered once here (a late one-shot
        # fires by itself: its misfire grace is long)
        engine.trigger_now(schedule.id)


def _remove(connection: Redis, removable: Sequence[tuple[str, bool]]) -> int:
    """Remove migrated jobs from rq-scheduler's sorted set (and renamed jobs' old hashes)."""
    removed = 0
    for start in range(0, len(removable), _BATCH):
        batch = removable[start : start + _BATCH]
        with connection.pipeline(transaction=False) as pipe:
            for source_id, drop_hash in batch:
                raw = source_id.encode("utf-8", "surrogateescape")
                pipe.zrem(SCHEDULED_JOBS_KEY, raw)
                if drop_hash:
                    pipe.delete(JOB_PREFIX.encode() + raw)
            replies = iter(pipe.execute())
        for _, drop_hash in batch:
            removed += 1 if next(replies) else 0
            if drop_hash:
                next(replies)
    return removed


def add_path(paths: str) -> None:
    """Put ``:``-separated directories first on ``sys.path`` (where callables are looked for)."""
    sys.path[:0] = [p for p in paths.split(":") if p]
