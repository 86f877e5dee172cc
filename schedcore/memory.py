"""The in-process store: the reference implementation of :class:`~schedcore.protocols.Store`.

Plain dicts plus two heaps (the time index and the lease expiries), everything under
one re-entrant lock. It is the default store and the oracle the conformance suite
(:mod:`schedcore.testing`) holds other stores to.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from bisect import bisect_left, bisect_right, insort
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

from schedcore._time import from_ms, iso, require_aware, to_ms
from schedcore.doctor import CheckReport, Finding, expected_fire
from schedcore.exceptions import ScheduleExists, ScheduleNotFound, ValidationError
from schedcore.model import Conflict, Schedule
from schedcore.protocols import SchedulerBeat, StoreStats
from schedcore.records import (
    AddResult,
    Claim,
    Commit,
    Outcome,
    Pending,
    RunRecord,
    RunStatus,
    StoredSchedule,
)
from schedcore.storekit import (
    DEAD_BEATS_KEPT,
    FireMode,
    StoreBase,
    check_add,
    check_add_items,
    check_claim,
    check_commit,
    check_conflict,
    check_extra_entry,
    check_heartbeat,
    check_limit,
    check_outcomes,
    check_set_paused,
    finished_record,
    fire_on_add,
    fire_on_replace,
    log_taken_back,
    notify,
)

__all__ = ["MemoryStore"]

log = logging.getLogger("schedcore.memory")

_FIRE = "fire"  # Pending.key of every fire entry


@attrs.define(kw_only=True)
class _Slot:
    """A claimed entry: out of the index, held under a lease."""

    entry: Pending
    token: int
    owner: str
    expires_ms: int


@attrs.define(kw_only=True)
class _State:
    """Everything the store holds for one schedule."""

    schedule: Schedule
    index: dict[str, tuple[Pending, int]] = attrs.field(factory=dict)  # key -> (entry, heap sequence number)
    claimed: dict[str, _Slot] = attrs.field(factory=dict)  # key -> claim in flight
    fire_token: int | None = None  # token of the claim holding the *current* fire entry, if claimed
    runs_started: int = 0
    running: dict[str, None] = attrs.field(factory=dict)  # an ordered set of run ids
    parked: Pending | None = None
    history: deque[RunRecord] = attrs.field(factory=deque)  # newest first


class MemoryStore(StoreBase):
    """A thread-safe, in-process :class:`~schedcore.protocols.Store`.

    Nothing survives the process; use it for tests, single-process deployments and as the
    reference the other stores are checked against. ``history_limit`` caps the run history
    kept per schedule (oldest records are dropped first).

    It follows the readings of the contract that :class:`~schedcore.protocols.Store`
    lists (lease held means the token is current, at most one fire entry per schedule...).
    The store has no clock: a lease is lost only when a ``claim_due(now)`` with ``now`` at
    or after its expiry takes the entry back. ``watch`` callbacks run after the lock is
    released, on the calling thread.
    """

    def __init__(self, *, history_limit: int = 50) -> None:
        if isinstance(history_limit, bool) or not isinstance(history_limit, int) or history_limit < 1:
            raise ValidationError("history_limit", history_limit, "must be an integer >= 1")
        self._history_limit = history_limit
        self._lock = threading.RLock()
        self._schedules: dict[str, _State] = {}
        self._ids: list[str] = []  # sorted schedule ids, for list_schedules pagination
        # The time index: (due ms, sequence, schedule id, key); lazy deletion -- an item is
        # live only while its schedule's index still maps the key to that sequence number.
        self._due_heap: list[tuple[int, int, str, str]] = []
        self._indexed = 0  # live items in _due_heap (to know when to compact it)
        # Lease expiries: (expires ms, token, schedule id, key); live while the slot has that token.
        self._lease_heap: list[tuple[int, int, str, str]] = []
        self._seq = itertools.count()
        self._last_token = 0  # fencing tokens: store-wide, strictly increasing
        self._watchers: dict[int, Callable[[datetime], None]] = {}
        self._watch_ids = itertools.count()
        self._beats: dict[str, SchedulerBeat] = {}  # owner -> last heartbeat

    # -- definitions -------------------------------------------------------------------

    def add(self, schedule: Schedule, first: Pending | None, conflict: Conflict) -> AddResult:
        check_add(schedule, first)
        conflict = check_conflict(conflict)
        notes: list[datetime] = []
        with self._lock:
            if conflict is Conflict.ERROR and schedule.id in self._schedules:
                raise ScheduleExists(schedule.id)
            result = self._add(schedule, first, conflict, notes)
        self._notify(notes)
        return result

    def add_many(self, items: Sequence[tuple[Schedule, Pending | None]], conflict: Conflict) -> list[AddResult]:
        conflict = check_conflict(conflict)
        batch = check_add_items(items)
        notes: list[datetime] = []
        with self._lock:
            if conflict is Conflict.ERROR:  # one taken id: nothing of the batch is written
                taken = next((s.id for s, _ in batch if s.id in self._schedules), None)
                if taken is not None:
                    raise ScheduleExists(taken)
            results = [self._add(schedule, first, conflict, notes) for schedule, first in batch]
        self._notify(notes)
        return results

    def remove(self, schedule_id: str) -> bool:
        with self._lock:
            state = self._schedules.pop(schedule_id, None)
            if state is None:
                return False
            del self._ids[bisect_left(self._ids, schedule_id)]
            # Heap items of the schedule die lazily; claims die because the state is gone.
            self._indexed -= len(state.index)
            return True

    def get(self, schedule_id: str) -> StoredSchedule | None:
        with self._lock:
            state = self._schedules.get(schedule_id)
            return None if state is None else self._stored(state)

    def list_schedules(self, *, after: str | None = None, limit: int = 100) -> list[StoredSchedule]:
        check_limit(limit)
        with self._lock:
            start = 0 if after is None else bisect_right(self._ids, after)
            return [self._stored(self._schedules[i]) for i in self._ids[start : start + limit]]

    def set_paused(self, schedule_id: str, paused: bool, next_fire: Pending | None) -> StoredSchedule:
        check_set_paused(paused, next_fire)
        notes: list[datetime] = []
        with self._lock:
            state = self._state(schedule_id)
            if state.schedule.paused != paused:  # pausing a paused one (resuming a running one) is a no-op
                state.schedule = state.schedule.evolve(paused=paused)
                self._drop_fire(state)  # retries, manual entries and the parked entry stay
                if not paused and next_fire is not None:
                    self._index_put(schedule_id, state, next_fire, notes)
            stored = self._stored(state)
        self._notify(notes)
        return stored

    def enqueue(self, schedule_id: str, entries: Sequence[Pending]) -> int:
        for entry in entries:
            check_extra_entry(entry, "entries")
        notes: list[datetime] = []
        with self._lock:
            state = self._state(schedule_id)
            added = sum(self._index_put_new(schedule_id, state, entry, notes) for entry in entries)
        self._notify(notes)
        return added

    def history(self, schedule_id: str, limit: int = 50) -> list[RunRecord]:
        check_limit(limit)
        with self._lock:
            state = self._schedules.get(schedule_id)
            return [] if state is None else list(itertools.islice(state.history, limit))

    # -- the time index ----------------------------------------------------------------

    def claim_due(self, now: datetime, *, limit: int, lease: timedelta, owner: str) -> list[Claim]:
        now_ms, expires_ms = check_claim(now, limit, lease, owner)
        notes: list[datetime] = []
        claims: list[Claim] = []
        with self._lock:
            self._take_back_lapsed(now, owner, notes)  # owners whose heartbeat expired: due again
            self._expire_leases(now_ms, notes)  # expired leases first: those entries are due again
            while len(claims) < limit and self._due_heap:
                due_ms, seq, sid, key = self._due_heap[0]
                state = self._schedules.get(sid)
                live = state is not None and key in state.index and state.index[key][1] == seq
                if live and due_ms > now_ms:
                    break  # earliest live entry is not due yet
                heapq.heappop(self._due_heap)
                if not live or state is None:
                    continue  # a stale heap item (entry removed or re-indexed)
                entry, _ = state.index.pop(key)
                self._indexed -= 1
                self._last_token += 1
                token = self._last_token
                state.claimed[key] = _Slot(entry=entry, token=token, owner=owner, expires_ms=expires_ms)
                if key == _FIRE:
                    state.fire_token = token  # this claim now holds the schedule's fire entry
                heapq.heappush(self._lease_heap, (expires_ms, token, sid, key))
                claims.append(
                    Claim(
                        schedule=state.schedule,
                        entry=entry,
                        token=token,
                        owner=owner,
                        lease_expires=from_ms(expires_ms),
                        runs_started=state.runs_started,
                        running=len(state.running),
                        parked=state.parked is not None,
                    )
                )
        self._notify(notes)
        return claims

    def commit(self, commits: Sequence[Commit]) -> list[bool]:
        for item in commits:
            check_commit(item)
        notes: list[datetime] = []
        results: list[bool] = []
        with self._lock:
            for item in commits:
                results.append(self._commit_one(item, notes))
        self._notify(notes)
        return results

    def release(self, claims: Sequence[Claim]) -> None:
        notes: list[datetime] = []
        with self._lock:
            for claim in claims:
                state = self._schedules.get(claim.schedule_id)
                key = claim.entry.key(claim.schedule_id)
                if state is None or not self._holds(state, key, claim.token):
                    continue  # lease lost or schedule removed: nothing to give back
                self._unclaim(claim.schedule_id, state, key, notes)
        self._notify(notes)

    def record_outcome(self, outcome: Outcome, retry: Pending | None) -> bool:
        return self.record_outcomes([(outcome, retry)])[0]

    def record_outcomes(self, items: Sequence[tuple[Outcome, Pending | None]]) -> list[bool]:
        """:meth:`record_outcome` for each ``(outcome, retry)`` pair in order, under one lock."""
        batch = check_outcomes(items)
        notes: list[datetime] = []
        with self._lock:
            results = [self._record_one(outcome, retry, notes) for outcome, retry in batch]
        self._notify(notes)
        return results

    def _record_one(self, outcome: Outcome, retry: Pending | None, notes: list[datetime]) -> bool:
        state = self._schedules.get(outcome.schedule_id)
        if state is None or outcome.run_id not in state.running:
            return False  # unknown, already finished or removed: at most once per run id
        del state.running[outcome.run_id]
        for position, record in enumerate(state.history):  # newest dispatched record of the run
            if record.run_id == outcome.run_id and record.status is RunStatus.DISPATCHED:
                state.history[position] = finished_record(record, outcome, retry)
                break
        if retry is not None:
            self._index_put_new(outcome.schedule_id, state, retry, notes)
        self._maybe_unpark(outcome.schedule_id, state, notes)
        return True

    def next_due(self) -> datetime | None:
        with self._lock:
            candidates: list[int] = []
            while self._due_heap:  # drop dead items off the top
                _, seq, sid, key = self._due_heap[0]
                state = self._schedules.get(sid)
                if state is not None and key in state.index and state.index[key][1] == seq:
                    candidates.append(self._due_heap[0][0])
                    break
                heapq.heappop(self._due_heap)
            while self._lease_heap:
                _, token, sid, key = self._lease_heap[0]
                state = self._schedules.get(sid)
                if state is not None and self._holds(state, key, token):
                    candidates.append(self._lease_heap[0][0])
                    break
                heapq.heappop(self._lease_heap)
            return from_ms(min(candidates)) if candidates else None

    def watch(self, callback: Callable[[datetime], None]) -> Callable[[], None]:
        if not callable(callback):
            raise ValidationError("callback", callback, "must be callable")
        with self._lock:
            watch_id = next(self._watch_ids)
            self._watchers[watch_id] = callback

        def stop() -> None:
            with self._lock:
                self._watchers.pop(watch_id, None)

        return stop

    # -- operations ----------------------------------------------------------------------

    def heartbeat(self, owner: str, info: Mapping[str, Any], *, now: datetime, ttl: timedelta) -> None:
        check_heartbeat(owner, info, ttl)
        at = from_ms(to_ms(require_aware(now, "now")))
        beat = SchedulerBeat(owner=owner, beat_at=at, expires_at=at + ttl, info=dict(info))
        with self._lock:
            # long-dead owners are dropped on the way, so restarts (new owner ids) do not pile up;
            # recently expired ones stay until a claim takes back their claims (see claim_due)
            cutoff = at - DEAD_BEATS_KEPT
            self._beats = {o: b for o, b in self._beats.items() if b.expires_at > cutoff}
            self._beats[owner] = beat

    def schedulers(self, now: datetime) -> list[SchedulerBeat]:
        at = require_aware(now, "now")
        with self._lock:
            return sorted((b for b in self._beats.values() if b.expires_at > at), key=lambda b: b.owner)

    def stats(self, now: datetime) -> StoreStats:
        now_ms = to_ms(require_aware(now, "now"))
        with self._lock:
            dues = [to_ms(e.due) for st in self._schedules.values() for e, _ in st.index.values()]
            due = [d for d in dues if d <= now_ms]
            slots = [slot for st in self._schedules.values() for slot in st.claimed.values()]
            expired = sum(1 for slot in slots if slot.expires_ms <= now_ms)
            return StoreStats(
                schedules=len(self._schedules),
                due=len(due),
                oldest_due=from_ms(min(due)) if due else None,
                in_flight=len(slots) - expired,
                expired=expired,
            )

    def check(self, *, repair: bool = False, now: datetime) -> CheckReport:
        """Consistency check (``schedcore doctor``). Memory cannot hold foreign data, so it
        looks for the two states the protocol could leave behind: a running schedule with an
        occurrence left but no fire entry, and claims whose lease expired while their owner
        has no live heartbeat. ``repair`` re-creates the fire entry from the trigger (as
        an add would) and releases those claims (as the next ``claim_due`` would)."""
        at = require_aware(now, "now")
        now_ms = to_ms(at)
        found: list[Finding] = []
        notes: list[datetime] = []
        with self._lock:
            live = {owner for owner, beat in self._beats.items() if beat.expires_at > at}
            for sid, state in self._schedules.items():
                for key, slot in list(state.claimed.items()):
                    if slot.expires_ms <= now_ms and slot.owner not in live:
                        if repair:
                            self._unclaim(sid, state, key, notes)
                        detail = (
                            f"claim of {key} by {slot.owner!r} (not alive) expired at {iso(from_ms(slot.expires_ms))}"
                        )
                        found.append(
                            Finding(kind="stale_claim", detail=detail, key=key, schedule_id=sid, repaired=repair)
                        )
                if state.schedule.paused or state.parked is not None or _FIRE in state.index or _FIRE in state.claimed:
                    continue
                fire = expected_fire(state.schedule, at, state.runs_started)
                if fire is not None:
                    if repair:
                        self._index_put(sid, state, fire, notes)
                    detail = f"no fire entry (next occurrence {iso(fire.nominal)})"
                    found.append(
                        Finding(kind="missing_fire", detail=detail, key=_FIRE, schedule_id=sid, repaired=repair)
                    )
            counts = {"schedules": len(self._schedules)}
        self._notify(notes)
        return CheckReport(store="memory store", checked_at=at, repair=repair, findings=tuple(found), counts=counts)

    def close(self) -> None:
        # Nothing to release but the watchers; the data stays readable.
        with self._lock:
            self._watchers.clear()

    def __repr__(self) -> str:
        return f"<MemoryStore schedules={len(self._schedules)} history_limit={self._history_limit}>"

    # -- internals (called with the lock held) -------------------------------------------

    def _state(self, schedule_id: str) -> _State:
        state = self._schedules.get(schedule_id)
        if state is None:
            raise ScheduleNotFound(schedule_id)
        return state

    def _add(self, schedule: Schedule, first: Pending | None, conflict: Conflict, notes: list[datetime]) -> AddResult:
        """One add, checked already (a taken id with ``conflict="error"`` was refused by the caller)."""
        state = self._schedules.get(schedule.id)
        if state is None:
            state = _State(schedule=schedule)
            self._schedules[schedule.id] = state
            insort(self._ids, schedule.id)
            if first is not None and fire_on_add(schedule, first) is FireMode.SET:
                self._index_put(schedule.id, state, first, notes)
            return AddResult.ADDED
        if conflict is Conflict.KEEP:
            return AddResult.KEPT
        mode = fire_on_replace(state.schedule, schedule, first)
        if mode is None:
            return AddResult.UNCHANGED  # equal definition: nothing is written
        state.schedule = schedule
        if mode is not FireMode.KEEP:
            self._drop_fire(state)
        if first is not None and mode is FireMode.SET:
            self._index_put(schedule.id, state, first, notes)
        return AddResult.REPLACED

    def _stored(self, state: _State) -> StoredSchedule:
        fire = state.index.get(_FIRE)
        next_fire = fire[0] if fire is not None else None
        if next_fire is None and state.fire_token is not None:
            next_fire = state.claimed[_FIRE].entry  # the fire entry is held by a claim
        return StoredSchedule(
            schedule=state.schedule,
            next_fire=next_fire,
            runs_started=state.runs_started,
            running=tuple(state.running),
            parked=state.parked,
        )

    @staticmethod
    def _holds(state: _State, key: str, token: int) -> bool:
        slot = state.claimed.get(key)
        return slot is not None and slot.token == token

    def _index_put(self, sid: str, state: _State, entry: Pending, notes: list[datetime]) -> None:
        """Put ``entry`` in the index under its key (replacing an indexed one with that key)."""
        key = entry.key(sid)
        seq = next(self._seq)
        if key not in state.index:
            self._indexed += 1
        state.index[key] = (entry, seq)
        heapq.heappush(self._due_heap, (to_ms(entry.due), seq, sid, key))
        notes.append(entry.due)
        if len(self._due_heap) > 2 * self._indexed + 1024:  # too many dead items: compact
            self._due_heap = [
                (to_ms(e.due), s, i, k) for i, st in self._schedules.items() for k, (e, s) in st.index.items()
            ]
            heapq.heapify(self._due_heap)

    def _index_put_new(self, sid: str, state: _State, entry: Pending, notes: list[datetime]) -> bool:
        """Like _index_put, but ignore an entry whose key is indexed or claimed already."""
        key = entry.key(sid)
        if key in state.index or key in state.claimed:
            return False
        self._index_put(sid, state, entry, notes)
        return True

    def _drop_fire(self, state: _State) -> None:
        """Take the fire entry out of the index; a claim holding it no longer holds *the* fire entry."""
        if state.index.pop(_FIRE, None) is not None:
            self._indexed -= 1
        state.fire_token = None

    def _unclaim(self, sid: str, state: _State, key: str, notes: list[datetime]) -> None:
        """End a claim without committing: its entry returns to the index unless superseded."""
        slot = state.claimed.pop(key)
        if key == _FIRE:
            if state.fire_token != slot.token:
                return  # a superseded fire entry (replaced or paused meanwhile) is dropped
            state.fire_token = None
        self._index_put(sid, state, slot.entry, notes)

    def _expire_leases(self, now_ms: int, notes: list[datetime]) -> None:
        while self._lease_heap and self._lease_heap[0][0] <= now_ms:
            _, token, sid, key = heapq.heappop(self._lease_heap)
            state = self._schedules.get(sid)
            if state is not None and self._holds(state, key, token):
                self._unclaim(sid, state, key, notes)  # due again, for anyone

    def _take_back_lapsed(self, now: datetime, owner: str, notes: list[datetime]) -> None:
        """End the claims of every owner (but ``owner``) whose heartbeat expired at or before
        ``now``, before their leases end, and drop those beats. An owner that never beat
        keeps its claims until their leases expire; fencing refuses a lapsed owner's commit."""
        lapsed = {o for o, b in self._beats.items() if b.expires_at <= now and o != owner}
        if not lapsed:
            return
        taken = dict.fromkeys(lapsed, 0)
        for _, token, sid, key in list(self._lease_heap):
            state = self._schedules.get(sid)
            if state is None or not self._holds(state, key, token):
                continue
            holder = state.claimed[key].owner
            if holder in lapsed:
                self._unclaim(sid, state, key, notes)
                taken[holder] += 1
        for o in lapsed:
            del self._beats[o]
        for o, n in taken.items():
            log_taken_back(log, o, n)

    def _maybe_unpark(self, sid: str, state: _State, notes: list[datetime]) -> None:
        if state.parked is not None and not state.running:
            parked, state.parked = state.parked, None
            self._index_put_new(sid, state, parked, notes)

    def _commit_one(self, item: Commit, notes: list[datetime]) -> bool:
        claim = item.claim
        sid = claim.schedule_id
        key = claim.entry.key(sid)
        state = self._schedules.get(sid)
        if state is None or not self._holds(state, key, claim.token):
            return False  # lease lost or schedule removed: write nothing
        # History: newest first, capped; one commit's records ordered by occurrence.
        for record in sorted((*item.dispatched, *item.skipped), key=lambda r: (r.nominal, r.attempt)):
            state.history.appendleft(record)
        while len(state.history) > self._history_limit:
            state.history.pop()
        for record in item.dispatched:
            state.running[record.run_id] = None
        state.runs_started += item.runs_started
        del state.claimed[key]
        if key == _FIRE and state.fire_token == claim.token:
            state.fire_token = None
            if item.next_fire is not None:  # None: the schedule is finished
                self._index_put(sid, state, item.next_fire, notes)
        if item.park is not None:
            state.parked = item.park  # replaces a parked entry
            self._maybe_unpark(sid, state, notes)  # nothing running any more: do not strand it
        return True

    def _notify(self, notes: list[datetime]) -> None:
        if not notes:
            return
        with self._lock:
            callbacks = list(self._watchers.values())
        notify(log, callbacks, notes)
