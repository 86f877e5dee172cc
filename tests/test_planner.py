"""The pure policy functions of :mod:`schedcore._planner`: catch-up, overlap, jitter, limits."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from schedcore import _planner
from schedcore._planner import backfill_entries, expired_one_shot, first_fire, occurrence_due, plan, retry_entry
from schedcore.exceptions import ValidationError
from schedcore.model import Catchup, Overlap, RetryPolicy, Schedule
from schedcore.records import Claim, Outcome, OutcomeStatus, Pending, PendingKind, RunStatus
from schedcore.testing.factories import NOOP, T0, at
from schedcore.triggers import At, Cron, Interval

MINUTE = Interval(60, start=T0)


def sched(**changes: object) -> Schedule:
    fields: dict[str, object] = {"id": "s", "task": NOOP, "trigger": MINUTE}
    fields.update(changes)
    return Schedule(**fields)  # type: ignore[arg-type]


def fire(nominal: datetime, due: datetime | None = None) -> Pending:
    return Pending(kind=PendingKind.FIRE, nominal=nominal, due=due or nominal)


def claim(
    schedule: Schedule, entry: Pending, *, runs_started: int = 0, running: int = 0, parked: bool = False
) -> Claim:
    return Claim(
        schedule=schedule,
        entry=entry,
        token=1,
        owner="test",
        lease_expires=entry.due + timedelta(seconds=30),
        runs_started=runs_started,
        running=running,
        parked=parked,
    )


def first_claim(schedule: Schedule, **kw: int | bool) -> Claim:
    entry = first_fire(schedule, schedule.start_at or T0)
    assert entry is not None
    return claim(schedule, entry, **kw)  # type: ignore[arg-type]


def nominals(p: _planner.Plan) -> list[float]:
    return [(r.nominal - T0).total_seconds() for r in p.commit.dispatched]


def skipped(p: _planner.Plan) -> list[tuple[float, str | None]]:
    return [((r.nominal - T0).total_seconds(), r.note) for r in p.commit.skipped]


def next_at(p: _planner.Plan) -> float | None:
    nf = p.commit.next_fire
    return None if nf is None else (nf.nominal - T0).total_seconds()


# -- fire claims: on time and catch-up ------------------------------------------------------


def test_on_time_fire_dispatches_one_run_and_sets_the_next_fire() -> None:
    p = plan(first_claim(sched()), T0)
    assert nominals(p) == [0]
    assert next_at(p) == 60
    assert p.commit.runs_started == 1
    [run] = p.runs
    assert run.id == "s@1735689600000.1" and run.kind is PendingKind.FIRE and run.attempt == 1
    [record] = p.commit.dispatched
    assert record.status is RunStatus.DISPATCHED and record.dispatched_at == T0 and record.lateness == 0


def test_lateness_within_grace_is_on_time() -> None:
    p = plan(first_claim(sched(catchup="skip", misfire_grace=60)), at(60))
    assert nominals(p) == [0, 60]  # 0 is exactly 60 s late: still on time
    assert next_at(p) == 120


def test_catchup_skip_dispatches_on_time_occurrences_only() -> None:
    p = plan(first_claim(sched(catchup="skip", misfire_grace=60)), at(610))
    assert nominals(p) == [600]
    assert skipped(p) == [(float(s), "catchup") for s in range(0, 600, 60)]
    assert next_at(p) == 660


def test_catchup_skip_with_nothing_on_time_dispatches_nothing() -> None:
    p = plan(first_claim(sched(catchup="skip", misfire_grace=0)), at(601))
    assert nominals(p) == []
    assert len(p.commit.skipped) == 11
    assert next_at(p) == 660
    assert p.commit.runs_started == 0


def test_catchup_latest_runs_the_newest_missed_one_when_none_is_on_time() -> None:
    p = plan(first_claim(sched(catchup="latest", misfire_grace=0)), at(601))
    assert nominals(p) == [600]
    assert [n for n, _ in skipped(p)] == [float(s) for s in range(0, 600, 60)]


def test_catchup_latest_prefers_on_time_occurrences() -> None:
    p = plan(first_claim(sched(catchup="latest", misfire_grace=120)), at(600))
    assert nominals(p) == [480, 540, 600]


def test_catchup_all_dispatches_the_newest_up_to_the_limit_oldest_first() -> None:
    p = plan(first_claim(sched(catchup="all", catchup_limit=3, misfire_grace=0)), at(600))
    assert nominals(p) == [480, 540, 600]
    assert [n for n, _ in skipped(p)] == [float(s) for s in range(0, 480, 60)]
    p = plan(first_claim(sched(catchup="all", catchup_limit=100, misfire_grace=0)), at(600))
    assert nominals(p) == [float(s) for s in range(0, 601, 60)]


def test_skipped_records_are_bounded() -> None:
    p = plan(first_claim(sched(trigger=Interval(1, start=T0), catchup="skip", misfire_grace=0)), at(500.5))
    assert nominals(p) == []
    assert len(p.commit.skipped) == _planner.RECORD_LIMIT
    assert p.unrecorded == 501 - _planner.RECORD_LIMIT
    assert p.commit.skipped[-1].nominal == at(500)  # the newest are kept


# -- overlap ------------------------------------------------------------------------------------


def test_overlap_allow_dispatches_while_running() -> None:
    p = plan(first_claim(sched(overlap="allow"), running=3), T0)
    assert nominals(p) == [0]


def test_overlap_skip_skips_while_running() -> None:
    p = plan(first_claim(sched(overlap="skip"), running=1), T0)
    assert nominals(p) == []
    assert skipped(p) == [(0.0, "overlap")]
    assert next_at(p) == 60


def test_overlap_skip_dispatches_one_run_per_commit() -> None:
    p = plan(first_claim(sched(overlap="skip", catchup="all", misfire_grace=0)), at(120))
    assert nominals(p) == [0]
    assert skipped(p) == [(60.0, "overlap"), (120.0, "overlap")]


def test_overlap_buffer_one_parks_one_occurrence_while_running() -> None:
    p = plan(first_claim(sched(overlap="buffer_one"), running=1), T0)
    assert nominals(p) == []
    assert p.commit.park == Pending(kind=PendingKind.BUFFERED, nominal=T0, due=T0)
    assert p.commit.skipped == ()
    assert next_at(p) == 60


def test_overlap_buffer_one_skips_when_one_is_parked_already() -> None:
    p = plan(first_claim(sched(overlap="buffer_one"), running=1, parked=True), T0)
    assert p.commit.park is None
    assert skipped(p) == [(0.0, "overlap")]


def test_overlap_buffer_one_dispatches_one_and_parks_the_next() -> None:
    p = plan(first_claim(sched(overlap="buffer_one", catchup="all", misfire_grace=0)), at(120))
    assert nominals(p) == [0]
    assert p.commit.park is not None and p.commit.park.nominal == at(60)
    assert skipped(p) == [(120.0, "overlap")]


# -- limits ---------------------------------------------------------------------------------------


def test_max_runs_stops_the_schedule() -> None:
    s = sched(max_runs=3, catchup="all", misfire_grace=0)
    p = plan(first_claim(s, runs_started=1), at(600))
    assert nominals(p) == [0, 60]
    assert p.commit.next_fire is None
    assert p.commit.runs_started == 2
    assert {note for _, note in skipped(p)} == {"max_runs"}


def test_max_runs_reached_exactly_ends_the_schedule() -> None:
    p = plan(first_claim(sched(max_runs=1)), T0)
    assert nominals(p) == [0]
    assert p.commit.next_fire is None


def test_max_runs_counts_a_parked_occurrence() -> None:
    s = sched(max_runs=2, overlap="buffer_one")
    p = plan(first_claim(s, runs_started=1, running=1), T0)
    assert p.commit.park is not None
    assert p.commit.next_fire is None  # the parked one takes the last run


def test_end_at_bounds_the_occurrences() -> None:
    s = sched(end_at=at(120), catchup="all", misfire_grace=0)
    p = plan(first_claim(s), at(1000))
    assert nominals(p) == [0, 60, 120]
    assert p.commit.next_fire is None


def test_start_at_delays_the_first_occurrence() -> None:
    s = sched(start_at=at(90))
    entry = first_fire(s, T0)
    assert entry is not None and entry.nominal == at(120)


def test_paused_fire_claim_dispatches_nothing() -> None:
    p = plan(claim(sched(paused=True), fire(T0)), T0)
    assert p.runs == () and p.commit.next_fire is None


def test_one_shot_at() -> None:
    s = sched(trigger=At(at(30)))
    entry = first_fire(s, T0)
    assert entry is not None and entry.nominal == at(30)
    p = plan(claim(s, entry), at(30))
    assert nominals(p) == [30] and p.commit.next_fire is None
    assert first_fire(s, at(91)) is None  # more than misfire_grace (60 s) in the past: never fires


def test_one_shot_just_past_is_due_at_once_within_its_grace() -> None:
    s = sched(trigger=At(at(30)), misfire_grace=10)
    assert first_fire(s, at(40)) == fire(at(30))  # exactly the grace: still on time
    assert first_fire(s, at(40.001)) is None
    assert first_fire(s, at(35), late_one_shot=False) is None  # resume: what fell in the pause is not run
    p = plan(claim(s, fire(at(30))), at(35))
    assert nominals(p) == [30] and p.commit.next_fire is None
    # outside its own window it never had an occurrence: not "expired", simply nothing
    assert first_fire(sched(trigger=At(at(30)), start_at=at(31)), at(32)) is None
    assert expired_one_shot(sched(trigger=At(at(30)), start_at=at(31), misfire_grace=1), at(99)) is None
    assert expired_one_shot(s, at(40)) is None and expired_one_shot(s, at(40.001)) == at(30)
    assert expired_one_shot(sched(), at(9999)) is None  # only one-shots expire


@settings(max_examples=200, deadline=None)
@given(when=st.integers(0, 10_000), now=st.integers(0, 10_000), grace=st.integers(1, 5_000), jitter=st.integers(0, 50))
def test_one_shot_fires_iff_within_grace_or_expires(when: int, now: int, grace: int, jitter: int) -> None:
    """Rule: a one-shot added at ``now`` gets a fire entry exactly when its instant is at most
    ``misfire_grace`` ago (or ahead); otherwise it is reported expired -- never both, never neither."""
    s = sched(
        trigger=At(at(when / 1000)), misfire_grace=timedelta(milliseconds=grace), jitter=timedelta(milliseconds=jitter)
    )
    t = at(now / 1000)
    entry = first_fire(s, t)
    expired = expired_one_shot(s, t)
    on_time = now - when <= grace
    assert (entry is not None) == on_time and (expired is not None) == (not on_time)
    if entry is not None:
        assert entry.nominal == at(when / 1000)
        if when <= now:  # due at once: the next dispatch runs it, once
            p = plan(claim(s, entry), max(t, entry.due))
            assert nominals(p) == [when / 1000] and p.commit.next_fire is None


def test_first_fire_is_the_first_occurrence_at_or_after_now() -> None:
    s = sched()
    assert first_fire(s, at(60)) == fire(at(60))
    assert first_fire(s, at(60.001)) == fire(at(120))
    assert first_fire(sched(max_runs=2), T0, runs_started=2) is None
    assert first_fire(sched(end_at=at(30)), at(31)) is None


# -- non-fire claims --------------------------------------------------------------------------------


def test_retry_ignores_overlap_and_does_not_count() -> None:
    entry = Pending(kind=PendingKind.RETRY, nominal=T0, due=at(10), attempt=2)
    p = plan(claim(sched(overlap="skip", max_runs=1), entry, runs_started=1, running=1), at(10))
    assert [r.id for r in p.runs] == ["s@1735689600000.2"]
    assert p.commit.runs_started == 0 and p.commit.next_fire is None


def test_manual_and_backfill_do_not_count_but_respect_overlap() -> None:
    for kind in (PendingKind.MANUAL, PendingKind.BACKFILL):
        entry = Pending(kind=kind, nominal=at(5), due=at(5))
        p = plan(claim(sched(max_runs=1), entry, runs_started=1), at(5))
        assert len(p.runs) == 1 and p.commit.runs_started == 0
        p = plan(claim(sched(overlap="skip"), entry, running=1), at(5))
        assert p.runs == () and skipped(p) == [(5.0, "overlap")]
        p = plan(claim(sched(overlap="buffer_one"), entry, running=1), at(5))
        assert p.commit.park == entry


def test_buffered_counts_and_respects_max_runs() -> None:
    entry = Pending(kind=PendingKind.BUFFERED, nominal=T0, due=T0)
    p = plan(claim(sched(max_runs=2, overlap="buffer_one"), entry, runs_started=1), at(30))
    assert len(p.runs) == 1 and p.commit.runs_started == 1 and p.runs[0].kind is PendingKind.BUFFERED
    p = plan(claim(sched(max_runs=2, overlap="buffer_one"), entry, runs_started=2), at(30))
    assert p.runs == () and skipped(p) == [(0.0, "max_runs")]


# -- retries and backfill -----------------------------------------------------------------------------


def outcome(status: OutcomeStatus, attempt: int = 1) -> Outcome:
    return Outcome(
        run_id=f"s@1735689600000.{attempt}",
        schedule_id="s",
        nominal=T0,
        attempt=attempt,
        status=status,
        finished_at=at(7),
    )


def test_retry_entry_follows_the_policy() -> None:
    policy = RetryPolicy(max_attempts=3, initial_delay=10, factor=3)
    s = sched(retry=policy)
    r = retry_entry(outcome(OutcomeStatus.FAILED), s)
    assert r == Pending(kind=PendingKind.RETRY, nominal=T0, due=at(17), attempt=2)
    r = retry_entry(outcome(OutcomeStatus.LOST, attempt=2), s)
    assert r is not None and r.due == at(37) and r.attempt == 3
    assert retry_entry(outcome(OutcomeStatus.FAILED, attempt=3), s) is None
    assert retry_entry(outcome(OutcomeStatus.SUCCEEDED), s) is None
    assert retry_entry(outcome(OutcomeStatus.STOPPED), s) is None


def test_retry_jitter_is_deterministic_per_run() -> None:
    s = sched(retry=RetryPolicy(max_attempts=2, initial_delay=10, jitter=5))
    a = retry_entry(outcome(OutcomeStatus.FAILED), s)
    b = retry_entry(outcome(OutcomeStatus.FAILED), s)
    assert a == b and a is not None and at(17) <= a.due <= at(22)


def test_backfill_entries() -> None:
    entries = backfill_entries(sched(), at(30), at(200))
    assert [e.nominal for e in entries] == [at(60), at(120), at(180)]
    assert all(e.kind is PendingKind.BACKFILL and e.due == e.nominal for e in entries)
    assert backfill_entries(sched(start_at=at(100)), T0, at(200))[0].nominal == at(120)
    with pytest.raises(ValidationError):
        backfill_entries(sched(), T0, at(600), limit=5)


# -- jitter ---------------------------------------------------------------------------------------------


@given(
    jitter=st.integers(0, 10_000_000),
    every=st.integers(1, 100_000),
    k=st.integers(0, 1000),
    sid=st.sampled_from(["a", "b", "nightly"]),
)
def test_jitter_never_reaches_the_next_occurrence(jitter: int, every: int, k: int, sid: str) -> None:
    s = sched(id=sid, trigger=Interval(timedelta(milliseconds=every), start=T0), jitter=timedelta(milliseconds=jitter))
    nominal = T0 + k * timedelta(milliseconds=every)
    following = s.trigger.next_after(nominal)
    due = occurrence_due(s, nominal, following)
    assert nominal <= due <= nominal + timedelta(milliseconds=jitter)
    assert following is not None and due < following
    assert due == occurrence_due(s, nominal, following)  # deterministic


def test_jitter_spreads_schedules() -> None:
    dues = {occurrence_due(sched(id=f"s{i}", jitter=30), T0, at(60)) for i in range(20)}
    assert len(dues) > 10
    assert all(T0 <= d < at(30) for d in dues)


# -- bounded enumeration ----------------------------------------------------------------------------------


@pytest.mark.parametrize("catchup", ["skip", "latest", "all"])
def test_per_second_cron_after_a_week_of_downtime_is_fast(catchup: str) -> None:
    s = sched(trigger=Cron("* * * * * *"), catchup=catchup, misfire_grace=5, catchup_limit=50)
    now = T0 + timedelta(days=7, milliseconds=500)
    started = time.perf_counter()
    p = plan(first_claim(s), now)
    assert time.perf_counter() - started < 1.0
    expected = {"skip": 5, "latest": 5, "all": 50}[catchup]  # on time: the last 4.5 s
    assert len(p.runs) == expected
    assert p.runs[-1].nominal == T0 + timedelta(days=7)
    assert p.commit.next_fire is not None and p.commit.next_fire.nominal == T0 + timedelta(days=7, seconds=1)
    assert p.jumped


def test_latest_after_a_long_gap_finds_the_newest_missed_one() -> None:
    s = sched(trigger=Interval(1, start=T0), catchup="latest", misfire_grace=0)
    p = plan(first_claim(s), T0 + timedelta(days=2, milliseconds=500))
    assert [r.nominal for r in p.runs] == [T0 + timedelta(days=2)]


_triggers = st.one_of(
    st.builds(
        lambda every, off: Interval(timedelta(milliseconds=every), start=T0 + timedelta(milliseconds=off)),
        st.integers(1000, 20_000),
        st.integers(0, 5000),
    ),
    st.sampled_from([Cron("*/7 * * * * *"), Cron("0,10,11,12 * * * * *"), Cron("*/2 * 0-1 * * *")]),
)


@given(
    trigger=_triggers,
    catchup=st.sampled_from(["skip", "latest", "all"]),
    overlap=st.sampled_from(["allow", "skip", "buffer_one"]),
    grace=st.integers(0, 120_000),
    jitter=st.integers(0, 30_000),
    limit=st.integers(1, 40),
    elapsed=st.integers(0, 1800_000),
    max_runs=st.one_of(st.none(), st.integers(1, 50)),
    running=st.integers(0, 1),
)
def test_jumping_gives_the_same_plan_as_walking_everything(
    trigger: Interval | Cron,
    catchup: str,
    overlap: str,
    grace: int,
    jitter: int,
    limit: int,
    elapsed: int,
    max_runs: int | None,
    running: int,
) -> None:
    s = sched(
        trigger=trigger,
        catchup=catchup,
        overlap=overlap,
        misfire_grace=timedelta(milliseconds=grace),
        jitter=timedelta(milliseconds=jitter),
        catchup_limit=limit,
        max_runs=max_runs,
    )
    entry = first_fire(s, T0)
    assert entry is not None
    c = claim(s, entry, running=running)
    now = entry.due + timedelta(milliseconds=elapsed)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(_planner, "WALK_LIMIT", 10**9)
        reference = plan(c, now)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(_planner, "WALK_LIMIT", 3)
        jumped = plan(c, now)
    assert [r.id for r in jumped.runs] == [r.id for r in reference.runs]
    assert jumped.commit.next_fire == reference.commit.next_fire
    assert jumped.commit.park == reference.commit.park
    assert jumped.commit.runs_started == reference.commit.runs_started


class CountingTrigger:
    """Counts the questions asked of a real trigger."""

    def __init__(self, inner: Cron) -> None:
        self.inner = inner
        self.calls = 0

    def next_after(self, instant: datetime) -> datetime | None:
        self.calls += 1
        return self.inner.next_after(instant)

    def to_dict(self) -> dict[str, object]:
        return self.inner.to_dict()

    def describe(self) -> str:
        return self.inner.describe()


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["skip", "latest", "all"]),
            st.integers(0, 90),  # jitter seconds
            st.integers(0, 600),  # how late the claim is, seconds
            st.sampled_from(["allow", "skip", "buffer_one"]),
            st.integers(0, 2),  # running
        ),
        min_size=1,
        max_size=8,
    ),
    st.booleans(),
)
def test_a_batch_memo_of_trigger_calls_changes_no_plan(
    specs: list[tuple[str, int, int, str, int]], shared_trigger: bool
) -> None:
    """Plans of one batch sharing trigger answers (the engine's memo) equal plans made alone."""
    trigger = Cron("*/2 * * * *")
    memo: _planner.TriggerMemo = {}
    for i, (catchup, jitter, late, overlap, running) in enumerate(specs):
        s = sched(
            id=f"s{i}",
            trigger=trigger if shared_trigger else Cron("*/2 * * * *"),
            catchup=catchup,
            jitter=jitter,
            overlap=overlap,
            misfire_grace=30,
        )
        entry = first_fire(s, T0)
        assert entry is not None
        c = claim(s, entry, running=running)
        now = entry.due + timedelta(seconds=late)
        assert plan(c, now, memo) == plan(c, now)


def test_schedules_sharing_a_trigger_ask_it_once_per_batch() -> None:
    trigger = CountingTrigger(Cron("*/5 * * * *"))
    schedules = [sched(id=f"s{i}", trigger=trigger) for i in range(50)]
    entry = fire(T0)
    memo: _planner.TriggerMemo = {}
    plans = [plan(claim(s, entry), T0 + timedelta(seconds=1), memo) for s in schedules]
    assert all(nominals(p) == [0.0] and next_at(p) == 300.0 for p in plans)
    assert trigger.calls <= 2  # the next occurrence (and the one after, for jitter caps), once


# -- the fast path is the general path, where it applies -----------------------------------

_FAST_TRIGGERS = st.one_of(
    st.builds(
        lambda every, offset: Interval(every, start=T0 + timedelta(seconds=offset)),
        st.integers(1, 7200),
        st.integers(-3600, 3600),
    ),
    st.sampled_from(
        [
            Cron("*/5 * * * *"),
            Cron("0 3 * * *", tz="Europe/Paris"),
            Cron("30 2 * * *", tz="America/New_York"),  # a time skipped once a year (DST)
            Cron("0 9 * * 1-5", tz="Asia/Kolkata"),
        ]
    ),
    st.builds(lambda s: At(T0 + timedelta(seconds=s)), st.integers(0, 86_400)),
)


@settings(max_examples=300, deadline=None)
@given(
    trigger=_FAST_TRIGGERS,
    start=st.integers(0, 400 * 86_400),
    late_ms=st.integers(0, 4 * 86_400_000),
    due_shift_ms=st.sampled_from([0, 0, 0, 1, 1500]),
    attempt=st.sampled_from([1, 1, 1, 2]),
    catchup=st.sampled_from(list(Catchup)),
    grace=st.integers(1, 7200),
    overlap=st.sampled_from(list(Overlap)),
    running=st.integers(0, 2),
    parked=st.booleans(),
    runs_started=st.integers(0, 50),
    at_grace=st.sampled_from([None, None, -1, 0, 1]),
)
def test_the_fast_path_plans_what_the_general_path_plans(
    trigger: Interval | Cron | At,
    start: int,
    late_ms: int,
    due_shift_ms: int,
    attempt: int,
    catchup: Catchup,
    grace: int,
    overlap: Overlap,
    running: int,
    parked: bool,
    runs_started: int,
    at_grace: int | None,
) -> None:
    """Every input of the direct path (one occurrence due, no jitter, no window, no
    ``max_runs``) gets from it exactly the plan the general walk makes."""
    schedule = sched(trigger=trigger, catchup=catchup, misfire_grace=grace, overlap=overlap)
    nominal = trigger.next_after(T0 + timedelta(seconds=start - 1))
    assume(nominal is not None)
    assert nominal is not None
    if at_grace is not None:  # late by exactly the grace, a millisecond less or more
        late_ms = grace * 1000 + at_grace
    now = nominal + timedelta(milliseconds=late_ms)
    following = trigger.next_after(nominal)
    assume(following is None or following > now)  # exactly one occurrence due: where the fast path applies
    entry = Pending(
        kind=PendingKind.FIRE, nominal=nominal, due=nominal + timedelta(milliseconds=due_shift_ms), attempt=attempt
    )
    c = claim(schedule, entry, runs_started=runs_started, running=running, parked=parked)
    taken: list[bool] = []
    fast = _planner._plan_one

    def spied(*args: object) -> _planner.Plan:
        taken.append(True)
        return fast(*args)  # type: ignore[arg-type]

    _planner._plan_one = spied  # type: ignore[assignment]
    try:
        planned = plan(c, now)
    finally:
        _planner._plan_one = fast
    assert taken == [True], "the fast path did not apply"
    assert planned == _planner._plan_general(c, now, _planner._Timeline(schedule))
