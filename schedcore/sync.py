"""Declarative schedules: make a store hold exactly what a schedule file says.

:func:`sync` creates and updates the file's schedules and removes the ones that came
from that file earlier and are gone from it. Ownership is marked in
``Schedule.meta["schedcore.source"]`` (:data:`SOURCE_KEY`) with a stable *source id* --
by default the file's name, ``jobs.toml`` (:func:`default_source`), the same on every
machine and every restart. Schedules added by other means (``schedcore add``, the Python
API, another file) are left alone.

Sync is idempotent and safe to run from several schedulers at once: it only uses
``add_many(conflict="replace")`` -- each schedule added as ``add`` would, which writes
nothing for an equal definition and keeps the pending occurrence when the timing is
unchanged -- and ``remove``, both keyed by schedule id, so a schedule can never be
duplicated and every concurrent sync of one file ends in the state the file describes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from schedcore._planner import first_fire
from schedcore.allowlist import TaskAllowList
from schedcore.exceptions import ConfigError, CorruptScheduleData, ValidationError
from schedcore.model import Conflict, Schedule
from schedcore.protocols import Store
from schedcore.records import AddResult

__all__ = ["SOURCE_KEY", "SyncReport", "default_source", "sync", "tag"]

log = logging.getLogger("schedcore.sync")

#: The ``Schedule.meta`` key that marks which schedule file a schedule came from.
SOURCE_KEY = "schedcore.source"


@attrs.frozen(kw_only=True)
class SyncReport:
    """What one :func:`sync` did, by schedule id."""

    source: str
    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    adopted: tuple[str, ...] = ()  #: ids that existed without this source and now belong to it

    @property
    def changed(self) -> bool:
        """True when the store was written to."""
        return bool(self.added or self.updated or self.removed)

    def summary(self) -> str:
        """``jobs.toml: 2 added, 1 updated, 5 unchanged, 1 removed``."""
        return (
            f"{self.source}: {len(self.added)} added, {len(self.updated)} updated, "
            f"{len(self.unchanged)} unchanged, {len(self.removed)} removed"
        )


def default_source(path: str | os.PathLike[str]) -> str:
    """The source id of a schedule file: its file name (``/etc/app/jobs.toml`` -> ``jobs.toml``)."""
    return Path(os.fspath(path)).name


def tag(schedules: Sequence[Schedule], source: str) -> list[Schedule]:
    """``schedules`` with ``meta["schedcore.source"] = source``."""
    return [s.evolve(meta={**s.meta, SOURCE_KEY: source}) for s in schedules]


def sync(
    target: Any,
    schedules: Sequence[Schedule],
    source: str,
    *,
    now: datetime | None = None,
    prune: bool = True,
) -> SyncReport:
    """Make ``target`` (a :class:`~schedcore.Scheduler` or a :class:`~schedcore.protocols.Store`)
    hold ``schedules`` as the schedules of ``source``.

    Everything is checked before anything is written: duplicate ids raise ConfigError, a
    bad ``source`` ValidationError, a task outside the allowed tasks (the scheduler's, or
    ``SCHEDCORE_ALLOWED_TASKS`` for a bare store) ValidationError, and with a Scheduler its
    executor validates every schedule first. Then the schedules are added with ``conflict="replace"``, in one
    ``add_many`` (tagged with :data:`SOURCE_KEY`; a schedule of the same id without that
    tag is taken over, with a warning), and -- with ``prune`` -- schedules tagged with
    ``source`` that are not in ``schedules`` are removed. ``now`` (default: the scheduler's
    clock, or the system clock for a bare store) decides the first fire time of new schedules.
    """
    if not isinstance(source, str) or not source.strip() or len(source) > 200:
        raise ValidationError("source", source, "expected a non-empty name of at most 200 characters")
    seen: set[str] = set()
    for schedule in schedules:
        if not isinstance(schedule, Schedule):
            raise ValidationError("schedules", schedule, "expected Schedule items")
        if schedule.id in seen:
            raise ConfigError(f"{source}: duplicate schedule id {schedule.id!r}")
        seen.add(schedule.id)
    tagged = tag(schedules, source)

    from schedcore.scheduler import Scheduler

    scheduler = target if isinstance(target, Scheduler) else None
    store: Store = scheduler.store if scheduler is not None else target
    allowed = scheduler.allowed_tasks if scheduler is not None else TaskAllowList.from_env()
    for schedule in tagged:
        allowed.check(schedule.task, f"{schedule.id}.task")  # every one before the first write
    if scheduler is not None:
        for schedule in tagged:
            scheduler.executor.validate(schedule)  # every one before the first write

    results: dict[str, list[str]] = {"added": [], "updated": [], "unchanged": [], "removed": [], "adopted": []}
    runs: dict[str, int] = {}
    existed: set[str] = set()
    for schedule in tagged:
        try:
            existing = store.get(schedule.id)
        except CorruptScheduleData:
            existing = None  # unreadable: replacing it with the file's definition repairs it
        runs[schedule.id] = existing.runs_started if existing is not None else 0
        if existing is not None:
            existed.add(schedule.id)
        if existing is not None and existing.schedule.meta.get(SOURCE_KEY) != source:
            results["adopted"].append(schedule.id)
            log.warning(
                "schedule %s now belongs to %s (it was %s)",
                schedule.id,
                source,
                _owner(existing.schedule),
                extra={"event": "schedule_adopted", "schedule_id": schedule.id, "source": source},
            )
    if scheduler is not None:
        added = scheduler.add_many(tagged, Conflict.REPLACE)
    else:
        at = now if now is not None else _utcnow()
        items = [(schedule, first_fire(schedule, at, runs[schedule.id])) for schedule in tagged]
        added = store.add_many(items, Conflict.REPLACE)
    for schedule, result in zip(tagged, added, strict=True):
        done = result
        if done is AddResult.EXPIRED:  # stored, and the scheduler logged that it will never fire
            done = AddResult.REPLACED if schedule.id in existed else AddResult.ADDED
        key = {AddResult.ADDED: "added", AddResult.REPLACED: "updated"}.get(done, "unchanged")
        results[key].append(schedule.id)

    if prune:
        for stored in _all(store):
            sid = stored.schedule.id
            if stored.schedule.meta.get(SOURCE_KEY) == source and sid not in seen:
                removed = scheduler.remove(sid) if scheduler is not None else store.remove(sid)
                if removed:  # another scheduler syncing the same file may have been first
                    results["removed"].append(sid)
    report = SyncReport(source=source, **{k: tuple(v) for k, v in results.items()})
    log.info(
        "synced %s",
        report.summary(),
        extra={
            "event": "schedules_synced",
            "source": source,
            "added": len(report.added),
            "updated": len(report.updated),
            "unchanged": len(report.unchanged),
            "removed": len(report.removed),
        },
    )
    return report


def _owner(schedule: Schedule) -> str:
    owner = schedule.meta.get(SOURCE_KEY)
    return f"from {owner}" if owner else "added by other means"


def _all(store: Store, page: int = 500) -> list[Any]:
    out: list[Any] = []
    after: str | None = None
    while True:
        batch = store.list_schedules(after=after, limit=page)
        out.extend(batch)
        if len(batch) < page:
            return out
        after = batch[-1].schedule.id


def _utcnow() -> datetime:
    from schedcore.clock import SystemClock

    return SystemClock().now()
