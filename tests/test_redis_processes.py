"""Several scheduler processes on one real Redis: exactly-once claims, crashes with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from redis_helpers import fresh_namespace, redis_server_url  # noqa: F401  (fixture)

from schedcore.model import Conflict
from schedcore.records import PendingKind, RunStatus
from schedcore.testing.factories import at, commit_for, entry, fire_entry, make_schedule, run_id
from schedcore_redis import RedisStore

pytestmark = [pytest.mark.redis, pytest.mark.slow]

WORKER = str(Path(__file__).parent / "redis_helpers" / "worker.py")


def spawn(
    url: str, namespace: str, mode: str, now: float, lease: float, batch: int, occurrences: int = 1
) -> subprocess.Popen[str]:
    args = [sys.executable, WORKER, url, namespace, mode, str(now), str(lease), str(batch), str(occurrences)]
    return subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONWARNINGS": "error"}
    )


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> dict[str, object]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def populate(store: RedisStore, schedules: int, manual: bool) -> None:
    for i in range(schedules):
        sid = f"s{i:05d}"
        store.add(make_schedule(sid), fire_entry(i % 60), Conflict.ERROR)
        if manual:
            assert store.enqueue(sid, [entry("manual", i % 60 + 0.5)]) == 1


def test_several_processes_claim_every_occurrence_exactly_once(redis_server_url: str) -> None:  # noqa: F811
    namespace = fresh_namespace()
    store = RedisStore.from_url(redis_server_url, namespace=namespace, history_limit=1000)
    schedules, occurrences, processes = 600, 3, 4
    populate(store, schedules, manual=True)
    total = schedules * (occurrences + 1)  # three fire occurrences and one manual run each
    workers = [spawn(redis_server_url, namespace, "drain", 10_000, 300, 40, occurrences) for _ in range(processes)]
    results = [finish(w) for w in workers]
    assert sum(int(r["claimed"]) for r in results) == total  # type: ignore[call-overload]
    assert sum(int(r["committed"]) for r in results) == total  # type: ignore[call-overload]
    stored_all = {s.schedule.id: s for s in store.list_schedules(limit=schedules)}
    assert len(stored_all) == schedules
    for i in range(schedules):
        sid = f"s{i:05d}"
        history = store.history(sid, limit=100)
        ids = Counter(r.run_id for r in history)
        assert all(n == 1 for n in ids.values()), (sid, ids)
        fires = sorted(r.nominal for r in history if r.kind is PendingKind.FIRE)
        assert fires == [at(i % 60 + 60 * k) for k in range(occurrences)], sid
        assert [r.kind for r in history].count(PendingKind.MANUAL) == 1
        stored = stored_all[sid]
        assert stored.runs_started == occurrences + 1 and stored.next_fire is None and stored.running
    assert store.next_due() is None
    store.close()


def test_a_process_killed_mid_batch_loses_and_doubles_nothing(redis_server_url: str) -> None:  # noqa: F811
    namespace = fresh_namespace()
    store = RedisStore.from_url(redis_server_url, namespace=namespace)
    schedules, lease = 300, 1.0
    populate(store, schedules, manual=False)
    # A scheduler claims a batch at T0+100 s with a 1 s lease ... and dies before committing.
    doomed = spawn(redis_server_url, namespace, "hang", 100, lease, 100)
    assert doomed.stdout is not None
    line = doomed.stdout.readline()
    doomed.send_signal(signal.SIGKILL)
    doomed.communicate(timeout=30)  # reaps it and closes the pipes
    assert doomed.returncode == -signal.SIGKILL
    lost = dict(json.loads(line)["claimed"])
    assert len(lost) == 100
    # Under the live lease nobody else gets those entries: the survivors take the others only.
    others = store.claim_due(at(100.999), limit=1000, lease=timedelta(seconds=30), owner="survivor")
    assert len(others) == schedules - 100 and not {c.schedule_id for c in others} & set(lost)
    assert all(store.commit([commit_for(c) for c in others]))
    assert store.next_due() == at(101)  # the dead scheduler's lease expiry
    # Another scheduler starts: within one lease period the entries are due again, and taken once.
    result = finish(spawn(redis_server_url, namespace, "drain", 100 + lease, 30, 25))
    assert result == {"claimed": 100, "committed": 100}
    for i in range(schedules):
        sid = f"s{i:05d}"
        [record] = store.history(sid)
        assert (record.run_id, record.status) == (run_id(sid, fire_entry(i % 60)), RunStatus.DISPATCHED)
    assert store.next_due() is None
    # The dead scheduler's tokens are fenced off: a late commit with them writes nothing.
    assert store.claim_due(at(10_000), limit=10, lease=timedelta(seconds=1), owner="x") == []
    store.close()
