"""Shared pieces: the private redis-server, clients, populating each system quickly, timing helpers."""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import redis

from schedcore.testing.redis_server import RedisServer, find_redis_server

ROOT = Path(__file__).resolve().parent.parent
QUEUE = "bench"  # the RQ queue every system hands its jobs to
TASK = "bench.tasks:noop"
#: The same task as RQ names functions (dotted), for the peers' lateness-stream jobs: a worker
#: runs them in the start-lateness streams, and RQ cannot import "module:function". Same length
#: as TASK, so the jobs are the same size as before.
PEER_TASK = "bench.tasks.noop"
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


def db_of(conn: redis.Redis) -> int:
    return int(conn.connection_pool.connection_kwargs.get("db", 0))


def flush(conn: redis.Redis) -> None:
    """Empty this database of the private server (it is ours alone) and let its allocator settle."""
    conn.flushdb()
    conn.execute_command("MEMORY", "PURGE")


def used_memory(conn: redis.Redis) -> int:
    conn.execute_command("MEMORY", "PURGE")
    return int(conn.info("memory")["used_memory"])


def copy_db(conn: redis.Redis, dst: int, chunk: int = 5000) -> int:
    """Copy every key of ``conn``'s database into database ``dst`` of the same server (``COPY``)."""
    pipe = conn.pipeline(transaction=False)
    n = 0
    for key in conn.scan_iter(count=chunk):
        pipe.copy(key, key, destination_db=dst, replace=True)
        n += 1
        if n % chunk == 0:
            pipe.execute()
    pipe.execute()
    return n


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


def sc_store(server: RedisServer, db: int = 0) -> Any:
    from schedcore_redis import RedisStore

    return RedisStore(client(server, db), namespace=NAMESPACE)


def sc_store_on(conn: redis.Redis) -> Any:
    from schedcore_redis import RedisStore

    return RedisStore(conn, namespace=NAMESPACE)


def sc_executor(server: RedisServer, db: int = 0) -> Any:
    from schedcore_rq import RQExecutor

    return RQExecutor(client(server, db), queue=QUEUE, namespace=NAMESPACE)


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


def sc_populate(store: Any, items: Iterable[tuple[Any, Any]], chunk: int = 5000) -> int:
    """Write (schedule, first fire entry) pairs with the store's own bulk add (``Store.add_many``).

    Each chunk is one ``add_many`` call (the Redis store: one Lua call per 1,000 schedules,
    each distinct definition encoded once): the layout is exactly what :meth:`RedisStore.add`
    writes. Every schedule must be new (checked).
    """
    from schedcore import Conflict
    from schedcore.records import AddResult

    n = 0
    batch: list[tuple[Any, Any]] = []

    def write() -> None:
        results = store.add_many(batch, Conflict.REPLACE)
        if any(result is not AddResult.ADDED for result in results):
            raise RuntimeError("sc_populate: a schedule was not new")
        batch.clear()

    for item in items:
        batch.append(item)
        n += 1
        if len(batch) >= chunk:
            write()
    if batch:
        write()
    return n


def sc_layout(store: Any, template: Any, first: Any) -> tuple[str, float] | None:
    """What the store writes for a new schedule like ``template`` (another id) with fire entry ``first``.

    Two schedules that differ only by id are added with :meth:`RedisStore.add_many` in a probe
    namespace on the same database; if that wrote exactly one field of the definitions hash
    per schedule (the same value for both: a stored definition leaves the id out), one member
    of the id set (score 0) and one member of the time index (the same score), and no other
    key, returns (that value, that score). Otherwise None: the layout is not the one
    :func:`sc_populate_same` knows how to replicate.
    """
    from schedcore import Conflict
    from schedcore_redis import RedisStore

    conn = store._client
    probe = RedisStore(conn, namespace=f"{store.namespace}-probe")
    pattern = probe.keys.prefix.replace("[", "\\[") + "*"

    def clear() -> None:
        stale = list(conn.scan_iter(match=pattern, count=1000))
        if stale:
            conn.delete(*stale)

    clear()
    try:
        pair = [template.evolve(id="probe-a"), template.evolve(id="probe-b")]
        probe.add_many([(s, first) for s in pair], Conflict.ERROR)
        keys = {k.decode() if isinstance(k, bytes) else k for k in conn.scan_iter(match=pattern, count=1000)}
        if keys != {probe.keys.schedules, probe.keys.ids, probe.keys.index}:
            return None
        fields = {_text(k): v for k, v in conn.hgetall(probe.keys.schedules).items()}
        ids = [(_text(m), s) for m, s in conn.zrange(probe.keys.ids, 0, -1, withscores=True)]
        index = [(_text(m), s) for m, s in conn.zrange(probe.keys.index, 0, -1, withscores=True)]
        if set(fields) != {"probe-a", "probe-b"} or fields["probe-a"] != fields["probe-b"]:
            return None
        if ids != [("probe-a", 0.0), ("probe-b", 0.0)]:
            return None
        if [m for m, _ in index] != ["probe-a", "probe-b"] or index[0][1] != index[1][1]:
            return None
        return _text(fields["probe-a"]), index[0][1]
    finally:
        clear()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


#: Writes what the store's add writes for a new schedule (value and score from :func:`sc_layout`)
#: for the ids ``string.format(fmt, i)``, ``first <= i <= last``; refuses if any id is taken.
_SC_REPLICATE = """
local sched, ids, idx = KEYS[1], KEYS[2], KEYS[3]
local value, score, fmt = ARGV[1], ARGV[2], ARGV[3]
local first, last = tonumber(ARGV[4]), tonumber(ARGV[5])
for i = first, last do
  if redis.call('HEXISTS', sched, string.format(fmt, i)) == 1 then
    return redis.error_reply('schedule ' .. string.format(fmt, i) .. ' exists')
  end
end
local h, z0, zs = {}, {}, {}
for i = first, last do
  local id = string.format(fmt, i)
  h[#h + 1] = id; h[#h + 1] = value
  z0[#z0 + 1] = 0; z0[#z0 + 1] = id
  zs[#zs + 1] = score; zs[#zs + 1] = id
  if #h >= 1000 or i == last then  -- a few hundred members per command (unpack has a limit)
    redis.call('HSET', sched, unpack(h))
    redis.call('ZADD', ids, unpack(z0))
    redis.call('ZADD', idx, unpack(zs))
    h, z0, zs = {}, {}, {}
  end
end
return last - first + 1
"""


def sc_populate_same(store: Any, start: int, count: int, template: Any, first: Any, *, chunk: int = 20_000) -> int:
    """New schedules ``job-<start>`` ... (:func:`sc_ids`), each ``template`` under its own id with
    fire entry ``first``, fast.

    Building 10^5 ``Schedule`` objects and adding them takes seconds (and so does sending
    10^5 ids from Python); schedules that differ only by id are stored identically but for
    the id, so after :func:`sc_layout` has checked on two probe schedules what the store
    writes, a small Lua script makes the same writes for every id on the server (20,000 per
    call). When the probe does not find the layout it knows, every schedule goes through
    :func:`sc_populate` instead. The ids must be new (the script refuses taken ones).
    """
    if count <= 0:
        return 0
    layout = sc_layout(store, template, first)
    if layout is None:
        return sc_populate(store, ((template.evolve(id=i), first) for i in sc_ids(start, count)))
    value, score = layout
    keys, conn = store.keys, store._client
    script = conn.register_script(_SC_REPLICATE)
    due = str(int(score)) if score.is_integer() else repr(score)
    for low in range(start, start + count, chunk):
        high = min(low + chunk, start + count) - 1
        script(keys=[keys.schedules, keys.ids, keys.index], args=[value, due, ID_FORMAT, low, high])
    return count


#: Schedule (and job) ids of every scenario: ``job-0000042`` (Lua's and Python's ``%`` agree).
ID_FORMAT = "job-%07d"


def sc_ids(start: int, count: int) -> list[str]:
    return [ID_FORMAT % i for i in range(start, start + count)]


def sc_fire_at(due: datetime) -> Any:
    """A fire entry due at ``due`` (nominal = due, as for a fire that is on time)."""
    from schedcore.records import Pending, PendingKind

    due = floor_ms(due.astimezone(UTC))
    return Pending(kind=PendingKind.FIRE, nominal=due, due=due)


def sc_populate_cron(store: Any, start: int, count: int, due: datetime, expr: str = CRON) -> int:
    """``count`` schedules of cron expression ``expr`` (ids from ``start``), their fire entry due at ``due``."""
    from schedcore import Cron

    return sc_populate_same(store, start, count, sc_schedule(0, Cron(expr)), sc_fire_at(due))


def sc_cron_items(start: int, count: int, due: datetime) -> Iterator[tuple[Any, Any]]:
    """Cron schedules whose fire entry is due at ``due`` (one ``Schedule`` each: slow, see :func:`sc_populate_cron`)."""
    from schedcore import Cron

    trigger = Cron(CRON)
    first = sc_fire_at(due)
    for i in range(start, start + count):
        yield sc_schedule(i, trigger), first


def quiet_minutes(at: datetime, window: int = 10) -> frozenset[int]:
    """The minutes of the hour from one before ``at`` to ``window`` after it.

    The due schedules of a dispatch are written with a cron expression that fires in none of
    them, so that none falls due *again* while the scheduler dispatches (which would hand more
    than the N runs counted). ``window`` covers the longest dispatch with a wide margin.
    """
    return frozenset((at.minute + d) % 60 for d in range(-1, window + 1))


def distinct_cron(i: int, avoid: Collection[int] = ()) -> str:
    """The ``i``-th of a family of cron expressions that all differ (no two fire at the same set of times).

    Each fires four times an hour like the typical ``*/15``, once in each quarter hour, at
    minutes picked by ``i`` among those not in ``avoid`` (15**4 = 50,625 minute lists with
    nothing avoided); past those, the day-of-month list (``1-30``, ``1-29``, ...) makes them
    differ too.
    """
    allowed = [[m for m in range(15 * q, 15 * q + 15) if m not in avoid] for q in range(4)]
    per_block = math.prod(len(quarter) for quarter in allowed)
    if per_block == 0:
        raise ValueError("distinct_cron: a whole quarter hour is avoided")
    block, k = divmod(i, per_block)
    if block > 27:
        raise ValueError(f"distinct_cron: no more than {28 * per_block} expressions")
    minutes = []
    for quarter in allowed:
        k, digit = divmod(k, len(quarter))
        minutes.append(str(quarter[digit]))
    days = "*" if block == 0 else f"1-{31 - block}"
    return f"{','.join(minutes)} * {days} * *"


def due_cron(due: datetime) -> str:
    """The cron expression of a dispatch's due schedules sharing one trigger: four times an hour
    like ``*/15`` (the first of :func:`distinct_cron`'s), silent around ``due``."""
    return distinct_cron(0, quiet_minutes(due))


def sc_distinct_items(start: int, count: int, due: datetime) -> Iterator[tuple[Any, Any]]:
    """Cron schedules with a trigger of their own each (:func:`distinct_cron`, silent around
    ``due``), their fire entry due at ``due``."""
    from schedcore import Cron

    first, avoid = sc_fire_at(due), quiet_minutes(due)
    for i in range(start, start + count):
        yield sc_schedule(i, Cron(distinct_cron(i, avoid))), first


# -- rq-scheduler ---------------------------------------------------------------------------


def rqs_scheduler(conn: redis.Redis, interval: float = 60) -> Any:
    from rq_scheduler import Scheduler

    return Scheduler(queue_name=QUEUE, connection=conn, interval=interval)


def rqs_populate_cron(conn: redis.Redis, start: int, count: int, score: float | None, chunk: int = 2000) -> None:
    """rq-scheduler cron jobs ``job-<start>`` ... as ``Scheduler.cron`` stores them; ``score``: their
    due time (unix seconds), None for the next cron time (what ``cron`` itself writes).

    One ``created_at`` for all (as if written in one instant), so that :func:`replicate` can
    repeat the writes of one job for every id on the server.
    """
    from rq_scheduler.utils import get_next_scheduled_time, to_unix

    sch = rqs_scheduler(conn)
    when = score if score is not None else to_unix(get_next_scheduled_time(CRON))
    created = utcnow()

    def write(pipe: Any, job_id: str) -> None:
        job = sch._create_job(TASK, commit=False, result_ttl=-1, id=job_id)
        job.created_at = created
        job.meta["cron_string"] = CRON
        job.meta["use_local_timezone"] = False
        job.save(pipeline=pipe)
        pipe.zadd(sch.scheduled_jobs_key, {job.id: when})

    if not replicate(conn, write, start, count):
        _pipelined(conn, write, sc_ids(start, count), chunk)


def _pipelined(conn: redis.Redis, write: Callable[[Any, str], None], ids: Iterable[str], chunk: int) -> None:
    pipe = conn.pipeline(transaction=False)
    for n, job_id in enumerate(ids, 1):
        write(pipe, job_id)
        if n % chunk == 0:
            pipe.execute()
    pipe.execute()


#: Two ids no real job has: what a peer writes for one of them, with the other substituted,
#: must be what it writes for the other (see :func:`replicate`).
_PROBE_IDS = ("xPROBEAx", "xPROBEBx")

#: Runs, for every id ``string.format(fmt, i)`` (``first <= i <= last``), the commands of a
#: template in which the probe id stands for the id. ARGV: fmt, first, last, probe id, number
#: of commands, then per command its number of arguments and its arguments.
_REPLAY = """
local fmt, first, last, probe, ncmd = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local function split(s)  -- s cut at every occurrence of the probe id (plain text, not a pattern)
  local parts, from = {}, 1
  while true do
    local a, b = string.find(s, probe, from, true)
    if not a then parts[#parts + 1] = string.sub(s, from); return parts end
    parts[#parts + 1] = string.sub(s, from, a - 1)
    from = b + 1
  end
end
local cmds, pos = {}, 6
for c = 1, ncmd do
  local n, cmd = tonumber(ARGV[pos]), {}
  for k = 1, n do
    local parts = split(ARGV[pos + k])
    cmd[k] = (#parts == 1) and parts[1] or parts
  end
  cmds[c] = cmd
  pos = pos + n + 1
end
for i = first, last do
  local id = string.format(fmt, i)
  for c = 1, ncmd do
    local args = {}
    for k, a in ipairs(cmds[c]) do
      if type(a) == 'table' then args[k] = table.concat(a, id) else args[k] = a end
    end
    redis.call(unpack(args))
  end
end
return last - first + 1
"""


def _captured(conn: redis.Redis, write: Callable[[Any, str], None], job_id: str) -> list[list[bytes]] | None:
    """The commands ``write`` queues for ``job_id`` (encoded as sent), None if any needs options."""
    pipe = conn.pipeline(transaction=False)
    write(pipe, job_id)
    encoder = conn.get_encoder()
    out = []
    for args, options in pipe.command_stack:
        if options or str(args[0]).upper() in {"EVAL", "EVALSHA", "MULTI", "EXEC"}:
            return None
        out.append([encoder.encode(a) for a in args])
    pipe.reset()
    return out


def replicate(conn: redis.Redis, write: Callable[[Any, str], None], start: int, count: int, chunk: int = 5000) -> bool:
    """Make the writes ``write(pipeline, id)`` makes, for the ids ``job-<start>`` ..., on the server.

    ``write`` is a peer's own code path for one job (its job object's ``save`` and the like,
    into a pipeline). It is captured for two probe ids; when the commands of one, with the
    other id substituted, are exactly those of the other -- the job is the same but for its
    id -- a small Lua script runs them for every id (``chunk`` ids per call), which takes a
    fraction of a second for 10^5 jobs instead of tens of seconds. Returns False (nothing
    written) when the capture does not show that; the caller then writes job by job.
    """
    if count <= 0:
        return True
    a, b = _PROBE_IDS
    first, second = _captured(conn, write, a), _captured(conn, write, b)
    if first is None or second is None:
        return False
    swapped = [[arg.replace(a.encode(), b.encode()) for arg in cmd] for cmd in first]
    if swapped != second or not any(a.encode() in arg for cmd in first for arg in cmd):
        return False
    template: list[Any] = []
    for cmd in first:
        template += [len(cmd), *cmd]
    script = conn.register_script(_REPLAY)
    for low in range(start, start + count, chunk):
        high = min(low + chunk, start + count) - 1
        script(args=[ID_FORMAT, low, high, a, len(first), *template])
    return True


def rqs_populate_at(conn: redis.Redis, when: list[tuple[str, datetime]], chunk: int = 2000) -> None:
    """One-shot rq-scheduler jobs (``enqueue_at``), pipelined."""
    from rq_scheduler.utils import to_unix

    sch = rqs_scheduler(conn)
    pipe = conn.pipeline(transaction=False)
    for n, (job_id, at) in enumerate(when, 1):
        job = sch._create_job(PEER_TASK, commit=False, id=job_id)
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
        job = queue.create_job(PEER_TASK, job_id=job_id, status=JobStatus.SCHEDULED)
        queue.schedule_job(job, at, pipeline=pipe)
        if n % chunk == 0:
            pipe.execute()
    pipe.execute()


def rq_populate_same(conn: redis.Redis, start: int, count: int, at: datetime, chunk: int = 2000) -> None:
    """Jobs ``job-<start>`` ... scheduled at ``at`` exactly as ``Queue.enqueue_at`` stores them
    (one ``created_at`` for all, so that :func:`replicate` can repeat one job's writes)."""
    from rq.job import JobStatus

    queue = rq_queue(conn)
    created = utcnow()

    def write(pipe: Any, job_id: str) -> None:
        job = queue.create_job(TASK, job_id=job_id, status=JobStatus.SCHEDULED)
        job.created_at = created
        queue.schedule_job(job, at, pipeline=pipe)

    from rq.job import Job
    from rq.registry import ScheduledJobRegistry

    registry = ScheduledJobRegistry(queue=queue).key
    before = conn.zcard(registry)
    if replicate(conn, write, start, count):
        # rq 2.x adds a job to the registry outside the pipeline it is given: the probes'
        # entries reach the server and the replay misses every job's. Clean up, write job by job.
        conn.zrem(registry, *_PROBE_IDS)
        conn.delete(*(Job.key_for(probe) for probe in _PROBE_IDS))
        if conn.zcard(registry) - before == count:
            return
    _pipelined(conn, write, sc_ids(start, count), chunk)


def rq_scheduler(conn: redis.Redis) -> Any:
    """The scheduler ``rq worker --with-scheduler`` forks (default interval: 1 s)."""
    from rq.scheduler import RQScheduler

    sch = RQScheduler([QUEUE], connection=conn, logging_level="ERROR")
    sch.acquire_locks()
    return sch


def versions() -> dict[str, str]:
    from importlib.metadata import version

    out = {"python": sys.version.split()[0]}
    for name, dist in (
        ("schedcore", "schedcore-engine"),
        ("redis", "redis"),
        ("rq", "rq"),
        ("rq-scheduler", "rq-scheduler"),
    ):
        try:
            out[name] = version(dist)
        except Exception:
            out[name] = "?"
    exe = find_redis_server()
    if exe:
        banner = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False).stdout
        out["redis-server"] = banner.split()[2].removeprefix("v=")
    out["commit"] = _commit()
    return out


def _commit() -> str:
    """The checkout measured: its commit, ``+changes`` when the packages measured differ from it."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    if head.returncode != 0:
        return "?"
    changed = subprocess.run(
        [*git, "status", "--porcelain", "--", "schedcore", "schedcore_redis", "schedcore_rq"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return head.stdout.strip() + (" +changes" if changed else "")
