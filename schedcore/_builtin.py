"""The built-in plugin: the memory store and the local executor.

Registered through the ``schedcore`` entry-point group exactly like a third-party plugin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from schedcore.hookspecs import hookimpl
from schedcore.plugins import ExecutorFactory, StoreFactory
from schedcore.protocols import Executor, Store


def _memory_store(options: Mapping[str, Any]) -> Store:
    from schedcore.memory import MemoryStore

    return MemoryStore()


def _local_executor(options: Mapping[str, Any]) -> Executor:
    from schedcore.executors import LocalExecutor

    workers = options.get("workers")
    return LocalExecutor(max_workers=int(workers) if workers else None)


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
