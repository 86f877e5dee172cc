"""Failover without waiting for the lease (issue 11, item 7): a SIGKILLed scheduler's claims
are taken back by a live one once the dead one's heartbeat expires, with real processes on a
real redis-server; and a scheduler stuck in a long hand-over keeps beating (and its claims)."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from redis_helpers import fresh_namespace, redis_server_url  # noqa: F401  (fixture)

from schedcore import At, MemoryStore, Schedule, Scheduler
from schedcore.testing.executors import CallbackExecutor
from schedcore_redis import RedisStore

NODE = str(Path(__file__).parent / "redis_helpers" / "failover_node.py")


class Node:
    """A scheduler process whose printed hand-overs are read by a thread."""

    def __init__(self, url: str, namespace: str, mode: str, lease: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, NODE, url, namespace, mode, str(lease)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def next(self, timeout: float) -> dict[str, Any]:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            self.proc.kill()
            _, err = self.proc.communicate()
            raise AssertionError(f"no hand-over within {timeout} s; stderr:\n{err[-3000:]}") from None

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=60)
        return err


@pytest.mark.redis
@pytest.mark.slow
def test_a_killed_schedulers_claims_are_dispatched_long_before_its_lease(redis_server_url: str) -> None:  # noqa: F811
    lease = 60.0
    namespace = fresh_namespace()
    store = RedisStore.from_url(redis_server_url, namespace=namespace)
    due = datetime.now(timezone.utc) + timedelta(seconds=1)
    setup = Scheduler(store, CallbackExecutor(), heartbeat=None)
    ids = [f"job{i:02d}" for i in range(20)]
    setup.add_many(Schedule(id=sid, task="schedcore.testing.tasks:noop", trigger=At(due)) for sid in ids)
    doomed = Node(redis_server_url, namespace, "hang", lease)
    survivor: Node | None = None
    try:
        held = doomed.next(timeout=60)["runs"]
        assert len(held) == len(ids)
        survivor = Node(redis_server_url, namespace, "serve", lease)
        # Stuck in its hand-over for longer than the heartbeat TTL (6 s by default), the doomed
        # scheduler still beats from its thread: nobody takes its claims while it lives.
        time.sleep(9)
        assert survivor.lines.empty(), "claims were taken from a live scheduler"
        assert {b.owner for b in store.schedulers(datetime.now(timezone.utc))} == {"hang-node", "serve-node"}
        doomed.proc.send_signal(signal.SIGKILL)
        killed = time.time()
        doomed.proc.wait(timeout=30)
        taken: list[str] = []
        first = None
        while len(taken) < len(held):
            line = survivor.next(timeout=lease + 30)
            first = line["at"] if first is None else first
            taken += line["runs"]
        assert first is not None
        failover = first - killed
        print(f"\nfailover after SIGKILL: {failover:.1f} s (lease {lease:.0f} s, default heartbeat)")
        assert sorted(taken) == sorted(held)  # the same runs (ids), each handed over once
        assert 0 < failover < lease
    finally:
        doomed.proc.kill()
        doomed.proc.communicate()
        err = survivor.stop() if survivor is not None else ""
    assert "took back its 20 claims" in err
    for stored in store.list_schedules():
        assert stored.runs_started == 1
    store.close()


def test_a_long_hand_over_does_not_stop_the_heartbeat() -> None:
    beats: list[float] = []
    store = MemoryStore()
    real = store.heartbeat

    def spy(*args: Any, **kwargs: Any) -> None:
        beats.append(time.monotonic())
        real(*args, **kwargs)

    store.heartbeat = spy  # type: ignore[method-assign]
    release = threading.Event()

    class Stuck(CallbackExecutor):
        def submit(self, runs: Any) -> None:
            release.wait(10)  # one hand-over far longer than the heartbeat TTL
            super().submit(runs)

    sched = Scheduler(store, Stuck(), heartbeat=timedelta(seconds=0.1))
    sched.add(Schedule(id="a", task="schedcore.testing.tasks:noop", trigger=At(datetime.now(timezone.utc))))
    thread = threading.Thread(target=sched.run, kwargs={"burst": True})
    thread.start()
    time.sleep(1.0)
    during = len(beats)
    release.set()
    thread.join(30)
    assert not thread.is_alive()
    assert during >= 4  # the loop was stuck in submit the whole second: the thread beat
