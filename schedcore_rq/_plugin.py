"""The ``rq`` executor plugin (entry point ``schedcore.rq``): ``--executor rq``.

Options: ``redis_url`` (default ``redis://localhost:6379/0``), ``queue`` (default
``"default"``), ``namespace``, ``serializer`` (``json`` -- recommended --, ``pickle``, RQ's
default, or a dotted path; ``--rq-serializer``) and ``workers``: with ``workers=N``
(``schedcore run --executor rq --workers N``) the executor owns a :class:`WorkerPool` of
N ``rq worker`` processes (``worker_class`` picks the RQ worker class), started and
supervised with the scheduler and stopped with it -- one command runs the whole system.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from schedcore._dist import install_hint
from schedcore.exceptions import ConfigError, PluginError, ValidationError
from schedcore.hookspecs import hookimpl
from schedcore.plugins import ExecutorFactory, missing_modules
from schedcore.protocols import Executor
from schedcore.settings import CliOption
from schedcore_redis._plugin import non_empty_url

if TYPE_CHECKING:
    from schedcore.model import Schedule

__all__ = [
    "DEFAULT_URL",
    "create_executor",
    "schedcore_cli_options",
    "schedcore_executor_factories",
    "validate_schedule",
    "worker_pool",
]

DEFAULT_URL = "redis://localhost:6379/0"
_URL_FIELD = "executor.redis_url (--redis-url, -E redis_url=)"
_KNOWN = {"redis_url", "queue", "workers", "namespace", "serializer", "worker_class"}


def _check(options: Mapping[str, Any]) -> None:
    unknown = sorted(set(options) - _KNOWN)
    if unknown:
        raise ConfigError(f"unknown rq executor option {unknown[0]!r} (known: {', '.join(sorted(_KNOWN))})")


def create_executor(options: Mapping[str, Any]) -> Executor:
    """Build an :class:`~schedcore_rq.RQExecutor` from plugin options."""
    _check(options)
    try:
        import redis
        import rq  # noqa: F401

        from schedcore_redis._store import _redact
        from schedcore_redis._timeouts import service_options
        from schedcore_rq._executor import RQExecutor
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise PluginError(f"the rq executor needs 'rq' and 'redis': {install_hint('rq')} ({exc})") from None
    url = non_empty_url(options.get("redis_url", DEFAULT_URL), _URL_FIELD)
    try:
        connection = redis.Redis.from_url(url, **service_options(url))
    except ValueError as exc:
        raise ConfigError(f"invalid redis_url {_redact(url)!r}: {exc}") from None  # no password in errors
    return RQExecutor(
        connection,
        queue=str(options.get("queue") or "default"),
        serializer=options.get("serializer"),
        namespace=str(options.get("namespace") or "default"),
        workers=worker_pool(options),
    )


def validate_schedule(schedule: Schedule, options: Mapping[str, Any]) -> None:
    """What an RQ executor built from ``options`` would refuse in ``schedule``, found without
    connecting: unknown options, its ``executor_options`` (``job_timeout``, ``queue``, ...) and,
    when rq is installed here, arguments the ``serializer`` cannot write (JSON arguments, which
    every schedule has, suit both built-in serializers, so nothing is lost without rq)."""
    _check(options)
    from schedcore_rq._jobs import check_schedule

    try:
        from rq.serializers import resolve_serializer
    except ImportError:
        check_schedule(schedule, None)
        return
    from schedcore_rq._serializers import serializer_path

    value = options.get("serializer")
    try:
        serializer = resolve_serializer(serializer_path(value) if isinstance(value, str) else value)
    except Exception as exc:
        raise ValidationError("executor.serializer", value, f"not an RQ serializer ({exc})") from None
    check_schedule(schedule, serializer)


def worker_pool(options: Mapping[str, Any]) -> Any:
    """The :class:`~schedcore_rq.WorkerPool` that ``--workers N`` asks for, or None when N is 0/absent."""
    _check(options)
    workers = options.get("workers")
    if not workers:
        return None
    try:
        count = int(workers)
    except (TypeError, ValueError):
        raise ConfigError(f"workers must be a whole number, got {workers!r}") from None
    if count < 0:
        raise ConfigError(f"workers must not be negative, got {count}")
    from schedcore_rq._serializers import serializer_path
    from schedcore_rq._supervisor import WorkerPool

    return WorkerPool(
        non_empty_url(options.get("redis_url", DEFAULT_URL), _URL_FIELD),
        [str(options.get("queue") or "default")],
        count,
        worker_class=str(options.get("worker_class") or "rq.worker.Worker"),
        serializer=serializer_path(options.get("serializer")),  # the workers read what the executor writes
    )


@hookimpl
def schedcore_executor_factories() -> Sequence[ExecutorFactory]:
    return [
        ExecutorFactory(
            name="rq",
            create=create_executor,
            validate=validate_schedule,
            missing=lambda: missing_modules(("redis", "rq"), "rq"),
            description="hands runs to RQ queues for `rq worker` processes (options: redis_url, queue, workers)",
        )
    ]


@hookimpl
def schedcore_cli_options(command: str) -> Sequence[CliOption]:
    """``schedcore run`` options of ``--executor rq``: ``--redis-url``, ``--redis-namespace``, ``--queue``,
    ``--rq-serializer``, ``--workers``."""
    if command != "run":
        return []
    return [
        CliOption(
            name="redis-url", executor="rq", key="redis_url", metavar="URL", help="Redis server of the RQ queues."
        ),
        CliOption(name="redis-namespace", executor="rq", key="namespace", metavar="NAME", help="Key namespace."),
        CliOption(
            name="queue", executor="rq", key="queue", metavar="NAME", help="RQ queue the runs go to (default: default)."
        ),
        CliOption(
            name="rq-serializer",
            executor="rq",
            key="serializer",
            metavar="NAME",
            help="RQ job serializer, also given to --workers: json (recommended; workers never unpickle "
            "job data) or pickle (RQ's default: whoever can write RQ jobs can run code on the workers).",
        ),
        CliOption(
            name="workers",
            executor="rq",
            key="workers",
            type="int",
            metavar="N",
            help="Workers of the executor: threads for local, supervised `rq worker` processes for rq.",
        ),
    ]
