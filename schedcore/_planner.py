"""The scheduling policy, as pure functions: what to do with one claimed index entry.

Nothing here does I/O or reads a clock -- ``now`` is always an argument -- so every
rule of catch-up, overlap, jitter and run limits is tested without a store or threads.
The engine (:mod:`schedcore.scheduler`) claims entries, calls :func:`plan` for each,
hands the runs to the executor and commits the result.

Vocabulary: an *occurrence* is a fire time (``nominal``) produced by the trigger inside
the schedule's ``[start_at, end_at]`` window; its *due* instant is ``nominal`` plus the
deterministic jitter. An occurrence with ``due <= now`` is *on time* when
``now - due <= misfire_grace`` and *missed* otherwise.

Bounded enumeration: a fire claim walks the due occurrences one by one for at most
:data:`WALK_LIMIT` of them. When more remain (a per-second schedule after days of
downtime), the rest is not enumerated: since only a *suffix* of the due occurrences can
ever be dispatched (the on-time ones, the newest missed one or the newest
``catchup_limit`` ones), the planner jumps straight to that suffix -- with
``next_after(now - misfire_grace - jitter)`` for the on-time ones (exact: nothing before
that instant can be on time), and by galloping backwards from ``now`` for the newest
ones (exact too: it widens the searched span until it holds enough occurrences). What
is jumped over is skipped without a history record; the log says so.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

import attrs

from schedcore._time import iso, to_ms
from schedcore.exceptions import ValidationError
from schedcore.model import Catchup, Overlap, Schedule, _unit_fraction
from schedcore.protocols import Trigger
from schedcore.records import (
    Claim,
    Commit,
    Outcome,
    OutcomeStatus,
    Pending,
    PendingKind,
    Run,
    RunRecord,
    RunStatus,
    make_run_id,
)
from schedcore.triggers import At

__all__ = [
    "RECORD_LIMIT",
    "WALK_LIMIT",
    "Plan",
    "TriggerMemo",
    "backfill_entries",
    "expired_one_shot",
    "first_fire",
    "occurrence_due",
    "plan",
    "retry_entry",
]

#: Due occurrences a fire claim enumerates one by one before jumping (see the module doc).
WALK_LIMIT = 1000
#: Skipped occurrences recorded in the history per commit (the newest ones); more are only counted.
RECORD_LIMIT = 100

_MS = timedelta(milliseconds=1)


def next_fire_utc(trigger: Trigger, instant: datetime) -> datetime | None:
    """``trigger.next_after(instant)`` as a UTC instant.

    Triggers may answer in their own zone (Cron does), and two aware datetimes of one
    zone inside a repeated hour compare equal and hash alike whatever their ``fold``
    (PEP 495). The engine therefore only ever keys, compares and stores UTC instants.
    """
    found = trigger.next_after(instant)
    return None if found is None else found.astimezone(timezone.utc)


@attrs.frozen(kw_only=True)
class Plan:
    """What the engine does with one claim: hand ``runs`` over, then apply ``commit``.

    ``commit.skipped`` are the skipped occurrences to record (each also a
    ``misfire_skipped`` event, its ``note`` being the reason); ``unrecorded`` counts
    skipped occurrences left out of the history to keep it bounded, and ``jumped`` tells
    that an unknown number of missed occurrences were passed over without enumeration.
    """

    commit: Commit
    runs: tuple[Run, ...] = ()
    unrecorded: int = 0
    jumped: bool = False

    @property
    def skipped(self) -> tuple[RunRecord, ...]:
        """The skipped occurrences recorded by this plan."""
        return self.commit.skipped


#: Memoised trigger calls, shared by the plans of one batch: ``(id(trigger), instant)`` ->
#: ``(trigger, next fire time)``. Schedules sharing a trigger object (the Redis store hands
#: out one per distinct definition) and coming due together ask it the same questions; the
#: trigger is kept in the value so that its id cannot be reused while the memo lives.
TriggerMemo = dict[tuple[int, datetime], tuple[Trigger, "datetime | None"]]


class _Timeline:
    """The occurrences of one schedule, with their due instants (memoised trigger calls)."""

    def __init__(self, schedule: Schedule, memo: TriggerMemo | None = None) -> None:
        self.schedule = schedule
        self._memo: TriggerMemo = {} if memo is None else memo
        self._due: dict[datetime, datetime] = {}

    def _next_utc(self, instant: datetime) -> datetime | None:
        trigger = self.schedule.trigger
        key = (id(trigger), instant)
        known = self._memo.get(key)
        if known is None:
            known = self._memo[key] = (trigger, next_fire_utc(trigger, instant))
        return known[1]

    def raw_next(self, nominal: datetime) -> datetime | None:
        """The trigger's next fire time after ``nominal``, ignoring ``end_at``."""
        return self._next_utc(nominal)

    def clip(self, occurrence: datetime | None) -> datetime | None:
        """``occurrence`` if it lies in the schedule's window, else None (after end_at)."""
        if occurrence is None:
            return None
        start_at, end_at = self.schedule.start_at, self.schedule.end_at
        if start_at is not None and occurrence < start_at:
            return self.first_at_or_after(start_at)
        if end_at is not None and occurrence > end_at:
            return None
        return occurrence

    def first_at_or_after(self, instant: datetime) -> datetime | None:
        """The first occurrence at or after ``instant`` (instants have millisecond precision)."""
        start_at = self.schedule.start_at
        if start_at is not None and instant < start_at:
            instant = start_at
        found = self._next_utc(instant - _MS)
        end_at = self.schedule.end_at
        if found is None or (end_at is not None and found > end_at):
            return None
        return found

    def after(self, nominal: datetime) -> datetime | None:
        """The occurrence following ``nominal``."""
        return self.clip(self.raw_next(nominal))

    def due(self, nominal: datetime) -> datetime:
        """``nominal`` plus its jitter (see :func:`occurrence_due`)."""
        if not self.schedule.jitter:  # the common case: due when nominal, nothing to remember
            return nominal
        due = self._due.get(nominal)
        if due is None:
            due = self._due[nominal] = occurrence_due(self.schedule, nominal, self.raw_next(nominal))
        return due

    def newest(self, k: int, bound: datetime, floor: datetime, gap_hint: timedelta) -> list[datetime]:
        """Up to ``k`` newest occurrences in ``[floor, bound]``, oldest first.

        Gallops backwards from ``bound``: each round searches a span four times wider,
        starting from ``k`` typical gaps, until it holds ``k`` occurrences or reaches ``floor``.
        """
        span = max(gap_hint * (k + 1), _MS)
        while True:
            lower = max(bound - span, floor)
            found: deque[datetime] = deque(maxlen=k)
            occurrence = self.first_at_or_after(lower)
            while occurrence is not None and occurrence <= bound:
                found.append(occurrence)
                occurrence = self.after(occurrence)
            if len(found) >= k or lower <= floor:
                return list(found)
            span *= 4


def occurrence_due(schedule: Schedule, nominal: datetime, following: datetime | None) -> datetime:
    """When occurrence ``nominal`` is due: ``nominal + u * min(jitter, gap - 1 ms)``.

    ``u`` in [0, 1) is a fixed function of the schedule id and the nominal time, so every
    scheduler computes the same instant; ``gap`` is the time to the trigger's next fire
    time ``following`` (None: no cap), so jitter never pushes a run past the next one.
    The result is whole milliseconds, like every stored instant.
    """
    cap_ms = schedule.jitter // _MS
    if following is not None:
        cap_ms = min(cap_ms, to_ms(following) - to_ms(nominal) - 1)
    if cap_ms <= 0:
        return nominal
    u = _unit_fraction(f"jitter:{schedule.id}:{to_ms(nominal)}")
    return nominal + int(u * cap_ms) * _MS


def first_fire(
    schedule: Schedule, now: datetime, runs_started: int = 0, *, late_one_shot: bool = True
) -> Pending | None:
    """The fire entry of a schedule added or resumed at ``now``: its first occurrence at or after now.

    Occurrences before ``now`` are not run, with one exception: a one-shot (``At``) whose
    instant passed at most ``misfire_grace`` ago keeps it as its fire entry, due at once
    (it fires at the next dispatch) -- unless ``late_one_shot`` is False (``resume``: what
    fell in the pause is not run). ``start_at`` and ``end_at`` bound the search; None when
    there is no occurrence left or ``max_runs`` is already reached.
    """
    if schedule.max_runs is not None and runs_started >= schedule.max_runs:
        return None
    timeline = _Timeline(schedule)
    since = now
    if late_one_shot and isinstance(schedule.trigger, At):
        since = now - schedule.misfire_grace  # its single occurrence is still on time
    nominal = timeline.first_at_or_after(since)
    if nominal is None:
        return None
    return Pending(kind=PendingKind.FIRE, nominal=nominal, due=timeline.due(nominal))


def expired_one_shot(schedule: Schedule, now: datetime) -> datetime | None:
    """The instant of a one-shot that can no longer fire when added at ``now``, else None.

    That is an ``At`` inside its ``start_at``/``end_at`` window whose instant passed more
    than ``misfire_grace`` before ``now``: :func:`first_fire` gives it no fire entry, and
    ``Scheduler.add`` says so (``AddResult.EXPIRED``) instead of storing it silently.
    """
    trigger = schedule.trigger
    if not isinstance(trigger, At) or now - trigger.when <= schedule.misfire_grace:
        return None
    if _Timeline(schedule).first_at_or_after(trigger.when) != trigger.when:
        return None  # outside its own window: it never had an occurrence to miss
    return trigger.when


def retry_entry(outcome: Outcome, schedule: Schedule) -> Pending | None:
    """The retry entry after ``outcome``, or None (succeeded, stopped, or attempts exhausted).

    Failed and lost runs are retried while :meth:`RetryPolicy.can_retry` allows; the next
    attempt is due ``RetryPolicy.delay(attempt, run id)`` after the run finished.
    """
    if outcome.status not in (OutcomeStatus.FAILED, OutcomeStatus.LOST):
        return None
    policy = schedule.retry
    if not policy.can_retry(outcome.attempt):
        return None
    return Pending(
        kind=PendingKind.RETRY,
        nominal=outcome.nominal,
        due=outcome.finished_at + policy.delay(outcome.attempt, outcome.run_id),
        attempt=outcome.attempt + 1,
    )


#: The most occurrences one backfill queues: a longer range is refused, not cut short.
BACKFILL_LIMIT = 10_000


def backfill_entries(schedule: Schedule, start: datetime, end: datetime, limit: int = BACKFILL_LIMIT) -> list[Pending]:
    """Backfill entries for the occurrences in ``[start, end]`` (inside start_at/end_at), oldest first.

    Each is due at its nominal time, so past ones are due at once and are claimed oldest
    first. More than ``limit`` occurrences raise ValidationError (ask for a smaller range).
    Errors show the instants as ISO-8601 text.
    """
    if end < start:
        raise ValidationError("end", iso(end), f"must not be before start ({iso(start)})")
    timeline = _Timeline(schedule)
    entries: list[Pending] = []
    occurrence = timeline.first_at_or_after(start)
    while occurrence is not None and occurrence <= end:
        if len(entries) >= limit:
            raise ValidationError(
                "end",
                iso(end),
                f"the range from {iso(start)} holds more than {limit} occurrences, the most one backfill "
                "queues; backfill it in shorter ranges",
            )
        entries.append(Pending(kind=PendingKind.BACKFILL, nominal=occurrence, due=occurrence))
        occurrence = timeline.after(occurrence)
    return entries


# -- plan ---------------------------------------------------------------------------------


def plan(claim: Claim, now: datetime, memo: TriggerMemo | None = None) -> Plan:
    """Decide what to do with ``claim`` at ``now``: runs to dispatch and the commit to write.

    ``memo`` (a dict, empty at first) lets the plans of one batch share trigger calls; keep
    it no longer than the batch.
    """
    if claim.entry.kind is PendingKind.FIRE:
        return _plan_fire(claim, now, memo)
    return _plan_extra(claim, now)


def _record(
    schedule_id: str, entry: Pending, status: RunStatus, now: datetime, note: str | None, *, run_id: str | None = None
) -> RunRecord:
    return RunRecord(
        run_id=run_id or make_run_id(schedule_id, entry.nominal, entry.attempt),
        kind=entry.kind,
        nominal=entry.nominal,
        due=entry.due,
        attempt=entry.attempt,
        status=status,
        dispatched_at=now if status is RunStatus.DISPATCHED else None,
        note=note,
    )


def _build(
    claim: Claim,
    now: datetime,
    dispatch: Sequence[Pending],
    skips: Sequence[tuple[Pending, str]],
    *,
    next_fire: Pending | None = None,
    park: Pending | None = None,
    runs_started: int = 0,
    jumped: bool = False,
) -> Plan:
    schedule = claim.schedule
    sid = schedule.id
    recorded = skips[-RECORD_LIMIT:]  # the newest ones; older ones are only counted
    runs = tuple(Run.create(schedule, e) for e in dispatch)
    commit = Commit(
        claim=claim,
        dispatched=tuple(
            _record(sid, e, RunStatus.DISPATCHED, now, None, run_id=run.id)
            for e, run in zip(dispatch, runs, strict=True)
        ),
        skipped=tuple(_record(sid, e, RunStatus.SKIPPED, now, reason) for e, reason in recorded),
        next_fire=next_fire,
        park=park,
        runs_started=runs_started,
    )
    return Plan(commit=commit, runs=runs, unrecorded=len(skips) - len(recorded), jumped=jumped)


def _plan_extra(claim: Claim, now: datetime) -> Plan:
    """Retry, manual, backfill and buffered entries: one run each."""
    schedule, entry = claim.schedule, claim.entry
    if entry.kind is PendingKind.RETRY:
        return _build(claim, now, [entry], [])  # a retry continues a run: overlap does not apply
    counts = entry.kind is PendingKind.BUFFERED  # a buffered occurrence is a regular one
    if counts and schedule.max_runs is not None and claim.runs_started >= schedule.max_runs:
        return _build(claim, now, [], [(entry, "max_runs")])
    if schedule.overlap is not Overlap.ALLOW and claim.running > 0:
        if schedule.overlap is Overlap.BUFFER_ONE and not claim.parked:
            return _build(claim, now, [], [], park=entry)  # keeps its kind (manual stays manual)
        return _build(claim, now, [], [(entry, "overlap")])
    return _build(claim, now, [entry], [], runs_started=1 if counts else 0)


def _plan_fire(claim: Claim, now: datetime, memo: TriggerMemo | None) -> Plan:
    schedule = claim.schedule
    timeline = _Timeline(schedule, memo)
    if schedule.paused:
        return _build(claim, now, [], [])  # resume computes a fresh fire entry
    if schedule.start_at is None and schedule.end_at is None and not schedule.jitter and schedule.max_runs is None:
        nominal = claim.entry.nominal
        if nominal <= now:
            following = timeline.raw_next(nominal)
            if following is None or following > now:
                return _plan_one(claim, now, nominal, following)
    current = timeline.clip(claim.entry.nominal)
    if current is None:
        return _build(claim, now, [], [])  # beyond end_at (the definition changed): finished

    # 1. The due occurrences, oldest first: walk, then jump to the suffix that matters.
    due_list: list[datetime] = []
    jumped = False
    while current is not None and timeline.due(current) <= now:
        if len(due_list) >= WALK_LIMIT:
            jumped = True
            break
        due_list.append(current)
        current = timeline.after(current)
    capped = jumped
    if capped and current is not None:
        gap = (current - due_list[0]) / len(due_list)
        tail = _tail(timeline, current, now, gap)
        if tail and tail[0] == current:
            jumped = False  # the tail continues the walk: nothing was passed over
        due_list.extend(tail)

    # 2. Catch-up: which suffix of the due occurrences is dispatched.
    grace = schedule.misfire_grace
    if schedule.catchup is Catchup.ALL:
        keep = min(len(due_list), schedule.catchup_limit)
    else:
        keep = sum(1 for n in due_list if now - timeline.due(n) <= grace)  # on-time ones: a suffix
        if keep == 0 and due_list and schedule.catchup is Catchup.LATEST:
            keep = 1
    cut = len(due_list) - keep
    # Only the newest skipped ones get a record, so only those are built.
    uncounted = max(0, cut - RECORD_LIMIT)
    skips: list[tuple[Pending, str]] = [(_fire(timeline, n), "catchup") for n in due_list[uncounted:cut]]

    # 3. Overlap and max_runs, oldest first.
    budget: int | None = None
    if schedule.max_runs is not None:
        budget = schedule.max_runs - claim.runs_started - (1 if claim.parked else 0)
    dispatch: list[Pending] = []
    park: Pending | None = None
    for nominal in due_list[cut:]:
        entry = _fire(timeline, nominal)
        if budget is not None and len(dispatch) + (park is not None) >= budget:
            skips.append((entry, "max_runs"))
        elif schedule.overlap is Overlap.ALLOW or (claim.running == 0 and not dispatch):
            dispatch.append(entry)
        elif schedule.overlap is Overlap.BUFFER_ONE and not claim.parked and park is None:
            park = attrs.evolve(entry, kind=PendingKind.BUFFERED)
        else:
            skips.append((entry, "overlap"))

    # 4. The next fire entry: the first occurrence not due yet.
    following = current
    if capped:
        # The newest due occurrence may lie in the part jumped over, so search from the
        # earliest instant an undue occurrence can have (due <= nominal + jitter).
        following = timeline.first_at_or_after(max(current, now - schedule.jitter)) if current else None
        while following is not None and timeline.due(following) <= now:
            following = timeline.after(following)
    finished = budget is not None and len(dispatch) + (park is not None) >= budget
    next_fire = None if finished or following is None else _fire(timeline, following)
    built = _build(
        claim, now, dispatch, skips, next_fire=next_fire, park=park, runs_started=len(dispatch), jumped=jumped
    )
    return attrs.evolve(built, unrecorded=built.unrecorded + uncounted) if uncounted else built


def _plan_one(claim: Claim, now: datetime, nominal: datetime, following: datetime | None) -> Plan:
    """:func:`_plan_fire` where it is simplest, and most common: exactly one occurrence due
    (``nominal``; ``following`` is the next one, not due), no jitter, no window, no
    ``max_runs``. The same decisions, without walking, jumping or counting."""
    schedule, entry = claim.schedule, claim.entry
    if entry.due != nominal or entry.attempt != 1:
        entry = Pending(kind=PendingKind.FIRE, nominal=nominal, due=nominal)
    next_fire = None if following is None else Pending(kind=PendingKind.FIRE, nominal=following, due=following)
    if schedule.catchup is Catchup.SKIP and now - nominal > schedule.misfire_grace:
        return _build(claim, now, [], [(entry, "catchup")], next_fire=next_fire)  # (latest and all keep it)
    if schedule.overlap is Overlap.ALLOW or claim.running == 0:
        return _build(claim, now, [entry], [], next_fire=next_fire, runs_started=1)
    if schedule.overlap is Overlap.BUFFER_ONE and not claim.parked:
        return _build(claim, now, [], [], next_fire=next_fire, park=attrs.evolve(entry, kind=PendingKind.BUFFERED))
    return _build(claim, now, [], [(entry, "overlap")], next_fire=next_fire)


def _fire(timeline: _Timeline, nominal: datetime) -> Pending:
    return Pending(kind=PendingKind.FIRE, nominal=nominal, due=timeline.due(nominal))


def _tail(timeline: _Timeline, floor: datetime, now: datetime, gap: timedelta) -> list[datetime]:
    """The due occurrences at or after ``floor`` that catch-up may still dispatch, oldest first.

    Exact for every policy: the on-time ones all have ``nominal >= now - grace - jitter``;
    ``latest`` with none on time wants the newest due one; ``all`` the newest
    ``catchup_limit`` due ones (one more is fetched since the newest occurrence at or
    before ``now`` may not be due yet, its jitter pushing it past ``now``).
    """
    schedule = timeline.schedule
    if schedule.catchup is Catchup.ALL:
        found = timeline.newest(schedule.catchup_limit + 1, now, floor, gap)
        return [n for n in found if timeline.due(n) <= now][-schedule.catchup_limit :]
    earliest_on_time = now - schedule.misfire_grace - schedule.jitter
    tail: list[datetime] = []
    occurrence = timeline.first_at_or_after(max(floor, earliest_on_time))
    while occurrence is not None and timeline.due(occurrence) <= now:
        tail.append(occurrence)
        occurrence = timeline.after(occurrence)
    if not tail and schedule.catchup is Catchup.LATEST:
        found = timeline.newest(2, now, floor, gap)
        tail = [n for n in found if timeline.due(n) <= now][-1:]
    return tail
