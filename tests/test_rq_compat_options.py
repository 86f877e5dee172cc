"""rq-scheduler's ``depends_on``, ``on_success`` and ``on_failure`` through schedcore_rq.compat and
the RQ executor's options, and RQ's job id rule: against a real redis-server and real ``rq worker``
processes, on whichever RQ is installed (CI runs this file on rq 2.x and 3.x)."""

# ruff: noqa: F401, F811  (pytest fixtures imported from test_rq_support)
from __future__ import annotations

import string
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis
import rq.job
from hypothesis import given
from hypothesis import strategies as st
from rq import Callback, Queue
from rq.job import Dependency, Job, JobStatus
from rq.registry import DeferredJobRegistry
from test_rq_compat import T0, WORKER, clock, sched
from test_rq_support import rconn, rq_redis_url, run_burst_worker, wait_for

from schedcore.clock import FakeClock
from schedcore.exceptions import ValidationError
from schedcore.model import Schedule
from schedcore.records import RunStatus
from schedcore.triggers import At
from schedcore_rq._jobs import parse_options, valid_job_id
from schedcore_rq.compat import Scheduler
from schedcore_rq.compat._mapping import callback_options, check_job_id, dependency_options


def _finished(sched: Scheduler, schedule_id: str) -> RunStatus:
    """The status the engine recorded for the schedule's run, once the worker reported it."""

    def reported() -> bool:
        sched.engine.tick()  # records the outcomes the executor heard
        return any(r.finished_at is not None for r in sched.engine.history(schedule_id))

    wait_for(reported, what=f"the outcome of {schedule_id}")
    return sched.engine.history(schedule_id)[0].status


def _status(rconn: redis.Redis, job_id: str) -> str:
    return Job.fetch(job_id, connection=rconn).get_status()


# -- RQ's job id rule -------------------------------------------------------------------------


def _rq_accepts(job_id: str) -> bool:
    """The installed RQ's own check of a custom job id."""
    try:
        rq.job.validate_job_id(job_id)
    except ValueError:
        return False
    return True


_ID_CHARS = string.ascii_letters + string.digits + "_-:. /@é\n"


@given(st.text(alphabet=_ID_CHARS, min_size=1, max_size=200))
def test_job_id_rule_is_rqs_own(job_id: str) -> None:
    """check_job_id (the compat layer) and the executor's ``job_id`` option accept exactly the ids
    the installed RQ accepts, up to schedcore's 200-character limit."""
    try:
        check_job_id(job_id)
        ours = True
    except ValidationError:
        ours = False
    assert ours == _rq_accepts(job_id)
    assert valid_job_id(job_id) == _rq_accepts(job_id)


def test_job_id_rule_edges() -> None:
    assert _rq_accepts("a" * 201)  # RQ has no length limit; schedcore keeps ids to 200 characters
    with pytest.raises(ValidationError, match="1-200"):
        check_job_id("a" * 201)
    for bad in ("", "has:colon", "has space", "dot.ted"):
        assert not _rq_accepts(bad) if bad else True
        with pytest.raises(ValidationError):
            check_job_id(bad)


# -- the options, without Redis -----------------------------------------------------------------


def test_dependency_and_callback_options_are_validated() -> None:
    options = parse_options({"depends_on": ["a", "b", "a"], "on_success": "app.hooks:done", "on_failure_timeout": 5.5})
    assert options.depends_on == ("a", "b") and options.on_success == "app.hooks:done"
    assert options.on_failure_timeout == 6 and not options.templated
    assert parse_options({"depends_on": "a"}).depends_on == ("a",)
    assert parse_options({"queue": "q", "at_front": True}).templated  # the hot path is unchanged
    for bad, field in (
        ({"depends_on": []}, "executor_options.depends_on"),
        ({"depends_on": ["ok", "no:colon"]}, "executor_options.depends_on"),
        ({"depends_on": [f"j{i}" for i in range(101)]}, "executor_options.depends_on"),
        ({"allow_dependency_failures": "yes"}, "executor_options.allow_dependency_failures"),
        ({"on_success": "os.system"}, "executor_options.on_success"),
        ({"on_failure": 3}, "executor_options.on_failure"),
        ({"on_success_timeout": 0}, "executor_options.on_success_timeout"),
    ):
        with pytest.raises(ValidationError) as caught:
            parse_options(bad)
        assert caught.value.field == field


def test_rq_style_arguments_become_json_options() -> None:
    from test_rq_tasks import record_success

    job = Job.create("builtins.print", id="dep-job", connection=redis.Redis())
    assert dependency_options("x") == {"depends_on": ["x"]}
    assert dependency_options([job, "x", "x"]) == {"depends_on": ["dep-job", "x"]}
    assert dependency_options(Dependency(jobs=["a", job], allow_failure=True, enqueue_at_front=True)) == {
        "depends_on": ["a", "dep-job"],
        "allow_dependency_failures": True,
        "at_front": True,
    }
    with pytest.raises(ValidationError, match="depends_on"):
        dependency_options([1])
    assert callback_options("on_success", record_success) == {"on_success": "test_rq_tasks:record_success"}
    assert callback_options("on_success", "test_rq_tasks.record_success") == {
        "on_success": "test_rq_tasks:record_success"
    }
    assert callback_options("on_failure", Callback(record_success, timeout=7)) == {
        "on_failure": "test_rq_tasks:record_success",
        "on_failure_timeout": 7,
    }
    with pytest.raises(ValidationError) as caught:
        callback_options("on_success", lambda *a: None)
    assert caught.value.field == "on_success"


# -- depends_on, against a real redis-server and real workers ------------------------------------


pytestmark = pytest.mark.redis


def test_a_run_waits_in_the_deferred_registry_until_its_dependency_finished(
    sched: Scheduler, rconn: redis.Redis, rq_redis_url: str
) -> None:
    from test_rq_tasks import incr

    queue = Queue("default", connection=rconn)
    first = queue.enqueue(incr, rq_redis_url, "first", job_id="first")  # queued: not finished
    job = sched.enqueue_at(T0, incr, rq_redis_url, "after", job_id="after", depends_on=first)
    assert job.id == "after"
    sched.engine.tick()
    assert queue.job_ids == ["first"]  # not pushed: deferred
    assert DeferredJobRegistry("default", connection=rconn).get_job_ids() == ["after"]
    assert _status(rconn, "after") == JobStatus.DEFERRED
    assert Job.fetch("after", connection=rconn).dependency_ids == ["first"]
    sched.engine.tick()  # handed over once: a second tick changes nothing
    assert DeferredJobRegistry("default", connection=rconn).get_job_ids() == ["after"]
    run_burst_worker(rq_redis_url, WORKER)  # runs "first", then RQ enqueues "after" and runs it
    assert int(rconn.get("first") or 0) == 1 and int(rconn.get("after") or 0) == 1
    assert _status(rconn, "after") == JobStatus.FINISHED
    assert sched.executor.outstanding() == 0  # schedcore heard the outcome


def test_a_finished_or_missing_dependency_does_not_defer(
    sched: Scheduler, rconn: redis.Redis, rq_redis_url: str
) -> None:
    from test_rq_tasks import incr

    queue = Queue("default", connection=rconn)
    queue.enqueue(incr, rq_redis_url, "done", job_id="done")
    run_burst_worker(rq_redis_url, WORKER)
    assert _status(rconn, "done") == JobStatus.FINISHED
    sched.enqueue_at(T0, "builtins.print", job_id="on-done", depends_on="done")
    sched.enqueue_at(T0, "builtins.print", job_id="on-gone", depends_on=["never-existed"])
    sched.engine.tick()
    assert sorted(queue.job_ids) == ["on-done", "on-gone"]  # RQ skips a dependency it cannot fetch
    assert DeferredJobRegistry("default", connection=rconn).get_job_ids() == []


def test_a_failed_dependency_defers_unless_failures_are_allowed(
    sched: Scheduler, rconn: redis.Redis, rq_redis_url: str
) -> None:
    from test_rq_tasks import fail

    queue = Queue("default", connection=rconn)
    queue.enqueue(fail, rq_redis_url, "failed", job_id="broken")
    run_burst_worker(rq_redis_url, WORKER)
    assert _status(rconn, "broken") == JobStatus.FAILED
    sched.enqueue_at(T0, "builtins.print", job_id="strict", depends_on="broken")
    sched.enqueue_at(T0, "builtins.print", job_id="lenient", depends_on=Dependency(jobs=["broken"], allow_failure=True))
    sched.engine.tick()
    assert queue.job_ids == ["lenient"]
    assert DeferredJobRegistry("default", connection=rconn).get_job_ids() == ["strict"]


def test_each_run_of_a_periodic_job_waits_for_its_dependencies(
    sched: Scheduler, rconn: redis.Redis, rq_redis_url: str, clock: FakeClock
) -> None:
    from test_rq_tasks import incr

    queue = Queue("low", connection=rconn)
    queue.enqueue(incr, rq_redis_url, "gate", job_id="gate")
    sched.schedule(T0, incr, args=[rq_redis_url, "tick"], interval=60, repeat=2, id="p", depends_on="gate",
                   queue_name="low", at_front=True)  # fmt: skip
    sched.engine.tick()
    clock.advance(timedelta(seconds=60))
    sched.engine.tick()
    deferred = DeferredJobRegistry("low", connection=rconn).get_job_ids()
    assert len(deferred) == 2 and queue.job_ids == ["gate"]
    run_burst_worker(rq_redis_url, WORKER, queues=("low",))
    assert int(rconn.get("tick") or 0) == 2 and sched.executor.outstanding() == 0


def test_exactly_once_hand_off_of_a_run_with_dependencies(rconn: redis.Redis) -> None:
    from schedcore.model import Serializer
    from schedcore.records import PendingKind, Run

    sched = Scheduler(connection=rconn, clock=FakeClock(T0))
    try:
        Queue("default", connection=rconn).enqueue("builtins.print", job_id="dep")
        run = Run(
            id="s@1.1", schedule_id="s", task="builtins:print", args=(), kwargs={}, nominal=T0, due=T0, attempt=1,
            kind=PendingKind.FIRE, queue="default", executor_options={"depends_on": ["dep"]},
            serializer=Serializer.JSON,
        )  # fmt: skip
        assert sched.executor.handoff([run]) == [True]
        assert sched.executor.handoff([run]) == [False]  # nothing written twice
        [job_id] = DeferredJobRegistry("default", connection=rconn).get_job_ids()
        assert rconn.smembers(Job.dependents_key_for("dep")) == {job_id.encode()}
        assert sched.executor._templates == {}  # such runs never make a job template
    finally:
        sched.executor.shutdown(wait=False)


# -- callbacks ------------------------------------------------------------------------------------


def test_callbacks_run_on_the_worker_and_the_run_is_still_reported(
    sched: Scheduler, rconn: redis.Redis, rq_redis_url: str
) -> None:
    from test_rq_tasks import fail, incr, record_failure, record_success

    sched.enqueue_at(T0, incr, rq_redis_url, "ok", job_id="good", on_success=Callback(record_success, timeout=30))
    sched.enqueue_at(T0, fail, rq_redis_url, "ko", job_id="bad", on_failure="test_rq_tasks.record_failure")
    sched.cron("* * * * *", incr, args=[rq_redis_url, "c"], id="cb", on_failure=record_failure, repeat=1)
    stored = sched.store.get("good")
    assert stored is not None and stored.schedule.executor_options["on_success"] == "test_rq_tasks:record_success"
    sched.engine.tick()
    good = Job.fetch("good", connection=rconn)
    assert good.success_callback_timeout == 30
    run_burst_worker(rq_redis_url, WORKER)
    assert rconn.hgetall("callbacks:success") == {b"good": b"1"}
    assert rconn.hgetall("callbacks:failure") == {b"bad": b"RuntimeError: task failed on purpose"}
    assert _finished(sched, "good") == RunStatus.SUCCEEDED and _finished(sched, "bad") == RunStatus.FAILED


def test_a_failing_success_callback_fails_the_run(sched: Scheduler, rconn: redis.Redis, rq_redis_url: str) -> None:
    from test_rq_tasks import failing_callback, incr

    sched.enqueue_at(T0, incr, rq_redis_url, "ran", job_id="cb-fails", on_success=failing_callback)
    sched.engine.tick()
    run_burst_worker(rq_redis_url, WORKER)
    assert int(rconn.get("ran") or 0) == 1 and _status(rconn, "cb-fails") == JobStatus.FAILED
    assert _finished(sched, "cb-fails") == RunStatus.FAILED
    [record] = sched.engine.history("cb-fails")
    assert "callback failed on purpose" in (record.error or "")


def test_the_allow_list_applies_to_callbacks(
    rconn: redis.Redis, rq_redis_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_rq_tasks import incr

    monkeypatch.setenv("SCHEDCORE_ALLOWED_TASKS", "test_rq_tasks:incr")
    sched = Scheduler(connection=rconn, clock=clock)
    try:
        with pytest.raises(ValidationError) as caught:
            sched.enqueue_at(T0, incr, rq_redis_url, "x", job_id="evil", on_success="json.dumps")
        assert caught.value.field == "executor_options.on_success"
        assert not rconn.exists(Job.key_for("evil"))
        with pytest.raises(ValidationError):  # the engine checks executor options too, not only compat
            sched.engine.add(
                Schedule(
                    id="raw", task="test_rq_tasks:incr", trigger=At(T0), executor_options={"on_failure": "os:system"}
                )
            )
    finally:
        sched.executor.shutdown(wait=False)


def test_the_worker_refuses_a_callback_outside_its_allow_list(
    sched: Scheduler, rconn: redis.Redis, rq_redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A callback written into Redis behind the scheduler's back is checked on the worker too."""
    from test_rq_tasks import incr, record_success

    sched.enqueue_at(T0, incr, rq_redis_url, "ran", job_id="guarded", on_success=record_success)
    sched.engine.tick()
    monkeypatch.setenv("SCHEDCORE_ALLOWED_TASKS", "test_rq_tasks:incr")  # the worker's environment
    run_burst_worker(rq_redis_url, WORKER)
    assert int(rconn.get("ran") or 0) == 1 and not rconn.exists("callbacks:success")
    assert _status(rconn, "guarded") == JobStatus.FAILED


# -- get_jobs and count read the store's time index -----------------------------------------------


def test_iter_by_due_pages_through_ties_in_order(sched: Scheduler) -> None:
    from schedcore_rq.compat._mapping import one_shot_schedule

    schedules = [
        one_shot_schedule(f"j{i:02d}", T0 + timedelta(minutes=i % 5), "builtins.print", queue="default")
        for i in range(25)
    ]
    sched.engine.add_many(schedules)
    expected = sorted((i % 5, f"j{i:02d}") for i in range(25))
    got = [s.schedule.id for s in sched.store.iter_by_due(page_size=3)]  # pages end inside runs of ties
    assert got == [job_id for _, job_id in expected]
    until = T0 + timedelta(minutes=1)
    assert [s.schedule.id for s in sched.store.iter_by_due(until, page_size=4)] == [
        job_id for minute, job_id in expected if minute <= 1
    ]


def test_get_jobs_reads_the_index_lazily_and_lists_only_compat_jobs(
    sched: Scheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    from schedcore_rq.compat._mapping import one_shot_schedule

    sched.engine.add_many(
        one_shot_schedule(f"j{i:03d}", T0 + timedelta(seconds=i), "builtins.print", queue="default") for i in range(150)
    )
    sched.engine.add(Schedule(id="native", task="builtins:print", trigger=At(T0)))  # not an rq-scheduler job
    read: list[int] = []
    read_many = sched.store._read_many
    monkeypatch.setattr(sched.store, "_read_many", lambda ids: read.append(len(ids)) or read_many(ids))
    first = next(sched._scheduled_by_time(None))
    assert first.schedule.id == "j000" and read == [100]  # one page, not every schedule
    assert sched.count() == 150 and sched.count(until=T0 + timedelta(seconds=9)) == 10
    job = sched.enqueue_at(T0 - timedelta(seconds=1), "builtins.print", job_id="earliest")
    assert [j.id for j in sched.get_jobs(offset=0, length=1)] == [job.id]
