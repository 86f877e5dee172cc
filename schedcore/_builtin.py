"""The built-in plugin: the SQLite and memory stores, the local executor and the at, interval
and cron triggers.

Registered through the ``schedcore`` entry-point group exactly like a third-party plugin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from schedcore.exceptions import ValidationError
from schedcore.hookspecs import hookimpl
from schedcore.plugins import ExecutorFactory, StoreFactory, refuse_unknown_options
from schedcore.protocols import Executor, Store
from schedcore.settings import STORE_COMMANDS, CliOption
from schedcore.trigger_types import TriggerType

if TYPE_CHECKING:
    from schedcore.model import Schedule


def _memory_store(options: Mapping[str, Any]) -> Store:
    from schedcore.memory import MemoryStore

    refuse_unknown_options("store", options, ("history_limit",))
    limit = options.get("history_limit", 50)
    try:
        return MemoryStore(history_limit=limit)
    except ValidationError as exc:
        raise ValidationError("store.history_limit", limit, exc.reason) from None


def _local_workers(options: Mapping[str, Any]) -> int | None:
    """The thread count of ``-E workers=N`` (None: the pool's default); refuses any other option."""
    refuse_unknown_options("executor", options, ("workers",))
    workers = options.get("workers")
    if workers is not None and (isinstance(workers, bool) or not str(workers).isdigit() or int(workers) < 1):
        raise ValidationError("workers", workers, "must be a positive number of threads")
    return int(workers) if workers is not None else None


def _local_executor(options: Mapping[str, Any]) -> Executor:
    from schedcore.executors import LocalExecutor

    return LocalExecutor(max_workers=_local_workers(options))


def _local_validate(schedule: Schedule, options: Mapping[str, Any]) -> None:
    """The local executor runs any schedule (the task is imported when it runs); only its own
    options can be wrong. It ignores ``executor_options``, which are for other executors."""
    _local_workers(options)


def _sqlite_store(options: Mapping[str, Any]) -> Store:
    from schedcore._sqlite_plugin import create_store

    return create_store(options)


@hookimpl
def schedcore_store_factories() -> Sequence[StoreFactory]:
    return [
        StoreFactory(name="sqlite", create=_sqlite_store, description="one SQLite file on this machine (the default)"),
        StoreFactory(name="memory", create=_memory_store, description="in-process store: gone when run exits"),
    ]


@hookimpl
def schedcore_executor_factories() -> Sequence[ExecutorFactory]:
    return [
        ExecutorFactory(
            name="local",
            create=_local_executor,
            validate=_local_validate,
            description="runs tasks in this process on a thread pool (default)",
        )
    ]


@hookimpl
def schedcore_trigger_types() -> Sequence[TriggerType]:
    from schedcore.triggers import At, Cron, Interval

    return [
        TriggerType(name="at", cls=At, description="once, at an instant"),
        TriggerType(name="interval", cls=Interval, description="every N seconds from a start, never drifting"),
        TriggerType(name="cron", cls=Cron, description="a cron expression in an IANA zone"),
    ]


@hookimpl
def schedcore_cli_options(command: str) -> Sequence[CliOption]:
    """``--sqlite-path`` on every store command; ``schedcore run --workers N`` for the local
    executor: its thread count."""
    from schedcore._sqlite_plugin import OPTION

    if command not in STORE_COMMANDS:
        return []
    if command != "run":
        return [OPTION]
    return [
        OPTION,
        CliOption(
            name="workers",
            executor="local",
            key="workers",
            type="int",
            metavar="N",
            help="Workers of the executor: threads for local, supervised `rq worker` processes for rq.",
        ),
    ]
