"""WorkerPool: start and supervise N ``rq worker`` processes next to the scheduler.

This is what ``schedcore run --executor rq --workers N`` uses so that one command runs
the whole system on one box. Each worker is a plain ``python -m rq.cli worker``
subprocess of the same interpreter; a worker that crashes is restarted with exponential
back-off; :meth:`WorkerPool.stop` (also called on interpreter exit) stops them all with
SIGTERM (a warm shutdown: RQ lets the current job finish), then SIGKILL after a grace.
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


@attrs.define
class _Slot:
    index: int
    process: subprocess.Popen[bytes] | None = None
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

    # -- lifecycle ---------------------------------------------------------------------------

    def command(self, index: int) -> list[str]:
        """The command line of worker ``index``.

        The Redis URL is not on it: command lines are world-readable (``ps``,
        ``/proc/<pid>/cmdline``) and the URL may carry a password, so :meth:`environment`
        hands it over as ``RQ_REDIS_URL``, which ``rq worker --url`` reads.
        """
        cmd = [self.python, "-m", "rq.cli", "worker", "--worker-class", self.worker_class]
        cmd += ["--name", f"schedcore-{os.getpid()}-{self._tag}-{index}-{self._slots[index].restarts}"]
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
        """Stop the workers: SIGTERM (warm shutdown), SIGKILL after ``grace``. Idempotent."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
        grace = self.grace if timeout is None else timeout
        with self._lock:
            running = [s.process for s in self._slots if s.process is not None and s.process.poll() is None]
            for process in running:
                _signal(process, signal.SIGTERM)
            deadline = time.monotonic() + grace
            for process in running:
                try:
                    process.wait(timeout=max(deadline - time.monotonic(), 0.0))
                except subprocess.TimeoutExpired:
                    log.warning("rq worker %s did not stop in %.0fs; killing it", process.pid, grace)
                    _signal(process, signal.SIGKILL)
                    process.wait()
            self._thread = None
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

    def _spawn(self, slot: _Slot) -> None:
        slot.process = subprocess.Popen(self.command(slot.index), env=self.environment(), stdin=subprocess.DEVNULL)
        slot.started = time.monotonic()
        log.info("started rq worker %d (pid %d)", slot.index, slot.process.pid)

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
            if self.burst and code == 0:
                slot.done = True
                slot.process = None
                return
            log.warning("rq worker %d (pid %d) exited with %s; restarting", slot.index, process.pid, code)
            slot.process = None
            slot.failures += 1
            first, longest = self.backoff
            slot.not_before = now + min(first * 2 ** (slot.failures - 1), longest)
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
