"""Shared pieces: the private redis-server, clients, populating each system quickly, timing helpers."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import redis

from schedcore.testing.redis_server import RedisServer, find_redis_server

ROOT = Path(__file__).resolve().parent.parent
QUEUE = "bench"  # the RQ queue every system hands its jobs to
TASK = "bench.tasks:noop"
CRON = "*/15 * * * *"  # the "typical cron schedule" of every scenario that stores cron schedules
NAMESPACE = "bench"
UTC = timezone.utc


def utcnow() -> datetime:
    return datetime.now(UTC)


def floor_ms(dt: datetime) -> datetime:
    return dt.replace(microsecond=dt.microsecond // 1000 * 1000)


@contextmanager
def private_server() -> Iterator[RedisServer]:
    """A redis-server of our own on a unix socket in a temporary directory (never port 6379)."""
    exe = find_redis_server()
    if exe is None:
        raise SystemExit("redis-server not found: install it (apt-get install redis-server)")
    server = RedisServer(exe, extra_args=("--maxmemory-policy", "noeviction"))
    try:
        server.start()
        yield server
    finally:
        server.close()


def client(server: RedisServer, db: int = 0) -> redis.Redis:
    return redis.Redis(unix_socket_path=str(server.socket), db=db, socket_timeout=300)


def flush(conn: redis.Redis) -> None:
    """Empty this database of the private server (it is ours alone) and let its allocator settle."""
    conn.flushdb()
    conn.execute_command("MEMORY", "PURGE")


def used_memory(conn: redis.Redis) -> int:
    conn.execute_command("MEMORY", "PURGE")
    return int(conn.info("memory")["used_memory"])


def median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), nearest-rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def wait_for(predicate: Callable[[], bool], timeout: float, poll: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return predicate()


def spawn(role: str, **params: Any) -> subprocess.Popen[str]:
    """Start ``python -m bench.proc role ARGS`` (JSON parameters); its last stdout line is JSON."""
    return subprocess.Popen(
        [sys.executable, "-m", "bench.proc", role, json.dumps(params)],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def result_of(proc: subprocess.Popen[str], timeout: float) -> Any:
    out, _ = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"bench.proc exited with {proc.returncode}: {out[-2000:]}")
    return json.loads(out.strip().splitlines()[-1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


# -- schedcore ------------------------------------------------------------------------------


def sc_store(server: RedisServer) -> Any:
    from schedcore_redis import RedisStore

    return RedisStore(client(server), namespace=NAMESPACE)


def sc_store_on(conn: redis.Redis) -> Any:
    from schedcore_redis import RedisStore

    return RedisStore(conn, namespace=NAMESPACE)


def sc_executor(server: RedisServer) -> Any:
    from schedcore_rq import RQExecutor

    return RQExecutor(client(server), queue=QUEUE, namespace=NAMESPACE)


def sc_scheduler(store: Any, executor: Any, **options: Any) -> Any:
    """A Scheduler without entry-point plugins: an installed metrics plugin (the Prometheus
    example, say) would be measured too, and it is not part of schedcore."""
    from schedcore import Scheduler
    from schedcore.plugins import get_plugin_manager

    return Scheduler(store=store, executor=executor, plugins=get_plugin_manager(entry_points=False), **options)


def sc_dispatch_due(sched: Any) -> float:
    """Tick ``sched`` until nothing is due now; the seconds it took (what dispatch scenarios time).

    Not ``run(burst=True)``: that also waits for the executor's jobs, which is RQ's work.
    """
    started = time.perf_counter()
    while True:
        wake = sched.tick()
        if wake is None or wake > sched.clock.now():
            return time.perf_counter() - started


def sc_schedule(i: int, trigger: Any = None) -> Any:
    from schedcore import Cron, Schedule

    return Schedule(id=f"job-{i:07d}", task=TASK, trigger=trigger if trigger is not None else Cron(CRON))


def sc_populate(store: Any, items: Iterable[tuple[Any, Any]], chunk: int = 2000, *, same: bool = True) -> int:
    """Write (schedule, first fire entry) pairs with the store's own ADD script, pipelined.

    The layout is exactly what :meth:`RedisStore.add` writes; only the round trips are
    batched, so that populating 10^6 schedules takes seconds, not minutes. With ``same``
    the schedules share one definition but for the id, and it is encoded once.
    """
    from schedcore._time import to_ms
    from schedcore_redis._codec import encode_fire, encode_schedule

    pipe = store._client.pipeline(transaction=False)
    n = 0
    encoded: dict[Any, str] = {}
    for schedule, first in items:
        raw = encoded.get("") if same else None
        if raw is None:
            raw = encoded[""] = encode_schedule(schedule)
        fire = encode_fire(first)
        args = [store.keys.prefix, store.keys.channel, schedule.id, "", raw, "set", fire, to_ms(first.due)]
        store._add(keys=store.keys.scripts, args=args, client=pipe)
        n += 1
        if n % chunk == 0:
            pipe.execute()
    pipe.execute()
    return n


def sc_cron_items(start: int, count: int, due: datetime) -> Iterator[tuple[Any, Any]]:
    """Cron schedules whose fire entry is due at ``due`` (nominal = due, as for a fire that is on time)."""
    from schedcore import Cron
    from schedcore.records import Pending, PendingKind

    trigger = Cron(CRON)
    due = floor_ms(due.astimezone(UTC))
    for i in range(start, start + count):
        yield sc_schedule(i, trigger), Pending(kind=PendingKind.FIRE, nominal=due, due=due)


# -- rq-scheduler ---------------------------------------------------------------------------


def rqs_scheduler(conn: redis.Redis, interval: float = 60) -> Any:
    from rq_scheduler import Scheduler

    return Scheduler(queue_name=QUEUE, connection=conn, interval=interval)


def rqs_populate_cron(conn: redis.Redis, start: int, count: int, score: float | None, chunk: int = 2000) -> None:
    """rq-scheduler cron jobs as ``Scheduler.cron`` stores them, pipelined; ``score``: their due time
    (unix seconds), None for the next cron time (what ``cron`` itself writes)."""
    from rq_scheduler.utils import get_next_scheduled_time, to_unix

    sch = rqs_scheduler(conn)
    when = score if score is not None else to_unix(get_next_scheduled_time(CRON))
    pipe = conn.pipeline(transaction=False)
    for i in range(start, start + count):
        job = sch._create_job(TASK, commit=False, result_ttl=-1, id=f"job-{i:07d}")
        job.meta["cron_string"] = CRON
        job.meta["use_local_timezone"] = False
        job.save(pipeline=pipe)
        pipe.zadd(sch.scheduled_jobs_key, {job.id: when})
        if (i - start + 1) % chunk == 0:
            pipe.execute()
    pipe.execute()


def rqs_populate_at(conn: redis.Redis, when: list[tuple[str, datetime]], chunk: int = 2000) -> None:
    """One-shot rq-scheduler jobs (``enqueue_at``), pipelined."""
    from rq_scheduler.utils import to_unix

    sch = rqs_scheduler(conn)
    pipe = conn.pipeline(transaction=False)
    for n, (job_id, at) in enumerate(when, 1):
        job = sch._create_job(TASK, commit=False, id=job_id)
        job.save(pipeline=pipe)
        pipe.zadd(sch.scheduled_jobs_key, {job.id: to_unix(at.replace(tzinfo=None))})
        if n % chunk == 0:
            pipe.execute()
    pipe.execute()


# -- RQ's own scheduler -------------------------------------------------------------------------


def rq_queue(conn: redis.Redis) -> Any:
    from rq import Queue

    return Queue(QUEUE, connection=conn)


def rq_populate_at(conn: redis.Redis, when: list[tuple[str, datetime]], chunk: int = 2000) -> None:
    """Jobs in the ScheduledJobRegistry exactly as ``Queue.enqueue_at`` stores them, pipelined."""
    from rq.job import JobStatus

    queue = rq_queue(conn)
    pipe = conn.pipeline(transaction=False)
    for n, (job_id, at) in enumerate(when, 1):
        job = queue.create_job(TASK, job_id=job_id, status=JobStatus.SCHEDULED)
        queue.schedule_job(job, at, pipeline=pipe)
        if n % chunk == 0:
            pipe.execute()
    pipe.execute()


def rq_scheduler(conn: redis.Redis) -> Any:
    """The scheduler ``rq worker --with-scheduler`` forks (default interval: 1 s)."""
    from rq.scheduler import RQScheduler

    sch = RQScheduler([QUEUE], connection=conn, logging_level="ERROR")
    sch.acquire_locks()
    return sch


def versions() -> dict[str, str]:
    from importlib.metadata import version

    out = {"python": sys.version.split()[0]}
    for name in ("schedcore", "redis", "rq", "rq-scheduler"):
        try:
            out[name] = version(name)
        except Exception:
            out[name] = "?"
    exe = find_redis_server()
    if exe:
        banner = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False).stdout
        out["redis-server"] = banner.split()[2].removeprefix("v=")
    return out
