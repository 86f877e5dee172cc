"""The built-in plugin: the SQLite and memory stores, the local executor and the at, interval
and cron triggers.

Registered through the ``schedcore`` entry-point group exactly like a third-party plugin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from schedcore.exceptions import ValidationError
from schedcore.hookspecs import hookimpl
from schedcore.plugins import ExecutorFactory, StoreFactory
from schedcore.protocols import Executor, Store
from schedcore.settings import STORE_COMMANDS, CliOption
from schedcore.trigger_types import TriggerType


def _memory_store(options: Mapping[str, Any]) -> Store:
    from schedcore.memory import MemoryStore

    return MemoryStore()


def _local_executor(options: Mapping[str, Any]) -> Executor:
    from schedcore.executors import LocalExecutor

    workers = options.get("workers")
    if workers is not None and (isinstance(workers, bool) or not str(workers).isdigit() or int(workers) < 1):
        raise ValidationError("workers", workers, "must be a positive number of threads")
    return LocalExecutor(max_workers=int(workers) if workers is not None else None)


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
            name="local", create=_local_executor, description="runs tasks in this process on a thread pool (default)"
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
