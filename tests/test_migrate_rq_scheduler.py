"""``schedcore migrate rq-scheduler``: jobs written by the real rq-scheduler 0.14 into a private
redis-server are migrated (through the CLI, and once as a real subprocess), then a schedcore
scheduler (simulated time) and real ``rq worker`` processes run each job at its times.
The restricted pickle decoder is tested on its own, with payloads that would run code."""

# ruff: noqa: F401, F811  (pytest fixtures imported from test_rq_support)
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from rq import Queue
from rq.job import Job
from test_rq_support import TESTS_DIR, rconn, rq_redis_url, run_burst_worker, worker_env

from schedcore.cli import cli
from schedcore.clock import FakeClock
from schedcore.triggers import At, Cron, Interval
from schedcore_rq.compat import Scheduler
from schedcore_rq.compat._migrate import LOCK_KEY, SCHEDULED_JOBS_KEY, SOURCE_META, migrate, new_id_for
from schedcore_rq.compat._pickle import UnreadablePickle, decode_data, loads, not_json_safe

# rq-scheduler 0.14 and its crontab warn about their own use of naive datetimes
pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]
WORKER = "rq.worker.SimpleWorker"
MARKER = "/tmp/schedcore-migrate-pwned-{pid}"


class RunsCode:
    """A payload: plain ``pickle.loads`` would call ``os.system`` (creating a file)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.path}",))


class Evals:
    def __reduce__(self) -> tuple[Any, ...]:
        return (eval, ("__import__('os').system('false')",))


# -- the restricted decoder ------------------------------------------------------------------


def test_a_payload_that_runs_code_under_pickle_is_decoded_inert(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    data = pickle.dumps(("app.f", None, (1, RunsCode(str(target))), {"e": Evals()}), protocol=5)
    pickle.loads(data)  # the payload is real: plain pickle runs it
    assert target.exists()
    target.unlink()
    func, instance, args, kwargs = decode_data(zlib.compress(data))
    assert not target.exists()  # ours ran nothing
    assert (func, instance, args[0]) == ("app.f", None, 1)
    assert not_json_safe(list(args), "args") == "args[1] is a posix.system object"
    assert not_json_safe(kwargs, "kwargs") == "kwargs['e'] is a builtins.eval object"


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_data_of_every_protocol_round_trips(protocol: int) -> None:
    value = ("m.f", None, (1, "a", [1.5, None, True], {"k": (1, 2)}), {"s": {1}, "b": b"q", "ba": bytearray(b"z")})
    decoded = loads(pickle.dumps(value, protocol=protocol))
    assert decoded == value
    assert not_json_safe(decoded[2], "args") is None
    assert not_json_safe(decoded[3], "kwargs") == "kwargs['s'] is a set"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None)
@given(value=json_values, protocol=st.integers(0, pickle.HIGHEST_PROTOCOL))
def test_json_values_decode_to_themselves(value: Any, protocol: int) -> None:
    decoded = loads(pickle.dumps(value, protocol=protocol))
    assert decoded == value and not_json_safe(decoded, "v") is None


def test_hostile_shapes_are_refused_not_crashing() -> None:
    with pytest.raises(UnreadablePickle, match="nested"):
        loads(b"\x80\x04N" + b"\x85" * 100_000 + b".")  # a tuple 100,000 deep: hashing it would crash
    with pytest.raises(UnreadablePickle, match="values"):
        shared: list[Any] = [1] * 10
        for _ in range(8):
            shared = [shared] * 10  # 10**9 values once expanded, from a small pickle
        loads(pickle.dumps(shared))
    with pytest.raises(UnreadablePickle, match="more than"):
        decode_data(zlib.compress(b"\0" * (5 * 1024 * 1024)))  # a zlib bomb stops early
    with pytest.raises(UnreadablePickle, match="not a readable pickle"):
        loads(b"\x80\x05garbage")
    cycle: list[Any] = []
    cycle.append(cycle)
    assert not_json_safe(loads(pickle.dumps(cycle)), "args") == "args[0] contains itself"
    assert "NaN" in (not_json_safe(loads(pickle.dumps([float("nan")])), "args") or "")
    assert "not a string" in (not_json_safe(loads(pickle.dumps({1: 2})), "kwargs") or "")


def test_new_ids_are_valid_readable_and_distinct() -> None:
    assert new_id_for("report:daily").startswith("report_daily-")
    assert new_id_for("a:b") != new_id_for("a b")
    assert all(c.isalnum() or c in "_-" for c in new_id_for("x y:z/é"))


# -- end to end: data written by the real rq-scheduler ---------------------------------------


def _write_jobs(conn: redis.Redis, url: str, now: datetime) -> None:
    """Jobs of every kind, written by rq-scheduler 0.14 itself."""
    from rq_scheduler import Scheduler as RQScheduler
    from test_rq_tasks import incr

    naive = now.replace(tzinfo=None)
    old = RQScheduler(connection=conn)
    old.enqueue_at(
        naive + timedelta(hours=1), incr, url, "at", job_id="at1", meta={"team": "a"}, queue_name="foo",
        timeout=30, job_ttl=600, job_result_ttl=100, job_description="the at job",
    )  # fmt: skip
    old.enqueue_in(timedelta(minutes=30), incr, url, "in", job_id="in1")
    old.schedule(naive + timedelta(minutes=10), incr, args=[url, "iv"], interval=600, repeat=3, id="iv")
    old.cron("*/15 * * * *", incr, args=[url, "cron"], id="cr", queue_name="foo", description="every 15")
    old.cron("0 9 * * *", incr, args=[url, "local"], id="crl", use_local_timezone=True)
    old.cron("0 0 */2 * 1", incr, args=[url, "vixie"], id="vixie")
    old.enqueue_at(naive + timedelta(hours=1), "nosuchmodule_xyz.func", 1, job_id="nomod")
    old.enqueue_at(naive + timedelta(hours=1), incr, url, datetime(2020, 1, 1), job_id="notjson")
    # an id rq >= 2.8 refuses, as an older RQ stored it: the hash moved under "report:daily"
    old.enqueue_at(naive + timedelta(hours=2), incr, url, "colon", job_id="colon_tmp")
    conn.rename("rq:job:colon_tmp", "rq:job:report:daily")
    score = conn.zscore(SCHEDULED_JOBS_KEY, "colon_tmp")
    conn.zrem(SCHEDULED_JOBS_KEY, "colon_tmp")
    conn.zadd(SCHEDULED_JOBS_KEY, {"report:daily": score})  # type: ignore[dict-item]
    # a hostile hash: its data runs code under plain pickle
    old.enqueue_at(naive + timedelta(hours=1), incr, url, "x", job_id="hostile")
    evil = pickle.dumps(("test_rq_tasks.incr", None, (RunsCode(MARKER.format(pid=os.getpid())),), {}))
    conn.hset("rq:job:hostile", "data", zlib.compress(evil))


def _dump(conn: redis.Redis) -> dict[bytes, tuple[bytes | None, int]]:
    return {key: (conn.dump(key), -1 if conn.pttl(key) < 0 else 1) for key in conn.keys("*")}


def _run_cli(*args: str) -> Any:
    result = CliRunner().invoke(cli, ["migrate", "rq-scheduler", *args], catch_exceptions=False)
    return result


@pytest.mark.redis
@pytest.mark.slow
def test_migration_end_to_end(rconn: redis.Redis, rq_redis_url: str) -> None:
    from test_rq_tasks import incr

    now = datetime.now(timezone.utc).replace(microsecond=0)
    _write_jobs(rconn, rq_redis_url, now)
    source_scores = dict(rconn.zrange(SCHEDULED_JOBS_KEY, 0, -1, withscores=True))

    # a dry run writes nothing
    before = _dump(rconn)
    dry = _run_cli("--redis-url", rq_redis_url, "--path", str(TESTS_DIR), "--dry-run", "--json")
    assert _dump(rconn) == before
    report = json.loads(dry.stdout)
    assert report["dry_run"] and report["counts"]["migrated"] == 6 and dry.exit_code == 1

    # the lock of a running rq-scheduler stops it (exit 1, one error line), --force overrides
    rconn.set(LOCK_KEY, "1")
    locked = _run_cli("--redis-url", rq_redis_url, "--path", str(TESTS_DIR))
    rconn.delete(LOCK_KEY)
    assert locked.exit_code == 1 and "rq:scheduler_lock" in locked.output and _dump(rconn) == before

    result = _run_cli("--redis-url", rq_redis_url, "--path", str(TESTS_DIR), "--json")
    assert result.exit_code == 1  # some jobs were refused
    rows = {row["source_id"]: row for row in json.loads(result.stdout)["jobs"]}
    assert {k for k, r in rows.items() if r["outcome"] == "migrated"} == {"at1", "in1", "iv", "cr", "crl", "vixie"}
    assert rows["nomod"]["outcome"] == "refused" and "nosuchmodule_xyz.func" in rows["nomod"]["reason"]
    assert (
        rows["notjson"]["outcome"] == "refused" and "args[1] is a datetime.datetime object" in rows["notjson"]["reason"]
    )
    colon = rows["report:daily"]
    assert colon["outcome"] == "refused" and colon["schedule_id"] == new_id_for("report:daily")
    assert "--rename-invalid-ids" in colon["reason"]
    assert rows["hostile"]["outcome"] == "refused" and "posix.system object" in rows["hostile"]["reason"]
    assert not os.path.exists(MARKER.format(pid=os.getpid()))
    differing = json.loads(result.stdout)["cron_differences"]
    assert [d["source_id"] for d in differing] == ["vixie"] and differing[0]["first_difference"].startswith("#1:")

    # what was created
    sched = Scheduler(connection=rconn, clock=FakeClock(now))
    store = sched.store
    at1 = store.get("at1")
    assert at1 is not None and at1.schedule.trigger == At(now + timedelta(hours=1))
    assert at1.schedule.queue == "foo" and at1.schedule.meta[SOURCE_META] == "at1"
    options = at1.schedule.executor_options
    assert options["job_id"] == "at1" and options["job_timeout"] == 30 and options["ttl"] == 600
    assert options["result_ttl"] == 100 and options["description"] == "the at job" and options["meta"] == {"team": "a"}
    iv = store.get("iv")
    assert iv is not None and iv.schedule.trigger == Interval(600, start=now + timedelta(minutes=10))
    assert iv.schedule.max_runs == 3 and iv.schedule.executor_options["result_ttl"] == -1
    cr, crl = store.get("cr"), store.get("crl")
    assert cr is not None and cr.schedule.trigger == Cron("*/15 * * * *", tz="UTC") and cr.schedule.queue == "foo"
    assert crl is not None and crl.schedule.trigger.tz != "" and crl.schedule.meta["rq_scheduler"] == "cron"
    assert Job.fetch("at1", connection=rconn).func_name == "test_rq_tasks.incr"  # the source job, untouched
    assert rconn.zcard(SCHEDULED_JOBS_KEY) == len(source_scores)  # source kept without --remove-source

    # idempotent: a second run migrates nothing and changes nothing
    before = _dump(rconn)
    again = _run_cli("--redis-url", rq_redis_url, "--path", str(TESTS_DIR), "--json")
    assert _dump(rconn) == before
    assert json.loads(again.stdout)["counts"]["skipped"] == 6

    # the invalid id, accepted under its new id, from a real subprocess of the command
    process = subprocess.run(
        [sys.executable, "-m", "schedcore.cli", "migrate", "rq-scheduler", "--redis-url", rq_redis_url,
         "--path", str(TESTS_DIR), "--rename-invalid-ids", "--remove-source"],
        capture_output=True, text=True, env=worker_env(), timeout=120,
    )  # fmt: skip
    assert process.returncode == 1, process.stderr  # nomod, notjson and hostile are still refused
    new_id = new_id_for("report:daily")
    assert "migrated 1, skipped 6" in process.stdout and new_id in process.stdout
    assert Job.fetch(new_id, connection=rconn).args == (rq_redis_url, "colon")  # its placeholder
    left = {k.decode() for k in rconn.zrange(SCHEDULED_JOBS_KEY, 0, -1)}
    assert left == {"nomod", "notjson", "hostile"} and not rconn.exists("rq:job:report:daily")

    # schedcore runs each job at its times (simulated), real rq workers run them
    clock: FakeClock = sched.clock  # type: ignore[assignment]
    try:
        sched.engine.tick()
        assert Queue("default", connection=rconn).job_ids == []  # nothing due yet
        clock.advance(timedelta(minutes=10))
        sched.engine.tick()
        run_burst_worker(rq_redis_url, WORKER, queues=("default", "foo"))
        assert int(rconn.get("iv") or 0) == 1
        for _ in range(12):  # the next two hours, in 10 minute steps
            clock.advance(timedelta(minutes=10))
            sched.engine.tick()
        run_burst_worker(rq_redis_url, WORKER, queues=("default", "foo"))
        assert int(rconn.get("iv") or 0) == 3  # repeat=3: three runs in all
        assert int(rconn.get("at") or 0) == 1 and int(rconn.get("in") or 0) == 1 and int(rconn.get("colon") or 0) == 1
        assert int(rconn.get("cron") or 0) >= 8  # every 15 minutes over two hours and 10 minutes
        assert Job.fetch("at1", connection=rconn).origin == "foo"  # the one-shot ran under its own id
    finally:
        sched.executor.shutdown(wait=False)
    assert incr is not None


@pytest.mark.redis
def test_periodic_jobs_overdue_at_migration_run_once_at_once(rconn: redis.Redis, rq_redis_url: str) -> None:
    from rq_scheduler import Scheduler as RQScheduler

    now = datetime.now(timezone.utc).replace(microsecond=0)
    RQScheduler(connection=rconn).schedule(
        now.replace(tzinfo=None) - timedelta(minutes=5), "test_rq_tasks.incr", args=[rq_redis_url, "late"],
        interval=3600, id="late",
    )  # fmt: skip
    clock = FakeClock(now)
    report = migrate(rconn, clock=clock)
    assert [r.outcome for r in report.rows] == ["migrated"] and report.exit_code == 0
    sched = Scheduler(connection=rconn, clock=clock)
    try:
        sched.engine.tick()
        assert len(Queue("default", connection=rconn).job_ids) == 1  # the overdue run, now
        clock.advance(timedelta(minutes=30))
        sched.engine.tick()
        assert len(Queue("default", connection=rconn).job_ids) == 1  # then its own times
    finally:
        sched.executor.shutdown(wait=False)


@pytest.mark.redis
def test_usage_errors_exit_2(rq_redis_url: str) -> None:
    assert _run_cli("--redis-url", "nope://x").exit_code == 2
    assert _run_cli("--redis-url", rq_redis_url, "--dry-run", "--remove-source").exit_code == 2
    assert _run_cli().exit_code == 2


@pytest.mark.redis
def test_no_jobs_is_success(rconn: redis.Redis, rq_redis_url: str) -> None:
    result = _run_cli("--redis-url", rq_redis_url)
    assert result.exit_code == 0 and "no scheduled jobs" in result.output
