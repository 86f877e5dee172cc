"""A demo store for ``schedcore web --store memory --demo`` and the screenshots: a memory
store holding a few dozen schedules with an hour of run history (played in simulated time,
so it takes a second), and a scheduler that keeps running them for real."""

from __future__ import annotations

import threading
import zlib
from datetime import datetime, timedelta, timezone

from schedcore.executors import LocalExecutor
from schedcore.memory import MemoryStore
from schedcore.model import Schedule
from schedcore.plugins import get_plugin_manager
from schedcore.records import Run
from schedcore.scheduler import Scheduler
from schedcore.testing.executors import Result
from schedcore.testing.simulation import Simulation
from schedcore.triggers import Cron, Interval

__all__ = ["demo_schedules", "demo_store", "start_demo_scheduler"]

HELLO = "schedcore.demo:hello"
FAIL = "schedcore.demo:fail"


def demo_schedules() -> list[Schedule]:
    """The demo's schedules: crons in several zones, intervals, a failing one with retries, a paused one."""
    schedules = [
        Schedule(
            id="billing.invoices", task=HELLO, trigger=Cron("30 2 * * *", tz="America/New_York"), args=["billing"]
        ),
        Schedule(id="reports.daily", task=HELLO, trigger=Cron("0 7 * * 1-5", tz="Europe/Paris"), args=["reports"]),
        Schedule(id="cache.warm", task=HELLO, trigger=Interval(60), args=["cache"]),
        Schedule(id="metrics.rollup", task=HELLO, trigger=Cron("*/5 * * * *"), kwargs={"name": "rollup"}),
        Schedule(
            id="sync.partners",
            task=FAIL,
            trigger=Interval(300),
            args=["partner API answered 503 Service Unavailable"],
            retry={"max_attempts": 3, "initial_delay": 30},
        ),
        Schedule(id="backups.nightly", task=HELLO, trigger=Cron("15 1 * * *", tz="Europe/Berlin"), paused=True),
    ]
    schedules += [
        Schedule(id=f"tenant-{n:03d}.export", task=HELLO, trigger=Interval(600 + n * 60), args=[f"tenant {n}"])
        for n in range(1, 61)
    ]
    return schedules


def _handler(run: Run) -> Result:
    # Deterministic "work": durations spread by run id; the failing task fails.
    spread = zlib.crc32(run.id.encode()) % 900
    if run.task == FAIL:
        return Result(status="failed", error=f"RuntimeError: {run.args[0] if run.args else 'failed'}", duration=2)
    return Result(duration=0.1 + spread / 100)


def demo_store(now: datetime | None = None) -> MemoryStore:
    """A memory store with the demo schedules and the last hour of their runs."""
    end = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    sim = Simulation.create(_handler, start=end - timedelta(hours=1))
    sim.scheduler.add_many(demo_schedules())
    sim.run_until(end)
    store = sim.scheduler.store
    assert isinstance(store, MemoryStore)
    return store


def start_demo_scheduler(store: MemoryStore) -> Scheduler:
    """A real scheduler on ``store`` (local executor, demo tasks) running in a daemon thread."""
    # No entry-point plugins: a demo must not open ports of its own (a metrics plugin would).
    scheduler = Scheduler(
        store=store,
        executor=LocalExecutor(max_workers=4),
        owner="demo-scheduler",
        plugins=get_plugin_manager(entry_points=False),
    )
    threading.Thread(target=scheduler.run, name="schedcore-demo-scheduler", daemon=True).start()
    return scheduler


def pages_scheduler(store: MemoryStore) -> Scheduler:
    """The scheduler the pages act through: it runs nothing (the demo scheduler dispatches)."""
    from schedcore.cli import _NoExecutor

    return Scheduler(
        store=store, executor=_NoExecutor(), heartbeat=None, plugins=get_plugin_manager(entry_points=False)
    )
