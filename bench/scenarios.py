"""The scenarios. Each returns ``{system: figure-or-dict}`` for one repetition (or all of them)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from datetime import timedelta
from typing import Any

import redis

from bench.common import (
    CRON,
    QUEUE,
    TASK,
    client,
    cpu_seconds,
    flush,
    percentile,
    rate,
    result_of,
    rq_populate_at,
    rq_queue,
    rq_scheduler,
    rqs_populate_at,
    rqs_populate_cron,
    rqs_scheduler,
    sc_cron_items,
    sc_dispatch_due,
    sc_executor,
    sc_populate,
    sc_schedule,
    sc_scheduler,
    sc_store,
    sc_store_on,
    spawn,
    used_memory,
    utcnow,
)
from bench.proc import GO, READY
from schedcore.testing.redis_server import RedisServer

SC, RQS, RQS1, RQ = "schedcore", "rq-scheduler", "rq-scheduler -i 1", "rq (enqueue_at)"
SC_BULK = "schedcore, pipelined"  # the store's own ADD script, pipelined: what a bulk add API would reach


def _queue_len(conn: redis.Redis) -> int:
    return int(conn.llen(rq_queue(conn).key))


def _stop(proc: subprocess.Popen[str], timeout: float = 30) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def _await_ready(conn: redis.Redis, n: int, timeout: float = 60) -> None:
    for _ in range(n):
        if conn.blpop([READY], timeout=timeout) is None:
            raise RuntimeError("a benchmark process did not start")


# -- add ----------------------------------------------------------------------------------------


def add(server: RedisServer, n: int) -> dict[str, float]:
    """Schedules created per second through each system's normal API, one at a time."""
    from schedcore._planner import first_fire

    conn = client(server)
    out: dict[str, float] = {}

    flush(conn)
    sched = sc_scheduler(sc_store(server), sc_executor(server))
    schedules = [sc_schedule(i) for i in range(n)]  # built (validated) outside the timing
    started = time.perf_counter()
    for schedule in schedules:
        sched.add(schedule)
    out[SC] = rate(n, time.perf_counter() - started)

    flush(conn)
    store = sc_store(server)
    now = utcnow()
    started = time.perf_counter()
    sc_populate(store, ((s, first_fire(s, now)) for s in schedules), same=False)
    out[SC_BULK] = rate(n, time.perf_counter() - started)

    flush(conn)
    rqs = rqs_scheduler(conn)
    started = time.perf_counter()
    for i in range(n):
        rqs.cron(CRON, TASK, id=f"job-{i:07d}")
    out[RQS] = rate(n, time.perf_counter() - started)

    flush(conn)
    queue = rq_queue(conn)
    when = utcnow() + timedelta(days=1)
    started = time.perf_counter()
    for i in range(n):
        queue.enqueue_at(when, TASK, job_id=f"job-{i:07d}")
    out[RQ] = rate(n, time.perf_counter() - started)
    flush(conn)
    return out


# -- dispatch / scale ------------------------------------------------------------------------------


def _sc_dispatch(server: RedisServer, conn: redis.Redis, first_id: int, due_count: int) -> float:
    """Add ``due_count`` due cron schedules, then time one scheduler dispatching all of them."""
    store = sc_store(server)
    executor = sc_executor(server)
    sched = sc_scheduler(store, executor)
    sched.tick()  # starts the executor
    before = _queue_len(conn)
    sc_populate(store, sc_cron_items(first_id, due_count, utcnow() - timedelta(seconds=1)))
    elapsed = sc_dispatch_due(sched)
    executor.shutdown(wait=False)
    got = _queue_len(conn) - before
    if got != due_count:
        raise RuntimeError(f"schedcore dispatched {got} of {due_count}")
    return rate(due_count, elapsed)


def _rqs_dispatch(conn: redis.Redis, first_id: int, due_count: int) -> float:
    before = _queue_len(conn)
    rqs_populate_cron(conn, first_id, due_count, score=time.time() - 1)
    sch = rqs_scheduler(conn)
    started = time.perf_counter()
    sch.enqueue_jobs()
    elapsed = time.perf_counter() - started
    got = _queue_len(conn) - before
    if got != due_count:
        raise RuntimeError(f"rq-scheduler dispatched {got} of {due_count}")
    return rate(due_count, elapsed)


def _rq_dispatch(conn: redis.Redis, first_id: int, due_count: int) -> float:
    before = _queue_len(conn)
    past = utcnow() - timedelta(seconds=1)
    rq_populate_at(conn, [(f"job-{i:07d}", past) for i in range(first_id, first_id + due_count)])
    sch = rq_scheduler(conn)
    started = time.perf_counter()
    while _queue_len(conn) - before < due_count:
        sch.enqueue_scheduled_jobs()  # 1,000 per call; the real loop sleeps 1 s between calls
    elapsed = time.perf_counter() - started
    sch.release_locks()
    return rate(due_count, elapsed)


def dispatch(server: RedisServer, due_count: int) -> dict[str, float]:
    """Due runs handed to RQ queues per second by one scheduler, ``due_count`` due at once."""
    conn = client(server)
    out: dict[str, float] = {}
    flush(conn)
    out[SC] = _sc_dispatch(server, conn, 0, due_count)
    flush(conn)
    out[RQS] = _rqs_dispatch(conn, 0, due_count)
    flush(conn)
    out[RQ] = _rq_dispatch(conn, 0, due_count)
    flush(conn)
    return out


def scale(server: RedisServer, stored: int, due_count: int, reps: int, peers: bool) -> dict[str, list[float]]:
    """Dispatch rate of ``due_count`` due schedules with ``stored`` schedules stored (the rest next year)."""
    conn = client(server)
    future = utcnow() + timedelta(days=365)
    rest = max(stored - due_count, 0)
    out: dict[str, list[float]] = {SC: []}
    flush(conn)
    sc_populate(sc_store(server), sc_cron_items(10_000_000, rest, future))
    for r in range(reps):
        out[SC].append(_sc_dispatch(server, conn, r * due_count, due_count))
        conn.delete(rq_queue(conn).key)
    if peers:
        flush(conn)
        out[RQS] = []
        rqs_populate_cron(conn, 10_000_000, rest, score=future.timestamp())
        for r in range(reps):
            out[RQS].append(_rqs_dispatch(conn, r * due_count, due_count))
            conn.delete(rq_queue(conn).key)
        flush(conn)
        out[RQ] = []
        rq_populate_at(conn, [(f"job-{i:07d}", future) for i in range(10_000_000, 10_000_000 + rest)])
        for r in range(reps):
            out[RQ].append(_rq_dispatch(conn, r * due_count, due_count))
            conn.delete(rq_queue(conn).key)
    flush(conn)
    return out


# -- lateness ------------------------------------------------------------------------------------


def _observe(
    server: RedisServer, conn: redis.Redis, expected: int, timeout: float, db: int = 0
) -> subprocess.Popen[str]:
    key = rq_queue(conn).key
    proc = spawn("observe", socket=str(server.socket), db=db, queue_key=key, expected=expected, timeout=timeout)
    _await_ready(conn, 1)
    return proc


def _summary(observed: dict[str, Any]) -> dict[str, Any]:
    late = observed["lateness_ms"]
    return {
        "p50_ms": percentile(late, 50),
        "p99_ms": percentile(late, 99),
        "max_ms": max(late) if late else float("nan"),
        "min_ms": min(late) if late else float("nan"),
        "fires": len(late),
        "missing": observed["missing"],
        "duplicates": observed["duplicates"],
        "samples": late,
    }


def lateness_sc(server: RedisServer, per_second: int, seconds: float) -> dict[str, Any]:
    """``per_second`` interval schedules every second, their starts 1/per_second s apart, for ``seconds``."""
    from schedcore import Interval, Schedule
    from schedcore.records import Pending, PendingKind

    conn = client(server)
    flush(conn)
    scheduler = spawn("sc-run", socket=str(server.socket))
    try:
        _await_ready(conn, 1)
        time.sleep(1.0)  # its watch subscription and executor are up
        base = (utcnow() + timedelta(seconds=2)).replace(microsecond=0)
        end = base + timedelta(seconds=seconds)
        step = timedelta(seconds=1) / per_second
        items: list[Schedule] = []
        expected = 0
        for i in range(per_second):
            start = base + step * i
            start = start.replace(microsecond=start.microsecond // 1000 * 1000)
            trigger = Interval(every=1, start=start)
            items.append(Schedule(id=f"late-{i}", task=TASK, trigger=trigger, end_at=end))
            expected += int((end - start) / timedelta(seconds=1)) + 1
        observer = _observe(server, conn, expected, timeout=seconds + 30)
        store = sc_store(server)
        firsts = ((s, Pending(kind=PendingKind.FIRE, nominal=s.trigger.start, due=s.trigger.start)) for s in items)
        sc_populate(store, firsts, same=False)
        observed = result_of(observer, timeout=seconds + 60)
    finally:
        _stop(scheduler)
    flush(conn)
    return _summary(observed)


def _peer_stream(per_second: int, seconds: float, lead: float) -> list[tuple[str, Any]]:
    base = (utcnow() + timedelta(seconds=lead)).replace(microsecond=0)
    step = timedelta(seconds=1) / per_second
    out = []
    for n in range(int(per_second * seconds)):
        at = base + step * n
        out.append((f"late-{n}-{int(at.timestamp() * 1000)}", at))
    return out


def lateness_rqs(server: RedisServer, per_second: int, seconds: float, interval: float, db: int = 0) -> dict[str, Any]:
    """One-shot ``enqueue_at`` jobs on the same stream, picked up by ``rqscheduler -i interval``."""
    conn = client(server, db)
    flush(conn)
    scheduler = spawn("rqs-run", socket=str(server.socket), db=db, interval=interval)
    try:
        _await_ready(conn, 1)
        stream = _peer_stream(per_second, seconds, lead=3)
        observer = _observe(server, conn, len(stream), timeout=seconds + interval + 60, db=db)
        rqs_populate_at(conn, stream)
        observed = result_of(observer, timeout=seconds + interval + 90)
    finally:
        _stop(scheduler)
    flush(conn)
    return _summary(observed)


def lateness_rq(server: RedisServer, per_second: int, seconds: float) -> dict[str, Any]:
    """``Queue.enqueue_at`` jobs on the same stream, moved by the RQScheduler loop of ``rq worker --with-scheduler``."""
    conn = client(server)
    flush(conn)
    scheduler = spawn("rq-run", socket=str(server.socket))
    try:
        _await_ready(conn, 1)
        stream = _peer_stream(per_second, seconds, lead=3)
        observer = _observe(server, conn, len(stream), timeout=seconds + 60)
        rq_populate_at(conn, stream)
        observed = result_of(observer, timeout=seconds + 90)
    finally:
        _stop(scheduler)
    flush(conn)
    return _summary(observed)


# -- memory ---------------------------------------------------------------------------------------


def memory(server: RedisServer, n: int) -> dict[str, float]:
    """Redis bytes per stored cron schedule (used_memory delta / n), each written by its normal API."""
    conn = client(server)
    out: dict[str, float] = {}
    flush(conn)
    base = used_memory(conn)
    sched = sc_scheduler(sc_store(server), sc_executor(server))
    for i in range(n):
        sched.add(sc_schedule(i))
    out[SC] = (used_memory(conn) - base) / n

    flush(conn)
    base = used_memory(conn)
    rqs = rqs_scheduler(conn)
    for i in range(n):
        rqs.cron(CRON, TASK, id=f"job-{i:07d}")
    out[RQS] = (used_memory(conn) - base) / n

    flush(conn)
    base = used_memory(conn)
    queue = rq_queue(conn)
    when = utcnow() + timedelta(days=1)
    for i in range(n):
        queue.enqueue_at(when, TASK, job_id=f"job-{i:07d}")
    out[RQ] = (used_memory(conn) - base) / n  # a one-shot job: RQ's enqueue_at has no cron
    flush(conn)
    return out


# -- idle -----------------------------------------------------------------------------------------


def idle(server: RedisServer, stored: int, peer_stored: int, window: float) -> dict[str, float]:
    """Scheduler CPU seconds per minute with ``stored`` future schedules and nothing due.

    The four schedulers idle side by side, each on a database of its own (two rq-scheduler
    processes on one database would take turns on its lock): idle processes barely
    disturb each other, and the scenario takes one window instead of four.
    """
    future = utcnow() + timedelta(days=1)
    conns = {system: client(server, db) for db, system in enumerate((SC, RQS, RQS1, RQ), start=2)}
    for conn in conns.values():
        flush(conn)
    sc_populate(sc_store_on(conns[SC]), sc_cron_items(0, stored, future))
    rqs_populate_cron(conns[RQS], 0, peer_stored, score=future.timestamp())
    rqs_populate_cron(conns[RQS1], 0, peer_stored, score=future.timestamp())
    rq_populate_at(conns[RQ], [(f"job-{i:07d}", future) for i in range(peer_stored)])
    sock = str(server.socket)
    procs = {
        SC: spawn("sc-run", socket=sock, db=2),
        RQS: spawn("rqs-run", socket=sock, db=3, interval=60),
        RQS1: spawn("rqs-run", socket=sock, db=4, interval=1),
        RQ: spawn("rq-run", socket=sock, db=5),
    }
    try:
        for system in procs:
            _await_ready(conns[system], 1)
        time.sleep(2.0)  # start-up and first pass done
        before = {system: cpu_seconds(proc.pid) for system, proc in procs.items()}
        time.sleep(window)
        used = {system: cpu_seconds(proc.pid) - before[system] for system, proc in procs.items()}
    finally:
        for proc in procs.values():
            _stop(proc)
    for conn in conns.values():
        flush(conn)
    return {system: used[system] * 60.0 / window for system in procs}


# -- scale-out -----------------------------------------------------------------------------------


def scale_out(server: RedisServer, due_count: int, processes: int) -> dict[str, Any]:
    """``processes`` schedcore schedulers on one store, ``due_count`` due: aggregate rate and duplicates."""
    conn = client(server)
    flush(conn)
    procs = [spawn("sc-burst", socket=str(server.socket)) for _ in range(processes)]
    try:
        _await_ready(conn, processes)
        sc_populate(sc_store(server), sc_cron_items(0, due_count, utcnow() - timedelta(seconds=1)))
        started = time.perf_counter()
        conn.rpush(GO, *range(processes))
        results = [result_of(p, timeout=600) for p in procs]
        elapsed = time.perf_counter() - started
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    jobs = [j.decode() for j in conn.lrange(rq_queue(conn).key, 0, -1)]
    flush(conn)
    return {
        "rate": rate(due_count, elapsed),
        "slowest_process_s": max(r["elapsed"] for r in results),
        "duplicates": len(jobs) - len(set(jobs)),
        "lost": due_count - len(set(jobs)),
    }


# -- ceiling --------------------------------------------------------------------------------------


def ceiling(server: RedisServer, requests: int) -> dict[str, float]:
    """``redis-benchmark`` ZADD on the same server: pipelined (-P 16) and one command per round trip."""
    exe = os.environ.get("SCHEDCORE_REDIS_BENCHMARK", "redis-benchmark")
    out: dict[str, float] = {}
    for label, pipeline in (("zadd_p16", 16), ("zadd_p1", 1)):
        cmd = [exe, "-s", str(server.socket), "-t", "zadd", "-n", str(requests), "-P", str(pipeline), "-q", "--csv"]
        text = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True).stdout
        match = re.search(r'"ZADD","([0-9.]+)"', text)
        if match is None:
            raise RuntimeError(f"cannot read redis-benchmark output: {text!r}")
        out[label] = float(match.group(1))
    flush(client(server))
    return out


__all__ = [
    "QUEUE",
    "RQ",
    "RQS",
    "RQS1",
    "SC",
    "SC_BULK",
    "add",
    "ceiling",
    "dispatch",
    "idle",
    "lateness_rq",
    "lateness_rqs",
    "lateness_sc",
    "memory",
    "scale",
    "scale_out",
]
