"""The engine's events in one table: each one's log line, its level and the hook it calls.

The scheduler logs every event from this table (:meth:`Event.message_for` builds the
line from the event's fields, which go into the record as extras: the ``event`` field of
``--log-format json``), at the table's level, and then calls the event's hook, if it has
one, with the arguments :mod:`schedcore.hookspecs` declares. docs/plugins.md renders the
table; a test keeps the two equal.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

__all__ = ["EVENTS", "Event"]


class _Formatter(string.Formatter):
    """``str.format`` that writes instants as ISO 8601, as the JSON log lines do."""

    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, datetime) and not format_spec:
            return value.isoformat()
        return format(value, format_spec)


_FORMATTER = _Formatter()


def _fields(template: str) -> frozenset[str]:
    return frozenset(field for _, field, _, _ in _FORMATTER.parse(template) if field)


@attrs.frozen
class Event:
    """One engine event: ``name`` is the log record's ``event`` field.

    ``message`` is the log line, a ``str.format`` template over the event's fields;
    ``detail`` is appended to it when every field it names is set (an error message, say).
    ``hook`` is the hook the engine calls for it (None: the event is only logged).
    """

    name: str
    message: str
    level: int = logging.INFO
    hook: str | None = None
    detail: str = ""

    def message_for(self, fields: Mapping[str, Any]) -> str:
        """The log line of this event with ``fields``."""
        line = _FORMATTER.vformat(self.message, (), fields)
        if self.detail and all(fields.get(name) for name in _fields(self.detail)):
            line += _FORMATTER.vformat(self.detail, (), fields)
        return line


def _table(*events: Event) -> dict[str, Event]:
    return {event.name: event for event in events}


#: Every event the engine logs through its event table, by name, in the order of a
#: scheduler's life. Each run's own progress is DEBUG, so that a healthy scheduler at the
#: default level says only what an operator acts on; a failure is a WARNING and a run out
#: of attempts an ERROR, so that ``--log-level warning`` still shows a task that keeps failing.
EVENTS: Mapping[str, Event] = _table(
    Event("scheduler_started", "scheduler {owner} started", hook="schedcore_scheduler_started"),
    Event("scheduler_stopped", "scheduler {owner} stopped", hook="schedcore_scheduler_stopped"),
    Event("schedule_added", "schedule {schedule_id} {result}", hook="schedcore_schedule_added"),
    Event("schedule_removed", "schedule {schedule_id} removed", hook="schedcore_schedule_removed"),
    Event("schedule_paused", "schedule {schedule_id} paused", hook="schedcore_schedule_paused"),
    Event("schedule_resumed", "schedule {schedule_id} resumed", hook="schedcore_schedule_resumed"),
    Event("schedule_finished", "schedule {schedule_id} has no more occurrences"),
    Event("run_triggered", "manual run {run_id} queued"),
    Event("backfill_queued", "{count} backfill runs queued"),
    Event("run_dispatched", "dispatched {run_id}", logging.DEBUG, hook="schedcore_run_dispatched"),
    Event("run_buffered", "buffered {run_id}", logging.DEBUG),
    Event("misfire_skipped", "skipped {run_id} ({reason})", hook="schedcore_misfire_skipped"),
    Event("run_succeeded", "run {run_id} succeeded", logging.DEBUG, hook="schedcore_run_succeeded"),
    Event("run_failed", "run {run_id} {status}", logging.WARNING, hook="schedcore_run_failed", detail=": {error}"),
    Event("run_retry_scheduled", "run {run_id} will be retried at {retry_at}", hook="schedcore_run_retry_scheduled"),
    Event("run_exhausted", "run {run_id} failed on its last attempt", logging.ERROR, hook="schedcore_run_exhausted"),
)
