"""Job templates kept in Redis: shared by schedules with one queue and options, sent once,
re-sent when Redis lost them, and always giving exactly the job RQ itself would write."""

# ruff: noqa: F401, F811  (pytest fixtures imported from test_rq_support)
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis
from rq import Queue
from rq.job import Job
from test_rq_support import rconn, rq_redis_url

from schedcore import Interval, Schedule
from schedcore.records import Pending, PendingKind, Run
from schedcore_rq import RQExecutor, job_id_for
from schedcore_rq._jobs import JobTemplate, parse_options, run_info
from schedcore_rq._outcomes import META_KEY

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def schedule(sid: str, *args: Any, **options: Any) -> Schedule:
    return Schedule(
        id=sid, task="test_rq_tasks:incr", trigger=Interval(60, start=T0), args=args, executor_options=options
    )


def run_of(s: Schedule, minute: int = 0) -> Run:
    nominal = T0 + timedelta(minutes=minute)
    return Run.create(s, Pending(kind=PendingKind.FIRE, nominal=nominal, due=nominal))


@pytest.fixture
def executor(rconn: redis.Redis) -> Any:
    ex = RQExecutor(rconn, heartbeat_interval=0.2, reconcile_interval=3600, poll_interval=0.1)
    yield ex
    ex.shutdown(wait=False)


def template_keys(ex: RQExecutor, rconn: redis.Redis) -> list[str]:
    return sorted(k.decode() for k in rconn.keys(ex.keys.template("*")))


def test_schedules_with_one_queue_and_options_share_one_template_in_redis(
    executor: RQExecutor, rconn: redis.Redis
) -> None:
    schedules = [schedule(f"s{i}", "unix:///nowhere", f"key-{i}", i) for i in range(5)]
    schedules.append(schedule("t", "unix:///nowhere", "k", queue="other", job_timeout=30))
    for minute in range(3):  # the first run of each is captured from RQ; later ones use templates
        for s in schedules:
            assert executor.handoff([run_of(s, minute)]) == [True]
    runs = [run_of(s, 2) for s in schedules[:5]]
    other = run_of(schedules[5], 2)
    templates = {t.digest for t, _data in (v for v in executor._templates.values() if v is not None)}
    assert len(templates) == 2
    assert template_keys(executor, rconn) == sorted(executor.keys.template(d) for d in templates)
    for i, run in enumerate(runs):  # each job has its own arguments, run info and description
        job = Job.fetch(job_id_for(run.id), connection=rconn)
        assert job.args == ("test_rq_tasks:incr", "unix:///nowhere", f"key-{i}", i)
        assert job.meta[META_KEY]["run"] == run.id
        assert job.description == f"test_rq_tasks:incr [schedcore {run.id}]"
    job = Job.fetch(job_id_for(other.id), connection=rconn)
    assert job.origin == "other" and job.timeout == 30


def test_one_schedules_template_renders_another_schedules_job_as_rq_writes_it(executor: RQExecutor) -> None:
    options = {"meta": {"team": "ops"}, "result_ttl": 0}
    for s in [schedule("a", "x", 1, **options), schedule("b", "y", 2, **options), schedule("c", **options)]:
        executor.handoff([run_of(s, 0)])  # captured from RQ: template shared by digest, data per schedule
    (shared,) = {t.digest for t, _data in (v for v in executor._templates.values() if v is not None)}
    for s in [schedule("b", "y", 2, **options), schedule("c", **options)]:
        run = run_of(s, 3)
        job_id, info = job_id_for(run.id), run_info(run)
        template, _rest = executor._job_plan(run, job_id, info)
        assert template is not None and template.digest == shared
        fast = executor._job_commands(run, job_id, info)
        parsed = parse_options(run.executor_options)
        meta = {**parsed.meta, META_KEY: {**info.to_dict(), "ns": executor.namespace, "hb": 0.2}}
        slow = executor._capture(run, job_id, parsed, meta, f"{run.task} [schedcore {run.id}]")
        assert len(fast) == len(slow)
        for got, want in zip(fast, slow, strict=True):  # equal but for the timestamps
            times = {i + 1 for i, a in enumerate(want) if a in ("created_at", "enqueued_at")}
            assert [a for i, a in enumerate(got) if i not in times] == [a for i, a in enumerate(want) if i not in times]
        assert any("data" in command for command in fast)  # the arguments are a slot of the shared template


def test_a_template_redis_lost_is_sent_again(executor: RQExecutor, rconn: redis.Redis) -> None:
    b, c = schedule("b", "y"), schedule("c", "z")
    assert executor.handoff([run_of(b, 0), run_of(c, 0)]) == [True, True]  # captured from RQ
    assert executor.handoff([run_of(b, 1)]) == [True]  # templated: the template is stored
    (key,) = template_keys(executor, rconn)
    assert rconn.pttl(key) > 86_400_000  # kept for days, refreshed by every use
    rconn.delete(key)  # evicted, expired or flushed
    assert executor.handoff([run_of(b, 2), run_of(c, 2)]) == [True, True]
    assert template_keys(executor, rconn) == [key]
    assert Queue("default", connection=rconn).count == 5
    assert Job.fetch(job_id_for(run_of(c, 2).id), connection=rconn).args == ("test_rq_tasks:incr", "z")
    rconn.flushall()  # the template and the script are gone at once
    assert executor.handoff([run_of(b, 3)]) == [True]
    assert Job.fetch(job_id_for(run_of(b, 3).id), connection=rconn).args == ("test_rq_tasks:incr", "y")


def test_another_executor_reuses_the_stored_template(executor: RQExecutor, rconn: redis.Redis) -> None:
    a = schedule("a", "x")
    executor.handoff([run_of(a, 0)])
    executor.handoff([run_of(a, 1)])
    second = RQExecutor(rconn, heartbeat_interval=0.2, reconcile_interval=3600, poll_interval=0.1)
    try:
        second.handoff([run_of(a, 2)])  # captured: it does not know the template is stored yet
        second._stored.add(next(iter(executor._stored)))
        assert second.handoff([run_of(a, 3)]) == [True]  # sends only the template's key
        assert len(template_keys(executor, rconn)) == 1
        assert Job.fetch(job_id_for(run_of(a, 3).id), connection=rconn).args[1:] == ("x",)
    finally:
        second.shutdown(wait=False)


def test_capture_refuses_commands_with_an_unknown_per_run_value() -> None:
    commands = [("HSET", "rq:job:J1", "description", "d", "meta", b"m", "origin", "q-J1-R1x"), ("RPUSH", "q", "J1")]
    assert JobTemplate.capture(list(commands), "J1", "d", b"m", "R1") is None  # "R1" inside a value it cannot slot
    ok = [("HSET", "rq:job:J1", "description", "d", "meta", b"m", "data", b"args"), ("RPUSH", "q", "J1")]
    template = JobTemplate.capture(list(ok), "J1", "d", b"m", "R1")
    assert template is not None and template.data_of(list(ok)) == b"args"
    assert template.render("J2", "d2", b"m2", "t", b"other") == [
        ("HSET", "rq:job:J2", "description", "d2", "meta", b"m2", "data", b"other"),
        ("RPUSH", "q", "J2"),
    ]


def test_other_arguments_with_known_options_need_no_capture(
    executor: RQExecutor, rconn: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = {"meta": {"team": "ops"}, "job_timeout": 60}
    executor.handoff([run_of(schedule("first", "a", **options))])  # captured: proves the data rule
    captured: list[str] = []
    original = executor._capture

    def counting(run: Run, *args: Any) -> Any:
        captured.append(run.id)
        return original(run, *args)

    monkeypatch.setattr(executor, "_capture", counting)
    runs = [run_of(schedule(f"s{i}", "unix:///nowhere", {"n": i}, i, **options)) for i in range(20)]
    assert executor.handoff(runs) == [True] * 20
    other = run_of(schedule("other", "x", queue="elsewhere"))  # other options: captured once
    assert executor.handoff([other]) == [True]
    assert captured == [other.id]
    monkeypatch.undo()
    for i, run in enumerate(runs[:3]):
        job = Job.fetch(job_id_for(run.id), connection=rconn)
        assert job.args == ("test_rq_tasks:incr", "unix:///nowhere", {"n": i}, i)
        assert job.timeout == 60 and job.meta["team"] == "ops"
    run = run_of(schedule("s99", "y", {"deep": [1, 2]}, **options), 5)  # templated == what RQ writes
    job_id, info = job_id_for(run.id), run_info(run)
    fast = executor._job_commands(run, job_id, info)
    parsed = parse_options(run.executor_options)
    meta = {**parsed.meta, META_KEY: {**info.to_dict(), "ns": executor.namespace, "hb": 0.2}}
    slow = executor._capture(run, job_id, parsed, meta, f"{run.task} [schedcore {run.id}]")
    for got, want in zip(fast, slow, strict=True):
        times = {i + 1 for i, a in enumerate(want) if a in ("created_at", "enqueued_at")}
        assert [a for i, a in enumerate(got) if i not in times] == [a for i, a in enumerate(want) if i not in times]


def test_one_call_with_several_data_blobs_a_bad_run_and_odd_text(executor: RQExecutor, rconn: redis.Redis) -> None:
    """The hand-off script gets each distinct ``data`` once per call, a run's short fields
    joined in one argument and its meta and description after them: over several chunks,
    with templated, captured, failing and repeated runs mixed, every job is RQ's own."""
    import json

    import attrs

    odd = {"description": "line one\nline two \u00e9 \u2713"}  # newlines and UTF-8 in the tail
    a, b, c, d = schedule("a", "x"), schedule("b", "y", 2), schedule("c", {"z": [1]}), schedule("d", "w", **odd)
    assert executor.handoff([run_of(a, 0), run_of(d, 0)]) == [True, True]  # captured from RQ
    runs = [run_of(s, minute) for minute in range(1, 60) for s in (a, b, c)]  # a templated, b and c by shape
    runs.append(run_of(d, 1))
    bad = attrs.evolve(run_of(schedule("bad"), 1), executor_options={"job_timeout": "soon"})
    strange = attrs.evolve(run_of(a, 70), id='a@"\u00e9\\.1', schedule_id="a\u00e9")  # escaped in JSON, hashed id
    runs[50:50] = [bad, run_of(a, 0), strange]  # a failure and a repeat inside a chunk of templated runs
    assert len(runs) > 100  # more than one script call (chunk)
    handed = executor.handoff(runs)
    assert handed == [run.id != run_of(a, 0).id for run in runs]
    assert Queue("default", connection=rconn).count == 2 + len(runs) - 2
    for run in runs:
        if run is bad or run.id == run_of(a, 0).id:
            continue
        job_id = job_id_for(run.id)
        job = Job.fetch(job_id, connection=rconn)
        schedule_of = {"a": a, "b": b, "c": c, "d": d, "a\u00e9": a}[run.schedule_id]
        assert job.args == ("test_rq_tasks:incr", *schedule_of.args)
        info = run_info(run)
        assert job.meta == {META_KEY: {**info.to_dict(), "ns": executor.namespace, "hb": 0.2}}
        assert job.description == (odd["description"] if run.schedule_id == "d" else f"{run.task} [schedcore {run.id}]")
        assert rconn.hget(executor.keys.runs, job_id) == json.dumps(info.to_dict(), separators=(",", ":")).encode()
        assert rconn.exists(executor.keys.handed(job_id)) == 1
    (failure,) = rconn.lrange(executor.keys.outcomes, 0, -1)
    assert json.loads(failure)["run"] == bad.id and json.loads(failure)["status"] == "failed"
    assert not rconn.exists(Job.key_for(job_id_for(bad.id)))
    assert executor.handoff([*runs[:5], bad]) == [False] * 6  # a repeat writes nothing, the failure included
