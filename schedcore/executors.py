"""The executors' base class (:class:`ExecutorBase`, the contract's defaults) and the
built-in executor (:class:`LocalExecutor`: runs tasks in this process on a thread pool)."""

from __future__ import annotations

import abc
import asyncio
import inspect
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, ClassVar

from schedcore._time import trunc_ms
from schedcore._validate import resolve_task
from schedcore.clock import Clock, SystemClock
from schedcore.exceptions import ExecutorUnavailable
from schedcore.model import Schedule
from schedcore.protocols import Executor, missing_methods
from schedcore.records import Outcome, OutcomeStatus, Run
from schedcore.tracebacks import format_traceback

__all__ = ["ExecutorBase", "LocalExecutor"]

log = logging.getLogger("schedcore.executors")


def _handed_over() -> None:
    """What :meth:`ExecutorBase.submit_nowait` returns: the hand-over is done already."""


class ExecutorBase(abc.ABC):
    """The defaults of :class:`~schedcore.protocols.Executor`, for implementations to inherit.

    A subclass implements ``validate``, ``start``, ``submit`` and ``shutdown``
    (instantiating one that lacks any raises TypeError naming them) and gets:

    * :meth:`task_references` -- no code but the task (nothing more for the allow-list);
    * :meth:`submit_nowait` -- :meth:`submit` at once, and a function with nothing left to
      wait for (the engine's next claim then follows the hand-over; nothing overlaps);
    * :meth:`settled` -- nothing to forget;
    * ``durable_outcomes = False`` -- :meth:`shutdown` with ``wait`` waits for running runs.

    The local, callback and RQ executors inherit this class.
    """

    #: True when outcomes of runs still running survive this executor's shutdown (its
    #: backend keeps them for the next executor): see :meth:`Executor.shutdown`.
    durable_outcomes: ClassVar[bool] = False

    def __new__(cls, *args: Any, **kwargs: Any) -> ExecutorBase:
        missing = missing_methods(cls, Executor)
        if missing:  # at construction, not at the first hand-over
            raise TypeError(f"executor {cls.__qualname__} lacks required methods of Executor: {', '.join(missing)}")
        return super().__new__(cls)

    @abc.abstractmethod
    def submit(self, runs: Sequence[Run]) -> None: ...

    def task_references(self, schedule: Schedule) -> Sequence[tuple[str, str]]:
        """No code but the task: nothing more for the allow-list to check."""
        return ()

    def submit_nowait(self, runs: Sequence[Run]) -> Callable[[], None]:
        """:meth:`submit` now; returns a function with nothing left to wait for."""
        self.submit(runs)
        return _handed_over

    def settled(self, run_ids: Sequence[str]) -> None:  # noqa: B027  (a default, deliberately empty)
        """Nothing to forget: this executor keeps no per-run state for repeats, or bounds it."""


class LocalExecutor(ExecutorBase):
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
