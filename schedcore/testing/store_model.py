"""The model-based test of the store conformance suite: :class:`StoreMachine` drives a store and
a plain in-memory model of the contract with the same random operations (add, claim, commit,
release, outcomes, enqueue, pause, time passing...) and compares them after every step.

:meth:`StoreConformance.test_behaves_like_the_model <schedcore.testing.StoreConformance>` runs
it on the store of the suite's fixture; the example-based tests are in
:mod:`schedcore.testing.store_suite`.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import attrs
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from schedcore._time import from_ms, to_ms
from schedcore.exceptions import ScheduleExists, ScheduleNotFound
from schedcore.model import Conflict, Schedule
from schedcore.protocols import Store
from schedcore.records import (
    AddResult,
    Claim,
    Commit,
    Outcome,
    OutcomeStatus,
    Pending,
    PendingKind,
    RunRecord,
    RunStatus,
    StoredSchedule,
)
from schedcore.testing.factories import T0, commit_for, make_schedule, outcome_for, run_id
from schedcore.testing.store_suite import TRACE_HEADER
from schedcore.triggers import Interval

__all__ = ["StoreMachine"]

IDS = ("a", "b", "c")


def variants(sid: str) -> list[Schedule]:
    """Definitions of one schedule: 0 and 1 share their timing, 2 differs, 3 is 0 paused."""
    return [
        make_schedule(sid),
        make_schedule(sid, args=(1,)),
        make_schedule(sid, trigger=Interval(30, start=T0)),
        make_schedule(sid, paused=True),
    ]


@attrs.define(kw_only=True)
class _Held:
    token: int
    entry: Pending
    expires_ms: int
    current: bool  # fire claims: still holds the schedule's fire entry


@attrs.define(kw_only=True)
class _Model:
    schedule: Schedule
    fire: Pending | None = None  # in the index
    extra: dict[str, Pending] = attrs.field(factory=dict)  # non-fire entries in the index
    claimed: dict[str, _Held] = attrs.field(factory=dict)
    runs_started: int = 0
    running: dict[str, Pending] = attrs.field(factory=dict)
    parked: Pending | None = None
    history: list[RunRecord] = attrs.field(factory=list)  # newest first, uncapped

    def fire_entry(self) -> Pending | None:
        held = self.claimed.get("fire")
        return self.fire if self.fire is not None else (held.entry if held and held.current else None)

    def drop_fire(self) -> None:
        self.fire = None
        if "fire" in self.claimed:
            self.claimed["fire"].current = False

    def put(self, sid: str, pending: Pending) -> bool:
        key = pending.key(sid)
        if key in self.extra or key in self.claimed:
            return False
        self.extra[key] = pending
        return True

    def unpark(self, sid: str) -> None:
        if self.parked is not None and not self.running:
            self.put(sid, self.parked)
            self.parked = None


class StoreMachine(RuleBasedStateMachine):
    """Drives a store and a plain model with the same operations and compares them."""

    def __init__(self, store: Store, history_limit: int, tokens: list[int]) -> None:
        super().__init__()
        self.store = store
        self.cap = history_limit
        self.tokens = tokens
        while page := store.list_schedules(limit=100):  # start from an empty store
            for stored in page:
                store.remove(stored.schedule.id)
        self.now_ms = to_ms(T0)
        self.model: dict[str, _Model] = {}
        self.claims: list[Claim] = []
        self.finished: list[tuple[str, Pending]] = []
        self.counter = itertools.count(1)

    # -- helpers

    @property
    def now(self) -> datetime:
        return from_ms(self.now_ms)

    def new_entry(self, kind: PendingKind, due_seconds: int) -> Pending:
        """A fresh entry: its nominal is unique, so run ids never collide."""
        nominal = T0 + timedelta(milliseconds=next(self.counter))
        return Pending(kind=kind, nominal=nominal, due=self.now + timedelta(seconds=due_seconds), attempt=1)

    def held(self, c: Claim) -> _Held | None:
        m = self.model.get(c.schedule_id)
        h = m.claimed.get(c.entry.key(c.schedule_id)) if m else None
        return h if h is not None and h.token == c.token else None

    # -- rules

    @initialize(firsts=st.lists(st.integers(-5, 5), min_size=len(IDS), max_size=len(IDS)))
    def start(self, firsts: list[int]) -> None:
        for sid, first in zip(IDS, firsts, strict=True):
            self.add(sid, 0, first, Conflict.ERROR)

    @rule(
        sid=st.sampled_from(IDS),
        variant=st.integers(0, 3),
        first=st.none() | st.integers(-5, 10),
        conflict=st.sampled_from(Conflict),
    )
    def add(self, sid: str, variant: int, first: int | None, conflict: Conflict) -> None:
        schedule = variants(sid)[variant]
        first_entry = None if first is None else self.new_entry(PendingKind.FIRE, first)
        m = self.model.get(sid)
        if m is not None and conflict is Conflict.ERROR:
            with pytest.raises(ScheduleExists):
                self.store.add(schedule, first_entry, conflict)
            return
        assert self.store.add(schedule, first_entry, conflict) is self.apply_add(schedule, first_entry, conflict)

    def apply_add(self, schedule: Schedule, first_entry: Pending | None, conflict: Conflict) -> AddResult:
        """What ``add`` does to the model (the id is free, or conflict is not "error"); its result."""
        sid = schedule.id
        m = self.model.get(sid)
        if m is None:
            self.model[sid] = _Model(schedule=schedule, fire=None if schedule.paused else first_entry)
            return AddResult.ADDED
        if conflict is Conflict.KEEP:
            return AddResult.KEPT
        if m.schedule == schedule:
            return AddResult.UNCHANGED
        old, m.schedule = m.schedule, schedule
        if schedule.paused or old.paused or not old.same_timing(schedule):
            m.drop_fire()
            if not schedule.paused:
                m.fire = first_entry
        return AddResult.REPLACED

    @rule(
        picks=st.lists(st.tuples(st.sampled_from(IDS), st.integers(0, 3), st.none() | st.integers(-5, 10)), max_size=3),
        conflict=st.sampled_from(Conflict),
    )
    def add_many(self, picks: list[tuple[str, int, int | None]], conflict: Conflict) -> None:
        picks = list({sid: (sid, variant, first) for sid, variant, first in picks}.values())  # distinct ids
        batch = [
            (variants(sid)[variant], None if first is None else self.new_entry(PendingKind.FIRE, first))
            for sid, variant, first in picks
        ]
        taken = [schedule.id for schedule, _ in batch if schedule.id in self.model]
        if taken and conflict is Conflict.ERROR:
            with pytest.raises(ScheduleExists):
                self.store.add_many(batch, conflict)
            return  # nothing written (the invariant checks it)
        results = self.store.add_many(batch, conflict)
        assert len(results) == len(batch)
        for (schedule, first_entry), result in zip(batch, results, strict=True):
            assert result is self.apply_add(schedule, first_entry, conflict)

    @rule(sid=st.sampled_from(IDS))
    def remove(self, sid: str) -> None:
        assert self.store.remove(sid) is (sid in self.model)
        m = self.model.pop(sid, None)
        if m is not None:  # their outcomes must now be refused
            self.finished += [(sid, p) for p in m.running.values()]

    @rule(limit=st.integers(1, 4), lease=st.integers(1, 30))
    def claim(self, limit: int, lease: int) -> None:
        for m in self.model.values():  # expired leases return to the index (superseded fire entries vanish)
            for key, h in list(m.claimed.items()):
                if h.expires_ms <= self.now_ms:
                    del m.claimed[key]
                    if key != "fire":
                        m.extra[key] = h.entry
                    elif h.current:
                        assert m.fire is None
                        m.fire = h.entry
        due: dict[tuple[str, str], Pending] = {}
        for sid, m in self.model.items():
            for key, pending in [*m.extra.items(), *([("fire", m.fire)] if m.fire else [])]:
                if pending.due <= self.now:
                    due[(sid, key)] = pending
        got = self.store.claim_due(self.now, limit=limit, lease=timedelta(seconds=lease), owner="machine")
        assert len(got) == min(limit, len(due))
        keys = [(c.schedule_id, c.entry.key(c.schedule_id)) for c in got]
        assert len(set(keys)) == len(keys)
        for c, taken in zip(got, keys, strict=True):
            assert due.pop(taken) == c.entry
            m = self.model[c.schedule_id]
            assert c.schedule == m.schedule and c.owner == "machine"
            assert c.lease_expires == self.now + timedelta(seconds=lease)
            assert (c.runs_started, c.running, c.parked) == (m.runs_started, len(m.running), m.parked is not None)
        if got:  # earliest first: nothing left behind is due before what was taken
            latest = max(c.entry.due for c in got)
            assert all(p.due >= latest for p in due.values())
            tokens = [c.token for c in got]
            assert len(set(tokens)) == len(tokens) and min(tokens) > self.tokens[0]
            self.tokens[0] = max(tokens)
        for c, (sid, key) in zip(got, keys, strict=True):
            m = self.model[sid]
            if key == "fire":
                m.fire = None
            else:
                del m.extra[key]
            m.claimed[key] = _Held(
                token=c.token, entry=c.entry, expires_ms=to_ms(c.lease_expires), current=key == "fire"
            )
        self.claims += got

    def settleable(self) -> list[Claim]:
        """Claims to commit or release: live ones, and lost ones (to check they are refused)."""
        return [c for c in self.claims if (h := self.held(c)) is None or h.expires_ms > self.now_ms]

    @precondition(lambda self: bool(self.settleable()))
    @rule(
        data=st.data(),
        action=st.sampled_from(["commit", "commit", "release"]),
        what=st.sampled_from(["dispatch", "skip", "nothing"]),
        next_fire=st.none() | st.integers(-5, 10),
        park=st.booleans(),
    )
    def settle(self, data: st.DataObject, action: str, what: str, next_fire: int | None, park: bool) -> None:
        c = data.draw(st.sampled_from(self.settleable()))
        h = self.held(c)
        sid = c.schedule_id
        key = c.entry.key(sid)
        if action == "release":
            self.store.release([c])
            if h is None:
                self.claims.remove(c)  # lost: checked once (by the invariant), then forgotten
                return
            m = self.model[sid]
            del m.claimed[key]
            if key != "fire":
                m.extra[key] = h.entry
            elif h.current:
                m.fire = h.entry
            return
        commit = self._commit_of(c, what, next_fire, park)
        [ok] = self.store.commit([commit])
        self._model_commit(commit, ok)

    @precondition(lambda self: len(self.settleable()) > 1)
    @rule(
        data=st.data(),
        how=st.lists(
            st.tuples(st.sampled_from(["dispatch", "skip", "nothing"]), st.none() | st.integers(-5, 10), st.booleans()),
            min_size=2,
            max_size=6,
        ),
    )
    def settle_many(self, data: st.DataObject, how: list[tuple[str, int | None, bool]]) -> None:
        """Several claims committed in one call (entries of one schedule among them, at times)."""
        claims = self.settleable()
        picked = data.draw(st.lists(st.sampled_from(range(len(claims))), min_size=2, max_size=len(how), unique=True))
        commits = [self._commit_of(claims[i], *how[n]) for n, i in enumerate(picked)]
        results = self.store.commit(commits)
        assert len(results) == len(commits)
        for commit, ok in zip(commits, results, strict=True):  # the model applies them in order
            self._model_commit(commit, ok)

    def _commit_of(self, c: Claim, what: str, next_fire: int | None, park: bool) -> Commit:
        return commit_for(
            c,
            dispatch=what == "dispatch",
            skip=what == "skip",
            next_fire=None if next_fire is None else self.new_entry(PendingKind.FIRE, next_fire),
            park=self.new_entry(PendingKind.BUFFERED, 0) if park else None,
        )

    def _model_commit(self, commit: Commit, ok: bool) -> None:
        c = commit.claim
        h = self.held(c)
        sid = c.schedule_id
        key = c.entry.key(sid)
        if h is None:
            assert not ok, "a commit without the lease was accepted"
            self.claims.remove(c)
            return
        superseded = key == "fire" and not h.current
        assert ok or superseded  # a superseded fire claim may be refused (all or nothing)
        if not ok:
            return
        m = self.model[sid]
        del m.claimed[key]
        for record in (*commit.dispatched, *commit.skipped):
            m.history.insert(0, record)
        for record in commit.dispatched:
            m.running[record.run_id] = c.entry
        m.runs_started += commit.runs_started
        if key == "fire" and h.current:
            m.fire = commit.next_fire
        if commit.park is not None:
            m.parked = commit.park
            m.unpark(sid)

    @precondition(lambda self: bool(self.finished) or any(m.running for m in self.model.values()))
    @rule(data=st.data(), status=st.sampled_from(OutcomeStatus), retry=st.none() | st.integers(0, 10))
    def record_outcome(self, data: st.DataObject, status: OutcomeStatus, retry: int | None) -> None:
        outcome, retry_entry = self._draw_outcome(data, status, retry)
        expected = self._model_outcome(outcome, retry_entry)
        assert self.store.record_outcome(outcome, retry_entry) is expected  # at most once per run id

    @precondition(lambda self: bool(self.finished) or any(m.running for m in self.model.values()))
    @rule(
        data=st.data(),
        items=st.lists(st.tuples(st.sampled_from(OutcomeStatus), st.none() | st.integers(0, 10)), max_size=4),
    )
    def record_outcomes(self, data: st.DataObject, items: list[tuple[OutcomeStatus, int | None]]) -> None:
        batch = [self._draw_outcome(data, status, retry) for status, retry in items]  # repeats included
        expected = [self._model_outcome(outcome, retry_entry) for outcome, retry_entry in batch]
        assert self.store.record_outcomes(batch) == expected

    def _draw_outcome(
        self, data: st.DataObject, status: OutcomeStatus, retry: int | None
    ) -> tuple[Outcome, Pending | None]:
        runs = [(sid, p) for sid, m in self.model.items() for p in m.running.values()]
        sid, pending = data.draw(st.sampled_from(runs + self.finished))
        retry_entry = None
        if retry is not None:
            retry_entry = Pending(
                kind=PendingKind.RETRY,
                nominal=pending.nominal,
                due=self.now + timedelta(seconds=retry),
                attempt=pending.attempt + 1,
            )
        error = None if status is OutcomeStatus.SUCCEEDED else f"{status.value}!"
        trace = None if error is None else f"{TRACE_HEADER}\n  {run_id(sid, pending)}\n{error}"
        outcome = outcome_for(sid, pending, status, finished_at=self.now, error=error, traceback=trace)
        return outcome, retry_entry

    def _model_outcome(self, outcome: Outcome, retry_entry: Pending | None) -> bool:
        """Apply ``outcome`` to the model; whether the store must record it."""
        sid, rid = outcome.schedule_id, outcome.run_id
        m = self.model.get(sid)
        if m is None or rid not in m.running:
            return False
        pending = m.running.pop(rid)
        self.finished.append((sid, pending))
        for i, record in enumerate(m.history):
            if record.run_id == rid and record.status is RunStatus.DISPATCHED:
                m.history[i] = attrs.evolve(
                    record,
                    status=RunStatus(outcome.status.value),
                    finished_at=outcome.finished_at,
                    error=outcome.error,
                    traceback=outcome.traceback,
                    retry_at=retry_entry.due if retry_entry else None,
                )
                break
        if retry_entry is not None:
            m.put(sid, retry_entry)
        m.unpark(sid)
        return True

    @rule(
        sid=st.sampled_from(IDS),
        dues=st.lists(st.integers(-5, 10), max_size=3),
        repeat=st.booleans(),
        kind=st.sampled_from([PendingKind.MANUAL, PendingKind.BACKFILL]),
    )
    def enqueue(self, sid: str, dues: list[int], repeat: bool, kind: PendingKind) -> None:
        entries = [self.new_entry(kind, d) for d in dues]
        m = self.model.get(sid)
        if m is None:
            with pytest.raises(ScheduleNotFound):
                self.store.enqueue(sid, entries)
            return
        present = [*m.extra.values(), *(h.entry for key, h in m.claimed.items() if key != "fire")]
        if repeat and present:
            entries.append(present[0])
        assert self.store.enqueue(sid, entries) == len(dues)
        for pending in entries:
            m.put(sid, pending)

    @rule(sid=st.sampled_from(IDS), paused=st.booleans(), next_fire=st.none() | st.integers(-5, 10))
    def set_paused(self, sid: str, paused: bool, next_fire: int | None) -> None:
        fire = None if next_fire is None else self.new_entry(PendingKind.FIRE, next_fire)
        m = self.model.get(sid)
        if m is None:
            with pytest.raises(ScheduleNotFound):
                self.store.set_paused(sid, paused, fire)
            return
        stored = self.store.set_paused(sid, paused, fire)
        if m.schedule.paused != paused:
            m.schedule = m.schedule.evolve(paused=paused)
            m.drop_fire()
            if not paused:
                m.fire = fire
        self.compare(sid, stored)

    @rule(seconds=st.integers(0, 15))
    def advance(self, seconds: int) -> None:
        self.now_ms += seconds * 1000

    # -- checks

    def compare(self, sid: str, stored: StoredSchedule | None) -> None:
        m = self.model.get(sid)
        if m is None:
            assert stored is None
            return
        assert stored is not None
        assert stored.schedule == m.schedule
        assert stored.next_fire == m.fire_entry()
        assert stored.runs_started == m.runs_started
        assert sorted(stored.running) == sorted(m.running)
        assert stored.parked == m.parked

    @invariant()
    def agrees_with_the_model(self) -> None:
        assert [s.schedule.id for s in self.store.list_schedules(limit=100)] == sorted(self.model)
        for sid in IDS:
            self.compare(sid, self.store.get(sid))
            m = self.model.get(sid)
            assert self.store.history(sid, limit=1000) == (m.history[: self.cap] if m else [])
        instants = [
            *(p.due for m in self.model.values() for p in [*m.extra.values(), *([m.fire] if m.fire else [])]),
            *(from_ms(h.expires_ms) for m in self.model.values() for h in m.claimed.values()),
        ]
        assert self.store.next_due() == (min(instants) if instants else None)
