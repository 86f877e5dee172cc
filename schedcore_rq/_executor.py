"""RQExecutor: hands runs to RQ queues exactly once and brings their outcomes back."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

import redis

from schedcore.exceptions import ExecutorError, ExecutorUnavailable
from schedcore.model import Schedule
from schedcore.records import Outcome, Run
from schedcore_rq._core import _DRIVER_ERRORS, log
from schedcore_rq._handoff import _Handoff
from schedcore_rq._jobs import check_schedule, parse_options
from schedcore_rq._reconcile import _Reconciler

__all__ = ["RQExecutor"]

_DRAIN_ERRORS: tuple[type[BaseException], ...] = (ExecutorError, *_DRIVER_ERRORS)


class RQExecutor(_Handoff, _Reconciler):
    """Runs schedcore runs as RQ jobs, executed by ordinary ``rq worker`` processes.

    :param connection: the ``redis.Redis`` connection RQ uses (``decode_responses=False``).
    :param queue: the RQ queue for schedules that name no queue of their own (``Schedule.queue``
        left at ``"default"`` and no ``queue`` executor option).
    :param serializer: RQ serializer for job data: ``"json"`` (recommended: workers then
        never unpickle job data), ``"pickle"``/``None`` (RQ's default: whoever can write RQ
        jobs into Redis can run code on the workers), or a class, instance or dotted path,
        as RQ accepts. Workers must use the same one; an owned ``workers`` pool without a
        serializer of its own is given this one (ValidationError when they differ).
    :param namespace: schedcore namespace; keys of this executor live under
        ``{schedcore:<namespace>}:rq:``.
    :param handoff_ttl: seconds a hand-off marker is kept while its claim is not committed
        (the engine's :meth:`settled` drops it once it is); a run handed over again within
        this time is recognised and dropped (must exceed the store's lease by far).
    :param heartbeat_interval: seconds between liveness beats of a running task; a task
        whose beats stop for three intervals while RQ says it is started is reported LOST.
    :param reconcile_interval: seconds between reconciler passes over outstanding jobs.
    :param poll_interval: longest block on the outcome list. Shutdown ends the block at once
        with ``CLIENT UNBLOCK``; where the server refuses that command (an ACL without
        ``client|unblock``), shutdown waits up to this long instead.
    :param workers: a :class:`~schedcore_rq.WorkerPool` this executor owns: started by
        :meth:`start`, stopped by :meth:`shutdown` (``schedcore run --workers N``).
    :param drain_timeout: how long ``shutdown(wait=True)`` waits for the jobs this executor
        handed over to report (default: 300 s with an owned worker pool -- so that
        ``run(burst=True)`` dispatches, waits for the runs and records them -- else 0:
        remote workers report to whichever executor runs next).

    Per-schedule options (``Schedule.executor_options``): ``queue``, ``job_timeout``,
    ``result_ttl``, ``ttl``, ``failure_ttl`` (seconds), ``at_front`` (bool),
    ``description`` (str), ``meta`` (dict), ``job_id`` (a one-shot's RQ job id),
    ``depends_on`` (RQ job ids: the job is deferred until they finished, as RQ's
    ``depends_on``; ``allow_dependency_failures`` counts a failed one as done) and
    ``on_success``/``on_failure`` (``"module:function"`` callbacks run on the worker, with
    ``on_success_timeout``/``on_failure_timeout`` seconds). RQ's own ``Retry`` is never used: the
    schedule's ``RetryPolicy`` decides, and a retry is a new run with a new job id.
    """

    #: Jobs run in other processes and their outcomes are kept in Redis across a shutdown
    #: (see ``Executor.shutdown``): the next RQExecutor on the namespace reports them.
    durable_outcomes = True

    @property
    def namespace(self) -> str:
        """The schedcore namespace of this executor's keys."""
        return self._namespace

    def queue_for(self, run_or_schedule: Run | Schedule) -> str:
        """The RQ queue a run (or every run of a schedule) goes to."""
        options = parse_options(run_or_schedule.executor_options)
        return self._queue_name(options, run_or_schedule.queue)

    def validate(self, schedule: Schedule) -> None:
        """Check ``executor_options`` and that the RQ serializer accepts the arguments.

        Raises ValidationError naming the option (``executor_options.job_timeout``, ...).
        """
        check_schedule(schedule, self._serializer)

    def task_references(self, schedule: Schedule) -> list[tuple[str, str]]:
        """The code a worker imports for runs of ``schedule`` besides its task: the
        ``on_success``/``on_failure`` callbacks, as ``(field, "module:function")`` pairs. The
        scheduler checks them against its allow-list when the schedule is added (and the
        worker against ``SCHEDCORE_ALLOWED_TASKS`` before importing them)."""
        callbacks = parse_options(schedule.executor_options).callbacks
        return [(f"executor_options.{name}", reference) for name, reference in callbacks.items()]

    def start(self, report: Callable[[Outcome], None]) -> None:
        """Start the background thread that reports outcomes and reconciles outstanding jobs.

        Outcomes left in the processing list by an executor that died are reported again
        first (the core ignores repeats). Calling start again after :meth:`shutdown` reopens
        the executor.
        """
        with self._lock:
            self._report = report
            self._closed = False
            self._down = False
            if self.workers is not None:
                self.workers.start()
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="schedcore-rq-outcomes", daemon=True)
            self._thread.start()

    def shutdown(self, wait: bool = True) -> None:
        """Stop accepting runs, stop the outcome thread and an owned worker pool. Idempotent.

        With ``wait``, first wait up to ``drain_timeout`` for the jobs this executor handed
        over to report (no wait at all when none is outstanding), then report the outcomes
        already in Redis. The outcome thread's blocking read is ended at once, so a shutdown
        with nothing outstanding takes a few round trips, not a poll interval. Outcomes arriving later
        stay in Redis and are reported by the next executor started on the namespace.
        """
        self._closed = True
        if self._down:
            return
        if wait and self._report is not None and self._drain_timeout > 0:
            self._drain(time.monotonic() + self._drain_timeout)
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            self._wake_and_join(thread)
        self._thread = None
        if wait and self._report is not None:
            try:
                self.process_outcomes()
            except ExecutorUnavailable:
                log.warning("could not report the last RQ outcomes at shutdown; they stay in Redis")
        with self._settle_lock:
            self._read_settled()
        if self.workers is not None:
            self.workers.stop()
        self._down = True

    def _wake_and_join(self, thread: threading.Thread) -> None:
        """Join the outcome thread, ending its blocking read at once with ``CLIENT UNBLOCK``
        (the read then returns as if timed out: no outcome is taken and left unread).

        The thread may be between two reads when the first unblock is sent, so it is sent
        again until the thread is gone. Where the server refuses the command (an ACL without
        ``client|unblock``, a proxy), the thread ends by itself within ``poll_interval``.
        """
        deadline = time.monotonic() + self._poll + 5.0
        while thread.is_alive() and time.monotonic() < deadline:
            blocked = self._blocked_id
            if blocked is not None and not self._unblock_refused:
                try:
                    self._connection.client_unblock(blocked)
                except _DRIVER_ERRORS as exc:
                    self._unblock_refused = True
                    log.debug("CLIENT UNBLOCK refused (%s: %s); waiting for the outcome poll", type(exc).__name__, exc)
            thread.join(timeout=0.02 if blocked is not None and not self._unblock_refused else self._poll + 5.0)

    def _drain(self, deadline: float) -> None:
        with self._mine_lock:
            if not self._mine:
                return  # nothing handed over by this executor is outstanding: nothing to wait for
        next_reconcile = 0.0
        while time.monotonic() < deadline:
            try:
                self.process_outcomes()
                if time.monotonic() >= next_reconcile:
                    self.reconcile()
                    next_reconcile = time.monotonic() + max(self._heartbeat, 1.0)
                with self._mine_lock:
                    mine = sorted(self._mine)
                if mine:
                    pipe = self._connection.pipeline(transaction=False)
                    for job_id in mine:
                        pipe.zscore(self.keys.outstanding, job_id)
                    done = {job_id for job_id, score in zip(mine, pipe.execute(), strict=True) if score is None}
                    with self._mine_lock:
                        self._mine -= done
                        mine = sorted(self._mine)
                if not mine:
                    return
            except _DRAIN_ERRORS as exc:
                log.warning("waiting for RQ outcomes: %s: %s", type(exc).__name__, exc)
            time.sleep(0.1)
        log.warning("shutdown: %d RQ jobs still unfinished after the drain timeout; not waiting", len(self._mine))

    def _loop(self) -> None:
        # The blocking read has a connection of its own (from the same pool) whose client id
        # shutdown knows, so that it can end the read at once (see _wake_and_join).
        # Made when first needed: the recovery of a dead executor's payloads comes first, at once.
        blocking: list[redis.Redis] = []
        try:
            self._outcome_loop(blocking)
        finally:
            self._blocked_id = None
            if blocking and blocking[0] is not self._connection:
                with contextlib.suppress(*_DRIVER_ERRORS):
                    blocking[0].close()
