"""The conformance suite every :class:`~schedcore.protocols.Store` runs against itself.

Subclass :class:`StoreConformance` in a test module and provide a ``store`` fixture that
yields a fresh, empty store (and closes it afterwards)::

    import pytest
    from schedcore.testing import StoreConformance

    class TestMyStore(StoreConformance):
        history_limit = 50  # the history cap of the stores the fixture builds

        @pytest.fixture
        def store(self):
            store = MyStore(...)
            yield store
            store.close()

The tests use only the public protocol and pass time explicitly (instants are relative
to :data:`~schedcore.testing.factories.T0`); nothing sleeps. Watch notifications may
arrive asynchronously (from another thread): the suite waits up to
:attr:`StoreConformance.watch_timeout` for them. The stateful test reuses the fixture's
store for all its examples and empties it between examples with ``remove``.

Every method of :class:`~schedcore.protocols.Store` is required and tested (a store
inheriting :class:`~schedcore.storekit.StoreBase` gets the defaults). Where the contract
leaves room, the suite checks the readings documented on :class:`~schedcore.protocols.Store`
(:class:`schedcore.memory.MemoryStore` is the reference implementation); where both
readings keep exactly-once (committing a claim whose fire entry was superseded), it accepts both.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

import attrs
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from schedcore.doctor import CheckReport
from schedcore.exceptions import ScheduleExists, ScheduleNotFound, StoreError, ValidationError
from schedcore.model import Conflict, Schedule
from schedcore.protocols import Store, missing_methods
from schedcore.records import AddResult, Claim, Commit, OutcomeStatus, Pending, PendingKind, RunStatus, StoredSchedule
from schedcore.testing.factories import (
    T0,
    at,
    commit_for,
    dispatched_record,
    entry,
    fire_entry,
    make_schedule,
    outcome_for,
    run_id,
)
from schedcore.tracebacks import MAX_CHARS, MAX_LINES, trim_traceback
from schedcore.triggers import At, Interval

__all__ = ["StoreConformance"]

TRACE_HEADER = "Traceback (most recent call last):"

LEASE = timedelta(seconds=30)
FAR = at(1_000_000)


def claim(
    store: Store, now: datetime, *, limit: int = 100, lease: timedelta = LEASE, owner: str = "test"
) -> list[Claim]:
    """``store.claim_due`` with defaults."""
    return store.claim_due(now, limit=limit, lease=lease, owner=owner)


def claim_one(store: Store, now: datetime, **kwargs: Any) -> Claim:
    """Claim exactly one entry (fails the test otherwise)."""
    claims = claim(store, now, **kwargs)
    assert len(claims) == 1, claims
    return claims[0]


def dues(claims: list[Claim]) -> list[datetime]:
    return [c.entry.due for c in claims]


class Watcher:
    """A watch callback that records notifications and lets the test wait for one."""

    def __init__(self) -> None:
        self.seen: list[datetime] = []
        self._cond = threading.Condition()

    def __call__(self, due: datetime) -> None:
        with self._cond:
            self.seen.append(due)
            self._cond.notify_all()

    def wait_for(self, due: datetime, timeout: float) -> bool:
        """Wait until ``due`` was notified (since the last :meth:`clear`)."""
        with self._cond:
            return self._cond.wait_for(lambda: due in self.seen, timeout=timeout)

    def clear(self) -> None:
        with self._cond:
            self.seen.clear()


class StoreConformance:
    """Contract tests for a :class:`~schedcore.protocols.Store`; subclass and provide ``store``."""

    #: The run-history cap per schedule of the stores the ``store`` fixture builds.
    history_limit: ClassVar[int] = 50
    #: How long to wait for a watch notification (shared stores deliver them asynchronously).
    watch_timeout: ClassVar[float] = 5.0
    #: Settings of the hypothesis stateful test (kept moderate; raise them in a subclass).
    stateful_settings: ClassVar[settings] = settings(
        max_examples=50,
        stateful_step_count=50,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )

    @pytest.fixture
    def store(self) -> Iterator[Store]:
        raise NotImplementedError("subclass StoreConformance and provide a `store` fixture yielding a fresh store")

    # -- helpers --------------------------------------------------------------------

    def add_fire(self, store: Store, sid: str, seconds: float | None, **changes: Any) -> Pending | None:
        """Add schedule ``sid`` with a fire entry at ``T0 + seconds`` (None: no fire entry)."""
        first = None if seconds is None else fire_entry(seconds)
        assert store.add(make_schedule(sid, **changes), first, Conflict.ERROR) is AddResult.ADDED
        return first

    def dispatch_fire(self, store: Store, sid: str, now: datetime, next_fire: Pending | None) -> Claim:
        """Claim the (only due) fire entry of ``sid`` and commit it as dispatched."""
        c = claim_one(store, now)
        assert c.schedule_id == sid and c.entry.kind is PendingKind.FIRE
        assert store.commit([commit_for(c, next_fire=next_fire)]) == [True]
        return c

    # -- the protocol ----------------------------------------------------------------

    def test_satisfies_the_protocol(self, store: Store) -> None:
        assert missing_methods(store, Store) == [], "every method of Store is required (StoreBase has defaults)"
        assert isinstance(store, Store)

    def test_warnings_are_sentences(self, store: Store) -> None:
        found = store.warnings()
        assert isinstance(found, list) and all(isinstance(w, str) and w for w in found)

    def test_check_reports_or_says_there_is_no_checker(self, store: Store) -> None:
        self.add_fire(store, "a", 10)
        try:
            report = store.check(repair=False, now=at(0))
        except StoreError as exc:  # StoreBase's default: no consistency checker
            assert "no consistency checker" in str(exc)
            return
        assert isinstance(report, CheckReport) and report.repair is False
        assert report.clean, report.rows()  # a store written only through its methods is consistent

    def test_empty_store(self, store: Store) -> None:
        assert store.get("nope") is None
        assert store.list_schedules() == []
        assert store.history("nope") == []
        assert store.next_due() is None
        assert claim(store, FAR) == []
        assert store.remove("nope") is False

    # -- add and the conflict policies ---------------------------------------------------

    def test_add_stores_definition_and_fire_entry(self, store: Store) -> None:
        schedule = make_schedule("a")
        first = fire_entry(10)
        assert store.add(schedule, first, Conflict.ERROR) is AddResult.ADDED
        got = store.get("a")
        assert got == StoredSchedule(schedule=schedule, next_fire=first, runs_started=0, running=(), parked=None)
        assert store.next_due() == at(10)

    def test_add_without_first_has_nothing_to_fire(self, store: Store) -> None:
        self.add_fire(store, "a", None)
        stored = store.get("a")
        assert stored is not None and stored.next_fire is None
        assert claim(store, FAR) == []
        assert store.next_due() is None

    def test_add_with_a_fire_entry_already_due_hands_it_out_at_once(self, store: Store) -> None:
        """A one-shot added just after its instant (``Scheduler.add`` within ``misfire_grace``)
        is stored with a fire entry in the past: it is due at once, ahead of later entries."""
        self.add_fire(store, "later", 150)
        now = at(100)
        past = make_schedule("late", trigger=At(at(99.99)))
        assert store.add(past, fire_entry(99.99), Conflict.ERROR) is AddResult.ADDED
        assert store.next_due() == at(99.99)
        [c] = claim(store, now)
        assert (c.schedule_id, c.entry) == ("late", fire_entry(99.99))
        assert store.commit([commit_for(c)]) == [True]
        assert [x.schedule_id for x in claim(store, FAR)] == ["later"]
        assert claim(store, FAR) == []  # once: "late" is finished

    def test_add_paused_schedule_has_no_fire_entry(self, store: Store) -> None:
        assert store.add(make_schedule("a", paused=True), fire_entry(0), Conflict.ERROR) is AddResult.ADDED
        stored = store.get("a")
        assert stored is not None and stored.schedule.paused and stored.next_fire is None
        assert claim(store, FAR) == []

    def test_conflict_error_raises_and_changes_nothing(self, store: Store) -> None:
        first = self.add_fire(store, "a", 0)
        before = store.get("a")
        with pytest.raises(ScheduleExists):
            store.add(make_schedule("a", task="schedcore.testing.tasks:echo"), fire_entry(50), Conflict.ERROR)
        assert store.get("a") == before
        assert [c.entry for c in claim(store, FAR)] == [first]

    def test_conflict_keep_changes_nothing(self, store: Store) -> None:
        first = self.add_fire(store, "a", 0)
        before = store.get("a")
        other = make_schedule("a", task="schedcore.testing.tasks:echo", trigger=Interval(30, start=T0))
        assert store.add(other, fire_entry(50), Conflict.KEEP) is AddResult.KEPT
        assert store.get("a") == before
        assert [c.entry for c in claim(store, FAR)] == [first]

    def test_replace_with_equal_definition_is_unchanged(self, store: Store) -> None:
        first = self.add_fire(store, "a", 0)
        before = store.get("a")
        assert store.add(make_schedule("a"), fire_entry(99), Conflict.REPLACE) is AddResult.UNCHANGED
        assert store.get("a") == before
        assert [c.entry for c in claim(store, FAR)] == [first]

    def test_replace_with_same_timing_keeps_the_fire_entry(self, store: Store) -> None:
        first = self.add_fire(store, "a", 0)
        new = make_schedule("a", args=(1, 2), queue="other")
        assert store.add(new, fire_entry(60), Conflict.REPLACE) is AddResult.REPLACED
        stored = store.get("a")
        assert stored is not None and stored.schedule == new and stored.next_fire == first
        c = claim_one(store, FAR)
        assert c.entry == first and c.schedule == new

    def test_replace_with_other_timing_replaces_the_fire_entry(self, store: Store) -> None:
        self.add_fire(store, "a", 0)
        new = make_schedule("a", trigger=Interval(30, start=T0))
        first = fire_entry(30)
        assert store.add(new, first, Conflict.REPLACE) is AddResult.REPLACED
        stored = store.get("a")
        assert stored is not None and stored.schedule == new and stored.next_fire == first
        assert claim(store, at(29)) == []
        assert [c.entry for c in claim(store, FAR)] == [first]

    def test_replace_keeps_a_finished_schedule_finished_when_timing_is_the_same(self, store: Store) -> None:
        self.add_fire(store, "a", 0)
        self.dispatch_fire(store, "a", at(0), next_fire=None)
        assert store.add(make_schedule("a", args=(1,)), fire_entry(60), Conflict.REPLACE) is AddResult.REPLACED
        stored = store.get("a")
        assert stored is not None and stored.next_fire is None
        assert claim(store, FAR) == []

    def test_replace_keeps_counts_running_runs_retries_and_history(self, store: Store) -> None:
        self.add_fire(store, "a", 0)
        self.dispatch_fire(store, "a", at(0), next_fire=fire_entry(60))
        manual = entry("manual", 5)
        assert store.enqueue("a", [manual]) == 1
        mc = claim_one(store, at(5))
        assert store.commit([commit_for(mc)]) == [True]
        failed = fire_entry(0)
        retry = entry("retry", 0, due=20, attempt=2)
        assert store.record_outcome(outcome_for("a", failed, "failed", error="RuntimeError: boom"), retry) is True
        later = entry("backfill", 40)
        assert store.enqueue("a", [later]) == 1
        before = store.get("a")
        history = store.history("a")
        assert before is not None and len(history) == 2

        new = make_schedule("a", trigger=Interval(30, start=T0))
        assert store.add(new, fire_entry(30), Conflict.REPLACE) is AddResult.REPLACED
        after = store.get("a")
        assert after is not None
        assert after.runs_started == before.runs_started == 2
        assert after.running == (run_id("a", manual),)
        assert store.history("a") == history
        assert [c.entry for c in claim(store, FAR)] == [retry, fire_entry(30), later]

    def test_replace_same_timing_while_the_fire_entry_is_claimed(self, store: Store) -> None:
        first = self.add_fire(store, "a", 0)
        c = claim_one(store, at(0))
        assert store.add(make_schedule("a", args=(1,)), fire_entry(500), Conflict.REPLACE) is AddResult.REPLACED
        stored = store.get("a")
        assert stored is not None and stored.next_fire == first  # held by the claim
        assert store.commit([commit_for(c, next_fire=fire_entry(60))]) == [True]
        stored = store.get("a")
        assert stored is not None and stored.next_fire == fire_entry(60)
        assert [cl.entry for cl in claim(store, FAR)] == [fire_entry(60)]

    @pytest.mark.parametrize("finish", ["commit", "release", "expire"])
    def test_replace_other_timing_while_claimed_leaves_one_fire_entry(self, store: Store, finish: str) -> None:
        self.add_fire(store, "a", 0)
        c = claim_one(store, at(0))
        new_first = fire_entry(30)
        new = make_schedule("a", trigger=Interval(30, start=T0))
        assert store.add(new, new_first, Conflict.REPLACE) is AddResult.REPLACED
        written = False
        if finish == "commit":
            [written] = store.commit([commit_for(c, next_fire=fire_entry(60))])
        elif finish == "release":
            store.release([c])
        stored = store.get("a")
        assert stored is not None and stored.next_fire == new_first
        # Whether or not the superseded claim could commit, it was all or nothing.
        assert store.history("a") == ([dispatched_record("a", c.entry)] if written else [])
        assert stored.running == ((run_id("a", c.entry),) if written else ())
        assert [cl.entry for cl in claim(store, FAR)] == [new_first]

    # -- add_many --------------------------------------------------------------------

    #: Schedules of :meth:`test_add_many_of_a_large_batch` (stores that send batches in chunks
    #: should build stores whose chunks are smaller than this, so that it crosses them).
    add_many_size: ClassVar[int] = 60

    def mixed_batch(self, stores: list[Store], tag: str = "") -> list[tuple[Schedule, Pending | None]]:
        """Store, in each of ``stores``, schedules a batch then meets in every state ``add`` knows
        (equal, same timing, other timing, paused either way, finished, claimed); return the batch."""
        other = Interval(30, start=T0)
        for target in stores:
            for sid in ("eq", "args", "timing", "to-paused", "finished", "claimed", "claimed-timing"):
                assert target.add(make_schedule(tag + sid), fire_entry(0), Conflict.ERROR) is AddResult.ADDED
            assert target.add(make_schedule(tag + "was-paused", paused=True), None, Conflict.ERROR) is AddResult.ADDED
            assert target.add(make_schedule(tag + "no-first"), None, Conflict.ERROR) is AddResult.ADDED
            for c in claim(target, at(0)):  # every fire entry at 0 is claimed; two stay claimed
                if c.schedule_id == tag + "finished":
                    assert target.commit([commit_for(c, next_fire=None)]) == [True]
                elif not c.schedule_id.startswith(tag + "claimed"):
                    assert target.commit([commit_for(c, next_fire=fire_entry(60))]) == [True]
        return [
            (make_schedule(tag + "new"), fire_entry(120)),
            (make_schedule(tag + "eq"), fire_entry(120)),
            (make_schedule(tag + "args", args=(1,)), fire_entry(120)),
            (make_schedule(tag + "timing", trigger=other), fire_entry(150)),
            (make_schedule(tag + "to-paused", paused=True), fire_entry(120)),
            (make_schedule(tag + "was-paused"), fire_entry(120)),
            (make_schedule(tag + "finished", args=(2,)), fire_entry(120)),
            (make_schedule(tag + "claimed", queue="q2"), fire_entry(120)),
            (make_schedule(tag + "claimed-timing", trigger=other), fire_entry(150)),
            (make_schedule(tag + "no-first", args=(3,)), None),
            (make_schedule(tag + "new-paused", paused=True), fire_entry(120)),
            (make_schedule(tag + "new-no-first"), None),
        ]

    @staticmethod
    def snapshot(store: Store) -> tuple[object, ...]:
        """Everything a client can read of ``store`` (claims everything due, so call it last)."""
        stored = store.list_schedules(limit=1000)
        histories = [store.history(s.schedule.id, limit=1000) for s in stored]
        gets = [store.get(s.schedule.id) for s in stored]
        due = store.next_due()
        claimed = sorted(
            ((c.entry.due, c.schedule_id, c.entry, c.schedule, c.runs_started, c.running) for c in claim(store, FAR)),
            key=lambda t: (t[0], t[1]),
        )
        return stored, gets, histories, due, claimed

    @pytest.mark.parametrize("conflict", [Conflict.REPLACE, Conflict.KEEP])
    def test_add_many_does_what_a_loop_of_add_does(self, store: Store, conflict: Conflict) -> None:
        from schedcore.memory import MemoryStore  # the reference, fed one add at a time

        reference = MemoryStore(history_limit=self.history_limit)
        batch = self.mixed_batch([store, reference])
        expected = [reference.add(schedule, first, conflict) for schedule, first in batch]
        assert store.add_many(batch, conflict) == expected
        if conflict is Conflict.REPLACE:
            assert set(expected) == {AddResult.ADDED, AddResult.UNCHANGED, AddResult.REPLACED}
        assert self.snapshot(store) == self.snapshot(reference)

    def test_add_many_of_new_schedules_with_conflict_error(self, store: Store) -> None:
        batch = [(make_schedule(f"s{i}"), fire_entry(i) if i % 3 else None) for i in range(7)]
        assert store.add_many(batch, Conflict.ERROR) == [AddResult.ADDED] * 7
        for schedule, first in batch:
            assert store.get(schedule.id) == StoredSchedule(
                schedule=schedule, next_fire=first, runs_started=0, running=(), parked=None
            )
        assert [c.schedule_id for c in claim(store, FAR)] == ["s1", "s2", "s4", "s5"]

    def test_add_many_of_a_large_batch(self, store: Store) -> None:
        from schedcore.memory import MemoryStore

        reference = MemoryStore(history_limit=self.history_limit)
        n = self.add_many_size
        batch: list[tuple[Schedule, Pending | None]] = []
        for target in (store, reference):  # every third one exists already
            for i in range(0, n, 3):
                target.add(make_schedule(f"s{i:04d}"), fire_entry(i), Conflict.ERROR)
        for i in random.Random(3).sample(range(n), n):
            changes: dict[str, Any] = {"args": (i,)} if i % 2 else {}
            batch.append((make_schedule(f"s{i:04d}", **changes), fire_entry(1000 + i)))
        batch += self.mixed_batch([store, reference], tag="m-")
        expected = [reference.add(schedule, first, Conflict.REPLACE) for schedule, first in batch]
        assert store.add_many(batch, Conflict.REPLACE) == expected
        assert store.add_many(batch, Conflict.REPLACE) == [AddResult.UNCHANGED] * len(batch)
        assert self.snapshot(store) == self.snapshot(reference)

    def test_add_many_with_a_repeated_id_writes_nothing(self, store: Store) -> None:
        first = self.add_fire(store, "a", 0)
        before = store.get("a")
        batch = [
            (make_schedule("b"), fire_entry(1)),
            (make_schedule("a", args=(1,)), fire_entry(2)),
            (make_schedule("b", args=(2,)), fire_entry(3)),
        ]
        for conflict in Conflict:
            with pytest.raises(ValidationError) as info:
                store.add_many(batch, conflict)
            assert info.value.field == "id" and info.value.value == "b"
        assert store.get("a") == before and store.get("b") is None
        assert [c.entry for c in claim(store, FAR)] == [first]

    def test_add_many_with_conflict_error_and_one_taken_id_writes_nothing(self, store: Store) -> None:
        first = self.add_fire(store, "b", 0)
        before = store.get("b")
        batch = [(make_schedule(sid, args=(1,)), fire_entry(5)) for sid in ("a", "b", "c")]
        with pytest.raises(ScheduleExists) as info:
            store.add_many(batch, Conflict.ERROR)
        assert info.value.schedule_id == "b"
        assert [s.schedule.id for s in store.list_schedules()] == ["b"]
        assert store.get("b") == before
        assert [c.entry for c in claim(store, FAR)] == [first]

    def test_add_many_of_nothing(self, store: Store) -> None:
        for conflict in Conflict:
            assert store.add_many([], conflict) == []
        assert store.list_schedules() == [] and store.next_due() is None

    @pytest.mark.parametrize(
        "bad",
        [
            [(make_schedule("a"), fire_entry(0)), ("not a schedule", None)],
            [(make_schedule("a"), fire_entry(0)), (make_schedule("b"), entry("manual", 0))],
            [(make_schedule("a"), fire_entry(0)), (make_schedule("b"),)],
            [(make_schedule("a"), fire_entry(0)), make_schedule("b")],
        ],
    )
    def test_add_many_refuses_bad_items_and_writes_nothing(self, store: Store, bad: Any) -> None:
        with pytest.raises(ValidationError):
            store.add_many(bad, Conflict.REPLACE)
        with pytest.raises(ValidationError):
            store.add_many([(make_schedule("a"), fire_entry(0))], "sometimes")  # type: ignore[arg-type]
        assert store.list_schedules() == [] and store.next_due() is None

    # -- remove ----------------------------------------------------------------------

    def test_remove_unknown_returns_false(self, store: Store) -> None:
        self.add_fire(store, "a", 0)
        assert store.remove("b") is False
        assert store.get("a") is not None

    def test_remove_leaves_nothing(self, store: Store) -> None:
        self.add_fire(store, "a", 0)
        self.add_fire(store, "b", 1000)
        self.dispatch_fire(store, "a", at(0), next_fire=fire_entry(60))  # a run is running
        first_run = fire_entry(0)
        assert store.enqueue("a", [entry("manual", 5), entry("backfill", 6), entry("manual", 7)]) == 3
        mc = claim_one(store, at(5), limit=1, lease=timedelta(hours=1))
        fc = claim_one(store, at(60), limit=1, lease=timedelta(hours=1))  # the backfill at 6
        park = entry("buffered", 100)
        assert store.commit([commit_for(fc, park=park)]) == [True]
        stored = store.get("a")
        assert stored is not None and stored.parked == park
        held = claim(store, at(60))  # the manual at 7 and the fire entry at 60: held in flight
        assert len(held) == 2
        assert store.history("a") != []

        assert store.remove("a") is True
        assert store.get("a") is None
        assert store.history("a") == []
        assert [s.schedule.id for s in store.list_schedules()] == ["b"]
        assert store.commit([commit_for(mc), *(commit_for(h, next_fire=fire_entry(120)) for h in held)]) == [
            False,
            False,
            False,
        ]
        store.release(held)
        assert store.record_outcome(outcome_for("a", first_run), entry("retry", 0, due=1, attempt=2)) is False
        assert [c.schedule_id for c in claim(store, FAR)] == ["b"]
        assert store.get("a") is None
        assert store.next_due() is not None  # b's lease only
        assert store.remove("a") is False

    def test_readd_after_remove_does_not_revive_old_claims(self, store: Store) -> None:
        self.add_fire(store, "a", 0)
        old = claim_one(store, at(0))
        assert store.remove("a") is True
        first = self.add_fire(store, "a", 0)
        assert store.commit([commit_for(old, next_fire=fire_entry(60))]) == [False]
        store.release([old])
        stored = store.get("a")
        assert stored == StoredSchedule(
            schedule=make_schedule("a"), next_fire=first, runs_started=0, running=(), parked=None
        )
        assert store.history("a") == []
        assert [c.entry for c in claim(store, at(0))] == [first]

    # -- list ------------------------------------------------------------------------

    def test_list_schedules_in_id_order_with_pagination(self, store: Store) -> None:
        ids = [f"s{i:02d}" for i in range(11)] + ["A", "a.b", "z_9"]
        for sid in random.Random(7).sample(ids, len(ids)):
            self.add_fire(store, sid, 0)
        assert [s.schedule.id for s in store.list_schedules()] == sorted(ids)
        seen: list[str] = []
        after: str | None = None
        while True:
            page = store.list_schedules(after=after, limit=4)
            assert len(page) <= 4
            if not page:
                break
            seen += [s.schedule.id for s in page]
            after = page[-1].schedule.id
        assert seen == sorted(ids)
        assert [s.schedule.id for s in store.list_schedules(after="s05", limit=2)] == ["s06", "s07"]
        assert store.list_schedules(after="zzz") == []
        listed = store.list_schedules(limit=1)[0]
        assert listed == store.get(listed.schedule.id)

    def test_list_schedules_refuses_a_bad_limit(self, store: Store) -> None:
        with pytest.raises(ValidationError):
            store.list_schedules(limit=0)

    # -- pause and resume --------------------------------------------------------------

    def test_pause_takes_the_fire_entry_out_and_keeps_retries(self, store: Store) -> None:
        self.add_fire(store, "a", 0)
        self.dispatch_fire(store, "a", at(0), next_fire=fire_entry(60))
        retry = entry("retry", 0, due=10, attempt=2)
        assert store.record_outcome(outcome_for("a", fire_entry(0), "failed"), retry) is True
        stored = store.set_paused("a", True, None)
        assert stored.schedule.paused is True and stored.schedule == make_schedule("a", paused=True)
        assert stored.next_fire is None and stored.runs_started == 1
        assert store.get("a") == stored
        assert [c.entry for c in claim(store, FAR)] == [retry]

    def test_pausing_a_paused_schedule_changes_nothing(self, store: Store) -> None:
        self.add_fire(store, "a", 0)
        paused = store.set_paused("a", True, None)
        assert store.set_paused("a", True, fire_entry(5)) == paused
        assert store.get("a") == paused
        assert claim(store, FAR) == []

    def test_resume_makes_next_fire_the_fire_entry(self, store: Store) -> None:
        self.add_fire(store, "a", 0)
        store.set_paused("a", True, None)
        stored = store.set_paused("a", False, fire_entry(120))
        assert stored.schedule == make_schedule("a") and stored.next_fire == fire_entry(120)
        assert claim(store, at(119)) == []
        assert [c.entry for c in claim(store, at(120))] == [fire_entry(120)]

    def test_resuming_a_running_schedule_changes_nothing(self, store: Store) -> None:
        first = self.add_fire(store, "a", 0)
        before = store.get("a")
        assert store.set_paused("a", False, fire_entry(999)) == before
        assert [c.entry for c in claim(store, FAR)] == [first]

    def test_set_paused_unknown_raises(self, store: Store) -> None:
        with pytest.raises(ScheduleNotFound):
            store.set_paused("nope", True, None)
        with pytest.raises(ScheduleNotFound):
            store.set_paused("nope", False, fire_entry(0))

    def test_pause_while_the_fire_entry_is_claimed(self, store: Store) -> None:
        self.add_fire(store, "a", 0)
        c = claim_one(store, at(0))
        store.set_paused("a", True, None)
        [written] = store.commit([commit_for(c, next_fire=fire_entry(60))])
        stored = store.get("a")
        assert stored is not None and stored.schedule.paused and stored.next_fire is None
        assert stored.running == ((run_id("a", c.entry),) if written else ())
        assert claim(store, FAR) == []

    # -- enqueue ---------------------------------------------------------------------

    def test_enqueue_adds_entries_and_ignores_present_keys(self, store: Store) -> None:
        self.add_fire(store, "a", 100)
        m1, m2, b3 = entry("manual", 10), entry("manual", 20), entry("backfill", 30)
        assert store.enqueue("a", [m1, m2, m1]) == 2
        assert store.enqueue("a", [m1, b3]) == 1
        assert store.enqueue("a", []) == 0
        c = claim_one(store, at(15))
        assert c.entry == m1
        assert store.enqueue("a", [m1]) == 0  # claimed keys count as present
        assert [cl.entry for cl in claim(store, at(44))] == [m2, b3]  # m1's lease holds until 45

    def test_enqueue_same_occurrence_as_manual_and_backfill_are_distinct(self, store: Store) -> None:
        self.add_fire(store, "a", None)
        assert store.enqueue("a", [entry("manual", 10), entry("backfill", 10)]) == 2
        assert store.enqueue("a", [entry("manual", 10, due=50)]) == 0  # same key, other due
        assert len(claim(store, FAR)) == 2

    def test_enqueue_unknown_raises(self, store: Store) -> None:
        with pytest.raises(ScheduleNotFound):
            store.enqueue("nope", [entry("manual", 0)])

    # -- claim_due ---------------------------------------------------------------------

    def test_claim_takes_earliest_first_up_to_limit(self, store: Store) -> None:
        for sid, seconds in [("a", 40), ("b", 10), ("c", 30), ("d", 0), ("e", 20)]:
            self.add_fire(store, sid, seconds)
        assert dues(claim(store, at(100), limit=2)) == [at(0), at(10)]
        assert dues(claim(store, at(100), limit=2)) == [at(20), at(30)]
        assert dues(claim(store, at(100), limit=10)) == [at(40)]
        assert claim(store, at(100)) == []

    def test_claim_orders_entries_of_one_schedule_by_due(self, store: Store) -> None:
        self.add_fire(store, "a", 25)
        assert store.enqueue("a", [entry("manual", 5, due=30), entry("backfill", 1, due=10)]) == 2
        assert dues(claim(store, FAR)) == [at(10), at(25), at(30)]

    def test_claim_excludes_entries_not_yet_due(self, store: Store) -> None:
        self.add_fire(store, "a", 10)
        self.add_fire(store, "b", 11)
        assert claim(store, at(9.999)) == []
        assert [c.schedule_id for c in claim(store, at(10))] == ["a"]  # due exactly now is due
        assert [c.schedule_id for c in claim(store, at(11))] == ["b"]

    def test_claim_carries_schedule_state_and_lease(self, store: Store) -> None:
        self.add_fire(store, "a", 0)
        self.dispatch_fire(store, "a", at(0), next_fire=fire_entry(60))
        park = entry("buffered", 30)
        assert store.enqueue("a", [entry("manual", 30)]) == 1
        mc = claim_one(store, at(30))
        assert store.commit([commit_for(mc, dispatch=False, park=park)]) == [True]
        c = claim_one(store, at(61), lease=timedelta(seconds=45), owner="node-7")
        assert c.schedule == make_schedule("a") and c.schedule_id == "a"
        assert c.entry == fire_entry(60)
        assert c.owner == "node-7"
        assert c.lease_expires == at(61 + 45)
        assert c.runs_started == 1 and c.running == 1 and c.parked is True

    def test_fencing_tokens_strictly_increase(self, store: Store) -> None:
        for i in range(6):
            self.add_fire(store, f"s{i}", i)
        last = 0
        for now in (at(1), at(3), at(5)):
            tokens = [c.token for c in claim(store, now)]
            assert len(tokens) == 2 and len(set(tokens)) == 2
            assert min(tokens) > last
            last = max(tokens)
        c = claim_one(store, at(5 + 30), limit=1)  # an expired lease: re-claimed with a new token
        assert c.token > last

    def test_entries_under_live_lease_are_not_claimable(self, store: Store) -> None:
        self.add_fire(store, "a", 0)
        claim_one(store, at(0), lease=timedelta(seconds=30), owner="one")
        assert claim(store, at(29.999), owner="two") == []
        assert claim(store, at(29.999), owner="one") == []

    def test_expired_lease_is_claimable_again_and_the_stale_commit_is_refused(self, store: Store) -> None:
        first = self.add_fire(store, "a", 0)
        stale = claim_one(store, at(0), lease=timedelta(seconds=30), owner="dead")
        fresh = claim_one(store, at(30), owner="alive")  # lease expiry at or before now
        assert fresh.entry == first and fresh.owner == "alive" and fresh.token > stale.token
        assert store.commit([commit_for(stale, next_fire=fire_entry(60), park=entry("buffered", 1))]) == [False]
        stored = store.get("a")
        assert stored == StoredSchedule(
            schedule=make_schedule("a"), next_fire=first, runs_started=0, running=(), parked=None
        )
        assert store.history("a") == []
        assert claim(store, at(30)) == []
        assert store.commit([commit_for(fresh, next_fire=fire_entry(60))]) == [True]
        assert [c.entry for c in claim(store, at(60))] == [fire_entry(60)]

    def test_stale_release_does_nothing(self, store: Store) -> None:
        self.add_fire(store, "a", 0)
        stale = claim_one(store, at(0), lease=timedelta(seconds=10))
        fresh = claim_one(store, at(10))
        store.release([stale])
        assert claim(store, at(11)) == []
        assert store.commit([commit_for(fresh, next_fire=None)]) == [True]
        assert claim(store, FAR) == []

    def test_claim_refuses_bad_arguments(self, store: Store) -> None:
        self.add_fire(store, "a", 0)
        with pytest.raises(ValidationError):
            claim(store, datetime(2025, 1, 1))  # naive
        with pytest.raises(ValidationError):
            claim(store, at(0), limit=0)
        with pytest.raises(ValidationError):
            claim(store, at(0), lease=timedelta(0))
        with pytest.raises(ValidationError):
            claim(store, at(0), lease=timedelta(seconds=-1))
        assert len(claim(store, at(0))) == 1  # nothing was taken by the refused calls

    def test_claim_accepts_other_timezones(self, store: Store) -> None:
        self.add_fire(store, "a", 0)
        plus2 = timezone(timedelta(hours=2))
        assert claim(store, at(-1).astimezone(plus2)) == []
        c = claim_one(store, at(0).astimezone(plus2))
        assert c.lease_expires == at(0) + LEASE

    # -- release -----------------------------------------------------------------------

    def test_release_returns_entries_to_the_index(self, store: Store) -> None:
        first = self.add_fire(store, "a", 0)
        assert store.enqueue("a", [entry("manual", 1)]) == 1
        held = claim(store, at(5))
        assert len(held) == 2
        stored = store.get("a")
        assert stored is not None and stored.next_fire == first  # a claimed fire entry is still the fire entry
        store.release(held)
        stored = store.get("a")
        assert stored is not None and stored.next_fire == first and stored.runs_started == 0
        again = claim(store, at(5))
        assert [c.entry for c in again] == [c.entry for c in held]
        assert min(c.token for c in again) > max(c.token for c in held)
        assert store.commit([commit_for(c) for c in held]) == [False, False]
        assert store.history("a") == []

    def test_release_nothing_is_fine(self, store: Store) -> None:
        store.release([])
        assert store.commit([]) == []

    # -- commit ------------------------------------------------------------------------

    def test_commit_of_a_fire_claim_writes_everything(self, store: Store) -> None:
        self.add_fire(store, "a", 0)
        c = claim_one(store, at(0))
        record = dispatched_record("a", c.entry, dispatched_at=at(0.25))
        commit = Commit(claim=c, dispatched=(record,), next_fire=fire_entry(60), runs_started=1)
        assert store.commit([commit]) == [True]
        assert store.get("a") == StoredSchedule(
            schedule=make_schedule("a"),
            next_fire=fire_entry(60),
            runs_started=1,
            running=(record.run_id,),
            parked=None,
        )
        assert store.history("a") == [record]
        assert store.next_due() == at(60)
        assert claim(store, at(59)) == []
        assert [cl.entry for cl in claim(store, at(60))] == [fire_entry(60)]

    def test_commit_without_next_fire_finishes_the_schedule(self, store: Store) -> None:
        self.add_fire(store, "a", 0)
        self.dispatch_fire(store, "a", at(0), next_fire=None)
        stored = store.get("a")
        assert stored is not None and stored.next_fire is None and stored.runs_started == 1
        assert claim(store, FAR) == []
        assert store.next_due() is None

    def test_commit_of_a_non_fire_claim_consumes_only_that_entry(self, store: Store) -> None:
        self.add_fire(store, "a", 100)
        manual = entry("manual", 0)
        assert store.enqueue("a", [manual]) == 1
        c = claim_one(store, at(0))
        assert c.entry == manual
        assert store.commit([commit_for(c, next_fire=None)]) == [True]
        stored = store.get("a")
        assert stored is not None
        assert stored.next_fire == fire_entry(100)  # untouched: next_fire is for fire claims only
        assert stored.running == (run_id("a", manual),) and stored.runs_started == 1
        assert claim(store, at(99)) == []
        assert [cl.entry for cl in claim(store, FAR)] == [fire_entry(100)]

    def test_commit_records_skipped_occurrences(self, store: Store) -> None:
        self.add_fire(store, "a", 0)
        c = claim_one(store, at(0))
        assert store.commit([commit_for(c, dispatch=False, skip=True, next_fire=fire_entry(60))]) == [True]
        stored = store.get("a")
        assert stored is not None and stored.running == () and stored.runs_started == 0
        [record] = store.history("a")
        assert record.status is RunStatus.SKIPPED and record.run_id == run_id("a", c.entry)

    def test_commit_with_dispatched_and_skipped_records(self, store: Store) -> None:
        self.add_fire(store, "a", 0)
        c = claim_one(store, at(200))
        missed = [fire_entry(60), fire_entry(120)]
        skipped = tuple(attrs.evolve(dispatched_record("a", m), status=RunStatus.SKIPPED) for m in missed)
        record = dispatched_record("a", fire_entry(180), dispatched_at=at(200))
        commit = Commit(claim=c, dispatched=(record,), skipped=skipped, next_fire=fire_entry(240), runs_started=1)
        assert store.commit([commit]) == [True]
        history = store.history("a")
        assert sorted(history, key=lambda r: r.nominal) == [*skipped, record]
        stored = store.get("a")
        assert stored is not None and stored.running == (record.run_id,)

    def test_commit_twice_is_refused(self, store: Store) -> None:
        self.add_fire(store, "a", 0)
        c = claim_one(store, at(0))
        assert store.commit([commit_for(c, next_fire=fire_entry(60))]) == [True]
        assert store.commit([commit_for(c, next_fire=fire_entry(120))]) == [False]
        stored = store.get("a")
        assert stored is not None and stored.next_fire == fire_entry(60) and stored.runs_started == 1
        assert len(store.history("a")) == 1

    def test_commit_answers_per_item(self, store: Store) -> None:
        self.add_fire(store, "a", 0)
        self.add_fire(store, "b", 0)
        ca, cb = sorted(claim(store, at(0)), key=lambda c: c.schedule_id)
        assert store.remove("b") is True
        assert store.commit([commit_for(ca, next_fire=fire_entry(60)), commit_for(cb)]) == [True, False]
        assert len(store.history("a")) == 1

    def test_park_replaces_the_parked_entry_and_waits_for_running_runs(self, store: Store) -> None:
        self.add_fire(store, "a", 0)
        self.dispatch_fire(store, "a", at(0), next_fire=fire_entry(60))
        c = claim_one(store, at(60))
        assert store.commit([commit_for(c, dispatch=False, park=entry("buffered", 60), next_fire=fire_entry(120))]) == [
            True
        ]
        c = claim_one(store, at(120))
        park = entry("buffered", 120)
        assert store.commit([commit_for(c, dispatch=False, park=park, next_fire=fire_entry(180))]) == [True]
        stored = store.get("a")
        assert stored is not None and stored.parked == park
        assert claim(store, at(170)) == []  # parked is outside the index
        assert store.record_outcome(outcome_for("a", fire_entry(0)), None) is True
        stored = store.get("a")
        assert stored is not None and stored.parked is None
        assert [cl.entry for cl in claim(store, at(170))] == [park]

    def test_park_with_nothing_running_goes_straight_to_the_index(self, store: Store) -> None:
        self.add_fire(store, "a", 0)
        self.dispatch_fire(store, "a", at(0), next_fire=fire_entry(60))
        c = claim_one(store, at(60))
        assert c.running == 1
        # The run finishes between claim and commit: the parked entry must not be stranded.
        assert store.record_outcome(outcome_for("a", fire_entry(0)), None) is True
        park = entry("buffered", 60)
        assert store.commit([commit_for(c, dispatch=False, park=park, next_fire=fire_entry(120))]) == [True]
        stored = store.get("a")
        assert stored is not None and stored.parked is None
        assert [cl.entry for cl in claim(store, at(70))] == [park]

    # -- record_outcome ------------------------------------------------------------------

    @pytest.mark.parametrize("status", list(OutcomeStatus))
    def test_record_outcome_updates_the_run(self, store: Store, status: OutcomeStatus) -> None:
        self.add_fire(store, "a", 0)
        c = self.dispatch_fire(store, "a", at(0), next_fire=fire_entry(60))
        error = None if status is OutcomeStatus.SUCCEEDED else "RuntimeError: boom"
        trace = None if error is None else f'{TRACE_HEADER}\n  File "app/jobs.py", line 3, in job\n{error}'
        started = at(1) + timedelta(milliseconds=7)
        outcome = outcome_for("a", c.entry, status, finished_at=at(3), error=error, traceback=trace, started_at=started)
        assert store.record_outcome(outcome, None) is True
        stored = store.get("a")
        assert stored is not None and stored.running == () and stored.runs_started == 1
        [record] = store.history("a")
        expected = attrs.evolve(
            dispatched_record("a", c.entry),
            status=RunStatus(status.value),
            finished_at=at(3),
            started_at=started,
            error=error,
            traceback=trace,
        )
        assert record == expected
        assert record.start_lateness == 1.007 and record.lateness == expected.lateness

    def test_history_keeps_when_each_run_started(self, store: Store) -> None:
        # Start lateness is read from history: every store keeps the executor's start time to
        # the millisecond, and a run whose executor cannot tell (or not yet) has none.
        self.add_fire(store, "a", 0)
        first = self.dispatch_fire(store, "a", at(0), next_fire=fire_entry(60))
        second = self.dispatch_fire(store, "a", at(60), next_fire=fire_entry(120))
        third = self.dispatch_fire(store, "a", at(120), next_fire=fire_entry(180))
        started = at(0) + timedelta(milliseconds=35)
        assert store.record_outcome(outcome_for("a", first.entry, started_at=started, finished_at=at(2)), None)
        failed = outcome_for("a", second.entry, "failed", finished_at=at(62), error="ValueError: x")
        assert store.record_outcome(failed, entry("retry", 60, due=90, attempt=2))  # no start time reported
        newest, middle, oldest = store.history("a")
        assert (oldest.started_at, oldest.start_lateness) == (started, 0.035)
        assert oldest.status is RunStatus.SUCCEEDED and oldest.finished_at == at(2)
        assert (middle.started_at, middle.start_lateness, middle.status) == (None, None, RunStatus.FAILED)
        assert newest.run_id == run_id("a", third.entry) and newest.started_at is None  # still dispatched

    @pytest.mark.parametrize(
        "trace",
        [
            # What JSON, Lua and SQL must carry untouched: quotes, backslashes, braces, control
            # characters, non-ASCII, and text that looks like a record's own fields.
            f'{TRACE_HEADER}\n  File "C:\\app\\jobs.py", line 1, in <module>\n\tx = {{"i":"a@0.1","s":"dispatched"}}'
            "\n\x00\x1b[31m\r\nValueError: caf\u00e9 \u2603 \U0001f600 'quoted' \"double\" %s %d ${x} --",
            # At the bounds: kept whole.
            "\n".join([TRACE_HEADER, *(f"  frame {i:03d}" for i in range(MAX_LINES - 2)), "KeyError: 'x'"]),
            "E" * MAX_CHARS,
        ],
        ids=["hostile-characters", "max-lines", "max-chars"],
    )
    def test_history_keeps_a_failed_runs_traceback(self, store: Store, trace: str) -> None:
        self.add_fire(store, "a", 0)
        c = self.dispatch_fire(store, "a", at(0), next_fire=fire_entry(60))
        second = self.dispatch_fire(store, "a", at(60), next_fire=fire_entry(120))
        outcome = outcome_for("a", c.entry, "failed", finished_at=at(3), error="ValueError: x", traceback=trace)
        assert store.record_outcome(outcome, entry("retry", 0, due=30, attempt=2)) is True
        newer, older = store.history("a")
        assert older.run_id == run_id("a", c.entry) and older.traceback == trace and older.error == "ValueError: x"
        assert newer.run_id == run_id("a", second.entry) and newer.traceback is None  # only the failed run's record
        assert store.record_outcome(outcome_for("a", second.entry, "succeeded", finished_at=at(61)), None) is True
        assert [r.traceback for r in store.history("a")] == [None, trace]

    def test_history_keeps_an_oversized_traceback_trimmed(self, store: Store) -> None:
        self.add_fire(store, "a", 0)
        c = self.dispatch_fire(store, "a", at(0), next_fire=fire_entry(60))
        frames = [f'  File "app/deep.py", line {i}, in level_{i}\n    level_{i + 1}()' for i in range(500)]
        trace = "\n".join([TRACE_HEADER, *frames, "RecursionError: too deep"])
        outcome = outcome_for(
            "a", c.entry, "failed", finished_at=at(3), error="RecursionError: too deep", traceback=trace
        )
        assert store.record_outcome(outcome, None) is True
        [record] = store.history("a")
        assert record.traceback == trim_traceback(trace)
        lines = record.traceback.splitlines()
        assert len(lines) <= MAX_LINES and len(record.traceback) <= MAX_CHARS
        assert lines[0] == TRACE_HEADER and lines[-1] == "RecursionError: too deep"
        assert "level_499" in record.traceback and "level_0()" not in record.traceback  # the innermost frames kept

    def test_record_outcome_at_most_once(self, store: Store) -> None:
        self.add_fire(store, "a", 0)
        c = self.dispatch_fire(store, "a", at(0), next_fire=fire_entry(60))
        assert store.record_outcome(outcome_for("a", c.entry, "succeeded", finished_at=at(2)), None) is True
        history = store.history("a")
        retry = entry("retry", 0, due=5, attempt=2)
        again = outcome_for("a", c.entry, "failed", finished_at=at(4), error="x")
        assert store.record_outcome(again, retry) is False
        assert store.history("a") == history
        assert claim(store, at(59)) == []  # the retry was not added

    def test_record_outcome_of_unknown_runs(self, store: Store) -> None:
        self.add_fire(store, "a", 0)
        assert store.record_outcome(outcome_for("a", fire_entry(0)), None) is False  # never dispatched
        assert store.record_outcome(outcome_for("nope", fire_entry(0)), None) is False
        assert store.history("a") == []

    def test_record_outcome_with_retry(self, store: Store) -> None:
        self.add_fire(store, "a", 0)
        c = self.dispatch_fire(store, "a", at(0), next_fire=fire_entry(60))
        retry = entry("retry", 0, due=30, attempt=2)
        outcome = outcome_for("a", c.entry, "failed", finished_at=at(1), error="RuntimeError: boom")
        assert store.record_outcome(outcome, retry) is True
        [record] = store.history("a")
        assert record.status is RunStatus.FAILED and record.retry_at == at(30)
        assert record.error == "RuntimeError: boom"
        assert store.next_due() == at(30)
        assert claim(store, at(29)) == []
        rc = claim_one(store, at(30))
        assert rc.entry == retry and rc.entry.key("a") != "fire"
        assert store.commit([commit_for(rc)]) == [True]
        stored = store.get("a")
        assert stored is not None
        assert stored.runs_started == 1  # retries do not start occurrences
        assert stored.running == (run_id("a", retry),)
        assert stored.next_fire == fire_entry(60)

    def parked_behind_two_runs(self, store: Store) -> tuple[Pending, Pending, Pending]:
        """Schedule ``a`` with two runs running (its first fire entry, a manual one) and an
        occurrence parked until both end; returns the three entries."""
        self.add_fire(store, "a", 0)
        first = self.dispatch_fire(store, "a", at(0), next_fire=fire_entry(60))
        manual = entry("manual", 1)
        assert store.enqueue("a", [manual]) == 1
        assert store.commit([commit_for(claim_one(store, at(1)))]) == [True]
        c = claim_one(store, at(60))
        park = entry("buffered", 60)
        assert store.commit([commit_for(c, dispatch=False, park=park, next_fire=fire_entry(120))]) == [True]
        return first.entry, manual, park

    def test_record_outcome_unparks_when_nothing_is_left_running(self, store: Store) -> None:
        first, manual, park = self.parked_behind_two_runs(store)
        assert store.record_outcome(outcome_for("a", first), None) is True
        stored = store.get("a")
        assert stored is not None and stored.parked == park and stored.running == (run_id("a", manual),)
        assert claim(store, at(100)) == []
        assert store.record_outcome(outcome_for("a", manual), None) is True
        stored = store.get("a")
        assert stored is not None and stored.parked is None and stored.running == ()
        assert [cl.entry for cl in claim(store, at(100))] == [park]

    def test_record_outcome_after_remove_is_refused(self, store: Store) -> None:
        self.add_fire(store, "a", 0)
        c = self.dispatch_fire(store, "a", at(0), next_fire=fire_entry(60))
        assert store.remove("a") is True
        assert store.record_outcome(outcome_for("a", c.entry), entry("retry", 0, due=1, attempt=2)) is False
        assert store.get("a") is None and claim(store, FAR) == []

    def test_record_outcomes_records_a_batch_in_order(self, store: Store) -> None:
        self.add_fire(store, "a", 0)
        ca = self.dispatch_fire(store, "a", at(0), next_fire=fire_entry(60))
        self.add_fire(store, "b", 0)
        cb = self.dispatch_fire(store, "b", at(0), next_fire=fire_entry(60))
        retry = entry("retry", 0, due=30, attempt=2)
        items = [
            (outcome_for("a", ca.entry, "succeeded", finished_at=at(2)), None),
            (outcome_for("b", cb.entry, "failed", finished_at=at(3), error="RuntimeError: boom"), retry),
            (outcome_for("a", ca.entry, "failed", finished_at=at(4), error="again"), retry),  # a repeat
            (outcome_for("nope", fire_entry(0)), None),  # unknown
        ]
        assert store.record_outcomes(items) == [True, True, False, False]
        [ra] = store.history("a")
        [rb] = store.history("b")
        assert ra.status is RunStatus.SUCCEEDED and ra.finished_at == at(2) and ra.error is None
        assert (rb.status, rb.finished_at, rb.retry_at) == (RunStatus.FAILED, at(3), at(30))
        assert rb.error == "RuntimeError: boom"
        assert [(c.schedule_id, c.entry) for c in claim(store, at(30))] == [("b", retry)]  # only b's retry
        assert store.record_outcomes([]) == []

    def test_record_outcomes_unparks_once_the_batch_ends_every_run(self, store: Store) -> None:
        first, manual, park = self.parked_behind_two_runs(store)
        items = [(outcome_for("a", first), None), (outcome_for("a", manual), None)]
        assert store.record_outcomes(items) == [True, True]
        stored = store.get("a")
        assert stored is not None and stored.parked is None and stored.running == ()
        assert [cl.entry for cl in claim(store, at(100))] == [park]

    @pytest.mark.parametrize("bad", ["junk", ("not an outcome", None), (None, None)])
    def test_record_outcomes_refuses_bad_items_before_writing(self, store: Store, bad: object) -> None:
        self.add_fire(store, "a", 0)
        c = self.dispatch_fire(store, "a", at(0), next_fire=fire_entry(60))
        good = (outcome_for("a", c.entry), None)
        with pytest.raises(ValidationError):
            store.record_outcomes([good, bad])  # type: ignore[list-item]
        with pytest.raises(ValidationError):  # a fire entry is no retry
            store.record_outcomes([(outcome_for("a", c.entry, "failed"), fire_entry(1))])
        stored = store.get("a")
        assert stored is not None and stored.running == (run_id("a", c.entry),)  # nothing was recorded

    # -- history -----------------------------------------------------------------------

    def test_history_is_newest_first_and_bounded_by_limit(self, store: Store) -> None:
        self.add_fire(store, "a", 0)
        for i in range(5):
            self.dispatch_fire(store, "a", at(60 * i), next_fire=fire_entry(60 * (i + 1)))
        newest_first = [at(60 * i) for i in reversed(range(5))]
        assert [r.nominal for r in store.history("a")] == newest_first[: self.history_limit]
        assert [r.nominal for r in store.history("a", limit=2)] == newest_first[: min(2, self.history_limit)]
        assert store.history("a", limit=1)[0].status is RunStatus.DISPATCHED

    def test_history_is_capped_keeping_the_newest(self, store: Store) -> None:
        n = self.history_limit + 5
        self.add_fire(store, "a", None)
        entries = [entry("manual", i) for i in range(n)]
        assert store.enqueue("a", entries) == n
        for c in claim(store, FAR, limit=n):
            assert store.commit([commit_for(c)]) == [True]
        history = store.history("a", limit=n + 10)
        assert [r.nominal for r in history] == [at(i) for i in reversed(range(5, n))]

    def test_history_refuses_a_bad_limit(self, store: Store) -> None:
        self.add_fire(store, "a", 0)
        with pytest.raises(ValidationError):
            store.history("a", limit=0)

    # -- next_due --------------------------------------------------------------------

    def test_next_due_covers_the_index_and_leases_in_flight(self, store: Store) -> None:
        assert store.next_due() is None
        self.add_fire(store, "a", 20)
        self.add_fire(store, "b", 50)
        assert store.next_due() == at(20)
        c = claim_one(store, at(20), limit=1, lease=timedelta(seconds=10))
        assert store.next_due() == at(30)  # the lease expiry comes before b's entry
        assert store.commit([commit_for(c, next_fire=fire_entry(80))]) == [True]
        assert store.next_due() == at(50)
        cb = claim_one(store, at(50), lease=timedelta(seconds=60))
        assert store.next_due() == at(80)
        store.release([cb])
        assert store.next_due() == at(50)

    def test_commit_and_next_due_is_commit_then_next_due(self, store: Store) -> None:
        commit_and_peek = store.commit_and_next_due
        self.add_fire(store, "a", 20)
        self.add_fire(store, "b", 50)
        ca = claim_one(store, at(20), limit=1, lease=timedelta(seconds=60))
        assert commit_and_peek([commit_for(ca, next_fire=fire_entry(40))]) == ([True], at(40))
        assert store.next_due() == at(40)
        ca2 = claim_one(store, at(40), lease=timedelta(seconds=600))
        cb = claim_one(store, at(50), lease=timedelta(seconds=5))  # b's lease expires at 55
        assert commit_and_peek([commit_for(ca2, next_fire=None)]) == ([True], at(55))  # the lease in flight
        assert commit_and_peek([commit_for(ca2)]) == ([False], at(55))  # refused: nothing written
        assert commit_and_peek([commit_for(cb, next_fire=None)]) == ([True], None)
        assert commit_and_peek([]) == ([], None)

    def test_claim_due_nowait_is_claim_due_once_waited_for(self, store: Store) -> None:
        claim_nowait = store.claim_due_nowait
        self.add_fire(store, "a", 20)
        self.add_fire(store, "b", 30)
        self.add_fire(store, "c", 90)
        claimed = claim_nowait(at(30), limit=10, lease=timedelta(seconds=600), owner="o")
        claims = claimed()
        assert sorted(c.schedule_id for c in claims) == ["a", "b"]
        assert all(c.owner == "o" and c.lease_expires == at(630) for c in claims)
        assert claim_nowait(at(30), limit=10, lease=timedelta(seconds=60), owner="p")() == []  # held
        # committed like any claim; a second claim in flight with an uncommitted one is fine
        ca = next(c for c in claims if c.schedule_id == "a")
        later = claim_nowait(at(90), limit=10, lease=timedelta(seconds=60), owner="o")
        assert [c.schedule_id for c in later()] == ["c"]
        assert store.commit([commit_for(ca, next_fire=fire_entry(120))]) == [True]
        assert store.next_due() == at(120)  # a moved on; c is held until 150, b until 630

    def test_next_due_includes_an_expired_lease_not_yet_taken_back(self, store: Store) -> None:
        self.add_fire(store, "a", 0)
        claim_one(store, at(0), lease=timedelta(seconds=5))
        assert store.next_due() == at(5)

    # -- watch -----------------------------------------------------------------------

    def test_watch_is_told_whenever_an_entry_enters_the_index(self, store: Store) -> None:
        w = Watcher()
        stop = store.watch(w)
        try:

            def expect(what: str, action: Callable[[], object], due: datetime) -> None:
                w.clear()
                action()
                assert w.wait_for(due, self.watch_timeout), f"no notification for {what}: saw {w.seen}"

            expect("add", lambda: self.add_fire(store, "a", 10), at(10))
            expect("enqueue", lambda: store.enqueue("a", [entry("manual", 5)]), at(5))
            held = claim(store, at(10))
            fire = next(c for c in held if c.entry.kind is PendingKind.FIRE)
            manual = next(c for c in held if c.entry.kind is PendingKind.MANUAL)
            expect("release", lambda: store.release([manual]), at(5))
            expect("commit", lambda: store.commit([commit_for(fire, next_fire=fire_entry(70))]), at(70))
            store.set_paused("a", True, None)
            expect("resume", lambda: store.set_paused("a", False, fire_entry(130)), at(130))
            expect(
                "retry",
                lambda: store.record_outcome(
                    outcome_for("a", fire_entry(10), "failed"), entry("retry", 10, due=140, attempt=2)
                ),
                at(140),
            )
            assert store.commit([commit_for(claim_one(store, at(7), owner="m"))]) == [True]  # the manual at 5
            c = claim_one(store, at(130))
            park = entry("buffered", 131)
            assert store.commit([commit_for(c, dispatch=False, park=park, next_fire=fire_entry(190))]) == [True]
            expect("unpark", lambda: store.record_outcome(outcome_for("a", entry("manual", 5)), None), park.due)
            claim(store, at(140), lease=timedelta(seconds=5))  # the retry and the buffered entry
            expect("expired lease", lambda: claim(store, at(145), limit=1), at(140))
            new = make_schedule("a", trigger=Interval(7))
            expect("replace", lambda: store.add(new, fire_entry(707), Conflict.REPLACE), at(707))
            batch = [(make_schedule("b"), fire_entry(808)), (make_schedule("c"), fire_entry(809))]
            expect("add_many", lambda: store.add_many(batch, Conflict.REPLACE), at(808))
            assert w.wait_for(at(809), self.watch_timeout), f"no notification for add_many's second entry: {w.seen}"
        finally:
            stop()

    def test_watch_stops_when_told(self, store: Store) -> None:
        gone, stays = Watcher(), Watcher()
        stop = store.watch(gone)
        stop_stays = store.watch(stays)
        try:
            stop()
            stop()  # idempotent
            self.add_fire(store, "a", 10)
            assert stays.wait_for(at(10), self.watch_timeout)
            assert gone.seen == []
        finally:
            stop_stays()

    def test_close_is_idempotent(self, store: Store) -> None:
        store.close()
        store.close()

    # -- heartbeats and stats ------------------------------------------------------------

    def test_heartbeat_is_live_until_its_ttl(self, store: Store) -> None:
        assert store.schedulers(at(0)) == []
        info = {"host": "h1", "pid": 42, "version": "1.0"}
        store.heartbeat("s1", info, now=at(0), ttl=timedelta(seconds=15))
        store.heartbeat("s2", {"host": "h2"}, now=at(5), ttl=timedelta(seconds=15))
        live = store.schedulers(at(10))
        assert [b.owner for b in live] == ["s1", "s2"]
        assert live[0].info == info
        assert live[0].beat_at == at(0) and live[0].expires_at == at(15)
        assert [b.owner for b in store.schedulers(at(15))] == ["s2"]  # expired at its TTL
        assert store.schedulers(at(20)) == []

    def test_heartbeat_replaces_the_owners_previous_beat(self, store: Store) -> None:
        store.heartbeat("s1", {"n": 1}, now=at(0), ttl=timedelta(seconds=15))
        store.heartbeat("s1", {"n": 2}, now=at(10), ttl=timedelta(seconds=15))
        (beat,) = store.schedulers(at(20))
        assert beat.info == {"n": 2} and beat.beat_at == at(10) and beat.expires_at == at(25)
        # dead owners (restarted schedulers) do not come back when others beat
        store.heartbeat("s2", {}, now=at(100), ttl=timedelta(seconds=15))
        assert [b.owner for b in store.schedulers(at(100))] == ["s2"]

    def test_heartbeat_refuses_bad_arguments(self, store: Store) -> None:
        with pytest.raises(ValidationError):
            store.heartbeat("s1", {}, now=at(0), ttl=timedelta(0))
        with pytest.raises(ValidationError):
            store.heartbeat("s1", {}, now=datetime(2025, 1, 1), ttl=timedelta(seconds=1))
        with pytest.raises(ValidationError):
            store.heartbeat("", {}, now=at(0), ttl=timedelta(seconds=1))

    def test_heartbeat_does_not_touch_schedules(self, store: Store) -> None:
        self.add_fire(store, "a", 0)
        store.heartbeat("s1", {}, now=at(0), ttl=timedelta(seconds=5))
        assert [s.schedule.id for s in store.list_schedules()] == ["a"]
        assert store.next_due() == at(0)

    # -- failover: claims of owners whose heartbeat expired ------------------------------

    def test_claims_of_an_owner_whose_heartbeat_expired_are_taken_back_before_the_lease(self, store: Store) -> None:
        first = self.add_fire(store, "a", 0)
        self.add_fire(store, "b", 0)
        store.heartbeat("dead", {}, now=at(0), ttl=timedelta(seconds=6))
        stale = claim(store, at(0), lease=timedelta(seconds=60), owner="dead")
        assert len(stale) == 2
        assert claim(store, at(5.999), owner="alive") == []  # its beat is live: its claims are kept
        fresh = claim(store, at(6), owner="alive")  # beat expired at or before now; leases until 60
        assert sorted(c.schedule_id for c in fresh) == ["a", "b"]
        assert all(c.entry == first and c.token > max(s.token for s in stale) for c in fresh if c.schedule_id == "a")
        # fencing: the lapsed owner's late commit (slow, not dead) writes nothing
        assert store.commit([commit_for(c, next_fire=fire_entry(60)) for c in stale]) == [False, False]
        assert store.history("a") == [] and store.history("b") == []
        assert store.commit([commit_for(c, next_fire=fire_entry(60)) for c in fresh]) == [True, True]
        assert store.schedulers(at(6)) == []

    def test_claims_of_an_owner_that_never_beat_are_kept_until_the_lease(self, store: Store) -> None:
        self.add_fire(store, "a", 0)
        store.heartbeat("other", {}, now=at(0), ttl=timedelta(seconds=1))
        claim_one(store, at(0), lease=timedelta(seconds=60), owner="silent")
        assert claim(store, at(59.999), owner="alive") == []
        assert claim_one(store, at(60), owner="alive").schedule_id == "a"

    def test_a_lapsed_owner_beating_again_keeps_its_new_claims(self, store: Store) -> None:
        self.add_fire(store, "a", 0)
        self.add_fire(store, "b", 10)
        store.heartbeat("slow", {}, now=at(0), ttl=timedelta(seconds=6))
        old = claim_one(store, at(0), lease=timedelta(seconds=60), owner="slow")
        assert claim_one(store, at(7), owner="alive").schedule_id == "a"
        store.heartbeat("slow", {}, now=at(10), ttl=timedelta(seconds=6))
        new = claim_one(store, at(10), lease=timedelta(seconds=60), owner="slow")
        assert new.schedule_id == "b"
        assert claim(store, at(12), owner="alive") == []  # its beat is live again
        assert store.commit([commit_for(old), commit_for(new)]) == [False, True]

    def test_an_owner_never_takes_back_its_own_claims(self, store: Store) -> None:
        self.add_fire(store, "a", 0)
        store.heartbeat("me", {}, now=at(0), ttl=timedelta(seconds=6))
        mine = claim_one(store, at(0), lease=timedelta(seconds=60), owner="me")
        assert claim(store, at(10), owner="me") == []  # its own beat lapsed, yet it is claiming: alive
        assert store.commit([commit_for(mine, next_fire=fire_entry(60))]) == [True]

    def test_stats_counts_due_entries_claims_and_expired_leases(self, store: Store) -> None:
        empty = store.stats(at(0))
        assert (empty.schedules, empty.due, empty.oldest_due, empty.in_flight, empty.expired) == (0, 0, None, 0, 0)
        self.add_fire(store, "a", 0)
        self.add_fire(store, "b", 10)
        self.add_fire(store, "c", 100)
        stats = store.stats(at(20))
        assert (stats.schedules, stats.due, stats.oldest_due, stats.in_flight) == (3, 2, at(0), 0)
        claim_one(store, at(5))  # takes a (due at 0) under a 30 s lease
        stats = store.stats(at(20))
        assert (stats.due, stats.oldest_due, stats.in_flight, stats.expired) == (1, at(10), 1, 0)
        stats = store.stats(at(40))  # the lease ran out at 35: due again, not yet taken back
        assert (stats.due, stats.in_flight, stats.expired) == (1, 0, 1)

    # -- concurrency -----------------------------------------------------------------

    def test_concurrent_claims_take_every_entry_exactly_once(self, store: Store) -> None:
        schedules, per_schedule, threads = 200, 10, 8
        for i in range(schedules):
            sid = f"s{i:03d}"
            self.add_fire(store, sid, i)
            extra = [entry("manual" if j % 2 else "backfill", i + j / 100) for j in range(1, per_schedule)]
            assert store.enqueue(sid, extra) == per_schedule - 1
        total = schedules * per_schedule
        now = at(10_000)
        taken: list[list[Claim]] = [[] for _ in range(threads)]
        committed: list[list[bool]] = [[] for _ in range(threads)]
        errors: list[BaseException] = []
        barrier = threading.Barrier(threads)

        def worker(n: int) -> None:
            rng = random.Random(n)
            try:
                barrier.wait()
                while True:
                    claims = claim(store, now, limit=rng.randint(1, 25), lease=timedelta(hours=1), owner=f"t{n}")
                    if not claims:
                        return
                    taken[n] += claims
                    if rng.random() < 0.5:
                        committed[n] += store.commit([commit_for(c) for c in claims])
            except BaseException as exc:  # re-raised in the test thread
                errors.append(exc)

        pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join(timeout=120)
        assert not errors, errors
        everything = [c for part in taken for c in part]
        keys = [(c.schedule_id, c.entry.key(c.schedule_id)) for c in everything]
        assert len(keys) == total and len(set(keys)) == total
        assert len({c.token for c in everything}) == total
        assert all(all(part) for part in committed)
        assert claim(store, now) == []

    def test_concurrent_claims_of_expired_leases_take_each_entry_once(self, store: Store) -> None:
        for i in range(100):
            self.add_fire(store, f"s{i:03d}", 0)
        dead = claim(store, at(0), limit=1000, lease=timedelta(seconds=10), owner="dead")
        assert len(dead) == 100
        threads = 8
        taken: list[list[Claim]] = [[] for _ in range(threads)]
        errors: list[BaseException] = []
        barrier = threading.Barrier(threads)

        def worker(n: int) -> None:
            try:
                barrier.wait()
                while claims := claim(store, at(10 + n), limit=3, owner=f"t{n}"):
                    taken[n] += claims
            except BaseException as exc:
                errors.append(exc)

        pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join(timeout=120)
        assert not errors, errors
        everything = [c for part in taken for c in part]
        assert sorted(c.schedule_id for c in everything) == sorted(c.schedule_id for c in dead)
        assert min(c.token for c in everything) > max(c.token for c in dead)
        assert store.commit([commit_for(c, next_fire=fire_entry(60)) for c in dead]) == [False] * 100
        assert all(store.commit([commit_for(c, next_fire=None) for c in everything]))

    # -- the model-based test ---------------------------------------------------------

    def test_behaves_like_the_model(self, store: Store) -> None:
        # (imported here: the model imports this module's helpers)
        from schedcore.testing.store_model import StoreMachine

        tokens = [0]  # the highest token seen, across examples
        cap = self.history_limit

        class Bound(StoreMachine):
            def __init__(self) -> None:
                super().__init__(store, cap, tokens)

        run_state_machine_as_test(Bound, settings=self.stateful_settings)
