"""Several processes on one SQLite file: exactly-once claims, crashes with SIGKILL, real schedulers."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from schedcore.model import Conflict
from schedcore.records import PendingKind, RunStatus
from schedcore.sqlite import SQLiteStore
from schedcore.testing.factories import at, commit_for, entry, fire_entry, make_schedule, run_id

pytestmark = pytest.mark.slow

WORKER = str(Path(__file__).parent / "sqlite_helpers" / "worker.py")


def spawn(path: Path, mode: str, now: float, lease: float, batch: int, *more: float) -> subprocess.Popen[str]:
    args = [sys.executable, WORKER, str(path), mode, str(now), str(lease), str(batch), *(str(m) for m in more)]
    if len(more) == 0:
        args.append("1")
    return subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONWARNINGS": "error"}
    )


def finish(proc: subprocess.Popen[str], timeout: float = 180) -> dict[str, object]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def populate(store: SQLiteStore, schedules: int, manual: bool) -> None:
    store.add_many([(make_schedule(f"s{i:05d}"), fire_entry(i % 60)) for i in range(schedules)], Conflict.ERROR)
    if manual:
        for i in range(schedules):
            assert store.enqueue(f"s{i:05d}", [entry("manual", i % 60 + 0.5)]) == 1


def test_several_processes_claim_every_occurrence_exactly_once(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    store = SQLiteStore(path, history_limit=1000)
    schedules, occurrences, processes = 400, 3, 4
    populate(store, schedules, manual=True)
    total = schedules * (occurrences + 1)  # three fire occurrences and one manual run each
    workers = [spawn(path, "drain", 10_000, 300, 20, occurrences) for _ in range(processes)]
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
        assert stored_all[sid].runs_started == occurrences + 1 and stored_all[sid].next_fire is None
    assert store.next_due() is None
    store.close()


@pytest.mark.parametrize("beat", [False, True], ids=["lease-expiry", "heartbeat-lapse"])
def test_a_process_killed_mid_batch_loses_and_doubles_nothing(tmp_path: Path, beat: bool) -> None:
    path = tmp_path / "shared.db"
    store = SQLiteStore(path)
    schedules = 300
    populate(store, schedules, manual=False)
    # A scheduler claims a batch at T0+100 s and dies before committing: with a 1 s lease, or
    # with a 300 s lease and a heartbeat that lapses after 1 s (taken back before the lease ends).
    lease = 300.0 if beat else 1.0
    doomed = spawn(path, "hang", 100, lease, 100, *((1, 1.0) if beat else (1,)))
    assert doomed.stdout is not None
    line = doomed.stdout.readline()
    doomed.send_signal(signal.SIGKILL)
    doomed.communicate(timeout=30)
    assert doomed.returncode == -signal.SIGKILL
    lost = dict(json.loads(line)["claimed"])
    assert len(lost) == 100
    # While its lease (and heartbeat) live, nobody else gets those entries.
    others = store.claim_due(at(100.999), limit=1000, lease=timedelta(seconds=30), owner="survivor")
    assert len(others) == schedules - 100 and not {c.schedule_id for c in others} & set(lost)
    assert all(store.commit([commit_for(c) for c in others]))
    # Another scheduler starts after one second: the entries are due again, and taken once.
    result = finish(spawn(path, "drain", 101, 30, 25))
    assert result == {"claimed": 100, "committed": 100}
    for i in range(schedules):
        sid = f"s{i:05d}"
        [record] = store.history(sid)
        assert (record.run_id, record.status) == (run_id(sid, fire_entry(i % 60)), RunStatus.DISPATCHED)
    assert store.next_due() is None
    store.close()


def test_two_schedcore_run_processes_on_one_file_one_killed(tmp_path: Path) -> None:
    """Real schedulers: each occurrence of every schedule is dispatched once (or recorded
    skipped), by one of them; the killed one's claims come back after its heartbeat lapses."""
    path = tmp_path / "shared.db"
    config = tmp_path / "jobs.toml"
    config.write_text(
        "".join(
            f'[[schedule]]\nid = "j{i}"\ntask = "schedcore.demo:hello"\nevery = 1\n'
            'catchup = "all"\ncatchup_limit = 100\nargs = ["x"]\n'
            for i in range(8)
        ),
        encoding="utf-8",
    )
    cmd = [str(Path(sys.executable).parent / "schedcore"), "run", "--config", str(config), "-S", f"path={path}"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}

    def start() -> subprocess.Popen[str]:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)

    a, b = start(), start()
    try:
        time.sleep(4)
        a.send_signal(signal.SIGKILL)
        a.communicate(timeout=30)
        time.sleep(10)  # longer than the heartbeat TTL (6 s): a's claims are taken back by b
    finally:
        b.send_signal(signal.SIGTERM)
        _, err = b.communicate(timeout=60)
        if a.poll() is None:
            a.kill()
            a.communicate()
    assert b.returncode == 0, err
    store = SQLiteStore(path)
    try:
        for i in range(8):
            history = store.history(f"j{i}", limit=50)
            dispatched = Counter(r.run_id for r in history if r.status is not RunStatus.SKIPPED)
            assert all(n == 1 for n in dispatched.values()), dispatched  # nothing twice
            nominals = sorted(r.nominal for r in history)
            assert len(nominals) == len(set(nominals))
            steps = {(b_ - a_).total_seconds() for a_, b_ in itertools.pairwise(nominals)}
            assert steps <= {1.0}, f"j{i}: an occurrence was lost: {nominals}"  # none missing
            assert len(nominals) >= 10
        assert store.stats(at(0) + timedelta(days=36500)).in_flight == 0  # nothing left claimed
    finally:
        store.close()
