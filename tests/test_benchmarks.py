"""Micro-benchmarks of the hot paths, run by CI for correctness only.

Each test asserts what the benchmarked call returns, never how long it took. Unless
``--benchmark-enable`` (or ``--benchmark-only``) is given, pytest-benchmark is told to run
each function once without timing it, so the file finishes in seconds on any machine::

    python -m pytest tests/test_benchmarks.py                       # correctness (CI)
    python -m pytest tests/test_benchmarks.py --benchmark-enable    # timings

The end-to-end comparison with rq-scheduler and RQ lives in ``bench/`` (``python -m bench``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

pytest.importorskip("pytest_benchmark", reason="pytest-benchmark is not installed (pip install 'schedcore[test]')")

from schedcore import Cron, MemoryStore, Schedule
from schedcore._planner import first_fire, plan
from schedcore.records import Commit, Pending, PendingKind, Run

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
BATCH = 256
LEASE = timedelta(seconds=30)


@pytest.fixture
def bench(request: pytest.FixtureRequest, benchmark: Any) -> Callable[..., Any]:
    """pytest-benchmark's fixture, running the function once untimed unless timings are asked for."""
    enabled = request.config.getoption("benchmark_enable") or request.config.getoption("benchmark_only")
    if not enabled:
        benchmark.disabled = True
    return benchmark  # type: ignore[no-any-return]


# -- cron: next fire time -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "tz", "after", "expected"),
    [
        ("*/15 * * * *", "UTC", T0 + timedelta(minutes=1), T0 + timedelta(minutes=15)),
        ("30 2 * * *", "America/New_York", datetime(2025, 3, 8, 12, tzinfo=timezone.utc), None),
        ("0 9 * * 1-5", "Europe/Paris", datetime(2026, 2, 27, 9, tzinfo=timezone.utc), None),
    ],
)
def test_cron_next_fire(
    bench: Callable[..., Any], expr: str, tz: str, after: datetime, expected: datetime | None
) -> None:
    trigger = Cron(expr, tz=tz)
    found = bench(trigger.next_after, after)
    assert found is not None and found > after
    if expected is not None:
        assert found == expected
    if expr == "30 2 * * *":  # the spring-forward day: 02:30 does not exist, fires at 03:00 EDT
        assert found.isoformat() == "2025-03-09T03:00:00-04:00"
    if expr == "0 9 * * 1-5":  # Friday 10:00 Paris is past 09:00: next is Monday
        assert found.weekday() == 0 and (found.hour, found.minute) == (9, 0)


# -- claim + plan + commit of a batch ---------------------------------------------------------------


def _schedules(n: int) -> list[Schedule]:
    return [Schedule(id=f"job-{i:05d}", task="bench.tasks:noop", trigger=Cron("*/15 * * * *")) for i in range(n)]


def _fill(store: Any, schedules: list[Schedule], due: datetime) -> None:
    for schedule in schedules:
        entry = Pending(kind=PendingKind.FIRE, nominal=due, due=due)
        store.add(schedule, entry, "error")


def _claim_plan_commit(store: Any, now: datetime) -> tuple[int, list[bool], list[Commit]]:
    claims = store.claim_due(now, limit=BATCH, lease=LEASE, owner="bench")
    plans = [plan(claim, now) for claim in claims]
    commits = [p.commit for p in plans]
    return len(claims), store.commit(commits), commits


def _check_batch(store: Any, result: tuple[int, list[bool], list[Commit]], schedules: list[Schedule]) -> None:
    claimed, done, commits = result
    assert claimed == BATCH
    assert done == [True] * BATCH
    assert all(len(c.dispatched) == 1 and c.next_fire is not None for c in commits)
    assert sorted(c.claim.schedule.id for c in commits) == sorted(s.id for s in schedules)  # shared decoding
    assert all(c.dispatched[0].run_id.startswith(c.claim.schedule.id + "@") for c in commits)
    first = store.get(schedules[0].id)
    assert first is not None and first.next_fire is not None and first.next_fire.nominal == T0 + timedelta(minutes=15)


def test_claim_commit_batch_memory(bench: Callable[..., Any]) -> None:
    schedules = _schedules(BATCH)
    due = T0

    def setup() -> tuple[tuple[Any, datetime], dict[str, Any]]:
        store = MemoryStore()
        _fill(store, schedules, due)
        state["store"] = store
        return (store, T0 + timedelta(seconds=1)), {}

    state: dict[str, Any] = {}
    result = bench.pedantic(_claim_plan_commit, setup=setup, rounds=5, iterations=1)
    _check_batch(state["store"], result, schedules)


@pytest.mark.redis
def test_claim_commit_batch_redis(bench: Callable[..., Any]) -> None:
    pytest.importorskip("redis", reason="redis-py is not installed")
    from schedcore.testing.redis_server import redis_server
    from schedcore_redis import RedisStore

    schedules = _schedules(BATCH)
    due = T0
    with redis_server() as server:
        store = RedisStore.from_url(server.url, namespace="bench")
        try:
            rounds = iter(range(1000))

            def setup() -> tuple[tuple[Any, datetime], dict[str, Any]]:
                # one namespace per round: a fresh, full batch each time
                state["store"] = round_store = RedisStore.from_url(
                    server.url, namespace=f"bench{next(rounds)}", check=False
                )
                _fill(round_store, schedules, due)
                return (round_store, T0 + timedelta(seconds=1)), {}

            state: dict[str, Any] = {}
            result = bench.pedantic(_claim_plan_commit, setup=setup, rounds=5, iterations=1)
            _check_batch(state["store"], result, schedules)
        finally:
            store.close()


# -- building RQ jobs -------------------------------------------------------------------------------


@pytest.fixture
def rq_executor() -> Iterator[Any]:
    fakeredis = pytest.importorskip("fakeredis", reason="fakeredis is not installed")
    pytest.importorskip("rq", reason="rq is not installed")
    from schedcore_rq import RQExecutor

    executor = RQExecutor(fakeredis.FakeRedis(), queue="bench")
    yield executor


def _runs(schedule: Schedule, n: int) -> list[Run]:
    out = []
    for k in range(n):
        nominal = T0 + timedelta(minutes=15 * k)
        out.append(Run.create(schedule, Pending(kind=PendingKind.FIRE, nominal=nominal, due=nominal)))
    return out


def _without_times(commands: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    out = []
    for command in commands:
        args = list(command)
        for i in range(3, len(args), 2):
            if str(args[0]).upper() == "HSET" and args[i - 1] in ("created_at", "enqueued_at"):
                args[i] = "<time>"
        out.append(tuple(args))
    return out


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"queue": "other", "job_timeout": 5, "ttl": 60, "at_front": True, "meta": {"a": 1}},
        {"description": "fixed", "result_ttl": 0, "failure_ttl": 120},
    ],
)
def test_rq_job_building(bench: Callable[..., Any], rq_executor: Any, options: dict[str, Any]) -> None:
    """A batch of runs becomes hand-off entries; the cached job template gives exactly RQ's own writes."""
    from schedcore_rq._jobs import job_id_for, parse_options, run_info
    from schedcore_rq._outcomes import META_KEY

    schedule = Schedule(
        id="job-1", task="bench.tasks:noop", trigger=Cron("*/15 * * * *"), args=(1, "x"), executor_options=options
    )
    runs = _runs(schedule, BATCH)
    entries = bench(lambda: [rq_executor._entry(run) for run in runs])
    assert len(entries) == BATCH
    assert len({head[0] for head, _template, _rest in entries}) == BATCH  # one job id per run
    assert all(template is not None for _head, template, _rest in entries[1:])  # the first one is captured
    for run in runs[:3] + runs[-2:]:  # cached template == what RQ itself writes
        job_id = job_id_for(run.id, rq_executor.namespace)
        info = run_info(run)
        fast = rq_executor._job_commands(run, job_id, info)
        parsed = parse_options(run.executor_options)
        meta = {**parsed.meta, META_KEY: {**info.to_dict(), "ns": rq_executor.namespace, "hb": 10.0}}
        description = parsed.description or f"{run.task} [schedcore {run.id}]"
        slow = rq_executor._capture(run, job_id, parsed, meta, description)
        assert _without_times(fast) == _without_times(slow)
    assert all(template is not None for template in rq_executor._templates.values())


def test_rq_handoff_of_templated_jobs(bench: Callable[..., Any], rq_executor: Any) -> None:
    """The hand-off script writes templated jobs as RQ would: fetchable, queued, their own meta."""
    from rq import Queue
    from rq.job import Job

    from schedcore_rq._jobs import job_id_for
    from schedcore_rq._outcomes import META_KEY

    schedule = Schedule(id="job-1", task="bench.tasks:noop", trigger=Cron("*/15 * * * *"), args=(7,))
    runs = _runs(schedule, 2 * BATCH)
    handed = bench.pedantic(rq_executor.handoff, args=(runs,), rounds=1, iterations=1)
    assert handed == [True] * len(runs)
    assert rq_executor.handoff(runs[:3]) == [False] * 3  # a repeat writes nothing
    connection = rq_executor._connection
    queue = Queue("bench", connection=connection)
    ids = [job_id_for(run.id, rq_executor.namespace) for run in runs]
    assert queue.get_job_ids() == ids
    for run, job_id in [(runs[0], ids[0]), (runs[1], ids[1]), (runs[-1], ids[-1])]:
        job = Job.fetch(job_id, connection=connection)
        assert job.args == ("bench.tasks:noop", 7)
        assert job.meta[META_KEY]["run"] == run.id
        assert job.description == f"bench.tasks:noop [schedcore {run.id}]"
        assert job.get_status() == "queued" and job.origin == "bench"


def test_first_fire_of_many_schedules(bench: Callable[..., Any]) -> None:
    schedules = _schedules(100)
    entries = bench(lambda: [first_fire(s, T0 + timedelta(seconds=1)) for s in schedules])
    assert all(e is not None and e.nominal == T0 + timedelta(minutes=15) for e in entries)
