"""What the parts of :class:`~schedcore_rq.RQExecutor` share: its construction (argument checks,
keys, scripts, caches and locks), the one translation of Redis errors, and the repair of
wrong-typed keys (both the hand-off and the outcome loop run into those)."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import redis
from redis.exceptions import RedisError

from schedcore.exceptions import ExecutorError, ExecutorUnavailable, ValidationError
from schedcore.executors import ExecutorBase
from schedcore.records import Outcome
from schedcore_redis.connection import check_namespace, is_permanent
from schedcore_rq._jobs import JobTemplate
from schedcore_rq._outcomes import FINISH_LUA, Keys, now_ms
from schedcore_rq._quarantine import ORPHANS_LUA, SET_ASIDE_KEYS_LUA, SET_ASIDE_OUTCOME_LUA, SET_ASIDE_RUN_LUA
from schedcore_rq._serializers import serializer_path
from schedcore_rq._supervisor import WorkerPool

log = logging.getLogger("schedcore.rq")


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


@contextlib.contextmanager
def _translated(doing: str, prefix: str) -> Iterator[None]:
    """The one translation of driver errors at this adapter's boundary (``doing``: what
    failed, as the message starts). An error retrying cures -- the server is down, busy,
    failing over -- is ExecutorUnavailable: the engine releases the claims and tries again.
    One it does not cure (:func:`schedcore_redis.connection.is_permanent`: NOPERM, wrong
    credentials, WRONGTYPE on a key of ``prefix``) is an ExecutorError saying what to fix,
    logged at ERROR by the engine instead of passing for a passing outage."""
    try:
        yield
    except _DRIVER_ERRORS as exc:
        text = f"{type(exc).__name__}: {exc}"
        if is_permanent(exc):
            raise ExecutorError(
                f"{doing}: {text} -- retrying will not help: the Redis user needs the commands and keys "
                f"schedcore uses ({prefix}* and RQ's rq:*), and a key of the wrong type needs 'schedcore doctor'"
            ) from exc
        raise ExecutorUnavailable(f"{doing}: {text}" if doing else text) from exc


def _is_wrong_type(exc: BaseException) -> bool:
    return isinstance(exc, redis.exceptions.ResponseError) and "WRONGTYPE" in str(exc)


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


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


class _ExecutorCore(ExecutorBase):
    """The state of an :class:`~schedcore_rq.RQExecutor` (its parameters are documented there)."""

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
        self._namespace = check_namespace(namespace)  # shared with the Redis store: one rule
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
