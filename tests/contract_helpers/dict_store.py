"""A third-party store written only from docs/plugins.md and the docstrings of
:class:`schedcore.protocols.Store` it points to: plain dicts under one lock, every
query a scan. It inherits :class:`schedcore.storekit.StoreBase` for ``add_many``,
``claim_due_nowait``, ``commit_and_next_due``, ``warnings`` and ``check``, and uses the
``storekit`` helpers the page lists. Nothing here is copied from the shipped stores:
tests/test_contract.py runs the conformance suite on it, to hold the page to its word.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

from schedcore._time import from_ms, require_aware, to_ms
from schedcore.exceptions import ScheduleExists, ScheduleNotFound, ValidationError
from schedcore.model import Conflict, Schedule
from schedcore.protocols import SchedulerBeat, StoreStats
from schedcore.records import AddResult, Claim, Commit, Outcome, Pending, PendingKind, RunRecord, StoredSchedule
from schedcore.storekit import (
    FireMode,
    StoreBase,
    check_add,
    check_claim,
    check_commit,
    check_conflict,
    check_extra_entry,
    check_heartbeat,
    check_limit,
    check_outcome,
    check_set_paused,
    finished_record,
    fire_on_add,
    fire_on_replace,
    log_taken_back,
    notify,
)

log = logging.getLogger("tests.dict_store")


@attrs.define
class _Held:
    entry: Pending
    token: int
    owner: str
    expires_ms: int
    is_fire: bool  # still *the* schedule's fire entry (not superseded by a replace or pause)


@attrs.define
class _Record:
    schedule: Schedule
    index: dict[str, Pending] = attrs.field(factory=dict)
    held: dict[str, _Held] = attrs.field(factory=dict)
    runs_started: int = 0
    running: list[str] = attrs.field(factory=list)
    parked: Pending | None = None
    history: list[RunRecord] = attrs.field(factory=list)  # newest first


class DictStore(StoreBase):
    """Schedules in a dict; the time index is each schedule's ``index``, scanned."""

    def __init__(self, history_limit: int = 50) -> None:
        self._limit = history_limit
        self._lock = threading.RLock()
        self._data: dict[str, _Record] = {}
        self._tokens = itertools.count(1)
        self._watchers: list[Callable[[datetime], None]] = []
        self._beats: dict[str, SchedulerBeat] = {}

    # -- definitions

    def add(self, schedule: Schedule, first: Pending | None, conflict: Conflict) -> AddResult:
        check_add(schedule, first)
        conflict = check_conflict(conflict)
        dues: list[datetime] = []
        with self._lock:
            rec = self._data.get(schedule.id)
            if rec is None:
                rec = self._data[schedule.id] = _Record(schedule=schedule)
                self._set_fire(rec, fire_on_add(schedule, first), first, dues)
                result = AddResult.ADDED
            elif conflict is Conflict.ERROR:
                raise ScheduleExists(schedule.id)
            elif conflict is Conflict.KEEP:
                result = AddResult.KEPT
            else:
                mode = fire_on_replace(rec.schedule, schedule, first)
                if mode is None:
                    return AddResult.UNCHANGED
                rec.schedule = schedule
                self._set_fire(rec, mode, first, dues)
                result = AddResult.REPLACED
        notify(log, list(self._watchers), dues)
        return result

    def remove(self, schedule_id: str) -> bool:
        with self._lock:
            return self._data.pop(schedule_id, None) is not None

    def get(self, schedule_id: str) -> StoredSchedule | None:
        with self._lock:
            rec = self._data.get(schedule_id)
            return None if rec is None else self._stored(rec)

    def list_schedules(self, *, after: str | None = None, limit: int = 100) -> list[StoredSchedule]:
        check_limit(limit)
        with self._lock:
            ids = sorted(sid for sid in self._data if after is None or sid > after)[:limit]
            return [self._stored(self._data[sid]) for sid in ids]

    def set_paused(self, schedule_id: str, paused: bool, next_fire: Pending | None) -> StoredSchedule:
        check_set_paused(paused, next_fire)
        dues: list[datetime] = []
        with self._lock:
            rec = self._record(schedule_id)
            if rec.schedule.paused != paused:
                rec.schedule = rec.schedule.evolve(paused=paused)
                mode = FireMode.SET if not paused and next_fire is not None else FireMode.DROP
                self._set_fire(rec, mode, next_fire, dues)
            stored = self._stored(rec)
        notify(log, list(self._watchers), dues)
        return stored

    def enqueue(self, schedule_id: str, entries: Sequence[Pending]) -> int:
        for entry in entries:
            check_extra_entry(entry, "entries")
        dues: list[datetime] = []
        with self._lock:
            rec = self._record(schedule_id)
            added = sum(self._put_new(rec, entry, dues) for entry in entries)
        notify(log, list(self._watchers), dues)
        return added

    def history(self, schedule_id: str, limit: int = 50) -> list[RunRecord]:
        check_limit(limit)
        with self._lock:
            rec = self._data.get(schedule_id)
            return [] if rec is None else rec.history[:limit]

    # -- the time index

    def claim_due(self, now: datetime, *, limit: int, lease: timedelta, owner: str) -> list[Claim]:
        now_ms, expires_ms = check_claim(now, limit, lease, owner)
        dues: list[datetime] = []
        out: list[Claim] = []
        with self._lock:
            lapsed = {o for o, b in self._beats.items() if b.expires_at <= now and o != owner}
            for o in sorted(lapsed):
                taken = 0
                for rec in self._data.values():
                    for key, held in list(rec.held.items()):
                        if held.owner == o:
                            self._unclaim(rec, key, dues)
                            taken += 1
                del self._beats[o]
                log_taken_back(log, o, taken)
            for rec in self._data.values():  # expired leases: due again
                for key, held in list(rec.held.items()):
                    if held.expires_ms <= now_ms:
                        self._unclaim(rec, key, dues)
            due = sorted(
                (to_ms(entry.due), sid, key)
                for sid, rec in self._data.items()
                for key, entry in rec.index.items()
                if to_ms(entry.due) <= now_ms
            )
            for _, sid, key in due[:limit]:
                rec = self._data[sid]
                entry = rec.index.pop(key)
                token = next(self._tokens)
                rec.held[key] = _Held(entry, token, owner, expires_ms, entry.kind is PendingKind.FIRE)
                out.append(
                    Claim(
                        schedule=rec.schedule,
                        entry=entry,
                        token=token,
                        owner=owner,
                        lease_expires=from_ms(expires_ms),
                        runs_started=rec.runs_started,
                        running=len(rec.running),
                        parked=rec.parked is not None,
                    )
                )
        notify(log, list(self._watchers), dues)
        return out

    def commit(self, commits: Sequence[Commit]) -> list[bool]:
        items = [check_commit(item) for item in commits]
        dues: list[datetime] = []
        results = []
        with self._lock:
            for item in items:
                results.append(self._commit_one(item, dues))
        notify(log, list(self._watchers), dues)
        return results

    def release(self, claims: Sequence[Claim]) -> None:
        dues: list[datetime] = []
        with self._lock:
            for claim in claims:
                rec = self._data.get(claim.schedule_id)
                key = claim.entry.key(claim.schedule_id)
                if rec is not None and key in rec.held and rec.held[key].token == claim.token:
                    self._unclaim(rec, key, dues)
        notify(log, list(self._watchers), dues)

    def record_outcome(self, outcome: Outcome, retry: Pending | None) -> bool:
        check_outcome(outcome, retry)
        dues: list[datetime] = []
        with self._lock:
            rec = self._data.get(outcome.schedule_id)
            if rec is None or outcome.run_id not in rec.running:
                return False
            rec.running.remove(outcome.run_id)
            for i, record in enumerate(rec.history):
                if record.run_id == outcome.run_id and record.finished_at is None:
                    rec.history[i] = finished_record(record, outcome, retry)
                    break
            if retry is not None:
                self._put_new(rec, retry, dues)
            self._unpark(rec, dues)
        notify(log, list(self._watchers), dues)
        return True

    def next_due(self) -> datetime | None:
        with self._lock:
            instants = [to_ms(e.due) for rec in self._data.values() for e in rec.index.values()]
            instants += [h.expires_ms for rec in self._data.values() for h in rec.held.values()]
            return from_ms(min(instants)) if instants else None

    def watch(self, callback: Callable[[datetime], None]) -> Callable[[], None]:
        if not callable(callback):
            raise ValidationError("callback", callback, "must be callable")
        self._watchers.append(callback)

        def stop() -> None:
            if callback in self._watchers:
                self._watchers.remove(callback)

        return stop

    # -- operations

    def heartbeat(self, owner: str, info: Mapping[str, Any], *, now: datetime, ttl: timedelta) -> None:
        check_heartbeat(owner, info, ttl)
        at = from_ms(to_ms(require_aware(now, "now")))
        with self._lock:
            self._beats[owner] = SchedulerBeat(owner=owner, beat_at=at, expires_at=at + ttl, info=dict(info))

    def schedulers(self, now: datetime) -> list[SchedulerBeat]:
        require_aware(now, "now")
        with self._lock:
            return sorted((b for b in self._beats.values() if b.expires_at > now), key=lambda b: b.owner)

    def stats(self, now: datetime) -> StoreStats:
        now_ms = to_ms(require_aware(now, "now"))
        with self._lock:
            due = [to_ms(e.due) for rec in self._data.values() for e in rec.index.values() if to_ms(e.due) <= now_ms]
            held = [h for rec in self._data.values() for h in rec.held.values()]
            expired = sum(1 for h in held if h.expires_ms <= now_ms)
            return StoreStats(
                schedules=len(self._data),
                due=len(due),
                oldest_due=from_ms(min(due)) if due else None,
                in_flight=len(held) - expired,
                expired=expired,
            )

    def close(self) -> None:
        self._watchers.clear()

    # -- internals, with the lock held

    def _record(self, schedule_id: str) -> _Record:
        rec = self._data.get(schedule_id)
        if rec is None:
            raise ScheduleNotFound(schedule_id)
        return rec

    def _stored(self, rec: _Record) -> StoredSchedule:
        fire = rec.index.get("fire")
        if fire is None and "fire" in rec.held and rec.held["fire"].is_fire:
            fire = rec.held["fire"].entry
        return StoredSchedule(
            schedule=rec.schedule,
            next_fire=fire,
            runs_started=rec.runs_started,
            running=tuple(rec.running),
            parked=rec.parked,
        )

    def _set_fire(self, rec: _Record, mode: FireMode, first: Pending | None, dues: list[datetime]) -> None:
        if mode is FireMode.KEEP:
            return
        rec.index.pop("fire", None)
        if "fire" in rec.held:
            rec.held["fire"].is_fire = False  # superseded: committable, but its next_fire is ignored
        if mode is FireMode.SET and first is not None:
            rec.index["fire"] = first
            dues.append(first.due)

    def _put_new(self, rec: _Record, entry: Pending, dues: list[datetime]) -> bool:
        key = entry.key(rec.schedule.id)
        if key in rec.index or key in rec.held:
            return False
        rec.index[key] = entry
        dues.append(entry.due)
        return True

    def _unclaim(self, rec: _Record, key: str, dues: list[datetime]) -> None:
        held = rec.held.pop(key)
        if key == "fire" and not held.is_fire:
            return  # a superseded fire entry is dropped, not put back
        rec.index[key] = held.entry
        dues.append(held.entry.due)

    def _unpark(self, rec: _Record, dues: list[datetime]) -> None:
        if rec.parked is not None and not rec.running:
            parked, rec.parked = rec.parked, None
            self._put_new(rec, parked, dues)

    def _commit_one(self, item: Commit, dues: list[datetime]) -> bool:
        claim = item.claim
        rec = self._data.get(claim.schedule_id)
        key = claim.entry.key(claim.schedule_id)
        if rec is None or key not in rec.held or rec.held[key].token != claim.token:
            return False
        held = rec.held.pop(key)
        records = sorted((*item.dispatched, *item.skipped), key=lambda r: (r.nominal, r.attempt))
        rec.history[:0] = reversed(records)
        del rec.history[self._limit :]
        rec.running += [r.run_id for r in item.dispatched]
        rec.runs_started += item.runs_started
        if key == "fire" and held.is_fire and item.next_fire is not None:
            rec.index["fire"] = item.next_fire
            dues.append(item.next_fire.due)
        if item.park is not None:
            rec.parked = item.park
            self._unpark(rec, dues)
        return True
