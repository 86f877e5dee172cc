"""RQExecutor: hands runs to RQ queues exactly once and brings their outcomes back."""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import redis
from redis.exceptions import NoScriptError, RedisError

from schedcore._validate import check_id
from schedcore.exceptions import ExecutorUnavailable, ValidationError
from schedcore.model import Schedule
from schedcore.records import Outcome, OutcomeStatus, Run
from schedcore_redis._roundtrip import send_now
from schedcore_rq._jobs import (
    HANDOFF_LUA,
    ON_FAILURE,
    ON_STOPPED,
    ON_SUCCESS,
    RUN_TASK,
    TEMPLATE_CACHE_SIZE,
    JobOptions,
    JobTemplate,
    as_bytes,
    check_schedule,
    job_id_for,
    parse_options,
    run_info,
    run_job_id,
)
from schedcore_rq._outcomes import (
    FINISH_LUA,
    META_KEY,
    BadRecord,
    Keys,
    RunInfo,
    error_text,
    load_object,
    now_ms,
    outcome_from_payload,
    payload,
)
from schedcore_rq._quarantine import (
    ORPHANS_LUA,
    QUARANTINE_LIMIT,
    SET_ASIDE_KEYS_LUA,
    SET_ASIDE_OUTCOME_LUA,
    SET_ASIDE_RUN_LUA,
    outcome_field,
    record,
    shown,
)
from schedcore_rq._serializers import serializer_path
from schedcore_rq._supervisor import WorkerPool

__all__ = ["RQExecutor"]

log = logging.getLogger("schedcore.rq")

_CHUNK = 100  # runs per script call; all chunks of a batch go in one pipeline (one round trip)
_TEMPLATE_TTL_MS = 7 * 86_400_000  # a job template unused this long leaves Redis (sent again if needed)
_TEMPLATE_GONE = -1  # the hand-off script's reply when a template it should read is not there
_RECONCILE_CHUNK = 50  # outstanding jobs looked at per round trip of a reconciler pass
_RECONCILE_PAUSE_MAX = 0.05  # seconds: the longest pause between two chunks of a pass
_LOST_MARKERS = ("AbandonedJobError", "Work-horse terminated unexpectedly")
_SETTLE_CHUNK = 1000  # hand-off markers per UNLINK of settled()
_HANDED_NOW = ord("1")  # a run's character in the hand-off script's reply: handed over now


class _Entry(NamedTuple):
    """One run of a hand-off, as :meth:`RQExecutor._run_handoff` sends it (see :data:`HANDOFF_LUA`)."""

    job_id: str
    info: str  # run info JSON
    failure: str  # failure payload ('' = none)
    template: JobTemplate | None
    data: bytes  # the job's data (a template's slot); without a template b"1" marks a job with dependencies
    meta: bytes  # the job's serialized meta (b"" without a template)
    description: bytes  # encoded as redis-py would (b"" without a template)
    commands: list[Any]  # without a template: number of commands, then per command its length and arguments


class _Plan(NamedTuple):
    """What every run of one (task, arguments, queue, options) in a hand-off shares."""

    meta: dict[str, Any]  # the options' meta
    description: str | None  # the options' description
    template: JobTemplate
    data: bytes


def _redis_exceptions() -> tuple[type[BaseException], ...]:
    """Every exception class redis-py defines (a test fails if one escapes the mapping)."""
    import inspect

    import redis.exceptions

    found = {
        cls
        for cls in vars(redis.exceptions).values()
        if inspect.isclass(cls) and issubclass(cls, Exception) and cls.__module__.startswith("redis")
    }
    return (RedisError, *sorted(found, key=lambda c: c.__name__))


#: Driver errors translated into ExecutorUnavailable at this adapter's boundary.
_DRIVER_ERRORS: tuple[type[BaseException], ...] = (*_redis_exceptions(), OSError)
_DRAIN_ERRORS: tuple[type[BaseException], ...] = (ExecutorUnavailable, *_DRIVER_ERRORS)
#: Errors that retrying does not cure (the server refuses this user the command or the key).
_PERMANENT_ERRORS = (redis.exceptions.NoPermissionError, redis.exceptions.AuthenticationError)
_STUCK_AFTER = 120.0  # seconds after which a payload in the processing list is considered abandoned
_SWEEP_BATCH = 500


def _is_wrong_type(exc: BaseException) -> bool:
    return isinstance(exc, redis.exceptions.ResponseError) and "WRONGTYPE" in str(exc)


def _rq_timestamp() -> str:
    """Now, as RQ writes a job's ``created_at`` and ``enqueued_at``."""
    from rq.utils import now, utcformat

    return utcformat(now())


def _flat(commands: list[tuple[Any, ...]]) -> list[Any]:
    """Commands as the hand-off script reads them: their number, then per command its length and arguments."""
    flat: list[Any] = [len(commands)]
    for command in commands:
        flat.append(len(command))
        flat.extend(command)
    return flat


def _no_dependency_check(job: Any, pipeline: Any = None) -> Any:
    """Stands in for ``Queue.setup_dependencies`` in captures (the hand-off script decides)."""
    return job


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _description(option: str | None, run: Run) -> str:
    """A job's description: the ``description`` option, else the task and the run id."""
    return option or f"{run.task} [schedcore {run.id}]"


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _match_workers(workers: WorkerPool, serializer: Any, resolved: Any) -> None:
    """Give an owned pool the executor's serializer, or refuse a pool that uses another one:
    a worker with the wrong one cannot read the jobs (or, with pickle, reads what JSON meant to keep out)."""
    from rq.serializers import resolve_serializer

    if workers.serializer is None and serializer is not None:
        workers.serializer = serializer_path(serializer)
    try:
        theirs = resolve_serializer(serializer_path(workers.serializer))
    except Exception:  # not importable here: it cannot be the executor's
        theirs = None
    if theirs is not resolved:
        raise ValidationError(
            "serializer", workers.serializer, f"the workers' serializer differs from the executor's ({serializer!r})"
        )


class RQExecutor:
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

    def __init__(
        self,
        connection: redis.Redis,
        queue: str = "default",
        serializer: Any = None,
        *,
        namespace: str = "default",
        handoff_ttl: float = 86_400.0,
        heartbeat_interval: float = 10.0,
        reconcile_interval: float = 15.0,
        poll_interval: float = 1.0,
        workers: WorkerPool | None = None,
        drain_timeout: float | None = None,
    ) -> None:
        from rq.serializers import resolve_serializer

        from schedcore._validate import check_queue

        self._connection = connection
        self._default_queue = check_queue(queue, "queue")
        self._namespace = check_id(namespace, "namespace")
        if isinstance(serializer, str):
            serializer = serializer_path(serializer)  # "json"/"pickle" on every RQ version
        try:
            self._serializer = resolve_serializer(serializer)
        except Exception as exc:
            raise ValidationError("serializer", serializer, f"not an RQ serializer ({exc})") from None
        self._serializer_arg = serializer
        if workers is not None:
            _match_workers(workers, serializer, self._serializer)
        for name, value in (
            ("handoff_ttl", handoff_ttl),
            ("heartbeat_interval", heartbeat_interval),
            ("reconcile_interval", reconcile_interval),
            ("poll_interval", poll_interval),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValidationError(name, value, "must be a positive number of seconds")
        self._handoff_ttl_ms = max(int(handoff_ttl * 1000), 1000)
        self._heartbeat = float(heartbeat_interval)
        self._reconcile_interval = float(reconcile_interval)
        self._poll = float(poll_interval)
        self.keys = Keys(self._namespace)
        self._queues: dict[str, Any] = {}
        self._dependent_queues: dict[str, Any] = {}  # see _dependent_queue
        # (queue, task and arguments, options) -> a job template and the job's data (see _job_plan)
        self._templates: dict[tuple[Any, ...], tuple[JobTemplate, bytes] | None] = {}
        self._shared: dict[str, JobTemplate] = {}  # digest -> template: one object per distinct template
        self._by_shape: dict[tuple[Any, ...], JobTemplate] = {}  # (queue, options) -> template, data proven
        self._stored: set[str] = set()  # digests of the templates the server holds (sent inline otherwise)
        self._handoff_sha: str | None = None
        self._finish = connection.register_script(FINISH_LUA)
        self._set_aside_run = connection.register_script(SET_ASIDE_RUN_LUA)
        self._set_aside_outcome = connection.register_script(SET_ASIDE_OUTCOME_LUA)
        self._orphans = connection.register_script(ORPHANS_LUA)
        self._set_aside_keys = connection.register_script(SET_ASIDE_KEYS_LUA)
        self._report: Callable[[Outcome], None] | None = None
        self._lock = threading.RLock()  # serialises reporting (thread vs. process_outcomes)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # The Redis client id of the outcome loop's blocking connection (None: not known), so
        # that shutdown can end its wait at once with CLIENT UNBLOCK instead of waiting it out.
        self._blocked_id: int | None = None
        self._unblock_refused = False  # CLIENT UNBLOCK was refused (ACL): shutdown waits out the poll
        self._closed = False
        self._suspects: dict[str, float] = {}  # job id -> monotonic time first seen started but silent
        self._retry: list[bytes | str] = []  # payloads whose report raised; retried later
        self._mine: set[str] = set()  # job ids handed over by this instance, not reported yet
        self._named: dict[str, str] = {}  # run id -> its job id, for runs with a job id of the caller's
        self._mine_lock = threading.Lock()
        self._reconcile_lock = threading.Lock()
        self._settle_lock = threading.Lock()
        self._settling: Callable[[], list[Any]] | None = None  # the unread reply of the last settled()
        self._down = False  # shutdown() completed (and start() not called since)
        self.workers = workers
        if drain_timeout is None:
            drain_timeout = 300.0 if workers is not None else 0.0
        if isinstance(drain_timeout, bool) or not isinstance(drain_timeout, (int, float)) or drain_timeout < 0:
            raise ValidationError("drain_timeout", drain_timeout, "must be zero or a positive number of seconds")
        self._drain_timeout = float(drain_timeout)

    # -- public API --------------------------------------------------------------------------

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

    def submit(self, runs: Sequence[Run]) -> None:
        """Hand ``runs`` to RQ: one job per run id, never two, in one round trip per batch.

        A run whose job cannot be built (arguments the serializer refuses, a bad option) is
        reported as a failed run. Redis errors raise ExecutorUnavailable; the core releases
        its claims and hands the runs over again later, which is harmless.
        """
        self.handoff(runs)

    def submit_nowait(self, runs: Sequence[Run]) -> Callable[[], None]:
        """See ``submit_nowait`` in :class:`schedcore.protocols.Executor`: the jobs are built and
        their hand-off script sent now; the returned function reads its reply (raising what
        :meth:`submit` would have raised), so the engine claims its next batch meanwhile."""
        entries, stamp = self._entries(runs)
        finish = self._send(entries, stamp, nowait=True)

        def handed_over() -> None:
            finish()

        return handed_over

    def handoff(self, runs: Sequence[Run]) -> list[bool]:
        """Like :meth:`submit`, returning per run whether it was handed over now (False: before)."""
        entries, stamp = self._entries(runs)
        return self._send(entries, stamp, nowait=False)()

    def _entries(self, runs: Sequence[Run]) -> tuple[list[_Entry], str]:
        """The hand-off entries of ``runs`` and their timestamp (ExecutorUnavailable when shut down)."""
        if self._closed:
            raise ExecutorUnavailable("the RQ executor is shut down")
        stamp = _rq_timestamp()  # the jobs of one hand-off are created (and enqueued) together
        try:
            # Runs of schedules that share a definition carry the very same args, kwargs and
            # options objects: what only depends on them is worked out once per call. Keyed
            # by id(), so only valid while the runs (and so those objects) are alive: local.
            plans: dict[tuple[Any, ...], _Plan] = {}
            encoder = self._connection.get_encoder()  # the description is sent inside a bytes argument
            encode = functools.partial(str.encode, encoding=encoder.encoding, errors=encoder.encoding_errors)
            return [self._entry(run, stamp, plans, encode) for run in runs], stamp
        except _DRIVER_ERRORS as exc:
            raise ExecutorUnavailable(f"cannot hand runs to RQ: {type(exc).__name__}: {exc}") from exc

    def _send(self, entries: list[_Entry], stamp: str, *, nowait: bool) -> Callable[[], list[bool]]:
        """Start the hand-off script for ``entries`` (with ``nowait``: sent now, read later);
        the returned function finishes it: per entry whether it was handed over now."""
        if not entries:
            return list
        try:
            finish = self._start_handoff(entries, stamp, nowait=nowait)
        except _DRIVER_ERRORS as exc:
            raise ExecutorUnavailable(f"cannot hand runs to RQ: {type(exc).__name__}: {exc}") from exc

        def finished() -> list[bool]:
            try:
                handed = finish()
            except _DRIVER_ERRORS as exc:
                raise ExecutorUnavailable(f"cannot hand runs to RQ: {type(exc).__name__}: {exc}") from exc
            with self._mine_lock:
                self._mine.update(entry.job_id for entry in entries if not entry.failure)
            return handed

        return finished

    def settled(self, run_ids: Sequence[str]) -> None:
        """Drop the hand-off markers of ``run_ids``: their hand-over is committed in the store.

        A marker exists so that a scheduler that re-claims an entry whose claimer died
        between ``submit`` and ``commit`` -- and rebuilds the same run ids -- does not hand
        them over twice. Once the claim is committed, no scheduler can rebuild these runs from
        it, so the marker has done its job; markers of claims never committed (a crash) keep
        ``handoff_ttl``. The markers in Redis are thus bounded by the hand-overs in flight,
        not by the run rate. One ``UNLINK`` per call, sent without waiting: its reply is read
        at the next call (or at shutdown), long after it arrived. Never raises: a failure
        leaves the markers to expire.
        """
        if not run_ids:
            return
        named = self._named
        keys = [self.keys.handed(named.pop(r, "") or job_id_for(r, self._namespace)) for r in run_ids]
        with self._settle_lock:
            self._read_settled()
            try:
                commands = [("UNLINK", *chunk) for chunk in _chunks(keys, _SETTLE_CHUNK)]
                sent = send_now(self._connection, commands)
                if sent is None:  # no pool to send on (a cluster client): the usual call
                    pipe = self._connection.pipeline(transaction=False)
                    for command in commands:
                        pipe.execute_command(*command)  # type: ignore[no-untyped-call]
                    pipe.execute(raise_on_error=False)
                self._settling = sent
            except _DRIVER_ERRORS as exc:
                name = type(exc).__name__
                log.warning("could not drop %d hand-off markers (%s: %s); they expire", len(keys), name, exc)

    def _read_settled(self) -> None:
        """Read the reply of the last :meth:`settled` call, if still unread (under ``_settle_lock``)."""
        sent, self._settling = self._settling, None
        if sent is None:
            return
        try:
            for reply in sent():
                if isinstance(reply, Exception):
                    raise reply
        except _DRIVER_ERRORS as exc:
            log.warning("could not drop hand-off markers (%s: %s); they expire", type(exc).__name__, exc)

    def process_outcomes(self) -> int:
        """Report every outcome waiting in Redis now (without blocking); returns how many.

        The background thread does this continuously; call it directly in tests and for
        one-shot (``--burst``) use.
        """
        if self._report is None:
            raise RuntimeError("start(report) first")
        count = 0
        try:
            with self._lock:
                count += self._retry_failed()
                while True:
                    item = self._connection.lmove(self.keys.outcomes, self.keys.processing, "RIGHT", "LEFT")
                    if item is None:
                        break
                    count += self._handle(item)
        except _DRIVER_ERRORS as exc:
            raise ExecutorUnavailable(f"cannot read RQ outcomes: {type(exc).__name__}: {exc}") from exc
        return count

    def reconcile(self) -> int:
        """One pass over outstanding jobs whose outcome never came; returns how many it found.

        Finished/failed/stopped/canceled jobs are reported from their RQ status; a job that
        vanished is LOST; a started job whose worker stopped beating is LOST once it has been
        silent for three heartbeat intervals across passes.
        """
        try:
            with self._reconcile_lock:
                return self._reconcile()
        except _DRIVER_ERRORS as exc:
            raise ExecutorUnavailable(f"cannot reconcile RQ jobs: {type(exc).__name__}: {exc}") from exc

    def outstanding(self) -> int:
        """How many handed-over jobs have no outcome yet."""
        try:
            return int(self._connection.zcard(self.keys.outstanding))
        except _DRIVER_ERRORS as exc:
            raise ExecutorUnavailable(f"{type(exc).__name__}: {exc}") from exc

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

    # -- hand-off ----------------------------------------------------------------------------

    def _queue_name(self, options: JobOptions, run_queue: str) -> str:
        if options.queue:
            return options.queue
        return run_queue if run_queue != "default" else self._default_queue

    def _queue(self, name: str) -> Any:
        queue = self._queues.get(name)
        if queue is None:
            from rq import Queue

            queue = Queue(name, connection=self._connection, serializer=self._serializer_arg)
            self._queues[name] = queue
        return queue

    def _dependent_queue(self, name: str) -> Any:
        """The queue jobs with dependencies are captured on: RQ's dependency check is off."""
        queue = self._dependent_queues.get(name)
        if queue is None:
            from rq import Queue

            queue = Queue(name, connection=self._connection, serializer=self._serializer_arg)
            queue.setup_dependencies = _no_dependency_check  # type: ignore[method-assign]
            self._dependent_queues[name] = queue
        return queue

    def _entry(
        self, run: Run, stamp: str, plans: dict[tuple[Any, ...], _Plan], encode: Callable[[str], bytes]
    ) -> _Entry:
        """One run of a hand-off (see :data:`HANDOFF_LUA`): a run whose job cannot be built (a
        bad option, arguments the serializer refuses) carries a failure payload instead.

        ``plans`` holds what runs with the same task, arguments, queue and options share (their
        parsed options, template and data), by the identity of those objects: the first such
        run of a call works it out, the others only serialize their meta. ``encode`` is the
        connection's encoding of a str (the description is sent inside a bytes argument).
        """
        job_id = self._job_id(run)
        run_fields = run_info(run)
        info = run_fields.to_json()
        try:
            if run.id in self._named:  # a job id of the caller's: never templated (see _job_id)
                return self._untemplated(run, job_id, info, run_fields)
            plan_key = (run.task, run.queue, id(run.args), id(run.kwargs), id(run.executor_options))
            plan = plans.get(plan_key)
            if plan is None:
                options = parse_options(run.executor_options)
                if not options.templated:
                    return self._untemplated(run, job_id, info, run_fields)
                known, _shape, _key = self._lookup(run, options)
                if known is not None:
                    plan = plans[plan_key] = _Plan(options.meta, options.description, *known)
            if plan is not None:
                meta = self._serializer.dumps(self._meta(plan.meta, run_fields))
                description = _description(plan.description, run)
                return _Entry(job_id, info, "", plan.template, plan.data, meta, encode(description), [])
            template, rest = self._job_plan(run, job_id, run_fields, stamp)
            if template is not None:
                description, meta, _stamp, data = rest
                return _Entry(job_id, info, "", template, data, meta, encode(description), [])
        except _DRIVER_ERRORS:
            raise
        except Exception as exc:  # a run RQ refuses is a failed run, not a broken scheduler
            log.warning("run %s cannot become an RQ job: %s", run.id, error_text(type(exc), exc))
            failure = payload(job_id, run_fields, OutcomeStatus.FAILED, error=error_text(type(exc), exc))
            return _Entry(job_id, info, failure, None, b"", b"", b"", [0])
        return _Entry(job_id, info, "", None, b"", b"", b"", rest)

    def _job_id(self, run: Run) -> str:
        """The RQ job id of ``run`` (see :func:`run_job_id`). A run with an id of the caller's
        is remembered in ``_named`` (for :meth:`settled`, and to bypass the job templates,
        whose id slot is found by searching the captured writes for the id: a short id such
        as ``"a"`` would also match inside other values)."""
        if run.executor_options.get("job_id") is None:  # the common case, without parsing the options
            return job_id_for(run.id, self._namespace)
        try:
            job_id = run_job_id(run, parse_options(run.executor_options), self._namespace)
        except ValidationError:
            return job_id_for(run.id, self._namespace)  # the run fails in _entry, naming the option
        if job_id != job_id_for(run.id, self._namespace):
            self._named[run.id] = job_id
        return job_id

    def _untemplated(self, run: Run, job_id: str, info: str, run_fields: RunInfo) -> _Entry:
        """The hand-off entry of a run built from RQ itself (a job id of the caller's,
        dependencies or callbacks): its commands, and for a job with dependencies both the
        enqueue and the deferral, which the hand-off script chooses between."""
        options = parse_options(run.executor_options)
        description = _description(options.description, run)
        meta = self._meta(options.meta, run_fields, options.callbacks)
        commands = _flat(self._capture(run, job_id, options, meta, description))
        if not options.depends_on:
            return _Entry(job_id, info, "", None, b"", b"", b"", commands)
        from rq.job import Job

        deferred = _flat(self._capture(run, job_id, options, meta, description, deferred=True))
        allow = "1" if options.allow_dependency_failures else "0"
        keys = [Job.key_for(dependency) for dependency in options.depends_on]
        return _Entry(job_id, info, "", None, b"1", b"", b"", [len(keys), *keys, allow, *commands, *deferred])

    def _job_commands(self, run: Run, job_id: str, info: RunInfo) -> list[tuple[Any, ...]]:
        """The writes RQ makes to enqueue this run's job (what the hand-off script replays)."""
        template, rest = self._job_plan(run, job_id, info)
        if template is not None:
            description, meta, stamp, data = rest
            return template.render(job_id, description, meta, stamp, data)
        commands, at = [], 1
        for _ in range(rest[0]):
            commands.append(tuple(rest[at + 1 : at + 1 + rest[at]]))
            at += 1 + rest[at]
        return commands

    def _job_plan(
        self, run: Run, job_id: str, info: RunInfo, stamp: str | None = None
    ) -> tuple[JobTemplate | None, list[Any]]:
        """How the hand-off script writes this run's job: a template and its slot values
        (description, meta, timestamp, data), or None and the commands themselves.

        Building an RQ job is the dominant cost of a hand-off, and every run of a schedule
        makes the same writes but for its id, description, meta, timestamps and data: the
        first run of each (queue, options, task, arguments) is captured from RQ itself, its
        :class:`JobTemplate` (shared by every schedule with the same queue and options) and
        its data are kept; later runs only send their slot values. Once a capture has shown
        that RQ's data for a queue and options is :meth:`_job_data`, runs of other tasks and
        arguments with those options use the template at once, without a capture.
        """
        options = parse_options(run.executor_options)
        meta = self._meta(options.meta, info)
        description = _description(options.description, run)
        known, shape, key = self._lookup(run, options)
        if known is not None:
            template, data = known
            return template, [description, self._serializer.dumps(meta), stamp or _rq_timestamp(), data]
        commands = self._capture(run, job_id, options, meta, description)
        if key is not None and key not in self._templates:
            captured = JobTemplate.capture(commands, job_id, description, self._serializer.dumps(meta), run.id)
            if captured is None:
                self._remember(key, None, b"")
            else:
                shared = self._shared.setdefault(captured.digest, captured)
                data = captured.data_of(commands)
                self._remember(key, shared, data)
                if shape is not None and data and data == self._job_data(run):
                    self._by_shape[shape] = shared
        return None, _flat(commands)

    def _meta(
        self, options_meta: dict[str, Any], info: RunInfo, callbacks: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """A job's meta: the options' meta, then schedcore's entry (run info, namespace,
        heartbeat, and the caller's callbacks, which schedcore's own run on the worker)."""
        entry = {**info.to_dict(), "ns": self._namespace, "hb": self._heartbeat}
        if callbacks:
            entry.update(callbacks)
        return {**options_meta, META_KEY: entry}

    def _lookup(
        self, run: Run, options: JobOptions
    ) -> tuple[tuple[JobTemplate, bytes] | None, tuple[Any, ...] | None, tuple[Any, ...] | None]:
        """The template and data known for ``run`` (None: capture it from RQ), with the
        (queue, options) shape and the full key they are kept under (None: not serializable)."""
        try:
            shape = (
                self._queue_name(options, run.queue),
                self._serializer.dumps(options.meta),
                options.job_timeout,
                options.result_ttl,
                options.ttl,
                options.failure_ttl,
                options.at_front,
                options.description,
            )
            key = (*shape, self._serializer.dumps((run.task, run.args, run.kwargs)))
        except Exception:
            return None, None, None  # the slow path reports what the serializer refuses
        known = self._templates.get(key)
        if known is None and shape in self._by_shape:
            known = self._remember(key, self._by_shape[shape], self._job_data(run))
        return known, shape, key

    def _remember(
        self, key: tuple[Any, ...], template: JobTemplate | None, data: bytes
    ) -> tuple[JobTemplate, bytes] | None:
        if len(self._templates) >= TEMPLATE_CACHE_SIZE:
            self._templates.clear()
            self._shared.clear()
            self._by_shape.clear()
        known = None if template is None else (template, data)
        self._templates[key] = known
        return known

    def _job_data(self, run: Run) -> bytes:
        """The job's ``data`` as RQ computes it (``Job.to_dict``: the compressed serialized
        function name, instance, arguments and keyword arguments); used only where a capture
        from RQ showed the same bytes."""
        return zlib.compress(self._serializer.dumps((RUN_TASK, None, (run.task, *run.args), dict(run.kwargs))))

    def _capture(
        self,
        run: Run,
        job_id: str,
        options: JobOptions,
        meta: dict[str, Any],
        description: str,
        *,
        deferred: bool = False,
    ) -> list[tuple[Any, ...]]:
        """The writes of ``Queue.enqueue_job`` for this run, from RQ itself; with ``deferred``,
        the writes RQ makes instead when a dependency has not finished (``setup_dependencies``).

        A job with dependencies is captured on a queue whose own dependency check is off: that
        check reads (and, with pickle, unpickles) the dependencies' jobs, and its answer would
        be stale by the hand-off anyway -- the hand-off script decides (see :data:`HANDOFF_LUA`).
        """
        from rq import Callback
        from rq.job import JobStatus

        name = self._queue_name(options, run.queue)
        queue = self._dependent_queue(name) if options.depends_on else self._queue(name)
        job = queue.create_job(
            RUN_TASK,
            args=(run.task, *run.args),
            kwargs=dict(run.kwargs),
            timeout=options.job_timeout,
            result_ttl=options.result_ttl,
            ttl=options.ttl,
            failure_ttl=options.failure_ttl,
            description=description,
            job_id=job_id,
            meta=meta,
            on_success=Callback(ON_SUCCESS, timeout=options.on_success_timeout),
            on_failure=Callback(ON_FAILURE, timeout=options.on_failure_timeout),
            on_stopped=Callback(ON_STOPPED),
            depends_on=list(options.depends_on) or None,
        )
        pipe = self._connection.pipeline(transaction=False)
        try:
            if deferred:  # the branch of RQ's setup_dependencies that defers the job
                job.enqueue_at_front = options.at_front  # RQ enqueues it at the front when its turn comes
                pipe.sadd(queue.redis_queues_keys, queue.key)
                job.set_status(JobStatus.DEFERRED, pipeline=pipe)
                job.register_dependency(pipeline=pipe)
                job.save(pipeline=pipe)
                job.cleanup(ttl=job.ttl, pipeline=pipe)
                return [tuple(args) for args, _options in pipe.command_stack]
            queue.enqueue_job(job, pipeline=pipe, at_front=options.at_front)
            commands = [tuple(args) for args, _options in pipe.command_stack]
        finally:
            pipe.reset()
        if not any(str(c[0]).upper() in ("RPUSH", "LPUSH") for c in commands):
            raise RuntimeError(f"RQ did not push job {job_id} onto a queue (unsupported RQ version?)")
        return commands

    def _run_handoff(self, entries: list[_Entry], stamp: str) -> list[bool]:
        return self._start_handoff(entries, stamp, nowait=False)()

    def _start_handoff(self, entries: list[_Entry], stamp: str, *, nowait: bool) -> Callable[[], list[bool]]:
        """The hand-off calls for ``entries``; with ``nowait`` sent at once (see :func:`send_now`).
        The returned function reads (or makes) them, retries what the server lost, and
        returns per run whether it was handed over now."""
        from rq.job import Job

        keys = [self.keys.outstanding, self.keys.runs, self.keys.outcomes]
        head: list[Any] = [
            now_ms(),
            self._handoff_ttl_ms,
            self.keys.handed_prefix,
            _TEMPLATE_TTL_MS,
            Job.redis_job_namespace_prefix,  # Job.key_for(job_id) is this + job_id
            stamp,
        ]
        chunks: list[tuple[list[Any], list[JobTemplate], list[Any]]] = []  # (data blobs, templates, runs)
        for chunk in _chunks(entries, _CHUNK):
            numbers: dict[str, int] = {}  # template digest -> its number in this call
            used: list[JobTemplate] = []
            blobs: dict[bytes, int] = {}  # data -> its number in this call
            runs: list[Any] = []
            for job_id, info, failure, template, data, meta, description, commands in chunk:
                if template is None:  # data: b"1" for a job with dependencies, else b""
                    runs.append(f"{job_id}\n0\n{1 if data else 0}\n{info}\n{failure}\n0\n")
                    runs += commands
                    continue
                number = numbers.get(template.digest)
                if number is None:
                    number = numbers[template.digest] = len(numbers) + 1
                    used.append(template)
                blob = blobs.get(data)
                if blob is None:
                    blob = blobs[data] = len(blobs) + 1
                runs.append(
                    b"".join((f"{job_id}\n{number}\n{blob}\n{info}\n\n{len(meta)}\n".encode(), meta, description))
                )
            chunks.append(([len(blobs), *blobs], used, runs))
        results: list[Any] = [None] * len(chunks)
        todo = list(range(len(chunks)))  # the chunks not handed over yet

        def calls() -> list[tuple[Any, ...]]:
            if self._handoff_sha is None:
                self._handoff_sha = str(self._connection.script_load(HANDOFF_LUA))
            out = []
            for index in todo:
                blob_args, used, runs = chunks[index]
                templates: list[Any] = []
                for template in used:
                    templates.append(self.keys.template(template.digest))
                    if template.digest in self._stored:
                        templates.append(0)
                    else:
                        templates += [len(template.lua_args), *template.lua_args]
                out.append(
                    ("EVALSHA", self._handoff_sha, len(keys), *keys, *head, *blob_args, len(used), *templates, *runs)
                )
            return out

        def execute() -> list[Any]:
            pipe = self._connection.pipeline(transaction=False)
            for command in calls():
                pipe.execute_command(*command)  # type: ignore[no-untyped-call]
            return pipe.execute(raise_on_error=False)

        sent = send_now(self._connection, calls()) if nowait else None

        def finish() -> list[bool]:
            # Retried at most twice: for a script the server lost (restart, SCRIPT FLUSH) and
            # for templates it lost (expired, flushed), which the retry sends inline.
            for attempt in range(3):
                replies = sent() if sent is not None and attempt == 0 else execute()
                again = []
                for index, reply in zip(todo, replies, strict=True):
                    if isinstance(reply, NoScriptError):
                        again.append(index)
                        self._handoff_sha = None
                    elif _is_wrong_type(reply) and attempt < 2 and self._try_repair_keys():
                        again.append(index)  # nothing was written; the damaged key is set aside
                    elif isinstance(reply, Exception):
                        raise reply
                    elif isinstance(reply, int):  # the only integer reply: a template is gone
                        if reply != _TEMPLATE_GONE:
                            raise RuntimeError(f"unexpected reply {reply!r} from the hand-off script")
                        again.append(index)
                        self._stored.difference_update(t.digest for t in chunks[index][1])
                    else:
                        results[index] = reply
                        if len(self._stored) >= TEMPLATE_CACHE_SIZE:
                            self._stored.clear()  # forgetting costs one inline copy per template
                        self._stored.update(t.digest for t in chunks[index][1])
                if not again:
                    break
                todo[:] = again
            else:
                raise ExecutorUnavailable("the hand-off script or its job templates keep disappearing from Redis")
            # one character per run: b"1" handed over now, b"0" before
            return [flag == _HANDED_NOW for reply in results for flag in as_bytes(reply)]  # str with decode_responses

        return finish

    # -- outcomes ----------------------------------------------------------------------------

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

    def _blocking_client(self) -> redis.Redis:
        """A client holding one connection of the executor's pool (the connection itself when
        it cannot make one, e.g. a test double)."""
        try:
            client: redis.Redis = self._connection.client()  # type: ignore[no-untyped-call]
            return client
        except Exception:
            return self._connection

    def _note_blocked_id(self, blocking: redis.Redis) -> None:
        """Learn the blocking connection's client id (again after a reconnect may have changed it)."""
        if blocking is self._connection or self._unblock_refused:
            return
        try:
            self._blocked_id = int(blocking.client_id())
        except _DRIVER_ERRORS as exc:  # no CLIENT ID here: shutdown waits out the poll instead
            self._blocked_id = None
            self._unblock_refused = True
            log.debug("CLIENT ID refused (%s: %s); shutdown waits for the outcome poll", type(exc).__name__, exc)

    def _outcome_loop(self, blocking: list[redis.Redis]) -> None:
        backoff = 0.0
        next_reconcile = 0.0
        recovered = False
        permanent = ""  # the permanent error last logged (once)
        known_id = False  # the blocking connection's id is known (cleared after errors and idle reads)
        while not self._stop.is_set():
            try:
                if not recovered:
                    self._recover_processing()
                    recovered = True
                if time.monotonic() >= next_reconcile:
                    with self._reconcile_lock:
                        self._reconcile()
                    self._sweep_processing()
                    next_reconcile = time.monotonic() + self._reconcile_interval
                with self._lock:
                    self._retry_failed()
                timeout = max(min(self._poll, next_reconcile - time.monotonic()), 0.01)
                if not blocking:
                    blocking.append(self._blocking_client())
                if not known_id:
                    self._note_blocked_id(blocking[0])
                    known_id = True
                if self._stop.is_set():
                    break  # shutdown began meanwhile: do not block now
                item = blocking[0].blmove(
                    self.keys.outcomes,
                    self.keys.processing,
                    timeout,  # type: ignore[arg-type]  # Redis takes fractional seconds
                    "RIGHT",
                    "LEFT",
                )
                if item is not None:
                    with self._lock:
                        self._handle(item)
                else:
                    known_id = False  # idle: cheap to ask again (redis-py may have reconnected)
                backoff = 0.0
                permanent = ""
            except Exception as exc:
                known_id = False
                backoff = min(max(backoff * 2, 0.5), 30.0)
                if _is_wrong_type(exc) and self._try_repair_keys():
                    continue  # the damaged key is set aside: go on at once
                if isinstance(exc, _PERMANENT_ERRORS):
                    # Waiting will not fix it (an ACL without our keys or commands): say so once,
                    # loudly, and keep trying slowly -- an operator may fix the ACL at runtime.
                    backoff = 30.0
                    if str(exc) != permanent:
                        permanent = str(exc)
                        log.error(
                            "RQ outcome loop: %s: %s -- the Redis user lacks a permission schedcore needs "
                            "(keys %s* and RQ's keys, scripts); no outcome is reported until it is fixed",
                            type(exc).__name__,
                            exc,
                            self.keys.prefix,
                        )
                    self._stop.wait(backoff)
                    continue
                log.warning("RQ outcome loop: %s: %s; retrying in %.1fs", type(exc).__name__, exc, backoff)
                self._stop.wait(backoff)

    def _recover_processing(self) -> None:
        """Report payloads a previous executor took but may not have reported (at-least-once)."""
        # Read under the lock: a payload this executor is reporting (process_outcomes on another
        # thread) is then either still in the outcome list or already removed, never reported twice.
        with self._lock:
            items = self._connection.lrange(self.keys.processing, 0, -1)
            for item in reversed(items):
                self._handle(item)

    def _sweep_processing(self) -> None:
        """Report again payloads stuck in the processing list (their executor died mid-report).

        Only payloads of runs that finished over :data:`_STUCK_AFTER` seconds ago are
        taken, so that a live executor's in-flight report is rarely repeated (a repeat is
        harmless anyway).
        """
        with self._lock:  # (see _recover_processing)
            items = self._connection.lrange(self.keys.processing, -_SWEEP_BATCH, -1)
            cutoff = now_ms() - int(_STUCK_AFTER * 1000)
            stuck = []
            for item in reversed(items):  # oldest first
                try:
                    finished = int(load_object(item)["finished"])
                except (ValueError, KeyError, TypeError, OverflowError):  # BadRecord is a ValueError
                    finished = 0  # malformed: _handle sets it aside
                if finished < cutoff and item not in self._retry:
                    stuck.append(item)
            if stuck:
                log.info("reporting %d RQ outcomes left in the processing list", len(stuck))
            for item in stuck:
                self._handle(item)

    def _handle(self, item: bytes | str) -> int:
        """Report one payload from the processing list, then remove it. Returns 1 if reported."""
        try:
            job_id, outcome = outcome_from_payload(item)
        except BadRecord as exc:
            field = outcome_field(item)
            entry = record("outcome", field, str(exc), item)
            keys = [self.keys.quarantine, self.keys.processing]
            if self._set_aside_outcome(keys=keys, args=[field, entry, QUARANTINE_LIMIT, item]):
                log.error(
                    "RQ outcome payload %s set aside in %s (%s): %s",
                    shown(item),
                    self.keys.quarantine,
                    field,
                    exc,
                )
            return 0
        with self._mine_lock:
            self._mine.discard(job_id)
        assert self._report is not None
        try:
            self._report(outcome)
        except Exception:
            log.exception("reporting the outcome of run %s failed; will retry", outcome.run_id)
            if item not in self._retry:
                self._retry.append(item)
            return 0
        pipe = self._connection.pipeline(transaction=True)
        pipe.lrem(self.keys.processing, 1, item)  # type: ignore[arg-type]
        pipe.hdel(self.keys.runs, job_id)
        pipe.execute()
        self._suspects.pop(job_id, None)
        return 1

    def _retry_failed(self) -> int:
        items, self._retry = self._retry, []
        return sum(self._handle(item) for item in items)

    # -- reconciler --------------------------------------------------------------------------

    def _reconcile(self) -> int:
        from rq.job import Job

        with self._mine_lock:
            mine_before = set(self._mine)
        ids: list[str] = []
        offset = 0
        while True:
            page = self._connection.zrange(self.keys.outstanding, offset, offset + 999)
            ids.extend(_text(i) or "" for i in page)
            if len(page) < 1000:
                break
            offset += 1000
        found = 0
        now = time.monotonic()
        silent_for = 3 * self._heartbeat
        seen = set(ids)
        with self._mine_lock:
            self._mine -= mine_before - seen  # reported elsewhere (only ids known before the scan)
        for job_id in list(self._suspects):
            if job_id not in seen:
                del self._suspects[job_id]
        pause = 0.0
        for chunk in _chunks(ids, _RECONCILE_CHUNK):
            # A backlog of queued jobs (workers slower than the schedules) makes a pass long;
            # it shares the GIL and Redis with the scheduler's loop, so it is paced: between
            # chunks, about as long a pause as the last one took, or the loop's fires are late.
            if pause:
                self._stop.wait(pause)
            if self._stop.is_set():
                break  # shutting down: the next executor's pass covers the rest
            chunk_started = time.monotonic()
            pipe = self._connection.pipeline(transaction=False)
            for job_id in chunk:
                pipe.hget(Job.key_for(job_id), "status")
                pipe.exists(self.keys.alive(job_id))
            pipe.hmget(self.keys.runs, list(chunk))
            replies = pipe.execute()
            infos = replies[-1]
            finishes: list[tuple[str, str, str, str]] = []  # job id, payload, must-miss key 1, key 2
            orphans: list[str] = []
            for index, job_id in enumerate(chunk):
                status = _text(replies[2 * index])
                alive = bool(replies[2 * index + 1])
                raw_info = infos[index]
                if raw_info is None:
                    orphans.append(job_id)
                    continue
                decided = self._decide(job_id, status, alive, now, silent_for)
                if decided is None:
                    continue  # queued or running: most of them, so their run info is not parsed
                try:
                    info = RunInfo.from_json(raw_info)
                except BadRecord as exc:
                    self._set_aside(job_id, raw_info, str(exc))
                    continue
                outcome_status, error, guard_job, guard_alive, trace = decided
                body = payload(job_id, info, outcome_status, error=error, traceback=trace)
                finishes.append((job_id, body, guard_job, guard_alive))
            if orphans:
                # Re-checked atomically: a job another executor reported since our read is settled.
                gone = self._orphans(keys=[self.keys.outstanding, self.keys.runs], args=orphans)
                orphans = [_text(job_id) or "" for job_id in gone]
            if orphans:  # one line per chunk: a flushed database would otherwise log a line per job
                log.error(
                    "%d outstanding RQ jobs have lost their run info (%s%s); forgetting them",
                    len(orphans),
                    ", ".join(orphans[:3]),
                    ", ..." if len(orphans) > 3 else "",
                )
            for job_id, body, guard_job, guard_alive in finishes:
                keys = [self.keys.outstanding, self.keys.outcomes]
                if self._finish(keys=keys, args=[job_id, body, guard_job, guard_alive]) == 1:
                    log.info("RQ job %s: outcome found by the reconciler", job_id)
                    self._suspects.pop(job_id, None)
                    found += 1
            pause = min(time.monotonic() - chunk_started, _RECONCILE_PAUSE_MAX)
        return found

    def repair_keys(self) -> list[str]:
        """Set aside this executor's keys that hold the wrong type (see :data:`SET_ASIDE_KEYS_LUA`),
        with one ERROR line naming each; returns their names."""
        keys = self.keys
        kinds = [
            (keys.outstanding, "zset"),
            (keys.runs, "hash"),
            (keys.outcomes, "list"),
            (keys.processing, "list"),
            (keys.quarantine, "hash"),
        ]
        suffix = str(now_ms())
        moved = self._set_aside_keys(keys=[k for k, _ in kinds], args=[suffix, *(t for _, t in kinds)])
        names = [_text(key) or "" for key in moved]
        for name in names:
            log.error(
                "Redis key %s had the wrong type; renamed to %s:damaged:%s for inspection (what it held is lost)",
                name,
                name,
                suffix,
            )
        return names

    def _try_repair_keys(self) -> bool:
        """:meth:`repair_keys`, never raising (it runs in the outcome loop's error handling)."""
        try:
            return bool(self.repair_keys())
        except Exception as exc:
            log.warning("could not check the RQ executor's keys: %s: %s", type(exc).__name__, exc)
            return False

    def _set_aside(self, job_id: str, raw_info: bytes | str, reason: str) -> None:
        """Move a job's undecodable run info to the quarantine and forget the job (once)."""
        keys = [self.keys.quarantine, self.keys.outstanding, self.keys.runs]
        entry = record("run-info", job_id, reason, raw_info)
        if self._set_aside_run(keys=keys, args=[f"run-info:{job_id}", entry, QUARANTINE_LIMIT, job_id]):
            self._suspects.pop(job_id, None)
            log.error(
                "RQ job %s: its run info %s cannot be decoded (%s); set aside in %s, its outcome is not reported",
                job_id,
                shown(raw_info),
                reason,
                self.keys.quarantine,
            )

    def _decide(
        self, job_id: str, status: str | None, alive: bool, now: float, silent_for: float
    ) -> tuple[OutcomeStatus, str | None, str, str, str | None] | None:
        """(status, error, guard keys that must be missing, traceback) of a job, or None: no outcome yet."""
        from rq.job import Job

        if status != "started" or alive:
            self._suspects.pop(job_id, None)
        if status is None:
            return (
                OutcomeStatus.LOST,
                "the RQ job vanished (deleted or expired) before it finished",
                Job.key_for(job_id),
                "",
                None,
            )
        if status == "finished":
            return OutcomeStatus.SUCCEEDED, None, "", "", None
        if status == "failed":
            error, trace = self._failure_text(job_id)
            if any(marker in error for marker in _LOST_MARKERS):
                return OutcomeStatus.LOST, f"worker died mid-job ({error})", "", "", trace
            return OutcomeStatus.FAILED, error, "", "", trace
        if status in ("stopped", "canceled"):
            return OutcomeStatus.STOPPED, f"RQ job {status}", "", "", None
        if status == "started" and not alive:
            first = self._suspects.setdefault(job_id, now)
            if now - first >= silent_for:
                return (
                    OutcomeStatus.LOST,
                    f"worker died mid-job (no heartbeat for {silent_for:.0f}s)",
                    "",
                    self.keys.alive(job_id),
                    None,
                )
        return None

    def _failure_text(self, job_id: str) -> tuple[str, str | None]:
        """``"Type: message"`` from the job's last recorded failure, and the traceback RQ
        recorded with it (None when it recorded only a line, e.g. for a killed work-horse).

        Read from the raw job hash and result stream, never through ``Job.fetch``: restoring
        an RQ job loads its ``meta`` (and a result its return value) with the job's
        serializer -- pickle by default -- and nothing read from Redis is unpickled here.
        """
        text = _exc_text(self._connection, job_id)
        if text is None:
            return "job failed (its error could not be read)", None
        lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
        if not lines:
            return "job failed", None
        trace = text if len(lines) > 1 else None  # the payload trims it
        if any(marker in text for marker in _LOST_MARKERS):
            return lines[0], trace
        return lines[-1][:2000], trace


_EXC_TEXT_LIMIT = 1 << 20  # bytes of a decompressed traceback read (a hostile blob may be a zlib bomb)


def _inflate(raw: bytes) -> str:
    """zlib-compressed text, bounded; the raw text itself when it is not compressed."""
    try:
        data = zlib.decompressobj().decompress(raw, _EXC_TEXT_LIMIT)
    except zlib.error:
        data = raw[:_EXC_TEXT_LIMIT]
    return data.decode("utf-8", "replace")


def _exc_text(connection: Any, job_id: str) -> str | None:
    """The traceback text RQ recorded for a failed job: the latest result's ``exc_string``
    (RQ 1.12 and later: a stream entry, base64 of zlib) or the job's ``exc_info`` (zlib);
    None when there is none or it cannot be decoded. Only those fields are read and decoded."""
    import base64
    import binascii

    from rq.job import Job

    try:
        from rq.results import Result

        entries = connection.xrevrange(Result.get_key(job_id), "+", "-", count=1)  # type: ignore[no-untyped-call]
    except ImportError:  # an RQ without results
        entries = []
    except redis.exceptions.ResponseError:  # not a stream: damaged, fall back to the job hash
        entries = []
    try:
        if entries:
            fields = entries[0][1]
            raw = fields.get(b"exc_string") or fields.get("exc_string")
            if raw:
                return _inflate(base64.b64decode(raw))
        raw = connection.hget(Job.key_for(job_id), "exc_info")
        return _inflate(as_bytes(raw)) if raw else None
    except (binascii.Error, ValueError, TypeError, AttributeError, IndexError):
        return None
