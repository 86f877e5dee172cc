"""WorkerPool: start and supervise N ``rq worker`` processes next to the scheduler.

This is what ``schedcore run --executor rq --workers N`` uses so that one command runs
the whole system on one box. Each worker is an ``rq worker`` subprocess of the same
interpreter (``python -m schedcore_rq._worker_main worker``: RQ's command line with its log
lines on stderr, the tasks' output on stdout), in a session of its own, so that a Ctrl-C in
the terminal reaches the scheduler only, which then stops the workers itself. A worker that
crashes is restarted with exponential back-off; :meth:`WorkerPool.stop` (also called on
interpreter exit) stops them all with SIGTERM (a warm shutdown: RQ lets the current job
finish), then SIGKILL after a grace.

A worker that dies without unregistering from Redis -- SIGKILL, a crash, or a SIGTERM that
arrives while it starts, before RQ installed its signal handlers -- would stay listed by
``rq info`` and ``Worker.all`` for up to eight minutes: the pool removes the registration of
every worker it started once that worker's process has ended (see :data:`_UNREGISTER_LUA`).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from schedcore._validate import check_queue
from schedcore.exceptions import ValidationError

__all__ = ["WorkerPool"]

log = logging.getLogger("schedcore.rq.workers")

#: Unregister workers whose process has ended, as RQ's ``register_death`` would have: out of
#: the worker registry and the per-queue sets, ``death`` stamped, the hash expiring in 60 s,
#: the executions set gone. Only workers still registered (or alive-looking: a hash without
#: ``death``) are touched; a key of another type is left alone. Returns how many were cleaned.
#: KEYS: the registry, ARGV[1] per-queue sets, then per worker its key and its executions key.
#: ARGV: number of queue sets, death timestamp.
_UNREGISTER_LUA = """
local nq = tonumber(ARGV[1])
local cleaned = 0
for i = 2 + nq, #KEYS, 2 do
  local worker, executions = KEYS[i], KEYS[i + 1]
  local is_hash = redis.call('TYPE', worker).ok == 'hash'
  local listed = redis.call('SISMEMBER', KEYS[1], worker) == 1
  if listed or (is_hash and redis.call('HEXISTS', worker, 'death') == 0) then
    redis.call('SREM', KEYS[1], worker)
    for q = 2, 1 + nq do redis.call('SREM', KEYS[q], worker) end
    if is_hash then
      redis.call('HSET', worker, 'death', ARGV[2])
      redis.call('EXPIRE', worker, 60)
    end
    if redis.call('TYPE', executions).ok == 'set' then redis.call('DEL', executions) end
    cleaned = cleaned + 1
  end
end
return cleaned
"""


@attrs.define
class _Slot:
    index: int
    process: subprocess.Popen[bytes] | None = None
    name: str = ""  # the RQ worker name of ``process``
    started: float = 0.0
    restarts: int = 0
    failures: int = 0  # consecutive quick crashes, for the back-off
    not_before: float = 0.0
    done: bool = False  # burst mode: exited cleanly, not restarted


class WorkerPool:
    """N ``rq worker`` subprocesses, restarted when they crash, stopped together.

    :param redis_url: the Redis URL RQ uses (``redis://``, ``rediss://``, ``unix://``).
    :param queues: queue names the workers listen to, in priority order.
    :param n: how many workers.
    :param worker_class: ``"rq.worker.Worker"`` (forks a work horse per job) or
        ``"rq.worker.SimpleWorker"`` (runs jobs in the worker process), or any RQ worker class.
    :param burst: workers exit when the queues are empty; a clean exit is not restarted.
    :param serializer: RQ serializer path, which must match the executor's.
    :param env: extra environment variables for the workers.
    :param extra_args: more ``rq worker`` arguments.
    :param backoff: first and longest wait before restarting a crashed worker (seconds).
    :param grace: seconds between SIGTERM and SIGKILL on :meth:`stop`.
    """

    def __init__(
        self,
        redis_url: str,
        queues: Sequence[str],
        n: int,
        *,
        worker_class: str = "rq.worker.Worker",
        burst: bool = False,
        serializer: str | None = None,
        env: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
        backoff: tuple[float, float] = (1.0, 30.0),
        grace: float = 10.0,
        python: str | None = None,
    ) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValidationError("workers", n, "must be a whole number, 0 or more")
        if not queues:
            raise ValidationError("queues", queues, "name at least one queue")
        self.redis_url = redis_url
        self.queues = [check_queue(q, "queues") for q in queues]
        self.n = n
        self.worker_class = worker_class
        self.burst = burst
        self.serializer = serializer
        self.env = dict(env or {})
        self.extra_args = list(extra_args)
        self.backoff = backoff
        self.grace = grace
        self.python = python or sys.executable
        self._slots = [_Slot(i) for i in range(n)]
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tag = uuid.uuid4().hex[:8]
        self._ended: list[str] = []  # names of workers whose process ended, to unregister
        self._redis: Any = None  # the pool's own connection, made when first needed

    # -- lifecycle ---------------------------------------------------------------------------

    def command(self, index: int) -> list[str]:
        """The command line of worker ``index``.

        The Redis URL is not on it: command lines are world-readable (``ps``,
        ``/proc/<pid>/cmdline``) and the URL may carry a password, so :meth:`environment`
        hands it over as ``RQ_REDIS_URL``, which ``rq worker --url`` reads.
        """
        cmd = [self.python, "-m", "schedcore_rq._worker_main", "worker", "--worker-class", self.worker_class]
        cmd += ["--name", self._name(index)]
        if self.burst:
            cmd.append("--burst")
        if self.serializer:
            cmd += ["--serializer", self.serializer]
        cmd += self.extra_args
        cmd += self.queues
        return cmd

    def start(self) -> None:
        """Start the workers and the supervising thread (idempotent)."""
        with self._lock:
            if self._thread is not None:
                return
            self._stop.clear()
            for slot in self._slots:
                self._spawn(slot)
            self._thread = threading.Thread(target=self._supervise, name="schedcore-rq-workers", daemon=True)
            self._thread.start()
        atexit.register(self.stop)

    def stop(self, timeout: float | None = None) -> None:
        """Stop the workers: SIGTERM (warm shutdown), SIGKILL after ``grace``; then remove the
        registration of those that could not unregister themselves. Idempotent."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
        grace = self.grace if timeout is None else timeout
        with self._lock:
            slots = [s for s in self._slots if s.process is not None]
            for slot in slots:
                assert slot.process is not None
                if slot.process.poll() is None:
                    _signal(slot.process, signal.SIGTERM)
            deadline = time.monotonic() + grace
            for slot in slots:
                process = slot.process
                assert process is not None
                try:
                    code = process.wait(timeout=max(deadline - time.monotonic(), 0.0))
                except subprocess.TimeoutExpired:
                    pid = process.pid
                    log.warning("rq worker %d (pid %d) did not stop in %.0fs; killing it", slot.index, pid, grace)
                    _signal(process, signal.SIGKILL)
                    code = process.wait()
                log.debug("rq worker %d (pid %d) stopped (exit code %s)", slot.index, process.pid, code)
                self._ended.append(slot.name)
                slot.process = None
            self._unregister_ended()
            self._thread = None
            if self._redis is not None:
                with contextlib.suppress(Exception):
                    self._redis.close()
                self._redis = None
        atexit.unregister(self.stop)

    def wait(self, timeout: float | None = None) -> bool:
        """Burst mode: wait until every worker exited cleanly. Returns False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                if all(slot.done for slot in self._slots):
                    return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def __enter__(self) -> WorkerPool:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def pids(self) -> list[int]:
        """Process ids of the workers running now."""
        with self._lock:
            return [s.process.pid for s in self._slots if s.process is not None and s.process.poll() is None]

    @property
    def restarts(self) -> int:
        """How many times workers were restarted after a crash."""
        with self._lock:
            return sum(slot.restarts for slot in self._slots)

    def serve(self) -> None:
        """Start, then block until SIGTERM/SIGINT (main thread only); stop the workers on the way out."""
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

        def handler(signum: int, frame: Any) -> None:
            self._stop.set()

        for sig in previous:
            signal.signal(sig, handler)
        try:
            self.start()
            while not self._stop.wait(0.5):
                if self.burst and self.wait(timeout=0):
                    break
        finally:
            self.stop()
            for sig, old in previous.items():
                signal.signal(sig, old)

    # -- supervision -------------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        """The environment of the workers: ours, ``env``, and the Redis URL as ``RQ_REDIS_URL``.

        ``/proc/<pid>/environ``, unlike the command line, is readable only by the worker's
        own user (and root), so the URL's password stays private there.
        """
        env = dict(os.environ)
        env.update(self.env)
        env["RQ_REDIS_URL"] = self.redis_url
        return env

    def _name(self, index: int) -> str:
        """The RQ worker name of worker ``index`` (a new one for each restart)."""
        return f"schedcore-{os.getpid()}-{self._tag}-{index}-{self._slots[index].restarts}"

    def _spawn(self, slot: _Slot) -> None:
        slot.name = self._name(slot.index)
        # A session of its own: the terminal's Ctrl-C (SIGINT to the foreground process group)
        # reaches the scheduler only, which stops the workers in order (stop()), instead of
        # the workers stopping by themselves -- and being restarted -- while it drains.
        slot.process = subprocess.Popen(
            self.command(slot.index), env=self.environment(), stdin=subprocess.DEVNULL, start_new_session=True
        )
        slot.started = time.monotonic()
        log.info("started rq worker %d (pid %d)", slot.index, slot.process.pid)

    def _unregister_ended(self) -> None:
        """Remove from Redis the registration of ended workers that did not remove it (one
        round trip); a failure is logged, never raised (the registrations then expire)."""
        names, self._ended = self._ended, []
        if not names:
            return
        from rq import worker_registration
        from rq.utils import now, utcformat
        from rq.worker import Worker

        try:
            from rq.executions import WORKER_EXECUTIONS_KEY_TEMPLATE as executions
        except ImportError:  # an RQ without executions
            executions = Worker.redis_worker_namespace_prefix + "{0}:executions"
        keys = [worker_registration.REDIS_WORKER_KEYS]
        keys += [worker_registration.WORKERS_BY_QUEUE_KEY % queue for queue in self.queues]
        for name in names:
            keys += [Worker.redis_worker_namespace_prefix + name, executions.format(name)]
        try:
            if self._redis is None:
                import redis

                self._redis = redis.Redis.from_url(self.redis_url)
            cleaned = int(self._redis.eval(_UNREGISTER_LUA, len(keys), *keys, len(self.queues), utcformat(now())))
        except Exception as exc:
            log.warning(
                "could not unregister %d ended rq workers (%s: %s); RQ drops them when their registration expires",
                len(names),
                type(exc).__name__,
                exc,
            )
            return
        if cleaned:
            log.info("removed the registration of %d rq workers that ended without removing it", cleaned)

    def _supervise(self) -> None:
        while not self._stop.wait(0.2):
            with self._lock:
                if self._stop.is_set():
                    return
                now = time.monotonic()
                for slot in self._slots:
                    self._check(slot, now)

    def _check(self, slot: _Slot, now: float) -> None:
        if slot.done:
            return
        process = slot.process
        if process is not None:
            code = process.poll()
            if code is None:
                if now - slot.started > 60.0:
                    slot.failures = 0  # it has been healthy for a while
                return
            slot.process = None
            self._ended.append(slot.name)
            self._unregister_ended()
            if self.burst and code == 0:
                slot.done = True
                return
            slot.failures += 1
            first, longest = self.backoff
            delay = min(first * 2 ** (slot.failures - 1), longest)
            slot.not_before = now + delay
            log.warning(
                "rq worker %d (pid %d) exited with %s; restarting it in %.1fs", slot.index, process.pid, code, delay
            )
        if now >= slot.not_before:
            slot.restarts += 1
            try:
                self._spawn(slot)
            except OSError:
                log.exception("could not start rq worker %d", slot.index)
                slot.not_before = now + self.backoff[1]


def _signal(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(OSError):
        process.send_signal(sig)
