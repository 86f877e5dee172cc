"""Test helpers shipped with schedcore, for schedcore itself and for plugin authors.

* :class:`StoreConformance` (:mod:`schedcore.testing.store_suite`) -- the contract suite
  every :class:`~schedcore.protocols.Store` implementation runs against itself.
* :class:`ExecutorConformance` (:mod:`schedcore.testing.executor_suite`) -- the contract
  suite every :class:`~schedcore.protocols.Executor` implementation runs against itself.
* :mod:`schedcore.testing.trigger_suite` -- property checks for trigger authors
  (:func:`~schedcore.testing.trigger_suite.check_trigger`, ``TriggerContract``).
* :mod:`schedcore.testing.factories` -- small builders for schedules and index entries.
* :mod:`schedcore.testing.tasks` -- tiny task functions importable by reference.

``import schedcore`` never imports this package; importing this package imports
pytest and hypothesis only when :class:`StoreConformance` (or pytest only when
:class:`ExecutorConformance`) is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from schedcore.testing.executor_suite import ExecutorConformance
    from schedcore.testing.store_suite import StoreConformance

__all__ = ["ExecutorConformance", "StoreConformance"]


def __getattr__(name: str) -> Any:
    # Lazy, so that the pytest plugin (which lives in this package) loads nothing heavy.
    if name == "StoreConformance":
        from schedcore.testing.store_suite import StoreConformance

        return StoreConformance
    if name == "ExecutorConformance":
        from schedcore.testing.executor_suite import ExecutorConformance

        return ExecutorConformance
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
