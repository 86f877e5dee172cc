"""The engine on RedisStore: a real Scheduler survives a Redis restart and two share a store."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from redis_helpers import fresh_namespace, private_server, redis_server_url  # noqa: F401  (fixtures)

from schedcore import Interval, Schedule, Scheduler
from schedcore.clock import FakeClock
from schedcore.plugins import get_plugin_manager
from schedcore.records import RunStatus
from schedcore.testing.executors import CallbackExecutor, Result
from schedcore.testing.factories import NOOP, T0, at
from schedcore.testing.redis_server import RedisServer
from schedcore_redis import RedisStore

pytestmark = pytest.mark.redis


def every_minute(sid: str) -> Schedule:
    return Schedule(id=sid, task=NOOP, trigger=Interval(60, start=T0))


def test_a_scheduler_survives_a_redis_restart(private_server: RedisServer) -> None:  # noqa: F811
    clock = FakeClock(T0)
    store = RedisStore.from_url(private_server.url, namespace="survive")
    executor = CallbackExecutor(lambda run: Result(duration=1), clock=clock)
    scheduler = Scheduler(store, executor, clock=clock, plugins=get_plugin_manager(entry_points=False))
    for sid in ("a", "b"):
        scheduler.add(every_minute(sid))
    assert scheduler.tick() == at(60)  # dispatched the runs at T0 (they finish at T0+1)
    clock.set(at(60))  # their outcomes are reported ...
    private_server.stop()  # ... while Redis is away (its data saved)
    wake = scheduler.tick()  # logs and backs off: never raises
    assert wake is not None and at(60) < wake <= at(90)
    private_server.start()
    clock.set(wake)
    for _ in range(5):
        wake = scheduler.tick()
        if wake is not None and wake > clock.now():
            clock.set(min(wake, at(125)))
    clock.set(at(125))
    scheduler.tick()
    ids = [r.id for r in executor.executed]
    assert len(ids) == len(set(ids))  # nothing ran twice
    for sid in ("a", "b"):
        history = store.history(sid)
        assert sorted(r.nominal for r in history) == [T0, at(60), at(120)]  # nothing lost
        assert Counter(r.status for r in history)[RunStatus.SUCCEEDED] >= 2
    store.close()


def test_a_running_scheduler_loop_rides_out_an_outage(private_server: RedisServer) -> None:  # noqa: F811
    store = RedisStore.from_url(private_server.url, namespace="loop")
    executor = CallbackExecutor()
    scheduler = Scheduler(
        store,
        executor,
        plugins=get_plugin_manager(entry_points=False),
        lease=timedelta(seconds=5),
        max_backoff=timedelta(milliseconds=200),
    )
    scheduler.add(Schedule(id="tick", task=NOOP, trigger=Interval(0.1)))
    loop = threading.Thread(target=scheduler.run, daemon=True)
    loop.start()
    try:
        deadline = time.monotonic() + 10
        while len(executor.executed) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(executor.executed) >= 3
        private_server.stop()
        time.sleep(0.5)  # the loop meets StoreUnavailable and backs off
        assert loop.is_alive()
        private_server.start()
        before = len(executor.executed)
        deadline = time.monotonic() + 10
        while len(executor.executed) < before + 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(executor.executed) >= before + 3  # it resumed by itself
    finally:
        scheduler.stop()
        loop.join(timeout=10)
        store.close()
    ids = [r.id for r in executor.executed]
    assert len(ids) == len(set(ids))


def test_two_schedulers_share_one_redis_store(redis_server_url: str) -> None:  # noqa: F811
    namespace = fresh_namespace()
    clock = FakeClock(T0)
    executor = CallbackExecutor(clock=clock)
    pm = get_plugin_manager(entry_points=False)
    stores = [RedisStore.from_url(redis_server_url, namespace=namespace, history_limit=100) for _ in range(2)]
    a, b = (
        Scheduler(s, executor, clock=clock, plugins=pm, owner=o, batch_size=3)
        for s, o in zip(stores, "ab", strict=True)
    )
    for i in range(10):
        a.add(Schedule(id=f"s{i}", task=NOOP, trigger=Interval(60 + i, start=T0)))
    while clock.now() < at(600):
        wakes = [w for w in (a.tick(), b.tick(), a.tick()) if w is not None]
        clock.set(min(wakes))
    ids = [r.id for r in executor.submitted]
    assert len(ids) == len(set(ids))
    for i in range(10):
        expected = [at(s) for s in range(0, 600, 60 + i)]
        assert [r.nominal for r in executor.executed if r.schedule_id == f"s{i}"] == expected
    for s in stores:
        s.close()
