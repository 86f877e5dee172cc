"""The RQ executor against hostile records (issue 11, items 3 and 10), on a private real
redis-server: a record that does not decode is set aside in the quarantine hash with one
log line and never stops the other outcomes; nothing read from Redis is unpickled; the
reconciler does not cry "lost run info" over a job another executor just reported."""

# ruff: noqa: F401, F811  (pytest fixtures imported from test_rq_support)
from __future__ import annotations

import json
import pickle
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from rq.job import Job
from test_rq_support import rconn, rq_redis_url
from test_rq_unit import Collector, run_of, schedule

from schedcore.records import OutcomeStatus, Run
from schedcore_rq import RQExecutor, job_id_for
from schedcore_rq import _worker_side as worker_side
from schedcore_rq._outcomes import RunInfo, payload

POISONS = {
    "not-json": b"{not json",
    "not-utf8": b"\xff\xfe\x00garbage",
    "wrong-shape": b"[1, 2, 3]",
    "wrong-types": json.dumps({"run": 1, "sid": ["x"], "nominal": "soon", "attempt": True}).encode(),
    "missing-fields": b"{}",
    "out-of-range": json.dumps({"run": "r", "sid": "s", "nominal": 0, "attempt": -5}).encode(),
    "deep": b"[" * 100_000 + b"]" * 100_000,
}


@pytest.fixture
def executor(rconn: redis.Redis) -> Any:
    ex = RQExecutor(rconn, heartbeat_interval=0.2, reconcile_interval=3600, poll_interval=0.1)
    yield ex
    ex.shutdown(wait=False)


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname in ("ERROR", "WARNING", "CRITICAL")]


def quarantine(rconn: redis.Redis, executor: RQExecutor) -> dict[str, dict[str, Any]]:
    return {k.decode(): json.loads(v) for k, v in rconn.hgetall(executor.keys.quarantine).items()}


def vanished(executor: RQExecutor, rconn: redis.Redis, sids: list[str]) -> list[Run]:
    """Hand runs over, then delete their RQ jobs: the reconciler must report each as LOST."""
    runs = [run_of(schedule(sid)) for sid in sids]
    executor.submit(runs)
    rconn.delete(*[Job.key_for(job_id_for(r.id)) for r in runs])
    return runs


@pytest.mark.parametrize("poison", sorted(POISONS))
def test_a_bad_run_info_is_set_aside_once_and_the_others_are_reported(
    executor: RQExecutor, rconn: redis.Redis, caplog: pytest.LogCaptureFixture, poison: str
) -> None:
    runs = vanished(executor, rconn, ["a", "bad", "c"])
    bad_job = job_id_for(runs[1].id)
    rconn.hset(executor.keys.runs, bad_job, POISONS[poison])
    with caplog.at_level("INFO", logger="schedcore.rq"):
        assert executor.reconcile() == 2  # the good ones
        assert executor.reconcile() == 0  # nothing more, and the bad one is not reported again
    lines = errors(caplog)
    assert len(lines) == 1 and bad_job in lines[0] and "set aside" in lines[0]
    assert executor.outstanding() == 0
    assert rconn.hexists(executor.keys.runs, bad_job) == 0
    kept = quarantine(rconn, executor)
    assert list(kept) == [f"run-info:{bad_job}"]
    assert kept[f"run-info:{bad_job}"]["kind"] == "run-info" and kept[f"run-info:{bad_job}"]["reason"]
    got = Collector()
    executor.start(got)
    got.wait(executor, 2)
    assert sorted(o.run_id for o in got.outcomes) == sorted([runs[0].id, runs[2].id])
    assert all(o.status is OutcomeStatus.LOST for o in got.outcomes)


def _good_payload(run: Run) -> bytes:
    info = RunInfo(run_id=run.id, schedule_id=run.schedule_id, nominal_ms=0, attempt=1)
    return payload(job_id_for(run.id), info, OutcomeStatus.FAILED, error="E: x").encode()


OUTCOME_POISONS = {
    **POISONS,
    "unknown-status": json.dumps(
        {"job": "j", "run": "r", "sid": "s", "nominal": 0, "attempt": 1, "status": "exploded", "finished": 0}
    ).encode(),
    "nominal-out-of-range": json.dumps(
        {"job": "j", "run": "r", "sid": "s", "nominal": 10**30, "attempt": 1, "status": "failed", "finished": 0}
    ).encode(),
    "finished-out-of-range": json.dumps(
        {"job": "j", "run": "r", "sid": "s", "nominal": 0, "attempt": 1, "status": "failed", "finished": 10**16}
    ).encode(),
    "error-not-text": json.dumps(
        {"job": "j", "run": "r", "sid": "s", "nominal": 0, "attempt": 1, "status": "failed", "finished": 0, "error": {}}
    ).encode(),
}


@pytest.mark.parametrize("poison", sorted(OUTCOME_POISONS))
def test_a_bad_outcome_payload_is_set_aside_once_and_the_others_are_reported(
    executor: RQExecutor, rconn: redis.Redis, caplog: pytest.LogCaptureFixture, poison: str
) -> None:
    got = Collector()
    executor.start(got)
    before, after = run_of(schedule("before")), run_of(schedule("after"))
    # consumed from the right: before, the poison, after (the thread and process_outcomes share the work)
    rconn.lpush(executor.keys.outcomes, _good_payload(before), OUTCOME_POISONS[poison], _good_payload(after))
    with caplog.at_level("INFO", logger="schedcore.rq"):
        got.wait(executor, 2)
        executor.process_outcomes()
    assert sorted(o.run_id for o in got.outcomes) == sorted([before.id, after.id])
    lines = errors(caplog)
    assert len(lines) == 1 and "set aside" in lines[0]
    assert rconn.llen(executor.keys.processing) == 0 and rconn.llen(executor.keys.outcomes) == 0
    (entry,) = quarantine(rconn, executor).values()
    assert entry["kind"] == "outcome" and entry["reason"]


def test_the_outcome_loop_keeps_flowing_and_shuts_down_cleanly_past_a_bad_run_info(
    rconn: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """The original failure: the background loop's reconciler pass raised on the bad entry,
    backed off to 30 s again and again (no outcome reported), and shutdown raised."""
    ex = RQExecutor(rconn, heartbeat_interval=0.2, reconcile_interval=0.2, poll_interval=0.1, drain_timeout=5)
    runs = vanished(ex, rconn, ["bad"])
    rconn.hset(ex.keys.runs, job_id_for(runs[0].id), b"\x80not json")
    got = Collector()
    with caplog.at_level("INFO", logger="schedcore.rq"):
        ex.start(got)
        try:
            time.sleep(0.5)  # a few reconciler passes over the bad entry
            good = run_of(schedule("good"))
            ex.submit([good])
            worker_side.on_success(Job.fetch(job_id_for(good.id), connection=rconn), rconn, None)
            deadline = time.monotonic() + 5
            while not got.outcomes and time.monotonic() < deadline:
                time.sleep(0.02)
            assert [o.run_id for o in got.outcomes] == [good.id]
        finally:
            ex.shutdown(wait=True)  # raises nothing
    assert not [m for m in errors(caplog) if "outcome loop" in m]
    assert len([m for m in errors(caplog) if "set aside" in m]) == 1


class _Boom:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path(self.path).touch, ())


def test_the_reconciler_never_unpickles_a_job(executor: RQExecutor, rconn: redis.Redis, tmp_path: Path) -> None:
    """A failed job's meta (RQ's pickle serializer) crafted to run code: the reconciler reads
    only the job's status and its error text, so nothing runs in the scheduler."""
    from rq.results import Result

    run = run_of(schedule("evil"))
    executor.submit([run])
    job_id = job_id_for(run.id)
    canary = tmp_path / "pwned"
    job = Job.fetch(job_id, connection=rconn)
    Result.create_failure(job, ttl=60, exc_string="Traceback...\nValueError: real error")
    rconn.hset(Job.key_for(job_id), mapping={"status": "failed", "meta": pickle.dumps(_Boom(str(canary)))})
    got = Collector()
    assert executor.reconcile() == 1
    executor.start(got)
    got.wait(executor, 1)
    assert not canary.exists()
    assert got.outcomes[0].status is OutcomeStatus.FAILED
    assert got.outcomes[0].error == "ValueError: real error"


def test_a_job_reported_by_another_executor_mid_pass_is_not_a_lost_run_info(
    rconn: redis.Redis, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 10: executor A reads the outstanding set; before it reads the run info, executor
    B reports the job (outstanding, then run info removed). Driven by hand, step by step."""
    a = RQExecutor(rconn, reconcile_interval=3600, poll_interval=0.1)
    b = RQExecutor(rconn, reconcile_interval=3600, poll_interval=0.1)
    got = Collector()
    b._report = got  # B reports when told to (no background thread): every step is ours
    run = run_of(schedule("raced"))
    a.submit([run])
    job = Job.fetch(job_id_for(run.id), connection=rconn)
    real_zrange = rconn.zrange
    interleaved = []

    def zrange_then_b_reports(*args: Any, **kwargs: Any) -> Any:
        ids = real_zrange(*args, **kwargs)
        if not interleaved:  # step 2, between A's two reads: the worker reports, B records it
            interleaved.append(True)
            worker_side.on_success(job, rconn, None)
            assert b.process_outcomes() == 1
        return ids

    monkeypatch.setattr(rconn, "zrange", zrange_then_b_reports)
    try:
        with caplog.at_level("INFO", logger="schedcore.rq"):
            assert a.reconcile() == 0  # step 1 and 3: A's pass
        assert interleaved and [o.status for o in got.outcomes] == [OutcomeStatus.SUCCEEDED]
        assert not errors(caplog)
    finally:
        a.shutdown(wait=False)
        b.shutdown(wait=False)


def test_a_job_that_really_lost_its_run_info_is_still_reported(
    executor: RQExecutor, rconn: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    runs = vanished(executor, rconn, ["x", "y"])
    rconn.hdel(executor.keys.runs, job_id_for(runs[0].id))
    with caplog.at_level("INFO", logger="schedcore.rq"):
        assert executor.reconcile() == 1
    lost = job_id_for(runs[0].id)
    assert errors(caplog) == [f"1 outstanding RQ jobs have lost their run info ({lost}); forgetting them"]
    assert executor.outstanding() == 0


# -- wrong-typed keys and permanent errors --------------------------------------------------------


def test_a_wrong_typed_runs_hash_is_set_aside_and_the_hand_off_goes_on(
    executor: RQExecutor, rconn: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    rconn.set(executor.keys.runs, b"overwritten")
    run = run_of(schedule("w"))
    with caplog.at_level("INFO", logger="schedcore.rq"):
        assert executor.handoff([run]) == [True]
    lines = errors(caplog)
    assert len(lines) == 1 and executor.keys.runs in lines[0] and "wrong type" in lines[0]
    (damaged,) = rconn.keys(executor.keys.runs + ":damaged:*")
    assert rconn.get(damaged) == b"overwritten"
    assert rconn.type(executor.keys.runs) == b"hash" and executor.outstanding() == 1
    assert rconn.llen("rq:queue:default") == 1  # written once, after the repair (nothing half-written before)


def test_a_wrong_typed_outcomes_list_does_not_stall_the_outcome_loop(
    rconn: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    ex = RQExecutor(rconn, reconcile_interval=3600, poll_interval=0.1)
    run = run_of(schedule("o"))
    ex.submit([run])
    rconn.set(ex.keys.outcomes, b"overwritten")
    got = Collector()
    with caplog.at_level("INFO", logger="schedcore.rq"):
        ex.start(got)
        try:
            deadline = time.monotonic() + 5
            while rconn.type(ex.keys.outcomes) == b"string" and time.monotonic() < deadline:
                time.sleep(0.02)
            worker_side.on_success(Job.fetch(job_id_for(run.id), connection=rconn), rconn, None)
            while not got.outcomes and time.monotonic() < deadline:
                time.sleep(0.02)
            assert [o.run_id for o in got.outcomes] == [run.id]
        finally:
            ex.shutdown(wait=True)
    assert len([m for m in errors(caplog) if "wrong type" in m]) == 1


def test_a_missing_permission_is_reported_once_as_an_error(
    rconn: redis.Redis, rq_redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    rconn.execute_command("ACL", "SETUSER", "nobmove", "reset", "on", ">secret", "~*", "&*", "+@all", "-blmove")
    try:
        limited = redis.Redis.from_url(rq_redis_url, username="nobmove", password="secret")
        ex = RQExecutor(limited, reconcile_interval=3600, poll_interval=0.05)
        with caplog.at_level("INFO", logger="schedcore.rq"):
            ex.start(Collector())
            time.sleep(1.0)
            ex.shutdown(wait=False)
        lines = [m for m in errors(caplog) if "permission" in m]
        assert len(lines) == 1 and "NoPermissionError" in lines[0]
        assert not [m for m in errors(caplog) if "retrying" in m]
    finally:
        rconn.execute_command("ACL", "DELUSER", "nobmove")
