"""Executors for tests: a function decides each run's outcome -- no threads, no real tasks.

In the spirit of httpx's ``MockTransport``::

    from schedcore.testing.executors import CallbackExecutor, Result

    def handler(run):
        if run.attempt == 1:
            raise RuntimeError("flaky")           # a failed run ("RuntimeError: flaky")
        return Result(duration=30)                # succeeds 30 simulated seconds later

    clock = FakeClock()
    executor = CallbackExecutor(handler, clock=clock)
    scheduler = Scheduler(MemoryStore(), executor, clock=clock)

With a :class:`~schedcore.clock.FakeClock`, a run with a duration reports when the
clock reaches its finish time (``FakeClock.call_at``); without a duration it reports
at once, from inside ``submit``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

from schedcore._time import to_timedelta, trunc_ms
from schedcore.clock import Clock, FakeClock, SystemClock
from schedcore.exceptions import ExecutorUnavailable
from schedcore.model import Schedule
from schedcore.records import Outcome, OutcomeStatus, Run
from schedcore.tracebacks import format_traceback

__all__ = ["CallbackExecutor", "Result"]


def _duration(value: Any) -> timedelta:
    return to_timedelta(value, "duration")


@attrs.frozen(kw_only=True)
class Result:
    """What a handler returns: the run's status, its error text (and traceback) and how long it runs."""

    status: OutcomeStatus = attrs.field(default=OutcomeStatus.SUCCEEDED, converter=OutcomeStatus)
    error: str | None = None
    traceback: str | None = None
    duration: timedelta = attrs.field(default=timedelta(0), converter=_duration)


Handler = Callable[[Run], "Result | OutcomeStatus | None"]


class CallbackExecutor:
    """An :class:`~schedcore.protocols.Executor` whose ``handler(run)`` plays the task.

    The handler returns None (success), an :class:`OutcomeStatus`, or a :class:`Result`;
    an exception it raises makes a failed run with ``"Type: message"`` as the error and its
    traceback (:func:`~schedcore.tracebacks.format_traceback`). Runs
    are deduplicated by id like a real executor. Everything is recorded: ``submitted``
    (every hand-over, repeats included), ``executed`` (runs the handler saw, once each),
    ``outcomes`` (reported) and ``running`` (executed, not finished yet). Set
    ``unavailable = True`` to make ``submit`` raise ExecutorUnavailable. Several
    schedulers may share one instance (each ``start`` adds a report callback), like
    schedulers sharing one queue.
    """

    def __init__(self, handler: Handler | None = None, *, clock: Clock | None = None) -> None:
        self.handler: Handler = handler if handler is not None else (lambda run: None)
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.submitted: list[Run] = []
        self.executed: list[Run] = []
        self.outcomes: list[Outcome] = []
        self.running: dict[str, Run] = {}
        self.settled_ids: list[str] = []  # what the engine said was committed (Executor.settled)
        self.unavailable = False
        self.nowait_fails = False
        self.closed = False
        self._reports: list[Callable[[Outcome], None]] = []
        self._executed_ids: set[str] = set()
        self._lock = threading.RLock()

    def validate(self, schedule: Schedule) -> None:
        """Accept every schedule."""

    def start(self, report: Callable[[Outcome], None]) -> None:
        """Add ``report`` to the callbacks that receive outcomes."""
        with self._lock:
            self._reports.append(report)

    def submit(self, runs: Sequence[Run]) -> None:
        """Record ``runs`` and play each new one through the handler."""
        with self._lock:
            if self.unavailable or self.closed:
                raise ExecutorUnavailable("CallbackExecutor is unavailable")
            self.submitted.extend(runs)
            fresh = []
            for run in runs:
                if run.id not in self._executed_ids:
                    self._executed_ids.add(run.id)
                    fresh.append(run)
            self.executed.extend(fresh)
        for run in fresh:
            self._play(run)

    def submit_nowait(self, runs: Sequence[Run]) -> Callable[[], None]:
        """:meth:`submit` now; the returned function has nothing to wait for.

        Having it makes the engine claim each next batch before committing the one handed
        over (as with the RQ executor), so simulations cover that order too. With
        ``nowait_fails = True`` the returned function raises ExecutorUnavailable instead
        (the runs were recorded: a hand-over whose answer was lost).
        """
        self.submit(runs)
        return self._nowait_done

    def _nowait_done(self) -> None:
        if self.nowait_fails:
            raise ExecutorUnavailable("CallbackExecutor: the hand-over's answer was lost")

    def settled(self, run_ids: Sequence[str]) -> None:
        """Record the ids in ``settled_ids`` (nothing else to do: repeats are dropped by id forever)."""
        with self._lock:
            self.settled_ids.extend(run_ids)

    def shutdown(self, wait: bool = True) -> None:
        """Refuse new runs; with ``wait`` and a FakeClock, move time on until every run has reported."""
        self.closed = True
        if wait and isinstance(self.clock, FakeClock):
            while self.running and self.clock.next_timer() is not None:
                target = self.clock.next_timer()
                assert target is not None
                self.clock.set(max(target, self.clock.now()))

    def finish(
        self, run_id: str, status: OutcomeStatus | str = OutcomeStatus.SUCCEEDED, error: str | None = None
    ) -> None:
        """Report a run still running as finished now (for handlers that return a very long duration)."""
        with self._lock:
            run = self.running.get(run_id)
        if run is not None:
            self._report(run, OutcomeStatus(status), error, self.clock.now(), self.clock.now())

    def executed_ids(self) -> list[str]:
        """Ids of the runs executed, in order."""
        return [run.id for run in self.executed]

    def _play(self, run: Run) -> None:
        started = self.clock.now()
        try:
            answer = self.handler(run)
        except Exception as exc:
            result = Result(
                status=OutcomeStatus.FAILED, error=f"{type(exc).__name__}: {exc}", traceback=format_traceback(exc)
            )
        else:
            if answer is None:
                result = Result()
            elif isinstance(answer, Result):
                result = answer
            else:
                result = Result(status=OutcomeStatus(answer))
        with self._lock:
            self.running[run.id] = run
        if result.duration > timedelta(0):
            if not isinstance(self.clock, FakeClock):
                raise TypeError("simulated durations need a FakeClock")
            finish = started + result.duration
            self.clock.call_at(
                finish, lambda: self._report(run, result.status, result.error, started, finish, trace=result.traceback)
            )
        else:
            self._report(run, result.status, result.error, started, started, trace=result.traceback)

    def _report(
        self,
        run: Run,
        status: OutcomeStatus,
        error: str | None,
        started: datetime,
        finished: datetime,
        *,
        trace: str | None = None,
    ) -> None:
        with self._lock:
            if self.running.pop(run.id, None) is None:
                return  # already finished (finish() then the timer)
            outcome = Outcome(
                run_id=run.id,
                schedule_id=run.schedule_id,
                nominal=run.nominal,
                attempt=run.attempt,
                status=status,
                started_at=trunc_ms(started),
                finished_at=finished,
                error=error if status is not OutcomeStatus.SUCCEEDED else None,
                traceback=trace if status is not OutcomeStatus.SUCCEEDED else None,
            )
            self.outcomes.append(outcome)
            reports = list(self._reports)
        for report in reports:
            report(outcome)
