"""``python -m bench --only sqlite [--quick]``: the SQLite store on this machine.

Three scenarios, each on a fresh file in a temporary directory: **add** (schedules created
per second with ``Scheduler.add_many``, schedules built beforehand), **dispatch** (due runs
handed to the local executor per second, while its outcomes are recorded in the same file)
and **lateness** (two ``Scheduler.run`` processes on one file, 100 schedules firing once a
second each at distinct offsets -- 100 fires/s -- for a while; lateness is a run's
``dispatched_at`` minus its nominal fire time, from the history in the file). The results
go to ``bench/results-sqlite-<mode>.json``; docs/benchmarks.md quotes them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.common import (
    due_cron,
    median,
    percentile,
    rate,
    sc_dispatch_due,
    sc_fire_at,
    sc_populate,
    sc_schedule,
    sc_scheduler,
    utcnow,
)

MODES: dict[str, dict[str, Any]] = {
    "quick": {"reps": 1, "add": 5_000, "dispatch": 10_000, "late_rate": 100, "late_seconds": 15.0},
    "full": {"reps": 3, "add": 5_000, "dispatch": 50_000, "late_rate": 100, "late_seconds": 60.0},
}
WARMUP = 3.0  # seconds of the lateness run not counted (processes starting, first catch-up)


def add(directory: Path, n: int) -> float:
    from schedcore import LocalExecutor
    from schedcore.sqlite import SQLiteStore

    store = SQLiteStore(directory / "add.db")
    sched = sc_scheduler(store, LocalExecutor())
    schedules = [sc_schedule(i) for i in range(n)]
    started = time.perf_counter()
    sched.add_many(schedules)
    elapsed = time.perf_counter() - started
    store.close()
    return rate(n, elapsed)


def dispatch(directory: Path, n: int) -> float:
    from schedcore import LocalExecutor
    from schedcore.sqlite import SQLiteStore

    store = SQLiteStore(directory / "dispatch.db")
    executor = LocalExecutor(max_workers=4)
    sched = sc_scheduler(store, executor)
    sched.tick()  # starts the executor
    due = utcnow() - timedelta(seconds=1)
    from schedcore import Cron

    trigger, first = Cron(due_cron(due)), sc_fire_at(due)  # one trigger, silent around ``due``
    sc_populate(store, ((sc_schedule(i, trigger), first) for i in range(n)))
    elapsed = sc_dispatch_due(sched)
    handed = sum(s.runs_started for s in store.list_schedules(limit=n))
    assert handed == n, f"sqlite dispatch: {handed} of {n} handed over"
    executor.shutdown(wait=True)
    store.close()
    return rate(n, elapsed)


def lateness(directory: Path, per_second: int, seconds: float) -> dict[str, Any]:
    from schedcore import Interval, LocalExecutor, Schedule
    from schedcore.sqlite import SQLiteStore

    path = directory / "lateness.db"
    store = SQLiteStore(path, history_limit=int(seconds) + 30)
    base = utcnow().replace(microsecond=0) + timedelta(seconds=2)
    step = timedelta(seconds=1) / per_second
    store_items = [
        Schedule(id=f"l{i:04d}", task="bench.tasks:noop", trigger=Interval(1, start=base + i * step), catchup="skip")
        for i in range(per_second)
    ]
    sched = sc_scheduler(store, LocalExecutor())  # only to add: its executor never starts
    sched.add_many(store_items)
    procs = [
        subprocess.Popen([sys.executable, "-m", "bench.sqlite", "worker", str(path)], stderr=subprocess.DEVNULL)
        for _ in range(2)
    ]
    window_start = base + timedelta(seconds=WARMUP)
    time.sleep(2 + WARMUP + seconds)
    window_end = utcnow()
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        proc.wait(timeout=60)
    late: list[float] = []
    for item in store_items:
        for record in store.history(item.id, limit=int(seconds) + 30):
            if record.dispatched_at is not None and window_start <= record.nominal <= window_end:
                late.append((record.dispatched_at - record.nominal).total_seconds() * 1000)
    expected = int(per_second * (window_end - window_start).total_seconds())
    store.close()
    return {
        "fires": len(late),
        "expected_about": expected,
        "p50_ms": percentile(late, 50),
        "p99_ms": percentile(late, 99),
        "max_ms": max(late) if late else float("nan"),
    }


def worker(path: str) -> None:
    """One scheduler process of the lateness scenario: runs until SIGTERM."""
    from schedcore import LocalExecutor
    from schedcore.sqlite import SQLiteStore

    store = SQLiteStore(path)
    sc_scheduler(store, LocalExecutor(max_workers=4)).run()
    store.close()


def run_sqlite(mode: str, machine: dict[str, Any], versions: dict[str, Any]) -> dict[str, Any]:
    cfg = MODES[mode]
    results: dict[str, Any] = {"mode": mode, "config": cfg, "machine": machine, "versions": versions}
    with tempfile.TemporaryDirectory(prefix="schedcore-bench-sqlite-") as tmp:
        adds, dispatches = [], []
        for rep in range(cfg["reps"]):
            rep_dir = Path(tmp) / str(rep)
            rep_dir.mkdir()
            adds.append(add(rep_dir, cfg["add"]))
            dispatches.append(dispatch(rep_dir, cfg["dispatch"]))
        results["add_per_s"] = {"median": median(adds), "runs": adds}
        results["dispatch_per_s"] = {"median": median(dispatches), "runs": dispatches}
        results["lateness"] = lateness(Path(tmp), cfg["late_rate"], cfg["late_seconds"])
    results["machine"]["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return results


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        worker(sys.argv[2])
    else:
        print(json.dumps(run_sqlite(sys.argv[1] if len(sys.argv) > 1 else "quick", {}, {}), indent=2))
