"""The built-in executor: runs tasks in this process on a thread pool."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from schedcore._time import trunc_ms
from schedcore._validate import resolve_task
from schedcore.clock import Clock, SystemClock
from schedcore.exceptions import ExecutorUnavailable
from schedcore.model import Schedule
from schedcore.records import Outcome, OutcomeStatus, Run
from schedcore.tracebacks import format_traceback

__all__ = ["LocalExecutor"]

log = logging.getLogger("schedcore.executors")


def _handed_over() -> None:
    """What :meth:`LocalExecutor.submit_nowait` returns: the runs are queued already."""


class LocalExecutor:
    """Runs each run's task in-process on a :class:`~concurrent.futures.ThreadPoolExecutor`.

    The task is imported by reference when the run starts (so a task that cannot be
    imported is a *failed run*, ``"ImportError: ..."``, retried per the schedule's policy);
    coroutine functions run with :func:`asyncio.run`. A failed run's outcome carries its
    traceback, trimmed by :func:`schedcore.tracebacks.format_traceback`. Hand-over is idempotent: the ids of
    the last ``remember`` runs handed over are kept, and a repeat is dropped.

    ``max_workers`` bounds the runs executing at once (None: the thread pool's default);
    ``clock`` stamps ``started_at``/``finished_at`` (the system clock by default).
    """

    def __init__(self, max_workers: int | None = None, *, clock: Clock | None = None, remember: int = 100_000) -> None:
        if max_workers is not None and (isinstance(max_workers, bool) or max_workers < 1):
            raise ValueError("max_workers must be a positive integer or None")
        self.max_workers = max_workers
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._remember = remember
        self._seen: OrderedDict[str, None] = OrderedDict()  # run ids handed over, oldest first
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._report: Callable[[Outcome], None] | None = None
        self._closed = False

    def validate(self, schedule: Schedule) -> None:
        """Any schedule can run locally (the task is imported when it runs)."""

    def start(self, report: Callable[[Outcome], None]) -> None:
        """Begin accepting runs; ``report`` receives each outcome (from a worker thread)."""
        with self._lock:
            if self._closed:
                raise ExecutorUnavailable("this LocalExecutor was shut down")
            self._report = report
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="schedcore-run")

    def submit(self, runs: Sequence[Run]) -> None:
        """Queue ``runs`` on the pool; runs handed over before are dropped."""
        with self._lock:
            if self._closed or self._pool is None:
                raise ExecutorUnavailable("LocalExecutor is not running (not started or shut down)")
            pool = self._pool
            fresh = []
            for run in runs:
                if run.id not in self._seen:  # also drops a repeat within this batch
                    self._seen[run.id] = None
                    fresh.append(run)
            while len(self._seen) > self._remember:
                self._seen.popitem(last=False)
        for run in fresh:
            pool.submit(self._execute, run)

    def submit_nowait(self, runs: Sequence[Run]) -> Callable[[], None]:
        """:meth:`submit` (it never waits on anything); returns a function with nothing to wait for.

        Queuing on the pool takes microseconds, so there is nothing to overlap; it is here so
        that the embedded default drives the engine exactly like a networked executor (the
        next batch claimed before this one is committed), under the property tests too.
        """
        self.submit(runs)
        return _handed_over

    def settled(self, run_ids: Sequence[str]) -> None:
        """Nothing to do: the remembered ids are bounded by ``remember`` and live in this process."""

    def shutdown(self, wait: bool = True) -> None:
        """Accept no more runs; with ``wait``, return once queued and running ones have reported."""
        with self._lock:
            self._closed = True
            pool = self._pool
        if pool is not None:
            pool.shutdown(wait=wait)

    def _execute(self, run: Run) -> None:
        started = self.clock.now()
        status, error, trace = OutcomeStatus.SUCCEEDED, None, None
        try:
            fn = resolve_task(run.task)
        except Exception as exc:  # the traceback shows where the task's module failed to import
            status, error = OutcomeStatus.FAILED, f"ImportError: cannot import task {run.task!r}: {exc}"
            trace = format_traceback(exc)
        else:
            try:
                if inspect.iscoroutinefunction(fn):
                    asyncio.run(fn(*run.args, **run.kwargs))
                else:
                    result = fn(*run.args, **run.kwargs)
                    if inspect.iscoroutine(result):  # a plain function returning a coroutine
                        asyncio.run(result)
            except BaseException as exc:  # SystemExit from a task must not leave the run "running" forever
                status, error = OutcomeStatus.FAILED, f"{type(exc).__name__}: {exc}"
                trace = format_traceback(exc)
        self._emit(run, status, started, self.clock.now(), error, trace=trace)

    def _emit(
        self,
        run: Run,
        status: OutcomeStatus,
        started: datetime,
        finished: datetime,
        error: str | None,
        *,
        trace: str | None,
    ) -> None:
        outcome = Outcome(
            run_id=run.id,
            schedule_id=run.schedule_id,
            nominal=run.nominal,
            attempt=run.attempt,
            status=status,
            started_at=trunc_ms(started),  # stores keep milliseconds
            finished_at=finished,
            error=error,
            traceback=trace,
        )
        report = self._report
        if report is None:
            return
        try:
            report(outcome)
        except Exception:
            log.exception("reporting the outcome of %s failed", run.id)

    def __repr__(self) -> str:
        return f"<LocalExecutor max_workers={self.max_workers}>"
