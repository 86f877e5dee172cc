"""What the pages and the JSON API show, as JSON-safe dicts -- built through the
:class:`~schedcore.Scheduler` API and the :class:`~schedcore.protocols.Store` protocol only.

Nothing here knows which store it talks to. Every value read from the store is treated as
hostile data: it is put into dicts as plain strings and numbers and escaped where it is
rendered (Jinja2 autoescaping; JSON encoding), never interpreted.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, tzinfo
from typing import Any

import attrs

# The command line's own helpers, so that the pages read times exactly as `schedcore show` does.
from schedcore.cli import _next_times, _schedule_zone, _utc, _zoned
from schedcore.exceptions import SchedcoreError
from schedcore.protocols import SchedulerBeat, StoreStats
from schedcore.records import RunRecord, RunStatus, StoredSchedule
from schedcore.scheduler import Scheduler
from schedcore.storekit import store_warnings
from schedcore.sync import SOURCE_KEY
from schedcore.tomlwriter import schedule_to_toml
from schedcore_web._words import dst_rule, trigger_in_words

__all__ = ["STATUSES", "Activity", "ListPage", "list_page", "overview", "schedule_detail"]

log = logging.getLogger("schedcore.web")

#: The status filter of the schedules page: name -> what it keeps.
STATUSES = ("all", "active", "paused", "running", "failing", "retrying")
#: History records read per schedule to find its pending retries.
_RETRY_WINDOW = 20
_FAILED = frozenset({RunStatus.FAILED, RunStatus.LOST})


def when(instant: datetime | None, zone: tzinfo) -> dict[str, str] | None:
    """An instant as the pages show it: in the schedule's zone, with UTC beside it."""
    if instant is None:
        return None
    local = instant.astimezone(zone)
    # "shown" is for people: the wall-clock time with the zone's abbreviation (CET, EDT, UTC).
    shown = local.strftime("%Y-%m-%d %H:%M:%S") + (f".{local.microsecond // 1000:03d}" if local.microsecond else "")
    return {"utc": _utc(instant), "zoned": _zoned(instant, zone), "shown": f"{shown} {local.tzname()}"}


def _record(record: RunRecord, zone: tzinfo) -> dict[str, Any]:
    # How long the task ran: from when it really started, when its executor said (else from
    # the hand-over, which also counts the time it waited for a worker).
    duration = None
    began = record.started_at or record.dispatched_at
    if record.finished_at is not None and began is not None:
        duration = round((record.finished_at - began).total_seconds(), 3)
    return {
        "run_id": record.run_id,
        "kind": record.kind.value,
        "nominal": when(record.nominal, zone),
        "due": when(record.due, zone),
        "attempt": record.attempt,
        "status": record.status.value,
        "dispatched_at": when(record.dispatched_at, zone),
        "started_at": when(record.started_at, zone),
        "finished_at": when(record.finished_at, zone),
        # nominal -> handed over (dispatch lateness) and nominal -> really started (start lateness)
        "lateness": None if record.lateness is None else round(record.lateness, 3),
        "start_lateness": None if record.start_lateness is None else round(record.start_lateness, 3),
        "duration": duration,
        "error": record.error,
        "note": record.note,
        "retry_at": when(record.retry_at, zone),
    }


def pending_retries(history: Sequence[RunRecord]) -> list[RunRecord]:
    """Records whose retry was scheduled and has not started yet (no record of the next attempt)."""
    started = {(r.nominal, r.attempt) for r in history}
    return [r for r in history if r.retry_at is not None and (r.nominal, r.attempt + 1) not in started]


def _last_time(record: RunRecord) -> datetime:
    return record.finished_at or record.dispatched_at or record.nominal


def schedule_row(stored: StoredSchedule, history: Sequence[RunRecord]) -> dict[str, Any]:
    """One row of the schedules page (``history``: the newest records first, a few suffice)."""
    schedule = stored.schedule
    zone = _schedule_zone(stored.schedule)
    last = history[0] if history else None
    retries = pending_retries(history)
    return {
        "id": schedule.id,
        "task": schedule.task,
        "trigger": trigger_in_words(schedule.trigger),
        "trigger_spec": schedule.trigger.describe(),
        "zone": str(zone),
        "next_fire": when(stored.next_fire.nominal if stored.next_fire else None, zone),
        "paused": schedule.paused,
        "running": len(stored.running),
        "last_outcome": last.status.value if last else None,
        "last_at": when(_last_time(last), zone) if last else None,
        "last_error": last.error if last else None,
        "pending_retries": len(retries),
        "next_retry": when(min(r.retry_at for r in retries if r.retry_at), zone) if retries else None,
        "source": schedule.meta.get(SOURCE_KEY) if isinstance(schedule.meta.get(SOURCE_KEY), str) else None,
    }


def _matches_text(stored: StoredSchedule, needle: str) -> bool:
    schedule = stored.schedule
    haystack = (schedule.id, schedule.task, schedule.trigger.describe(), trigger_in_words(schedule.trigger))
    return any(needle in text.lower() for text in haystack)


def _matches_status(status: str, row: dict[str, Any]) -> bool:
    if status == "active":
        return not row["paused"]
    if status == "paused":
        return bool(row["paused"])
    if status == "running":
        return bool(row["running"])
    if status == "failing":
        return row["last_outcome"] in {s.value for s in _FAILED}
    if status == "retrying":
        return bool(row["pending_retries"])
    return True


@attrs.frozen(kw_only=True)
class ListPage:
    """One page of the schedules list; ``next_after`` is the cursor of the next page (None: last page)."""

    rows: list[dict[str, Any]]
    next_after: str | None
    scanned: int  #: schedules read to fill this page (a filter may read many per row shown)
    skipped: list[str]  #: schedules that could not be read (reported, not shown)

    def to_dict(self) -> dict[str, Any]:
        return {"schedules": self.rows, "next_after": self.next_after, "scanned": self.scanned, "skipped": self.skipped}


def list_page(
    scheduler: Scheduler,
    *,
    after: str | None,
    limit: int,
    text: str = "",
    status: str = "all",
    scan_budget: int = 5000,
) -> ListPage:
    """Up to ``limit`` schedules with ids after ``after`` that match ``text`` and ``status``.

    Reads the store a page at a time (``list_schedules(after=, limit=)``), never the whole
    of it: a filter that matches little stops after ``scan_budget`` schedules and returns
    the cursor where it stopped, so the next page goes on from there.
    """
    needle = text.strip().lower()
    needs_history = status in ("failing", "retrying")
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    cursor = after
    scanned = 0
    # Unfiltered, one more than a page tells whether there is a next page; filtered, bigger reads.
    chunk = limit + 1 if not needle and status == "all" else max(limit * 4, 200)
    while True:
        want = min(chunk, scan_budget - scanned)
        if want <= 0:  # the budget is spent: the next page goes on from here
            return ListPage(rows=rows, next_after=cursor, scanned=scanned, skipped=skipped)
        page = scheduler.store.list_schedules(after=cursor, limit=want)
        for stored in page:
            if len(rows) == limit:
                return ListPage(rows=rows, next_after=cursor, scanned=scanned, skipped=skipped)
            scanned += 1
            cursor = stored.schedule.id
            if needle and not _matches_text(stored, needle):
                continue
            quick = {"paused": stored.schedule.paused, "running": len(stored.running)}
            if status in ("active", "paused", "running") and not _matches_status(status, quick):
                continue
            try:
                history = scheduler.history(stored.schedule.id, _RETRY_WINDOW)
            except SchedcoreError as exc:  # one bad record: reported and left out, never the whole page
                log.warning("schedule %r: cannot read its history: %s", stored.schedule.id, exc)
                history = []
                skipped.append(stored.schedule.id)
            row = schedule_row(stored, history)
            if needs_history and not _matches_status(status, row):
                continue
            rows.append(row)
        if len(page) < want:  # the end of the store
            return ListPage(rows=rows, next_after=None, scanned=scanned, skipped=skipped)


def schedule_detail(scheduler: Scheduler, stored: StoredSchedule, *, runs: int = 50) -> dict[str, Any]:
    """Everything a schedule's page shows."""
    schedule = stored.schedule
    zone = _schedule_zone(stored.schedule)
    history = scheduler.history(schedule.id, runs)
    fires = []
    previous_offset = None
    for instant in _next_times(stored, 10):
        offset = instant.astimezone(zone).utcoffset()
        item = when(instant, zone) or {}
        # The clocks changed between this fire time and the one before: the page marks it.
        fires.append({**item, "offset_changed": previous_offset is not None and offset != previous_offset})
        previous_offset = offset
    return {
        **schedule_row(stored, history[:_RETRY_WINDOW]),
        "toml": schedule_to_toml(schedule),
        "definition": schedule.to_dict(),
        "runs_started": stored.runs_started,
        "running_ids": list(stored.running),
        "next_fires": fires,
        "dst_rule": dst_rule(schedule.trigger),
        "history": [_record(r, zone) for r in history],
    }


# -- the overview ------------------------------------------------------------------------


def _beat(beat: SchedulerBeat, now: datetime) -> dict[str, Any]:
    info = beat.info if isinstance(beat.info, dict) else {}

    def shown(key: str) -> str | None:
        value = info.get(key)
        return None if value is None else str(value)

    return {
        "owner": beat.owner,
        "host": shown("host"),
        "pid": shown("pid"),
        "version": shown("version"),
        "started": shown("started"),
        "last_beat": _utc(beat.beat_at),
        "age": round((now - beat.beat_at).total_seconds(), 1),
        "expires": _utc(beat.expires_at),
        "allowed_tasks": info.get("allowed_tasks"),
    }


def _stats(stats: StoreStats, now: datetime) -> dict[str, Any]:
    return {
        "schedules": stats.schedules,
        "due": stats.due,
        "oldest_due": _utc(stats.oldest_due) if stats.oldest_due else None,
        "overdue_seconds": round((now - stats.oldest_due).total_seconds(), 1) if stats.oldest_due else None,
        "in_flight": stats.in_flight,
        "expired": stats.expired,
    }


def warnings_for(scheduler: Scheduler, beats: Sequence[SchedulerBeat], stats: StoreStats) -> list[str]:
    """What an operator should act on: due runs and nobody alive, the store's own warnings, the allow-list."""
    found = []
    if not beats and stats.due:
        found.append(f"{stats.due} run(s) are due but no scheduler is alive")
    found += store_warnings(scheduler.store)
    off = [b.owner for b in beats if isinstance(b.info, dict) and b.info.get("allowed_tasks") is False]
    if off:
        found.append(f"the task allow-list is off in {len(off)} live scheduler(s): {', '.join(off)}")
    return found


class Activity:
    """Runs and failures per minute over the last hour, computed from the stores' run history.

    The web process does not see runs happen (schedulers in other processes do), and the
    ``Store`` protocol has no counters, so the history records are the one store-agnostic
    source: dispatched runs count by ``dispatched_at``, failed and lost ones by
    ``finished_at``. Reading it costs one history read per schedule, so at most
    ``max_schedules`` schedules are read (the chart says when it is a sample) and the result
    is kept for ``ttl``: a page refresh does not re-read the store.
    """

    def __init__(self, *, max_schedules: int = 1000, per_schedule: int = 200, ttl: timedelta = timedelta(seconds=30)):
        self.max_schedules = max_schedules
        self.per_schedule = per_schedule
        self.ttl = ttl
        self._lock = threading.Lock()
        self._cached: tuple[datetime, dict[str, Any]] | None = None

    def get(self, scheduler: Scheduler, now: datetime, clock: Callable[[], datetime] | None = None) -> dict[str, Any]:
        """The chart's data as of ``now`` (cached for ``ttl``)."""
        with self._lock:
            if self._cached is not None and now - self._cached[0] < self.ttl:
                return self._cached[1]
        data = self._compute(scheduler, now)
        with self._lock:
            self._cached = (now, data)
        return data

    def _compute(self, scheduler: Scheduler, now: datetime) -> dict[str, Any]:
        end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        start = end - timedelta(minutes=60)
        runs = [0] * 60
        failures = [0] * 60
        read = 0
        complete = True
        for stored in scheduler.iter_schedules(page_size=200):
            if read >= self.max_schedules:
                complete = False
                break
            read += 1
            try:
                history = scheduler.history(stored.schedule.id, self.per_schedule)
            except SchedcoreError as exc:
                log.warning("schedule %r: cannot read its history: %s", stored.schedule.id, exc)
                continue
            for record in history:
                if record.dispatched_at is not None and start <= record.dispatched_at < end:
                    runs[int((record.dispatched_at - start).total_seconds() // 60)] += 1
                if record.status in _FAILED and record.finished_at is not None and start <= record.finished_at < end:
                    failures[int((record.finished_at - start).total_seconds() // 60)] += 1
        return {
            "start": _utc(start),
            "end": _utc(end),
            "minutes": [_utc(start + timedelta(minutes=i)) for i in range(60)],
            "runs": runs,
            "failures": failures,
            "schedules_read": read,
            "complete": complete,
            "computed_at": _utc(now),
        }


def overview(scheduler: Scheduler, activity: Activity, now: datetime) -> dict[str, Any]:
    """Everything the overview page shows."""
    store = scheduler.store
    beats = store.schedulers(now)
    stats = store.stats(now)
    return {
        "now": _utc(now),
        "schedulers": [_beat(b, now) for b in beats],
        "stats": _stats(stats, now),
        "warnings": warnings_for(scheduler, beats, stats),
        "activity": activity.get(scheduler, now),
    }
