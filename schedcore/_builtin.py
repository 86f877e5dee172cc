"""The built-in plugin: the memory store and the local executor.

Registered through the ``schedcore`` entry-point group exactly like a third-party plugin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from schedcore.exceptions import ValidationError
from schedcore.hookspecs import hookimpl
from schedcore.plugins import ExecutorFactory, StoreFactory
from schedcore.protocols import Executor, Store
from schedcore.settings import CliOption


def _memory_store(options: Mapping[str, Any]) -> Store:
    from schedcore.memory import MemoryStore

    return MemoryStore()


def _local_executor(options: Mapping[str, Any]) -> Executor:
    from schedcore.executors import LocalExecutor

    workers = options.get("workers")
    if workers is not None and (isinstance(workers, bool) or not str(workers).isdigit() or int(workers) < 1):
        raise ValidationError("workers", workers, "must be a positive number of threads")
    return LocalExecutor(max_workers=int(workers) if workers is not None else None)


@hookimpl
def schedcore_store_factories() -> Sequence[StoreFactory]:
    return [StoreFactory(name="memory", create=_memory_store, description="in-process store (the default)")]


@hookimpl
def schedcore_executor_factories() -> Sequence[ExecutorFactory]:
    return [
        ExecutorFactory(
            name="local", create=_local_executor, description="runs tasks in this process on a thread pool (default)"
        )
    ]


@hookimpl
def schedcore_cli_options(command: str) -> Sequence[CliOption]:
    """``schedcore run --workers N`` for the local executor: its thread count."""
    if command != "run":
        return []
    return [
        CliOption(
            name="workers",
            executor="local",
            key="workers",
            type="int",
            metavar="N",
            help="Workers of the executor: threads for local, supervised `rq worker` processes for rq.",
        )
    ]
