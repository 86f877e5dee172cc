"""schedcore: a scheduling core for Python job systems.

It decides *what runs when* -- one-shot, interval and cron schedules, catch-up after
downtime, overlap, retries with backoff -- and hands each run to an executor, while
the schedules live in a pluggable store::

    from schedcore import Scheduler, Schedule, Cron, RetryPolicy, MemoryStore, LocalExecutor

    sched = Scheduler(store=MemoryStore(), executor=LocalExecutor())
    sched.add(Schedule(id="nightly", task="app.jobs:nightly",
                       trigger=Cron("0 3 * * *", tz="Europe/Paris"), retry=RetryPolicy(max_attempts=3)))
    sched.run()
"""

from schedcore.clock import Clock, FakeClock, SystemClock
from schedcore.exceptions import (
    ConfigError,
    CorruptScheduleData,
    CorruptStore,
    ExecutorError,
    ExecutorUnavailable,
    PluginError,
    SchedcoreError,
    ScheduleExists,
    ScheduleNotFound,
    StoreError,
    StoreUnavailable,
    ValidationError,
)
from schedcore.executors import LocalExecutor
from schedcore.memory import MemoryStore
from schedcore.model import Catchup, Conflict, Overlap, RetryPolicy, Schedule, Serializer
from schedcore.protocols import Executor, Store, Trigger
from schedcore.records import Outcome, OutcomeStatus, Run, RunRecord, RunStatus
from schedcore.scheduler import Scheduler
from schedcore.triggers import At, Cron, Interval

__all__ = [
    "At",
    "Catchup",
    "Clock",
    "ConfigError",
    "Conflict",
    "CorruptScheduleData",
    "CorruptStore",
    "Cron",
    "Executor",
    "ExecutorError",
    "ExecutorUnavailable",
    "FakeClock",
    "Interval",
    "LocalExecutor",
    "MemoryStore",
    "Outcome",
    "OutcomeStatus",
    "Overlap",
    "PluginError",
    "RetryPolicy",
    "Run",
    "RunRecord",
    "RunStatus",
    "SchedcoreError",
    "Schedule",
    "ScheduleExists",
    "ScheduleNotFound",
    "Scheduler",
    "Serializer",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "SystemClock",
    "Trigger",
    "ValidationError",
]
