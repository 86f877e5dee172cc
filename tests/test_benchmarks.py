"""Micro-benchmarks of the hot paths, run by CI for correctness only.

Each test asserts what the benchmarked call returns, never how long it took. Unless
``--benchmark-enable`` (or ``--benchmark-only``) is given, pytest-benchmark is told to run
each function once without timing it, so the file finishes in seconds on any machine::

    python -m pytest tests/test_benchmarks.py                       # correctness (CI)
    python -m pytest tests/test_benchmarks.py --benchmark-enable    # timings

The end-to-end comparison with rq-scheduler and RQ lives in ``bench/`` (``python -m bench``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

pytest.importorskip(
    "pytest_benchmark", reason="pytest-benchmark is not installed (pip install 'schedcore-engine[test]')"
)

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
    stamp = "2025-01-01T00:00:00.000000Z"
    encode = str.encode  # the connection's encoding: UTF-8

    def entries_of_one_handoff() -> list[Any]:
        plans: dict[Any, Any] = {}  # what RQExecutor.handoff shares between the runs of a call
        return [rq_executor._entry(run, stamp, plans, encode) for run in runs]

    entries = bench(entries_of_one_handoff)
    assert len(entries) == BATCH
    assert len({entry.job_id for entry in entries}) == BATCH  # one job id per run
    assert all(entry.template is not None for entry in entries[1:])  # the first one is captured
    assert not any(entry.failure for entry in entries)
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


# -- the harness of ``python -m bench`` (tiny sizes, correctness only) ---------------------------------
#
# The scenarios check their own results (every system handed exactly N distinct jobs to RQ);
# these tests run them at tiny sizes so that the harness never rots, and check the shortcuts it
# takes to populate quickly against the slow paths they stand for.

needs_peers = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def bench_server() -> Iterator[Any]:
    pytest.importorskip("redis", reason="redis-py is not installed")
    pytest.importorskip("rq", reason="rq is not installed")
    from schedcore.testing.redis_server import redis_server

    with redis_server() as server:
        yield server


def _peers() -> None:
    """Skip without the peers installed -- unless ``SCHEDCORE_REQUIRE_BENCH=1`` (CI): then it fails."""
    try:
        import rq_scheduler  # noqa: F401
    except ImportError:
        if os.environ.get("SCHEDCORE_REQUIRE_BENCH") == "1":
            pytest.fail(
                "rq-scheduler is not installed and SCHEDCORE_REQUIRE_BENCH=1 (pip install 'schedcore-engine[bench]')"
            )
        pytest.skip("rq-scheduler is not installed (pip install 'schedcore-engine[bench]')")


def _dump(conn: Any, drop_fields: tuple[bytes, ...] = ()) -> dict[bytes, Any]:
    """Every key of a database with its type, contents and TTL (hash fields ``drop_fields`` left out)."""
    out: dict[bytes, Any] = {}
    for key in conn.scan_iter():
        kind = conn.type(key)
        value: Any
        if kind == b"hash":
            value = {k: v for k, v in conn.hgetall(key).items() if k not in drop_fields}
        elif kind == b"zset":
            value = conn.zrange(key, 0, -1, withscores=True)
        elif kind == b"set":
            value = sorted(conn.smembers(key))
        elif kind == b"list":
            value = conn.lrange(key, 0, -1)
        else:
            value = conn.get(key)
        out[key] = (kind, value, conn.ttl(key))
    return out


@pytest.mark.redis
@pytest.mark.parametrize("probe_fails", [False, True])
def test_bench_sc_populate_same_writes_what_add_many_writes(
    bench_server: Any, monkeypatch: pytest.MonkeyPatch, probe_fails: bool
) -> None:
    from bench import common as C

    fast, slow = C.client(bench_server, 13), C.client(bench_server, 14)
    C.flush(fast)
    C.flush(slow)
    due = C.utcnow() - timedelta(seconds=1)
    if probe_fails:  # an unknown layout: every schedule goes through add_many
        monkeypatch.setattr(C, "sc_layout", lambda *_: None)
    assert C.sc_populate_cron(C.sc_store_on(fast), 5, 40, due) == 40
    assert C.sc_populate(C.sc_store_on(slow), C.sc_cron_items(5, 40, due)) == 40
    assert _dump(fast) == _dump(slow)
    assert not [k for k in fast.scan_iter() if b"probe" in k]  # the probe namespace is cleaned up
    stored = C.sc_store_on(fast).get("job-0000044")
    assert stored is not None and stored.schedule == C.sc_schedule(44)
    with pytest.raises(Exception, match=r"exists|not new"):  # ids must be new
        C.sc_populate_cron(C.sc_store_on(fast), 40, 10, due)
    C.flush(fast)
    C.flush(slow)


@pytest.mark.redis
@needs_peers
def test_bench_peer_populate_writes_what_the_peers_write(bench_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The replayed template writes, job for job, what rq-scheduler's and RQ's own code writes."""
    _peers()
    from bench import common as C

    fast, slow = C.client(bench_server, 13), C.client(bench_server, 14)
    at = C.utcnow() + timedelta(days=1)
    for populate in (
        lambda conn: C.rqs_populate_cron(conn, 3, 25, at.timestamp()),
        lambda conn: C.rq_populate_same(conn, 3, 25, at),
    ):
        C.flush(fast)
        C.flush(slow)
        populate(fast)
        with monkeypatch.context() as m:
            m.setattr(C, "replicate", lambda *_a, **_k: False)  # job by job, the peer's own code
            populate(slow)
        assert _dump(fast, (b"created_at",)) == _dump(slow, (b"created_at",))
        assert fast.exists("rq:job:job-0000027") and not fast.exists("rq:job:job-0000028")
    C.flush(fast)
    C.flush(slow)


def test_bench_distinct_crons_are_distinct_and_valid() -> None:
    from bench.common import distinct_cron

    sample = [*range(3000), *range(50_000, 52_000)]
    exprs = [distinct_cron(i) for i in sample]
    assert len(set(exprs)) == len(exprs)
    after = T0 + timedelta(seconds=1)
    for expr in exprs[:50] + exprs[-50:]:
        found = Cron(expr).next_after(after)
        assert found is not None and found - after < timedelta(minutes=30)  # one fire in each quarter hour
    # no two fire at the same set of minutes: the minute lists themselves differ
    assert len({e.split()[0] for e in exprs[:3000]}) == 3000


@pytest.mark.parametrize("minute", [0, 7, 14, 44, 55])
def test_bench_dispatch_crons_stay_silent_while_it_runs(minute: int) -> None:
    """The due schedules of a dispatch fire in none of the 10 minutes after their due instant
    (else some would fall due again while the scheduler dispatches, and more than N run)."""
    from bench.common import distinct_cron, due_cron, quiet_minutes

    due = T0.replace(minute=minute, second=59)
    avoid = quiet_minutes(due)
    exprs = [due_cron(due)] + [distinct_cron(i, avoid) for i in [*range(200), *range(60_000, 60_100)]]
    assert len(set(exprs[1:])) == len(exprs) - 1
    for expr in exprs:
        found = Cron(expr).next_after(due)
        assert found is not None and found > due + timedelta(minutes=10)


def test_bench_check_handed_refuses_duplicates_and_losses() -> None:
    fakeredis = pytest.importorskip("fakeredis", reason="fakeredis is not installed")
    pytest.importorskip("rq", reason="rq is not installed")
    from bench import scenarios as S

    conn = fakeredis.FakeRedis()
    key = S.rq_queue(conn).key
    conn.rpush(key, "old", "a", "b", "c")
    S._check_handed(conn, 1, 3, "x")
    with pytest.raises(RuntimeError, match="expected 4"):
        S._check_handed(conn, 1, 4, "x")
    conn.rpush(key, "c")
    with pytest.raises(RuntimeError, match="3 distinct"):
        S._check_handed(conn, 1, 4, "x")


@pytest.mark.redis
@needs_peers
def test_bench_add_dispatch_scale_idle(bench_server: Any) -> None:
    _peers()
    from bench import scenarios as S

    asked: list[float] = []  # every timed part asks first whether it may start (bench.run may wait)
    S.set_quiet_hook(asked.append)
    try:
        _add_dispatch_scale_idle(bench_server)
    finally:
        S.set_quiet_hook(None)
    assert len(asked) == 1 + 4 + 3 * 2 + 2 and all(seconds > 0 for seconds in asked)  # add, dispatch, scale


def _add_dispatch_scale_idle(bench_server: Any) -> None:
    from bench import scenarios as S
    from schedcore import Scheduler

    memory: dict[str, float] = {}
    added = S.add(bench_server, 30, memory)
    bulk = S.SC_MANY if hasattr(Scheduler, "add_many") else S.SC_BULK
    assert set(added) == {S.SC, bulk, S.RQS, S.RQ} and all(v > 0 for v in added.values())
    assert set(memory) == {S.SC, S.RQS, S.RQ} and all(v > 0 for v in memory.values())

    handed = S.dispatch(bench_server, 40)  # checks itself: exactly 40 distinct jobs for each
    assert set(handed) == {S.SC, S.SC_DISTINCT, S.RQS, S.RQ} and all(v > 0 for v in handed.values())

    stored = S.Stored(bench_server)
    small = S.scale(bench_server, stored, 20, 20, 2, peers=True)
    assert {k: len(v) for k, v in small.items()} == {S.SC: 2, S.RQS: 2, S.RQ: 2}
    big = S.scale(bench_server, stored, 60, 20, 2, peers=False)
    assert {k: len(v) for k, v in big.items()} == {S.SC: 2}
    assert stored.count == {S.SC: 40, S.RQS: 0, S.RQ: 0}
    # schedcore's repetitions ran on copies; the peers' due jobs are deleted after each repetition
    assert stored.conns[S.SC].hlen("{schedcore:bench}:sched") == 40
    assert S.client(bench_server, S.DB_SCRATCH).dbsize() == 0
    assert stored.conns[S.RQS].zcard("rq:scheduler:scheduled_jobs") == 0
    assert S._queue_len(stored.conns[S.RQS]) == S._queue_len(stored.conns[S.RQ]) == 0

    idle = S.idle(bench_server, stored, 50, 30, window=0.1)
    S.reap()
    assert idle["stored"] == {S.SC: 50, S.RQS: 30, S.RQS1: 30, S.RQ: 30}
    assert set(idle["cpu"]) == {S.SC, S.RQS, S.RQS1, S.RQ} and all(v >= 0 for v in idle["cpu"].values())
    stored.close()


@pytest.mark.redis
def test_bench_scale_out(bench_server: Any) -> None:
    from bench import scenarios as S

    out = S.scale_out(bench_server, 60, 2)
    assert out["duplicates"] == 0 and out["lost"] == 0 and out["rate"] > 0


@pytest.mark.redis
@needs_peers
def test_bench_lateness_streams(bench_server: Any) -> None:
    """Tiny streams; the first run stops its scheduler later, the next one reaps it before measuring."""
    _peers()
    from bench import scenarios as S

    sc = S.lateness_sc(bench_server, 20, 1, stop_later=True)
    assert sc["fires"] == S._sc_expected(20, 1) == 21 and sc["missing"] == 0 and sc["duplicates"] == 0
    rqs = S.lateness_rqs(bench_server, 20, 1, 1, stop_later=True)
    assert rqs["fires"] == 20 and rqs["missing"] == 0 and rqs["duplicates"] == 0
    S.reap()
    assert not S._stopping


def _results(add_many: bool) -> dict[str, Any]:
    from bench import scenarios as S
    from bench.run import MODES

    lat = {"p50_ms": 5.0, "p99_ms": 9.0, "max_ms": 12.0, "min_ms": 1.0, "fires": 10, "missing": 0, "duplicates": 0}
    add = {S.SC: 2_000.0, S.RQS: 1_000.0, S.RQ: 1_500.0}
    add[S.SC_MANY if add_many else S.SC_BULK] = 30_000.0
    return {
        "mode": "quick",
        "config": MODES["quick"],
        "started": "2026-01-01T00:00:00+00:00",
        "elapsed_s": 95.0,
        "background_wait_s": 2.5,
        "steps": [(0.0, "lateness: schedcore"), (9.0, "add"), (90.0, "ceiling")],
        "machine": {"cpu": "cpu", "cores": 2, "platform": "linux", "load_at_start": [0.1], "load_at_end": [0.2]},
        "versions": {"python": "3"},
        "add": add,
        "memory": {S.SC: 300.0, S.RQS: 1_200.0, S.RQ: 500.0},
        "dispatch": {S.SC: 4_000.0, S.SC_DISTINCT: 2_000.0, S.RQS: 500.0, S.RQ: 2_000.0},
        "scale": {"1000": {S.SC: 3_000.0, S.RQS: 500.0, S.RQ: 2_000.0}, "100000": {S.SC: 2_900.0}},
        "lateness": {S.SC: lat, S.RQS1: lat, S.RQ: lat, S.RQS: {"error": "did not finish"}},
        "idle": {S.SC: 0.1, S.RQS: 0.0, S.RQS1: 0.1, S.RQ: 0.0},
        "idle_stored": {S.SC: 100_000, S.RQS: 10_000, S.RQS1: 10_000, S.RQ: 10_000},
        "scale_out": {"1": {"rate": 2_000.0, "duplicates": 0, "lost": 0}},
        "ceiling": {"zadd_p16": 500_000.0, "zadd_p1": 80_000.0},
    }


def test_bench_report_reads_the_bulk_row_and_both_dispatch_ratios() -> None:
    from bench.report import X, markdown

    page = markdown(_results(add_many=True))
    assert f"| add ≥ 20{X} rq-scheduler (`Scheduler.add_many`) | 30.0{X} | **met** |" in page
    assert "schedcore (`Scheduler.add_many`, bulk) | 30,000" in page
    add_section = page.split("## add")[1].split("## dispatch")[0]
    assert "Store.add_many" not in add_section and "pipelined" not in add_section
    assert f"8.0{X} (one trigger shared by all); 4.0{X} (distinct triggers) | **missed** / **missed** |" in page
    assert f"| rq-scheduler (`enqueue_jobs`) | 500 | 8.0{X} | 4.0{X} |" in page
    assert "| schedcore, distinct triggers | 2,000 |" in page
    assert "## run time — 95 s in all" in page and "| add | 9.0 | 81.0 |" in page
    assert "100,000 stored for schedcore" in page
    assert "2.5 s of waiting in this run" in page

    page = markdown(_results(add_many=False))  # before Scheduler.add_many: the one-at-a-time figure
    assert f"| add ≥ 20{X} rq-scheduler (`Scheduler.add`, one at a time (no bulk API in this run)) | 2.0{X} |" in page
    assert "`Store.add_many` directly" in page


def test_the_burst_section_replaces_its_predecessor_and_nothing_else(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from bench import report

    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## ceiling\n\nx\n\n## run time — 1 s in all\n\ny\n")
    monkeypatch.setattr(report, "DOC", doc)

    def result(ms: float) -> dict[str, object]:
        figures = {"median_ms": ms, "p95_ms": ms * 2, "max_ms": ms * 3}
        return {
            "burst": {"RedisStore + RQExecutor": figures, "MemoryStore + LocalExecutor": figures},
            "config": {"burst_reps": 5},
            "started": "2025-01-01T00:00:00+00:00",
            "mode": "quick",
        }

    report.write_burst_section(result(12.0))
    report.write_burst_section(result(70.0))
    text = doc.read_text()
    assert text.count("## burst fixed cost") == 1
    assert "| RedisStore + RQExecutor | 70.0 | 140.0 | 210.0 |" in text and "12.0" not in text
    assert "**missed**" in text  # 70 ms is over the 50 ms target
    assert text.index("## ceiling") < text.index("## burst") < text.index("## run time")
