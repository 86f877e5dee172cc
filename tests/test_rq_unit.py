"""RQExecutor unit tests against a private real redis-server: job ids, options, idempotent
batch hand-off, outcome mapping, the reconciler and the plugin."""

# ruff: noqa: F401, F811  (pytest fixtures imported from test_rq_support)
from __future__ import annotations

import json
import re
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st
from rq import Queue
from rq.job import Job, JobStatus
from test_rq_support import Collector, rconn, rq_redis_url

from schedcore import Interval, Schedule
from schedcore.exceptions import ExecutorUnavailable, ValidationError
from schedcore.records import Outcome, OutcomeStatus, Pending, PendingKind, Run, make_run_id
from schedcore_rq import RQExecutor, job_id_for
from schedcore_rq import _worker_side as worker_side
from schedcore_rq._outcomes import Keys

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
_DUMMY = redis.Redis(unix_socket_path="/nonexistent")
JOB_ID = re.compile(r"^[A-Za-z0-9_-]+$")


def schedule(sid: str = "s1", **kwargs: Any) -> Schedule:
    kwargs.setdefault("task", "test_rq_tasks:incr")
    kwargs.setdefault("args", ["unix:///nowhere", "k"])
    return Schedule(id=sid, trigger=Interval(60, start=T0), **kwargs)


def run_of(s: Schedule, nominal: datetime = T0, attempt: int = 1) -> Run:
    return Run.create(s, Pending(kind=PendingKind.FIRE, nominal=nominal, due=nominal, attempt=attempt))


@pytest.fixture
def executor(rconn: redis.Redis) -> Any:
    ex = RQExecutor(rconn, heartbeat_interval=0.2, reconcile_interval=3600, poll_interval=0.1)
    yield ex
    ex.shutdown(wait=False)


# -- job ids -----------------------------------------------------------------------------------


def test_job_id_is_deterministic_readable_and_in_rq_charset() -> None:
    rid = make_run_id("nightly.report", T0, 1)
    jid = job_id_for(rid)
    assert jid == job_id_for(rid)
    assert JOB_ID.match(jid)
    assert jid.startswith("sc_nightly_report_1735689600000_1_")


def test_job_ids_differ_per_attempt_nominal_namespace_and_sanitised_collisions() -> None:
    ids = {
        job_id_for(make_run_id("a.b", T0, 1)),
        job_id_for(make_run_id("a_b", T0, 1)),  # sanitises to the same readable part
        job_id_for(make_run_id("a.b", T0, 2)),
        job_id_for(make_run_id("a.b", T0 + timedelta(milliseconds=1), 1)),
        job_id_for(make_run_id("a.b", T0, 1), namespace="other"),
    }
    assert len(ids) == 5


@given(st.from_regex(r"[A-Za-z0-9._-]{1,200}", fullmatch=True), st.integers(0, 2**45), st.integers(1, 1000))
def test_job_id_charset_and_length_for_any_run(sid: str, ms: int, attempt: int) -> None:
    rid = f"{sid}@{ms}.{attempt}"
    jid = job_id_for(rid)
    assert JOB_ID.match(jid)
    assert len(jid) <= 3 + 96 + 1 + 12
    Job(connection=_DUMMY).id = jid  # RQ itself accepts it (its setter validates)


# -- validate() --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"queue_name": "x"}, "executor_options.queue_name"),
        ({"retry": 3}, "executor_options.retry"),
        ({"queue": "bad queue!"}, "executor_options.queue"),
        ({"queue": 5}, "executor_options.queue"),
        ({"job_timeout": 0}, "executor_options.job_timeout"),
        ({"job_timeout": "10"}, "executor_options.job_timeout"),
        ({"job_timeout": True}, "executor_options.job_timeout"),
        ({"result_ttl": -5}, "executor_options.result_ttl"),
        ({"ttl": 0}, "executor_options.ttl"),
        ({"ttl": -1}, "executor_options.ttl"),
        ({"failure_ttl": "1d"}, "executor_options.failure_ttl"),
        ({"at_front": "yes"}, "executor_options.at_front"),
        ({"description": 5}, "executor_options.description"),
        ({"meta": [1]}, "executor_options.meta"),
        ({"meta": {"schedcore": 1}}, "executor_options.meta"),
    ],
)
def test_validate_names_the_bad_option(executor: RQExecutor, options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        executor.validate(schedule(executor_options=options))
    assert info.value.field == field
    assert field in str(info.value)


def test_validate_accepts_every_documented_option(executor: RQExecutor) -> None:
    executor.validate(
        schedule(
            executor_options={
                "queue": "high",
                "job_timeout": 30,
                "result_ttl": 0,
                "ttl": 600,
                "failure_ttl": -1,
                "at_front": True,
                "description": "hello",
                "meta": {"team": "data"},
            }
        )
    )


def test_validate_refuses_arguments_the_rq_serializer_refuses(rconn: redis.Redis, pickle_key: bytes) -> None:
    ex = RQExecutor(rconn, serializer="rq.serializers.JSONSerializer")
    with pytest.raises(ValidationError) as info:
        ex.validate(schedule(args=[{1, 2}], serializer="pickle"))
    assert info.value.field == "args"


def test_constructor_refuses_bad_queue_and_namespace(rconn: redis.Redis) -> None:
    with pytest.raises(ValidationError):
        RQExecutor(rconn, queue="no spaces")
    with pytest.raises(ValidationError):
        RQExecutor(rconn, namespace="a:b")


# -- hand-off ----------------------------------------------------------------------------------


def test_same_run_twice_is_one_job(executor: RQExecutor, rconn: redis.Redis) -> None:
    run = run_of(schedule())
    assert executor.handoff([run]) == [True]
    assert executor.handoff([run]) == [False]
    executor.submit([run])
    q = Queue("default", connection=rconn)
    assert q.job_ids == [job_id_for(run.id)]
    job = q.fetch_job(job_id_for(run.id))
    assert job.func_name == "schedcore_rq._worker_side.run_task"
    assert job.args == ("test_rq_tasks:incr", "unix:///nowhere", "k")
    assert job.meta["schedcore"]["run"] == run.id
    assert executor.outstanding() == 1


def test_repeat_hand_off_never_resets_an_existing_job(executor: RQExecutor, rconn: redis.Redis) -> None:
    run = run_of(schedule())
    executor.submit([run])
    jid = job_id_for(run.id)
    rconn.hset(Job.key_for(jid), "status", "started")  # a worker took it
    rconn.delete(Keys("default").handed(jid))  # even with the marker gone (expired)
    assert executor.handoff([run]) == [False]
    assert rconn.hget(Job.key_for(jid), "status") == b"started"
    assert Queue("default", connection=rconn).count == 1


def test_concurrent_hand_offs_of_the_same_runs_make_one_job_each(rconn: redis.Redis) -> None:
    runs = [run_of(schedule(f"s{i}")) for i in range(50)]
    results: list[list[bool]] = []

    def go() -> None:
        ex = RQExecutor(redis.Redis(connection_pool=rconn.connection_pool))
        results.append(ex.handoff(runs))

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [sum(col) for col in zip(*results, strict=True)] == [1] * 50
    assert Queue("default", connection=rconn).count == 50


def test_a_batch_is_one_round_trip(
    executor: RQExecutor,
    rconn: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs = [run_of(schedule(f"s{i}"), T0, 1) for i in range(250)]
    executor.handoff(runs[:1])  # warm up: queue server version, script cache
    sent: list[str] = []
    probe = rconn.connection_pool.get_connection()
    rconn.connection_pool.release(probe)
    connection_class = type(probe)
    original = connection_class.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        sent.append(repr(command)[:150])
        original(self, command, check_health)

    monkeypatch.setattr(connection_class, "send_packed_command", counting)
    assert executor.handoff(runs[1:]) == [True] * 249
    monkeypatch.undo()
    assert len(sent) == 1, sent  # one write to the socket: 3 script calls in one pipeline
    assert Queue("default", connection=rconn).count == 250


def test_hand_off_survives_a_script_flush(executor: RQExecutor, rconn: redis.Redis) -> None:
    executor.handoff([run_of(schedule("a"))])
    rconn.script_flush()
    assert executor.handoff([run_of(schedule("b"))]) == [True]


def test_submit_nowait_hands_over_once_read_and_survives_a_script_flush(
    executor: RQExecutor, rconn: redis.Redis
) -> None:
    runs = [run_of(schedule(sid)) for sid in ("a", "b", "c")]
    executor.submit_nowait(runs[:1])()
    rconn.script_flush()  # the early call meets NOSCRIPT: sent again, synchronously
    handed = executor.submit_nowait(runs)
    assert Queue("default", connection=rconn).count >= 1
    handed()
    assert sorted(Queue("default", connection=rconn).job_ids) == sorted(job_id_for(r.id, "default") for r in runs)
    executor.submit_nowait(runs)()  # repeats: nothing new
    assert Queue("default", connection=rconn).count == 3


@given(
    run_id=st.text(min_size=1, max_size=30),
    sid=st.text(min_size=1, max_size=30),
    nominal=st.integers(0, 2**53),
    attempt=st.integers(1, 10_000),
)
def test_run_info_json_is_json_dumps_of_its_dict(run_id: str, sid: str, nominal: int, attempt: int) -> None:
    from schedcore_rq._outcomes import RunInfo

    info = RunInfo(run_id=run_id, schedule_id=sid, nominal_ms=nominal, attempt=attempt)
    assert info.to_json() == json.dumps(info.to_dict(), separators=(",", ":"))
    assert RunInfo.from_dict(json.loads(info.to_json())) == info


def test_options_reach_the_rq_job(executor: RQExecutor, rconn: redis.Redis) -> None:
    s = schedule(
        queue="ignored-by-option",
        executor_options={
            "queue": "high",
            "job_timeout": 30,
            "result_ttl": 5,
            "ttl": 600,
            "failure_ttl": 100,
            "description": "nightly",
            "meta": {"team": "data"},
        },
    )
    executor.submit([run_of(s), run_of(schedule("front", executor_options={"queue": "high", "at_front": True}))])
    q = Queue("high", connection=rconn)
    assert q.job_ids[0] == job_id_for(run_of(schedule("front")).id)
    job = q.fetch_job(job_id_for(run_of(s).id))
    assert (job.timeout, job.result_ttl, job.ttl, job.failure_ttl) == (30, 5, 600, 100)
    assert job.description == "nightly"
    assert job.meta["team"] == "data"
    assert 590 < rconn.ttl(job.key) <= 600


def test_schedule_queue_is_used_and_default_falls_back_to_the_executors(rconn: redis.Redis) -> None:
    ex = RQExecutor(rconn, queue="main")
    ex.submit([run_of(schedule("a")), run_of(schedule("b", queue="low"))])
    assert Queue("main", connection=rconn).count == 1
    assert Queue("low", connection=rconn).count == 1


def test_a_run_rq_cannot_serialize_is_a_failed_run_not_an_error(rconn: redis.Redis, pickle_key: bytes) -> None:
    ex = RQExecutor(rconn, serializer="rq.serializers.JSONSerializer", reconcile_interval=3600)
    got = Collector()
    ex.start(got)
    try:
        bad = run_of(schedule("bad", args=[{1, 2}], serializer="pickle"))
        good = run_of(schedule("good"))
        assert ex.handoff([bad, good]) == [True, True]
        assert ex.handoff([bad]) == [False]
        got.wait(ex, 1)
        assert [(o.run_id, o.status) for o in got.outcomes] == [(bad.id, OutcomeStatus.FAILED)]
        assert "TypeError" in (got.outcomes[0].error or "")
        assert Queue("default", connection=rconn).count == 1
    finally:
        ex.shutdown()


def test_redis_errors_become_executor_unavailable() -> None:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    dead = redis.Redis(unix_socket_path="/nonexistent/redis.sock", retry=Retry(NoBackoff(), 0))
    ex = RQExecutor(dead)
    with pytest.raises(ExecutorUnavailable):
        ex.submit([run_of(schedule())])
    with pytest.raises(ExecutorUnavailable):
        ex.reconcile()
    with pytest.raises(ExecutorUnavailable):
        ex.outstanding()


def test_submit_after_shutdown_is_refused(executor: RQExecutor) -> None:
    executor.shutdown()
    with pytest.raises(ExecutorUnavailable):
        executor.submit([run_of(schedule())])


# -- outcomes ----------------------------------------------------------------------------------


def handed_job(executor: RQExecutor, rconn: redis.Redis, sid: str = "s1") -> tuple[Run, Job]:
    run = run_of(schedule(sid))
    executor.submit([run])
    return run, Job.fetch(job_id_for(run.id), connection=rconn)


def test_callbacks_map_to_outcomes(executor: RQExecutor, rconn: redis.Redis) -> None:
    from rq.exceptions import AbandonedJobError

    got = Collector()
    executor.start(got)
    runs = {}
    for sid, call in [
        ("ok", lambda j: worker_side.on_success(j, rconn, 42)),
        ("bad", lambda j: worker_side.on_failure(j, rconn, ValueError, ValueError("nope"), None)),
        ("gone", lambda j: worker_side.on_failure(j, rconn, AbandonedJobError, AbandonedJobError(), None)),
        ("halt", lambda j: worker_side.on_stopped(j, rconn)),
    ]:
        run, job = handed_job(executor, rconn, sid)
        runs[sid] = run
        call(job)
        call(job)  # a repeat callback reports nothing more
    got.wait(executor, 4)
    by_sid = {o.schedule_id: o for o in got.outcomes}
    assert len(got.outcomes) == 4
    assert by_sid["ok"].status is OutcomeStatus.SUCCEEDED
    assert by_sid["bad"].status is OutcomeStatus.FAILED
    assert by_sid["bad"].error == "ValueError: nope"
    assert by_sid["gone"].status is OutcomeStatus.LOST
    assert by_sid["halt"].status is OutcomeStatus.STOPPED
    assert by_sid["ok"].run_id == runs["ok"].id and by_sid["ok"].nominal == T0 and by_sid["ok"].attempt == 1
    assert executor.outstanding() == 0
    assert rconn.llen(executor.keys.processing) == 0
    assert rconn.hlen(executor.keys.runs) == 0


def test_failure_callback_reports_the_tasks_traceback(executor: RQExecutor, rconn: redis.Redis) -> None:
    from rq.exceptions import AbandonedJobError

    def task() -> None:
        raise ValueError("nope")

    try:
        task()
    except ValueError as exc:
        raised = exc
    got = Collector()
    executor.start(got)
    _, failed = handed_job(executor, rconn, "bad")
    worker_side.on_failure(failed, rconn, ValueError, raised, raised.__traceback__)
    _, gone = handed_job(executor, rconn, "gone")
    worker_side.on_failure(gone, rconn, AbandonedJobError, AbandonedJobError(), None)
    got.wait(executor, 2)
    by_sid = {o.schedule_id: o for o in got.outcomes}
    trace = by_sid["bad"].traceback
    assert trace is not None and trace.startswith("Traceback (most recent call last):")
    assert 'raise ValueError("nope")' in trace and trace.endswith("ValueError: nope")
    assert by_sid["gone"].status is OutcomeStatus.LOST and by_sid["gone"].traceback is None


def test_a_payloads_traceback_is_read_defensively() -> None:
    """A wrong-typed traceback is ignored and a long one trimmed: the outcome still counts."""
    from schedcore.tracebacks import trim_traceback
    from schedcore_rq._outcomes import RunInfo, outcome_from_payload, payload

    info = RunInfo(run_id="s1@0.1", schedule_id="s1", nominal_ms=0, attempt=1)
    body = json.loads(payload("j", info, OutcomeStatus.FAILED, error="E: x", traceback="T\nE: x"))
    assert body["tb"] == "T\nE: x"
    assert "tb" not in json.loads(payload("j", info, OutcomeStatus.SUCCEEDED))
    huge = "T\n" + "  frame\n" * 100_000 + "E: x"
    for tb, want in [(42, None), (["x"], None), ({"a": 1}, None), ("T\nE: x", "T\nE: x"), (huge, trim_traceback(huge))]:
        job_id, outcome = outcome_from_payload(json.dumps({**body, "tb": tb}))
        assert (job_id, outcome.status, outcome.error, outcome.traceback) == ("j", OutcomeStatus.FAILED, "E: x", want)


def test_run_task_imports_and_calls_and_wraps_import_errors() -> None:
    assert worker_side.run_task("schedcore.testing.tasks:echo", 5) == 5
    with pytest.raises(ImportError, match="nope"):
        worker_side.run_task("nope.nowhere:f")
    with pytest.raises(ImportError, match="missing"):
        worker_side.run_task("schedcore.testing.tasks:missing")


@pytest.mark.parametrize(
    ("status", "exc", "expected", "error_part"),
    [
        ("finished", None, OutcomeStatus.SUCCEEDED, None),
        ("failed", "Traceback...\nKeyError: 'x'", OutcomeStatus.FAILED, "KeyError: 'x'"),
        ("failed", "Work-horse terminated unexpectedly; waitpid returned 9 (signal 9); ", OutcomeStatus.LOST, "died"),
        ("stopped", None, OutcomeStatus.STOPPED, None),
        ("canceled", None, OutcomeStatus.STOPPED, None),
    ],
)
def test_reconciler_reports_jobs_whose_callback_never_came(
    executor: RQExecutor,
    rconn: redis.Redis,
    status: str,
    exc: str | None,
    expected: OutcomeStatus,
    error_part: str | None,
) -> None:
    got = Collector()
    _run, job = handed_job(executor, rconn)
    rconn.hset(job.key, "status", status)
    if exc:
        from rq.results import Result

        Result.create_failure(job, ttl=60, exc_string=exc)
    assert executor.reconcile() == 1
    assert executor.reconcile() == 0
    executor.start(got)
    got.wait(executor, 1)
    assert [o.status for o in got.outcomes] == [expected]
    if error_part:
        assert error_part in (got.outcomes[0].error or "")
    # The traceback RQ recorded, when it recorded more than one line (not for a killed work-horse).
    assert got.outcomes[0].traceback == (exc.strip() if exc and "\n" in exc else None)


def test_reconciler_leaves_queued_and_live_started_jobs_alone(executor: RQExecutor, rconn: redis.Redis) -> None:
    _, _queued = handed_job(executor, rconn, "q")
    _, started = handed_job(executor, rconn, "s")
    rconn.hset(started.key, "status", JobStatus.STARTED.value)
    rconn.set(executor.keys.alive(started.id), 1, px=60_000)
    for _ in range(3):
        assert executor.reconcile() == 0
    assert executor.outstanding() == 2


def test_reconciler_reports_a_vanished_job_as_lost(executor: RQExecutor, rconn: redis.Redis) -> None:
    got = Collector()
    run, job = handed_job(executor, rconn)
    rconn.delete(job.key)
    assert executor.reconcile() == 1
    executor.start(got)
    got.wait(executor, 1)
    assert [(o.run_id, o.status) for o in got.outcomes] == [(run.id, OutcomeStatus.LOST)]
    assert "vanished" in (got.outcomes[0].error or "")


def test_a_reconciler_pass_is_chunked_and_stops_with_the_executor(executor: RQExecutor, rconn: redis.Redis) -> None:
    """A pass over a backlog yields between chunks and ends early at shutdown (the next pass finishes it)."""
    from schedcore_rq import _executor

    runs = [run_of(schedule(f"v{i}")) for i in range(3 * _executor._RECONCILE_CHUNK)]
    assert executor.handoff(runs) == [True] * len(runs)
    rconn.delete(*[Job.key_for(job_id_for(r.id)) for r in runs])  # every one vanished: each is LOST
    executor._stop.set()  # as shutdown does: the pass stops after the chunk in hand
    assert executor.reconcile() == 0
    executor._stop.clear()
    assert executor.reconcile() == len(runs)
    assert executor.outstanding() == 0


def test_outstanding_jobs_without_run_info_are_forgotten_with_one_log_line(
    executor: RQExecutor, rconn: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    runs = [run_of(schedule(f"o{i}")) for i in range(10)]
    executor.handoff(runs)
    rconn.delete(executor.keys.runs)  # a hand-edited or partly flushed database
    with caplog.at_level("ERROR", logger="schedcore.rq"):
        assert executor.reconcile() == 0
    assert executor.outstanding() == 0
    assert [r.getMessage() for r in caplog.records if "run info" in r.getMessage()] == [
        f"10 outstanding RQ jobs have lost their run info ({', '.join(job_id_for(r.id) for r in runs[:3])}, ...); "
        "forgetting them"
    ]


def test_reconciler_reports_a_silent_started_job_as_lost_only_after_the_grace(
    executor: RQExecutor,
    rconn: redis.Redis,
) -> None:
    got = Collector()
    _run, job = handed_job(executor, rconn)
    rconn.hset(job.key, "status", JobStatus.STARTED.value)
    assert executor.reconcile() == 0  # first seen silent: only a suspect
    time.sleep(0.7)  # three heartbeat intervals of 0.2 s
    assert executor.reconcile() == 1
    executor.start(got)
    got.wait(executor, 1)
    assert [o.status for o in got.outcomes] == [OutcomeStatus.LOST]


def test_callback_after_the_reconciler_decided_reports_nothing(executor: RQExecutor, rconn: redis.Redis) -> None:
    got = Collector()
    _, job = handed_job(executor, rconn)
    rconn.delete(job.key)
    executor.reconcile()
    worker_side.on_success(job, rconn, None)
    executor.start(got)
    got.wait(executor, 1)
    assert [o.status for o in got.outcomes] == [OutcomeStatus.LOST]


def test_outcomes_are_reported_at_least_once_across_a_crash(rconn: redis.Redis) -> None:
    first = RQExecutor(rconn, reconcile_interval=3600)
    run, job = handed_job(first, rconn)
    worker_side.on_success(job, rconn, None)

    def crash(outcome: Outcome) -> None:
        raise RuntimeError("store down")

    first.start(crash)
    first.process_outcomes()  # taken into the processing list, report failed
    first.shutdown(wait=False)
    assert rconn.llen(first.keys.processing) == 1
    got = Collector()
    second = RQExecutor(rconn, reconcile_interval=3600, poll_interval=0.1)
    second.start(got)  # recovers the processing list
    try:
        deadline = time.monotonic() + 5
        while not got.outcomes and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [(o.run_id, o.status) for o in got.outcomes] == [(run.id, OutcomeStatus.SUCCEEDED)]
        assert rconn.llen(second.keys.processing) == 0
    finally:
        second.shutdown()


def test_background_thread_reports_without_being_asked(rconn: redis.Redis) -> None:
    ex = RQExecutor(rconn, reconcile_interval=3600, poll_interval=0.1)
    got = Collector()
    ex.start(got)
    try:
        _, job = handed_job(ex, rconn)
        worker_side.on_success(job, rconn, None)
        deadline = time.monotonic() + 5
        while not got.outcomes and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(got.outcomes) == 1
    finally:
        ex.shutdown()


def test_malformed_payloads_are_dropped(executor: RQExecutor, rconn: redis.Redis) -> None:
    got = Collector()
    executor.start(got)
    rconn.lpush(executor.keys.outcomes, b"not json", json.dumps({"job": "x"}))
    executor.process_outcomes()
    time.sleep(0.3)
    assert got.outcomes == []
    assert rconn.llen(executor.keys.processing) == 0
    assert rconn.llen(executor.keys.outcomes) == 0


def test_keys_share_one_hash_tag(executor: RQExecutor) -> None:
    keys = [executor.keys.outstanding, executor.keys.runs, executor.keys.outcomes, executor.keys.processing]
    keys += [executor.keys.handed("j"), executor.keys.alive("j")]
    assert all(k.startswith("{schedcore:default}:rq:") for k in keys)


# -- plugin ------------------------------------------------------------------------------------


def test_plugin_registers_the_rq_executor(rq_redis_url: str) -> None:
    from schedcore.plugins import Hooks, get_plugin_manager

    hooks = Hooks(get_plugin_manager())
    assert "rq" in hooks.executor_factories()
    ex = hooks.create_executor("rq", {"redis_url": rq_redis_url, "queue": "jobs"})
    assert isinstance(ex, RQExecutor)
    assert ex.queue_for(schedule()) == "jobs"


def test_plugin_refuses_unknown_options_and_builds_a_worker_pool(rq_redis_url: str) -> None:
    from schedcore.exceptions import ConfigError
    from schedcore_rq import WorkerPool
    from schedcore_rq._plugin import create_executor, worker_pool

    with pytest.raises(ConfigError, match="redis_ulr"):
        create_executor({"redis_ulr": "x"})
    assert worker_pool({"redis_url": rq_redis_url}) is None
    pool = worker_pool({"redis_url": rq_redis_url, "workers": "2", "queue": "jobs"})
    assert isinstance(pool, WorkerPool)
    assert pool.n == 2 and pool.queues == ["jobs"]


def test_shutdown_with_a_drain_timeout_waits_for_the_jobs_it_handed_over(rconn: redis.Redis) -> None:
    ex = RQExecutor(rconn, reconcile_interval=3600, poll_interval=0.1, drain_timeout=10)
    got = Collector()
    ex.start(got)
    _, job = handed_job(ex, rconn)
    timer = threading.Timer(0.5, worker_side.on_success, args=(job, rconn, None))
    timer.start()
    started = time.monotonic()
    ex.shutdown(wait=True)
    assert 0.4 < time.monotonic() - started < 5
    assert [o.status for o in got.outcomes] == [OutcomeStatus.SUCCEEDED]
    ex.shutdown(wait=True)  # idempotent, returns at once
    assert len(got.outcomes) == 1


def test_shutdown_without_a_pool_does_not_wait_for_remote_workers(rconn: redis.Redis) -> None:
    ex = RQExecutor(rconn, reconcile_interval=3600, poll_interval=0.1)
    ex.start(Collector())
    handed_job(ex, rconn)
    started = time.monotonic()
    ex.shutdown(wait=True)
    assert time.monotonic() - started < 2
    assert ex.outstanding() == 1  # reported later by the next executor on the namespace


def test_without_rq_installed_asking_for_the_rq_executor_is_a_clear_error() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "sys.modules['rq'] = None\n"
        "from schedcore.exceptions import PluginError\n"
        "from schedcore_rq._plugin import create_executor\n"
        "try:\n"
        "    create_executor({})\n"
        "except PluginError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert "pip install 'schedcore-engine[rq]'" in out


def test_payloads_stuck_in_processing_are_swept_by_a_running_executor(rconn: redis.Redis) -> None:
    from schedcore_rq._jobs import run_info
    from schedcore_rq._outcomes import payload

    ex = RQExecutor(rconn, reconcile_interval=0.2, poll_interval=0.1)
    got = Collector()
    ex.start(got)  # nothing to recover at start
    deadline = time.monotonic() + 5
    while ex._blocked_id is None and time.monotonic() < deadline:  # the start-up recovery is over
        time.sleep(0.01)
    try:
        run = run_of(schedule("stuck"))
        old = payload(job_id_for(run.id), run_info(run), OutcomeStatus.SUCCEEDED, finished_ms=1_000)
        fresh_run = run_of(schedule("fresh"))
        fresh = payload(job_id_for(fresh_run.id), run_info(fresh_run), OutcomeStatus.SUCCEEDED)
        rconn.lpush(ex.keys.processing, old, fresh)  # as left by an executor that died mid-report
        deadline = time.monotonic() + 5
        while not got.outcomes and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        assert [o.run_id for o in got.outcomes] == [run.id]  # the fresh one may be someone's in-flight report
        assert rconn.lrange(ex.keys.processing, 0, -1) == [fresh.encode()]
    finally:
        ex.shutdown(wait=False)


def test_every_redis_exception_is_translated(monkeypatch: pytest.MonkeyPatch, rconn: redis.Redis) -> None:
    import inspect

    import redis.exceptions

    classes = [c for c in vars(redis.exceptions).values() if inspect.isclass(c) and issubclass(c, Exception)]
    assert len(classes) > 10
    ex = RQExecutor(rconn)
    for cls in classes:

        def boom(*args: Any, _cls: type[Exception] = cls, **kwargs: Any) -> Any:
            exc = _cls.__new__(_cls)
            Exception.__init__(exc, "simulated")
            raise exc

        def late_boom(*args: Any, _boom: Any = boom, **kwargs: Any) -> Any:
            return _boom  # the call went out; reading its reply fails

        for start in (boom, late_boom):  # sending fails / reading the reply fails
            monkeypatch.setattr(ex, "_start_handoff", start)
            with pytest.raises(ExecutorUnavailable, match=cls.__name__):
                ex.submit([run_of(schedule())])
            with pytest.raises(ExecutorUnavailable, match=cls.__name__):
                ex.submit_nowait([run_of(schedule())])()
