"""Every error schedcore raises on purpose.

The tree::

    SchedcoreError
    ├── ValidationError (also ValueError)   bad input, refused at the boundary; names field and value
    ├── ScheduleExists                       add(..., conflict="error") found the id taken
    ├── ScheduleNotFound (also KeyError)     the id names no stored schedule
    ├── StoreError                           the store failed
    │   ├── StoreUnavailable                 cannot reach the store now; retry later
    │   ├── CorruptStore                     a key the whole store relies on is damaged
    │   └── CorruptScheduleData              stored data for one schedule cannot be read
    ├── ExecutorError                        the executor failed
    │   └── ExecutorUnavailable              cannot hand runs over now; retry later
    ├── PluginError                          a plugin is missing, misnamed or broken
    └── ConfigError                          a settings or schedule file is invalid

Adapters (Redis, RQ, ...) translate their driver's exceptions into these, so that
no driver type ever leaks into the core.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConfigError",
    "CorruptScheduleData",
    "CorruptStore",
    "ExecutorError",
    "ExecutorUnavailable",
    "PluginError",
    "SchedcoreError",
    "ScheduleExists",
    "ScheduleNotFound",
    "StoreError",
    "StoreUnavailable",
    "ValidationError",
    "shown",
]

#: Values longer than this (as ``repr`` writes them) are cut in error messages.
_SHOWN_MAX = 100
_SHOWN_HEAD = 80


def shown(value: Any) -> str:
    """``repr(value)`` for an error message: at most about 100 characters, never raising.

    A 10 kB id or a hostile nested list would otherwise be echoed whole into every log
    and error line (or fail to print at all): longer values keep their first 80
    characters and say how long they were, e.g. ``'aaaa…' (10240 characters)``.
    """
    try:
        text = repr(value)
    except RecursionError:
        return f"<{type(value).__name__} nested too deeply to show>"
    except Exception:
        return f"<unprintable {type(value).__name__}>"
    if len(text) <= _SHOWN_MAX:
        return text
    size = len(value) if isinstance(value, str) else len(text)
    return f"{text[:_SHOWN_HEAD]}… ({size} characters)"


class SchedcoreError(Exception):
    """Base class of every error schedcore raises on purpose."""


class ValidationError(SchedcoreError, ValueError):
    """A value was refused at the boundary.

    ``field`` names what was wrong (``"trigger.expr"``, ``"id"``, ...) and ``value``
    holds what was given, so that the one-line message is enough to fix it.
    """

    def __init__(self, field: str, value: Any, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"invalid {field}={shown(value)}: {reason}")


class ScheduleExists(SchedcoreError):
    """A schedule with this id is already stored (conflict policy ``"error"``)."""

    def __init__(self, schedule_id: str) -> None:
        self.schedule_id = schedule_id
        super().__init__(f"schedule {shown(schedule_id)} already exists")


class ScheduleNotFound(SchedcoreError, KeyError):
    """No schedule is stored under this id."""

    def __init__(self, schedule_id: str) -> None:
        self.schedule_id = schedule_id
        super().__init__(schedule_id)

    def __str__(self) -> str:
        return f"no schedule with id {shown(self.schedule_id)}"


class StoreError(SchedcoreError):
    """The store failed to carry out an operation."""


class StoreUnavailable(StoreError):
    """The store cannot be reached right now; the operation may be retried."""


class CorruptScheduleData(StoreError):
    """Stored data for one schedule cannot be decoded (hand-edited, foreign or newer schema)."""

    def __init__(self, schedule_id: str, reason: str) -> None:
        self.schedule_id = schedule_id
        self.reason = reason
        super().__init__(f"schedule {shown(schedule_id)} has unreadable data: {reason}")


class CorruptStore(StoreError):
    """A key the whole store relies on (index, leases, definitions...) holds data of the wrong type.

    Nothing was written: the store refuses to work around structural damage, which
    would lose schedules silently. ``key`` names the damaged key, ``found`` the type it
    holds and ``expected`` the type the store needs; the operator repairs it (see the
    store's documentation), and work resumes on the next attempt.
    """

    def __init__(self, key: str, found: str, expected: str) -> None:
        self.key = key
        self.found = found
        self.expected = expected
        super().__init__(
            f"store damaged: key {key!r} holds a {found}, not a {expected}; nothing was written until it is repaired"
        )


class ExecutorError(SchedcoreError):
    """The executor failed to carry out an operation."""


class ExecutorUnavailable(ExecutorError):
    """The executor cannot accept runs right now; the claims are released and retried."""


class PluginError(SchedcoreError):
    """A plugin, store or executor name is unknown, or a plugin is broken."""


class ConfigError(SchedcoreError):
    """A settings or schedule file is invalid."""
