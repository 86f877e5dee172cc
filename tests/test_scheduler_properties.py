"""Properties of the engine over random schedules, policies and downtime, in simulated time."""

from __future__ import annotations

import itertools
import tempfile
import zlib
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schedcore import _planner
from schedcore._planner import first_fire, occurrence_due
from schedcore.clock import FakeClock
from schedcore.memory import MemoryStore
from schedcore.model import Catchup, RetryPolicy, Schedule
from schedcore.plugins import get_plugin_manager
from schedcore.protocols import Store, Trigger
from schedcore.records import OutcomeStatus, PendingKind, Run, RunStatus, make_run_id
from schedcore.scheduler import Scheduler
from schedcore.sqlite import SQLiteStore
from schedcore.testing.executors import CallbackExecutor, Result
from schedcore.testing.factories import NOOP, T0
from schedcore.testing.simulation import Downtime, Simulation
from schedcore.triggers import At, Cron, Interval

# Every property holds on the reference store and on the SQLite store alike.
on_each_store = pytest.mark.parametrize("kind", ["memory", "sqlite"])
_FILES = tempfile.TemporaryDirectory(prefix="schedcore-properties-")
_open: list[Store] = []


def new_store(kind: str, history_limit: int = 100_000) -> Store:
    """A fresh store of ``kind`` (SQLite: a new file); an example uses at most two, so
    the older ones are closed as new ones come."""
    if kind == "memory":
        return MemoryStore(history_limit=history_limit)
    while len(_open) > 4:
        _open.pop(0).close()
    store = SQLiteStore(f"{_FILES.name}/{next(_numbers)}.db", history_limit=history_limit)
    _open.append(store)
    return store


_numbers = itertools.count()

HORIZON = timedelta(hours=1)
UNTIL = T0 + HORIZON
PM = get_plugin_manager(entry_points=False)

triggers: st.SearchStrategy[Trigger] = st.one_of(
    st.builds(
        lambda every, offset: Interval(timedelta(milliseconds=every), start=T0 + timedelta(milliseconds=offset)),
        st.integers(20_000, 900_000),
        st.integers(-600_000, 600_000),
    ),
    st.builds(lambda offset: At(T0 + timedelta(seconds=offset)), st.integers(0, 3600)),
    st.sampled_from([Cron("*/5 * * * *"), Cron("*/30 * * * * *"), Cron("0,20,40 * * * *"), Cron("17 * * * * *")]),
)


@st.composite
def downtimes(draw: st.DrawFn) -> list[Downtime]:
    """Up to three non-overlapping windows inside the horizon (whole seconds)."""
    points = sorted(draw(st.sets(st.integers(1, 3599), max_size=6)))
    if len(points) % 2:
        points = points[:-1]
    return [
        (T0 + timedelta(seconds=a), T0 + timedelta(seconds=b)) for a, b in zip(points[::2], points[1::2], strict=True)
    ]


@st.composite
def schedules(draw: st.DrawFn, sid: str, **fixed: Any) -> Schedule:
    fields: dict[str, Any] = {
        "id": sid,
        "task": NOOP,
        "trigger": draw(triggers),
        "catchup": draw(st.sampled_from(["skip", "latest", "all"])),
        "catchup_limit": draw(st.integers(1, 5)),
        "misfire_grace": draw(st.integers(0, 300)),
        "jitter": draw(st.sampled_from([0, 0, 5, 45, 120])),
    }
    if draw(st.booleans()):  # run limits
        start = T0 + timedelta(seconds=draw(st.integers(-600, 1800)))
        fields["start_at"] = draw(st.sampled_from([None, start]))
        fields["end_at"] = draw(st.sampled_from([None, start + timedelta(seconds=draw(st.integers(60, 3600)))]))
        fields["max_runs"] = draw(st.sampled_from([None, draw(st.integers(1, 20))]))
    fields.update(fixed)
    return Schedule(**fields)


def occurrences(schedule: Schedule, until: datetime) -> list[tuple[datetime, datetime]]:
    """(nominal, due) of every occurrence due by ``until``, from the first one at or after T0,
    inside ``[start_at, end_at]``."""
    entry = first_fire(schedule, T0)
    found: list[tuple[datetime, datetime]] = []
    nominal = entry.nominal if entry else None
    while nominal is not None and (schedule.end_at is None or nominal <= schedule.end_at):
        following = schedule.trigger.next_after(nominal)
        due = occurrence_due(schedule, nominal, following)
        if due > until:
            break
        found.append((nominal, due))
        nominal = following
    return found


def evaluated_at(due: datetime, windows: list[Downtime]) -> datetime | None:
    """When the scheduler first looks at an occurrence due at ``due``: then, or when back up."""
    for a, b in windows:
        if a <= due < b:
            return b if b <= UNTIL else None
    return due


def expected_dispatches(schedule: Schedule, windows: list[Downtime]) -> tuple[list[datetime], set[datetime]]:
    """The oracle: the nominal times the rules dispatch, and all the occurrences looked at."""
    groups: dict[datetime, list[tuple[datetime, datetime]]] = defaultdict(list)
    for nominal, due in occurrences(schedule, UNTIL):
        when = evaluated_at(due, windows)
        if when is not None:
            groups[when].append((nominal, due))
    chosen: list[datetime] = []
    looked_at: set[datetime] = set()
    for when in sorted(groups):
        group = groups[when]
        looked_at.update(n for n, _ in group)
        if schedule.catchup is Catchup.ALL:
            keep = group[-schedule.catchup_limit :]
        else:
            keep = [(n, d) for n, d in group if when - d <= schedule.misfire_grace]
            if not keep and schedule.catchup is Catchup.LATEST:
                keep = group[-1:]
        chosen.extend(n for n, _ in keep)
        if schedule.max_runs is not None and len(chosen) >= schedule.max_runs:
            del chosen[schedule.max_runs :]  # the rest of this group is skipped, then it is over
            break
    return chosen, looked_at


# batch sizes: the default, and tiny ones, where batches fill up and the engine claims each
# next batch before committing the one it handed over (the simulation's executor lets it).
batch_sizes = st.one_of(st.just(256), st.integers(1, 3))


@on_each_store
@given(data=st.data(), count=st.integers(1, 3), windows=downtimes(), batch=batch_sizes)
def test_every_occurrence_is_dispatched_at_most_once_in_order_by_the_catchup_rules(
    kind: str, data: st.DataObject, count: int, windows: list[Downtime], batch: int
) -> None:
    sim = Simulation.create(start=T0, plugins=PM, batch_size=batch, store=new_store(kind))
    plans = [data.draw(schedules(f"s{i}")) for i in range(count)]
    for schedule in plans:
        sim.scheduler.add(schedule)
    sim.run_until(UNTIL, downtime=windows)

    ids = [run.id for run in sim.executor.submitted]
    assert len(ids) == len(set(ids))  # never handed over twice
    for schedule in plans:
        expected, looked_at = expected_dispatches(schedule, windows)
        runs = [r for r in sim.executor.executed if r.schedule_id == schedule.id]
        assert [r.nominal for r in runs] == expected
        history = sim.scheduler.history(schedule.id, 100_000)
        for record in history:
            if record.status is not RunStatus.SKIPPED:
                assert record.dispatched_at == evaluated_at(record.due, windows)
        handled = [r.nominal for r in history]
        assert len(handled) == len(set(handled))  # each occurrence dispatched or skipped, once
        # Every occurrence looked at has a record, except skipped ones beyond the per-commit cap.
        assert set(handled) <= looked_at
        assert len(looked_at - set(handled)) <= max(0, len(looked_at) - _planner.RECORD_LIMIT)


@on_each_store
@given(trigger=triggers, windows=downtimes(), jitter=st.sampled_from([0, 30]))
def test_catchup_all_without_limit_pressure_dispatches_exactly_the_triggers_occurrences(
    kind: str, trigger: Trigger, windows: list[Downtime], jitter: int
) -> None:
    sim = Simulation.create(start=T0, plugins=PM, store=new_store(kind))
    schedule = Schedule(id="s", task=NOOP, trigger=trigger, catchup="all", catchup_limit=100_000, jitter=jitter)
    sim.scheduler.add(schedule)
    end = UNTIL + timedelta(seconds=1)  # one tick after the last window
    sim.run_until(end, downtime=windows)
    assert [r.nominal for r in sim.executor.executed] == [n for n, _ in occurrences(schedule, end)]
    for record in sim.scheduler.history("s", 100_000):
        assert record.due < (trigger.next_after(record.nominal) or datetime.max.replace(tzinfo=record.due.tzinfo))


@on_each_store
@given(
    overlap=st.sampled_from(["skip", "buffer_one"]),
    every=st.integers(30, 300),
    durations=st.lists(st.integers(0, 600), min_size=1, max_size=8),
    windows=st.one_of(st.just([]), downtimes()),
    batch=batch_sizes,
)
def test_overlap_policies_never_run_two_occurrences_at_once(
    kind: str, overlap: str, every: int, durations: list[int], windows: list[Downtime], batch: int
) -> None:
    sim = Simulation.create(
        lambda run: Result(duration=durations[len(sim.executor.executed) % len(durations)]),
        batch_size=batch,
        store=new_store(kind),
    )
    sim.clock.set(T0)
    schedule = Schedule(
        id="s", task=NOOP, trigger=Interval(every, start=T0), overlap=overlap, misfire_grace=3600, catchup="all"
    )
    sim.scheduler.add(schedule)
    sim.run_until(UNTIL, downtime=windows)

    history = sim.scheduler.history("s", 100_000)
    nominals = [r.nominal for r in history]
    assert len(nominals) == len(set(nominals))  # each occurrence handled once
    forever = UNTIL + HORIZON
    spans = sorted((r.dispatched_at, r.finished_at or forever) for r in history if r.dispatched_at is not None)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end  # the next run starts once the previous one has finished
    skipped = [r for r in history if r.status is RunStatus.SKIPPED]
    assert {r.note for r in skipped} <= {"overlap"}
    if windows:
        return  # after downtime, one commit may skip several occurrences that were all due then
    if overlap == "skip":
        for record in skipped:  # skipped only while a run was in progress at its due instant
            assert any(start <= record.due < end for start, end in spans)
        for record in history:
            if record.status is not RunStatus.SKIPPED:
                assert record.dispatched_at == record.due
    else:
        ends = {end for _, end in spans}
        for record in history:
            if record.kind is PendingKind.BUFFERED:  # started the moment the previous run ended
                assert record.dispatched_at in ends


@on_each_store
@given(
    max_attempts=st.integers(1, 4),
    initial=st.integers(1, 120),
    factor=st.sampled_from([1.0, 1.5, 2.0, 3.0]),
    max_delay=st.integers(5, 600),
    jitter=st.sampled_from([0, 7]),
    failures=st.lists(st.booleans(), min_size=1, max_size=16),
    trigger=st.sampled_from([At(T0 + timedelta(seconds=10)), Interval(600, start=T0), Cron("*/7 * * * *")]),
    batch=batch_sizes,
)
def test_retries_follow_the_policy(
    kind: str,
    max_attempts: int,
    initial: int,
    factor: float,
    max_delay: int,
    jitter: int,
    failures: list[bool],
    trigger: Trigger,
    batch: int,
) -> None:
    def handler(run: Run) -> OutcomeStatus | None:
        fails = failures[zlib.crc32(run.id.encode()) % len(failures)]
        return OutcomeStatus.FAILED if fails else None

    sim = Simulation.create(handler, start=T0, plugins=PM, batch_size=batch, store=new_store(kind))
    policy = RetryPolicy(
        max_attempts=max_attempts, initial_delay=initial, factor=factor, max_delay=max_delay, jitter=jitter
    )
    sim.scheduler.add(Schedule(id="s", task=NOOP, trigger=trigger, retry=policy))
    sim.run_until(UNTIL)

    outcomes = {o.run_id: o for o in sim.executor.outcomes}
    by_nominal: dict[datetime, list[Run]] = defaultdict(list)
    for run in sim.executor.executed:
        by_nominal[run.nominal].append(run)
    for nominal, runs in by_nominal.items():
        assert [r.attempt for r in runs] == list(range(1, len(runs) + 1))
        assert len(runs) <= max_attempts
        for previous, following in itertools.pairwise(runs):
            failed = outcomes[previous.id]
            assert failed.status is OutcomeStatus.FAILED
            assert following.kind is PendingKind.RETRY
            expected_due = failed.finished_at + policy.delay(previous.attempt, previous.id)
            assert following.due == expected_due.replace(microsecond=expected_due.microsecond // 1000 * 1000)
        last = outcomes[runs[-1].id]
        if last.status is OutcomeStatus.FAILED and last.attempt < max_attempts:
            retry_at = last.finished_at + policy.delay(last.attempt, last.run_id)
            assert retry_at > UNTIL  # still to come: a due retry would have run
        record = next(
            r for r in sim.scheduler.history("s", 1000) if r.run_id == make_run_id("s", nominal, runs[-1].attempt)
        )
        if last.status is OutcomeStatus.FAILED and last.attempt == max_attempts:
            assert record.retry_at is None


@on_each_store
@given(
    everies=st.lists(st.integers(7, 400), min_size=1, max_size=5),
    order=st.lists(st.sampled_from([0, 1]), min_size=1, max_size=6),
    batch=st.integers(1, 4),
)
def test_two_schedulers_sharing_a_store_never_dispatch_an_occurrence_twice(
    kind: str, everies: list[int], order: list[int], batch: int
) -> None:
    clock = FakeClock(T0)
    store = new_store(kind, history_limit=10_000)
    executor = CallbackExecutor(lambda run: Result(duration=5), clock=clock)
    pair = [Scheduler(store, executor, clock=clock, plugins=PM, owner=name, batch_size=batch) for name in ("a", "b")]
    for i, every in enumerate(everies):
        pair[i % 2].add(Schedule(id=f"s{i}", task=NOOP, trigger=Interval(every, start=T0), catchup="all"))
    until = T0 + timedelta(minutes=20)
    steps = itertools.cycle(order)
    for _ in range(100_000):
        wakes = []
        for _ in range(2):
            scheduler = pair[next(steps)]
            scheduler.clear_wakeup()
            wakes.append(scheduler.tick())
        nxt = min(w for w in wakes if w is not None)
        if nxt > until:
            break
        clock.set(max(nxt, clock.now()))
    ids = [run.id for run in executor.submitted]
    assert len(ids) == len(set(ids))
    for i, every in enumerate(everies):
        got = [r.nominal for r in executor.executed if r.schedule_id == f"s{i}"]
        expected = [T0 + timedelta(seconds=k * every) for k in range(int(HORIZON.total_seconds()))]
        assert got == [n for n in expected if n <= until]


@on_each_store
@given(data=st.data(), conflict=st.sampled_from(["replace", "keep"]), seconds=st.integers(0, 900))
def test_add_many_is_a_sequence_of_add(kind: str, data: st.DataObject, conflict: str, seconds: int) -> None:
    pool = data.draw(st.lists(triggers, min_size=1, max_size=2))  # shared triggers share work
    ids = ["a", "b", "c", "d", "e"]
    before = [data.draw(schedules(sid)) for sid in data.draw(st.lists(st.sampled_from(ids), unique=True))]
    batch = [
        data.draw(schedules(sid, trigger=data.draw(st.sampled_from(pool))))
        for sid in data.draw(st.lists(st.sampled_from(ids), unique=True))
    ]
    one = Simulation.create(start=T0, plugins=PM, store=new_store(kind))
    many = Simulation.create(start=T0, plugins=PM, store=new_store(kind))
    for sim in (one, many):
        for schedule in before:
            sim.scheduler.add(schedule)
        sim.run_until(T0 + timedelta(seconds=seconds))
    assert many.scheduler.add_many(batch, conflict) == [one.scheduler.add(s, conflict) for s in batch]
    assert many.scheduler.list() == one.scheduler.list()
    for sim in (one, many):
        sim.run_until(UNTIL)
    assert many.executor.executed == one.executor.executed
