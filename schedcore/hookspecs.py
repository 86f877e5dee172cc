"""Every hook a schedcore plugin can implement -- declared, typed and documented here.

A plugin is a module (or object) with functions marked ``@hookimpl`` and named
after the specs below; it is found through the ``schedcore`` entry-point group::

    # pyproject.toml of the plugin
    [project.entry-points.schedcore]
    myplugin = "myplugin.hooks"

The built-in memory store and local executor register through this very mechanism
(see :mod:`schedcore._builtin`). Every hook is called through pluggy, so
``@hookimpl(wrapper=True)`` wrappers and ``SCHEDCORE_TRACE_HOOKS=1`` tracing work. Lifecycle
hooks are called once per event (:data:`schedcore.events.EVENTS` says which event calls
which hook); an exception raised by one plugin's implementation is logged with the
plugin's and the hook's name and never stops the scheduler or the other plugins.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from schedcore.model import Schedule
    from schedcore.plugins import ExecutorFactory, StoreFactory
    from schedcore.records import Outcome, Run, RunRecord
    from schedcore.scheduler import Scheduler
    from schedcore.settings import CliOption
    from schedcore.trigger_types import TriggerType

__all__ = ["hookimpl", "hookspec"]

PROJECT = "schedcore"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# -- registration ------------------------------------------------------------------------


@hookspec
def schedcore_store_factories() -> Sequence[StoreFactory]:
    """Return the stores this plugin provides, by name (``--store NAME``)."""
    raise NotImplementedError


@hookspec
def schedcore_executor_factories() -> Sequence[ExecutorFactory]:
    """Return the executors this plugin provides, by name (``--executor NAME``)."""
    raise NotImplementedError


@hookspec
def schedcore_cli_options(command: str) -> Sequence[CliOption]:
    """Return the command-line options this plugin adds to ``schedcore <command>`` (``"run"``,
    ``"list"``, ...): :class:`~schedcore.settings.CliOption` specs, each setting one option of
    one of its stores or executors (``--redis-url`` sets ``url`` of ``--store redis``)."""
    raise NotImplementedError


@hookspec
def schedcore_trigger_types() -> Sequence[TriggerType]:
    """Return the trigger types this plugin provides: :class:`~schedcore.trigger_types.TriggerType`
    (``name`` -- the ``"type"`` of the triggers' ``to_dict()`` --, ``cls``, ``load``). Every store
    reads a stored trigger back through them (:func:`schedcore.triggers.trigger_from_dict`), and
    schedule files name them in a ``trigger = { type = NAME, ... }`` table."""
    raise NotImplementedError


# -- scheduler lifecycle -----------------------------------------------------------------


@hookspec
def schedcore_scheduler_started(scheduler: Scheduler) -> None:
    """The scheduler's loop started (``scheduler`` is the :class:`schedcore.Scheduler`)."""


@hookspec
def schedcore_scheduler_stopped(scheduler: Scheduler) -> None:
    """The scheduler's loop stopped cleanly."""


# -- schedules ---------------------------------------------------------------------------


@hookspec
def schedcore_schedule_added(scheduler: Scheduler, schedule: Schedule, result: str) -> None:
    """A schedule was stored; ``result`` is ``"added"``, ``"replaced"``, ``"unchanged"`` or ``"kept"``."""


@hookspec
def schedcore_schedule_removed(scheduler: Scheduler, schedule_id: str) -> None:
    """A schedule was removed with everything it had in the store."""


@hookspec
def schedcore_schedule_paused(scheduler: Scheduler, schedule_id: str) -> None:
    """A schedule was paused."""


@hookspec
def schedcore_schedule_resumed(scheduler: Scheduler, schedule_id: str, next_fire: datetime | None) -> None:
    """A paused schedule was resumed; ``next_fire`` is its next occurrence."""


# -- runs --------------------------------------------------------------------------------


@hookspec
def schedcore_run_dispatched(scheduler: Scheduler, run: Run, record: RunRecord) -> None:
    """A run was handed to the executor and committed; ``record.lateness`` is the firing lateness."""


@hookspec
def schedcore_run_succeeded(scheduler: Scheduler, outcome: Outcome) -> None:
    """A run finished successfully."""


@hookspec
def schedcore_run_failed(scheduler: Scheduler, outcome: Outcome) -> None:
    """A run failed, was lost (worker died) or was stopped; a retry may follow."""


@hookspec
def schedcore_run_retry_scheduled(scheduler: Scheduler, outcome: Outcome, retry_at: datetime, attempt: int) -> None:
    """A failed or lost run will be tried again as attempt ``attempt`` at ``retry_at``."""


@hookspec
def schedcore_run_exhausted(scheduler: Scheduler, outcome: Outcome) -> None:
    """A run failed on its last allowed attempt; no retry follows."""


@hookspec
def schedcore_misfire_skipped(scheduler: Scheduler, schedule_id: str, nominal: datetime, reason: str) -> None:
    """An occurrence was skipped: ``reason`` is ``"catchup"`` (missed by more than the grace),
    ``"overlap"`` (a previous run was still running) or ``"max_runs"``/``"end_at"``."""
