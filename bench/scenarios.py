"""The scenarios. Each returns ``{system: figure-or-dict}`` for one repetition (or all of them)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import redis

from bench.common import (
    CRON,
    QUEUE,
    TASK,
    client,
    copy_db,
    cpu_seconds,
    db_of,
    due_cron,
    flush,
    median,
    percentile,
    rate,
    result_of,
    rq_populate_at,
    rq_populate_same,
    rq_queue,
    rq_scheduler,
    rqs_populate_at,
    rqs_populate_cron,
    rqs_scheduler,
    sc_dispatch_due,
    sc_distinct_items,
    sc_executor,
    sc_ids,
    sc_populate,
    sc_populate_cron,
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
SC_MANY = "schedcore, add_many"  # Scheduler.add_many: the bulk API
SC_BULK = "schedcore, Store.add_many"  # measured only while Scheduler.add_many does not exist
SC_DISTINCT = "schedcore, distinct triggers"  # dispatch: every schedule its own cron expression

#: Databases of the private server: the scenarios that leave processes or data behind each
#: have their own, so that nothing a stopping process writes lands in another's measurement.
DB_LATE_DEFAULT, DB_LATE = 1, {SC: 10, RQS1: 11, RQ: 12}
DB_STORED = {SC: 6, RQS: 7, RQ: 8}  # scale, then idle (rq-scheduler -i 1 idles on a copy: DB_IDLE_RQS1)
DB_IDLE_RQS1 = 9
DB_BURST = 13  # the burst fixed cost: an empty namespace
SC_BURST_REDIS, SC_BURST_MEMORY = "RedisStore + RQExecutor", "MemoryStore + LocalExecutor"
DB_SCRATCH = 5  # schedcore's scale repetitions, each on a fresh copy of DB_STORED[SC]
FUTURE_ID = 10_000_000  # ids of the schedules stored in the future (the due ones count from 0)


def _queue_len(conn: redis.Redis) -> int:
    return int(conn.llen(rq_queue(conn).key))


def _check_handed(conn: redis.Redis, before: int, expected: int, system: str) -> None:
    """The RQ queue got exactly ``expected`` jobs since it held ``before``, all distinct."""
    jobs = conn.lrange(rq_queue(conn).key, before, -1)
    distinct = len(set(jobs))
    if len(jobs) != expected or distinct != expected:
        raise RuntimeError(f"{system} handed {len(jobs)} jobs ({distinct} distinct) to RQ, expected {expected}")


_stopping: list[subprocess.Popen[str]] = []
_stopping_lock = threading.Lock()


def _stop(proc: subprocess.Popen[str], timeout: float = 30, *, later: bool = False) -> None:
    """SIGTERM ``proc`` and wait for it to exit; with ``later``, :func:`reap` waits instead."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    if later:
        with _stopping_lock:
            _stopping.append(proc)
    else:
        _reap(proc, timeout)


def _reap(proc: subprocess.Popen[str], timeout: float = 30) -> None:
    try:
        proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def reap() -> None:
    """Wait for the processes stopped with ``later`` (a lateness run lets its scheduler shut
    down while the next one starts its processes, and reaps it before it measures)."""
    with _stopping_lock:
        procs = list(_stopping)
        _stopping.clear()
    for proc in procs:
        _reap(proc)


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


_quiet_hook: Callable[[float], None] | None = None


def set_quiet_hook(hook: Callable[[float], None] | None) -> None:
    """``hook(seconds)`` is called before each timed part, with about the longest it may take.

    ``bench.run`` waits there while the background run is about to hand over, or is handing
    over, its jobs (rq-scheduler's one pass at its default interval: a second of CPU that
    would otherwise land in the middle of whatever is measured then).
    """
    global _quiet_hook
    _quiet_hook = hook


def quiet(seconds: float) -> None:
    if _quiet_hook is not None:
        _quiet_hook(seconds)


def _await_ready(conn: redis.Redis, n: int, timeout: float = 60) -> None:
    for _ in range(n):
        if conn.blpop([READY], timeout=timeout) is None:
            raise RuntimeError("a benchmark process did not start")


# -- add (and memory) ---------------------------------------------------------------------------


def add(server: RedisServer, n: int, memory: dict[str, float] | None = None) -> dict[str, float]:
    """Schedules created per second through each system's normal API (and schedcore's bulk API).

    With ``memory``, also fills it with the Redis bytes per schedule that the one-at-a-time
    rows stored (the memory scenario: ``used_memory`` delta / n, through the public API).
    """
    from schedcore.records import AddResult

    conn = client(server)
    out: dict[str, float] = {}
    reap()  # what the scenario before stopped has exited
    quiet(n / 400 + 2)

    def mark() -> int:
        return used_memory(conn) if memory is not None else 0

    def stored(system: str, base: int) -> None:
        if memory is not None:
            memory[system] = (used_memory(conn) - base) / n

    schedules = [sc_schedule(i) for i in range(n)]  # built (validated) outside the timing
    flush(conn)
    sched = sc_scheduler(sc_store(server), sc_executor(server))
    base = mark()
    started = time.perf_counter()
    results = [sched.add(schedule) for schedule in schedules]
    out[SC] = rate(n, time.perf_counter() - started)
    stored(SC, base)
    if results != [AddResult.ADDED] * n:
        raise RuntimeError("schedcore: Scheduler.add did not add every schedule")

    flush(conn)
    sched = sc_scheduler(sc_store(server), sc_executor(server))
    if hasattr(sched, "add_many"):
        started = time.perf_counter()
        results = sched.add_many(schedules)
        out[SC_MANY] = rate(n, time.perf_counter() - started)
        if list(results) != [AddResult.ADDED] * n:
            raise RuntimeError("schedcore: Scheduler.add_many did not add every schedule")
    else:  # until the Scheduler has a bulk API: the store's own, first fire times computed here
        from schedcore._planner import first_fire

        started = time.perf_counter()
        now = sched.clock.now()
        sc_populate(sched.store, ((s, first_fire(s, now)) for s in schedules))
        out[SC_BULK] = rate(n, time.perf_counter() - started)

    flush(conn)
    rqs = rqs_scheduler(conn)
    base = mark()
    started = time.perf_counter()
    for i in range(n):
        rqs.cron(CRON, TASK, id=f"job-{i:07d}")
    out[RQS] = rate(n, time.perf_counter() - started)
    stored(RQS, base)
    if conn.zcard(rqs.scheduled_jobs_key) != n:
        raise RuntimeError("rq-scheduler: Scheduler.cron did not store every job")

    flush(conn)
    queue = rq_queue(conn)
    when = utcnow() + timedelta(days=1)
    base = mark()
    started = time.perf_counter()
    for i in range(n):
        queue.enqueue_at(when, TASK, job_id=f"job-{i:07d}")
    out[RQ] = rate(n, time.perf_counter() - started)
    stored(RQ, base)  # a one-shot job: RQ's enqueue_at has no cron
    if queue.scheduled_job_registry.count != n:
        raise RuntimeError("rq: enqueue_at did not schedule every job")
    flush(conn)
    return out


# -- dispatch / scale ------------------------------------------------------------------------------


def _sc_dispatch(
    server: RedisServer, conn: redis.Redis, first_id: int, due_count: int, *, distinct: bool = False
) -> float:
    """Add ``due_count`` due cron schedules (ids from ``first_id``) in ``conn``'s database, then
    time one scheduler dispatching all of them. They share one cron expression (:func:`due_cron`),
    or with ``distinct`` each has its own; neither fires in the minutes around now, so none
    falls due again during the dispatch."""
    db = db_of(conn)
    store = sc_store(server, db)
    executor = sc_executor(server, db)
    sched = sc_scheduler(store, executor)
    sched.tick()  # starts the executor
    quiet(due_count / (250 if distinct else 500) + 2)
    before = _queue_len(conn)
    due = utcnow() - timedelta(seconds=1)
    if distinct:
        sc_populate(store, sc_distinct_items(first_id, due_count, due))
    else:
        sc_populate_cron(store, first_id, due_count, due, due_cron(due))
    elapsed = sc_dispatch_due(sched)
    _shutdown_later(executor)
    _check_handed(conn, before, due_count, SC_DISTINCT if distinct else SC)
    return rate(due_count, elapsed)


def _shutdown_later(executor: Any) -> None:
    """``executor.shutdown(wait=False)`` in a thread: it joins the executor's outcome thread,
    which notices the stop at its next poll (most of a second of waiting, no work)."""
    threading.Thread(target=executor.shutdown, kwargs={"wait": False}, daemon=True).start()


def _rqs_dispatch(conn: redis.Redis, first_id: int, due_count: int) -> float:
    quiet(due_count / 300 + 2)
    before = _queue_len(conn)
    rqs_populate_cron(conn, first_id, due_count, score=time.time() - 1)
    sch = rqs_scheduler(conn)
    started = time.perf_counter()
    sch.enqueue_jobs()
    elapsed = time.perf_counter() - started
    _check_handed(conn, before, due_count, RQS)
    return rate(due_count, elapsed)


def _rq_dispatch(conn: redis.Redis, first_id: int, due_count: int) -> float:
    quiet(due_count / 500 + 2)
    before = _queue_len(conn)
    past = utcnow() - timedelta(seconds=1)
    rq_populate_same(conn, first_id, due_count, past)
    sch = rq_scheduler(conn)
    started = time.perf_counter()
    moved = 0
    while moved < due_count:
        sch.enqueue_scheduled_jobs()  # 1,000 per call; the real loop sleeps 1 s between calls
        now = _queue_len(conn) - before
        if now == moved:
            break  # nothing more was due: the check below says what is missing
        moved = now
    elapsed = time.perf_counter() - started
    sch.release_locks()
    _check_handed(conn, before, due_count, RQ)
    return rate(due_count, elapsed)


def dispatch(server: RedisServer, due_count: int) -> dict[str, float]:
    """Due runs handed to RQ queues per second by one scheduler, ``due_count`` due at once.

    schedcore twice: every schedule of the typical cron expression (one trigger shared by
    all, as most deployments have few distinct schedules) and every one its own expression.
    """
    conn = client(server)
    out: dict[str, float] = {}
    flush(conn)
    out[SC] = _sc_dispatch(server, conn, 0, due_count)
    flush(conn)
    out[SC_DISTINCT] = _sc_dispatch(server, conn, 0, due_count, distinct=True)
    flush(conn)
    out[RQS] = _rqs_dispatch(conn, 0, due_count)
    flush(conn)
    out[RQ] = _rq_dispatch(conn, 0, due_count)
    flush(conn)
    return out


class Stored:
    """Schedules stored in the future, one database per system, kept from one scale size to
    the next and for the idle scenario: each size only adds what the one before lacked."""

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.conns = {system: client(server, db) for system, db in DB_STORED.items()}
        self.count = dict.fromkeys(DB_STORED, 0)
        self.future = utcnow() + timedelta(days=365)
        for conn in self.conns.values():
            flush(conn)

    def fill(self, system: str, n: int) -> None:
        """Top the future schedules of ``system`` up to ``n`` (never removes any)."""
        extra = n - self.count[system]
        if extra <= 0:
            return
        conn, start = self.conns[system], FUTURE_ID + self.count[system]
        if system == SC:
            sc_populate_cron(sc_store_on(conn), start, extra, self.future)
        elif system == RQS:
            rqs_populate_cron(conn, start, extra, score=self.future.timestamp())
        else:
            rq_populate_same(conn, start, extra, self.future)
        self.count[system] = n

    def close(self) -> None:
        for conn in self.conns.values():
            flush(conn)


def _rqs_remove(conn: redis.Redis, ids: list[str]) -> None:
    from rq.job import Job

    pipe = conn.pipeline(transaction=False)
    pipe.zrem(rqs_scheduler(conn).scheduled_jobs_key, *ids)
    pipe.delete(*(Job.key_for(i) for i in ids))
    pipe.execute()


def scale(
    server: RedisServer, stored: Stored, size: int, due_count: int, reps: int, *, peers: bool
) -> dict[str, list[float]]:
    """Dispatch rate of ``due_count`` due schedules with ``size`` schedules stored (the rest a year ahead).

    Every repetition runs with exactly ``size`` stored. schedcore's run on a fresh copy of its
    stored schedules (``COPY`` of its three keys): the RQ executor reconciles the jobs it
    handed over and that no worker ran, and those of the repetitions before would pile up.
    The peers keep nothing of a pass; the due jobs of each repetition are deleted after it
    (rq-scheduler's cron jobs would otherwise stay, due again within 15 minutes).
    """
    rest = max(size - due_count, 0)
    out: dict[str, list[float]] = {SC: []}
    systems = (SC, RQS, RQ) if peers else (SC,)
    for system in systems:
        stored.fill(system, rest)
        conn = stored.conns[system]
        out[system] = []
        for r in range(reps):
            if system == SC:
                scratch = client(server, DB_SCRATCH)
                flush(scratch)
                copy_db(conn, DB_SCRATCH)
                out[system].append(_sc_dispatch(server, scratch, r * due_count, due_count))
                flush(scratch)
                continue
            if system == RQS:
                out[system].append(_rqs_dispatch(conn, r * due_count, due_count))
                _rqs_remove(conn, sc_ids(r * due_count, due_count))
            else:
                out[system].append(_rq_dispatch(conn, r * due_count, due_count))  # one-shot: gone once moved
            conn.delete(rq_queue(conn).key)
    return out


# -- lateness ------------------------------------------------------------------------------------


def _observer(server: RedisServer, conn: redis.Redis, expected: int, timeout: float) -> subprocess.Popen[str]:
    key, sock = rq_queue(conn).key, str(server.socket)
    return spawn("observe", socket=sock, db=db_of(conn), queue_key=key, expected=expected, timeout=timeout)


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


def _sc_starts(base: datetime, per_second: int) -> list[datetime]:
    step = timedelta(seconds=1) / per_second
    out = []
    for i in range(per_second):
        start = base + step * i
        out.append(start.replace(microsecond=start.microsecond // 1000 * 1000))
    return out


def _sc_expected(per_second: int, seconds: float) -> int:
    """Fires of the schedcore stream (depends on the offsets of the starts only, not on the base)."""
    base = datetime(2000, 1, 1, tzinfo=timezone.utc)
    end = base + timedelta(seconds=seconds)
    return sum(int((end - start) / timedelta(seconds=1)) + 1 for start in _sc_starts(base, per_second))


def _run_stream(
    server: RedisServer,
    conn: redis.Redis,
    scheduler: subprocess.Popen[str],
    expected: int,
    *,
    timeout: float,
    populate: Callable[[], None],
    settle: float = 0.0,
    stop_later: bool = False,
    on_ready: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Start the observer beside the already spawned ``scheduler``, wait for both (then call
    ``on_ready``), reap what an earlier run left stopping, wait ``settle`` s, write the stream
    (``populate``) and collect."""
    observer = _observer(server, conn, expected, timeout)
    try:
        _await_ready(conn, 2)
        if on_ready is not None:
            on_ready()
        time.sleep(settle)
        if stop_later:
            reap()  # the run before stopped while this one started (not while it measures)
        populate()
        observed = result_of(observer, timeout=timeout + 30)
    finally:
        _stop(scheduler, later=stop_later)
        _kill(observer)
    flush(conn)
    return _summary(observed)


def lateness_sc(
    server: RedisServer, per_second: int, seconds: float, db: int = DB_LATE[SC], *, stop_later: bool = False
) -> dict[str, Any]:
    """``per_second`` interval schedules every second, their starts 1/per_second s apart, for ``seconds``."""
    from schedcore import Interval, Schedule
    from schedcore.records import Pending, PendingKind

    quiet(seconds + 8)
    conn = client(server, db)
    flush(conn)

    def populate() -> None:
        base = (utcnow() + timedelta(seconds=2)).replace(microsecond=0)
        end = base + timedelta(seconds=seconds)
        items = []
        for i, start in enumerate(_sc_starts(base, per_second)):
            schedule = Schedule(id=f"late-{i}", task=TASK, trigger=Interval(every=1, start=start), end_at=end)
            items.append((schedule, Pending(kind=PendingKind.FIRE, nominal=start, due=start)))
        sc_populate(sc_store_on(conn), items)

    scheduler = spawn("sc-run", socket=str(server.socket), db=db)
    # settle: its watch subscription and executor are up before the stream is written
    expected = _sc_expected(per_second, seconds)
    return _run_stream(
        server, conn, scheduler, expected, timeout=seconds + 30, populate=populate, settle=1.0, stop_later=stop_later
    )


def _peer_stream(per_second: int, seconds: float, lead: float) -> list[tuple[str, Any]]:
    base = (utcnow() + timedelta(seconds=lead)).replace(microsecond=0)
    step = timedelta(seconds=1) / per_second
    out = []
    for n in range(int(per_second * seconds)):
        at = base + step * n
        out.append((f"late-{n}-{int(at.timestamp() * 1000)}", at))
    return out


#: Seconds between writing a peer stream and its first fire (writing 6,000 jobs takes about
#: 1.5 s, but the first 2,000 -- the first 2 s of the stream -- are written within 0.5 s).
PEER_LEAD = 2.0


def lateness_rqs(
    server: RedisServer,
    per_second: int,
    seconds: float,
    interval: float,
    db: int = DB_LATE[RQS1],
    *,
    stop_later: bool = False,
    on_ready: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """One-shot ``enqueue_at`` jobs on the same stream, picked up by ``rqscheduler -i interval``.

    ``on_ready`` is called when its process is up: its first pass is then, the next one
    ``interval`` s later (the one that finds the stream due when ``interval`` is long)."""
    if on_ready is None:  # (the background run does not wait for itself)
        quiet(seconds + interval + 8)
    conn = client(server, db)
    flush(conn)
    scheduler = spawn("rqs-run", socket=str(server.socket), db=db, interval=interval)
    expected = int(per_second * seconds)

    def populate() -> None:
        rqs_populate_at(conn, _peer_stream(per_second, seconds, lead=PEER_LEAD))

    timeout = seconds + interval + 60
    return _run_stream(
        server,
        conn,
        scheduler,
        expected,
        timeout=timeout,
        populate=populate,
        stop_later=stop_later,
        on_ready=on_ready,
    )


def lateness_rq(
    server: RedisServer, per_second: int, seconds: float, db: int = DB_LATE[RQ], *, stop_later: bool = False
) -> dict[str, Any]:
    """``Queue.enqueue_at`` jobs on the same stream, moved by the RQScheduler loop of ``rq worker --with-scheduler``."""
    quiet(seconds + 8)
    conn = client(server, db)
    flush(conn)
    scheduler = spawn("rq-run", socket=str(server.socket), db=db)
    expected = int(per_second * seconds)

    def populate() -> None:
        rq_populate_at(conn, _peer_stream(per_second, seconds, lead=PEER_LEAD))

    return _run_stream(
        server, conn, scheduler, expected, timeout=seconds + 60, populate=populate, stop_later=stop_later
    )


# -- idle -----------------------------------------------------------------------------------------


def idle(server: RedisServer, stored: Stored, sc_count: int, peer_count: int, window: float) -> dict[str, Any]:
    """Scheduler CPU seconds per minute with future schedules only, nothing due.

    Runs on the databases the scale scenario filled (topped up to ``sc_count`` and
    ``peer_count``; rq-scheduler ``-i 1`` on a copy of rq-scheduler's: two rq-scheduler
    processes on one database would take turns on its lock). The four schedulers idle side
    by side: idle processes barely disturb each other, and the scenario takes one window
    instead of four. Returns ``{"cpu": {system: CPU s per minute}, "stored": {system: n}}``.
    """
    stored.fill(SC, sc_count)
    stored.fill(RQS, peer_count)
    stored.fill(RQ, peer_count)
    copy = client(server, DB_IDLE_RQS1)
    flush(copy)
    copy_db(stored.conns[RQS], DB_IDLE_RQS1)
    dbs = {SC: DB_STORED[SC], RQS: DB_STORED[RQS], RQS1: DB_IDLE_RQS1, RQ: DB_STORED[RQ]}
    conns = {system: client(server, db) for system, db in dbs.items()}
    for system, conn in conns.items():
        if _queue_len(conn):
            raise RuntimeError(f"idle: the RQ queue of {system} is not empty")
    sock = str(server.socket)
    procs = {
        SC: spawn("sc-run", socket=sock, db=dbs[SC]),
        RQS: spawn("rqs-run", socket=sock, db=dbs[RQS], interval=60),
        RQS1: spawn("rqs-run", socket=sock, db=dbs[RQS1], interval=1),
        RQ: spawn("rq-run", socket=sock, db=dbs[RQ]),
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
            _stop(proc, later=True)  # all four stop at once; the next scenario reaps them
    handed = {system: _queue_len(conn) for system, conn in conns.items()}
    if any(handed.values()):
        raise RuntimeError(f"idle: something was due after all: {handed}")
    flush(copy)
    counts = {SC: stored.count[SC], RQS: stored.count[RQS], RQS1: stored.count[RQS], RQ: stored.count[RQ]}
    return {"cpu": {system: used[system] * 60.0 / window for system in procs}, "stored": counts}


# -- scale-out -----------------------------------------------------------------------------------


def scale_out(server: RedisServer, due_count: int, processes: int) -> dict[str, Any]:
    """``processes`` schedcore schedulers on one store, ``due_count`` due: aggregate rate and duplicates."""
    quiet(due_count / 500 + 4)
    conn = client(server)
    flush(conn)
    procs = [spawn("sc-burst", socket=str(server.socket)) for _ in range(processes)]
    try:
        _await_ready(conn, processes)
        reap()  # what the scenario before stopped has exited
        due = utcnow() - timedelta(seconds=1)
        sc_populate_cron(sc_store(server), 0, due_count, due, due_cron(due))
        started = time.perf_counter()
        conn.rpush(GO, *range(processes))
        results = [result_of(p, timeout=600) for p in procs]
        elapsed = time.perf_counter() - started
    finally:
        for p in procs:
            _kill(p)
    jobs = [j.decode() for j in conn.lrange(rq_queue(conn).key, 0, -1)]
    flush(conn)
    return {
        "rate": rate(due_count, elapsed),
        "slowest_process_s": max(r["elapsed"] for r in results),
        "duplicates": len(jobs) - len(set(jobs)),
        "lost": due_count - len(set(jobs)),
    }


# -- ceiling --------------------------------------------------------------------------------------


def burst_fixed_cost(server: RedisServer, reps: int) -> dict[str, dict[str, float]]:
    """Wall time of a whole ``schedcore run --burst`` with nothing due, ``reps`` times per system:
    store, executor and scheduler made (with the Redis connection), ``run(burst=True)``, the
    store closed -- what a system cron or a Kubernetes CronJob pays per invocation, beyond the
    interpreter's start. Median and p95 in milliseconds."""
    from schedcore import LocalExecutor, MemoryStore
    from schedcore_redis import RedisStore
    from schedcore_rq import RQExecutor

    flush(client(server, DB_BURST))

    def redis_rq() -> None:
        conn = client(server, DB_BURST)
        store = RedisStore(conn, namespace="burst")
        sc_scheduler(store, RQExecutor(conn, queue=QUEUE, namespace="burst")).run(burst=True)
        store.close()
        conn.close()

    def memory_local() -> None:
        sc_scheduler(MemoryStore(), LocalExecutor()).run(burst=True)

    out: dict[str, dict[str, float]] = {}
    for system, once in ((SC_BURST_REDIS, redis_rq), (SC_BURST_MEMORY, memory_local)):
        once()  # imports and the server's first connection: not part of the fixed cost
        times = []
        quiet(reps * 0.1)
        for _ in range(reps):
            started = time.perf_counter()
            once()
            times.append((time.perf_counter() - started) * 1000)
        out[system] = {"median_ms": median(times), "p95_ms": percentile(times, 95), "max_ms": max(times)}
    return out


def ceiling(server: RedisServer, requests: int, requests_p1: int | None = None) -> dict[str, float]:
    """``redis-benchmark`` ZADD on the same server: pipelined (-P 16, ``requests``) and one
    command per round trip (-P 1, ``requests_p1``, default ``requests``)."""
    exe = os.environ.get("SCHEDCORE_REDIS_BENCHMARK", "redis-benchmark")
    quiet(requests / 100_000 + (requests_p1 or requests) / 20_000 + 2)
    out: dict[str, float] = {}
    for label, pipeline, n in (("zadd_p16", 16, requests), ("zadd_p1", 1, requests_p1 or requests)):
        cmd = [exe, "-s", str(server.socket), "-t", "zadd", "-n", str(n), "-P", str(pipeline), "-q", "--csv"]
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
    "SC_DISTINCT",
    "SC_MANY",
    "Stored",
    "add",
    "ceiling",
    "dispatch",
    "idle",
    "lateness_rq",
    "lateness_rqs",
    "lateness_sc",
    "quiet",
    "reap",
    "scale",
    "scale_out",
    "set_quiet_hook",
]
