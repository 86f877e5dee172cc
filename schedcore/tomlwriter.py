"""Write schedules back as the ``[[schedule]]`` TOML a user would put in a schedule file.

:func:`schedule_to_toml` is the inverse of :func:`schedcore.config.parse_schedules`:
``parse_schedules(schedules_to_toml([s]))`` gives back ``[s]`` for every schedule whose
trigger's ``to_dict()`` TOML can hold (the built-in triggers always; a plugin's trigger is
written as a ``trigger = { type = ... }`` table) and whose arguments are stored as JSON (the
default). Only options that differ from their default are written, the way people write
these files. What TOML cannot say is written as a ``#`` comment instead, so the text is
still valid TOML and the loss is visible: ``null`` (TOML has no null), arguments stored
with the pickle serializer (they are signed bytes, not data), a trigger whose ``to_dict()``
holds a null. Every string is escaped, so a hostile value cannot break out of its quotes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from schedcore.model import Schedule, Serializer
from schedcore.triggers import At, Cron, Interval

__all__ = ["UnwritableValue", "schedule_to_toml", "schedules_to_toml", "toml_value"]

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
#: Fields written elsewhere (the trigger keys) or never (the storage format's own).
_NOT_OPTIONS = frozenset({"schema", "id", "task", "trigger", "serializer", "payload"})


class UnwritableValue(ValueError):
    """A value TOML cannot represent (``None``, NaN in a table key, an unknown type)."""


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def toml_key(key: str) -> str:
    """A bare key when TOML allows one, else a quoted key."""
    return key if _BARE_KEY.match(key) else toml_string(key)


def toml_value(value: Any) -> str:
    """One TOML value (inline tables and arrays for nested data); raises UnwritableValue."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, datetime):
        return value.isoformat()  # a TOML offset date-time literal (schedules hold aware instants)
    if isinstance(value, Mapping):
        items = ", ".join(f"{toml_key(str(k))} = {toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if value is None:
        raise UnwritableValue("TOML has no null value")
    raise UnwritableValue(f"TOML cannot hold a {type(value).__name__}")


def _seconds(value: Any) -> Any:
    """Whole seconds as an integer (``every = 300``, not ``300.0``)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _trigger_lines(schedule: Schedule) -> list[str]:
    trigger = schedule.trigger
    if isinstance(trigger, Cron):
        lines = [f"cron = {toml_string(trigger.expr)}"]
        if trigger.tz != "UTC":
            lines.append(f"tz = {toml_string(trigger.tz)}")
        return lines
    if isinstance(trigger, Interval):
        data = trigger.to_dict()
        lines = [f"every = {toml_value(_seconds(data['every']))}"]
        if trigger.start != Interval(trigger.every).start:
            lines.append(f"start = {toml_value(trigger.start)}")
        return lines
    if isinstance(trigger, At):
        return [f"at = {toml_value(trigger.when)}"]
    # A plugin's trigger: the generic table that schedcore.config reads with trigger_from_dict.
    try:
        return [f"trigger = {toml_value(trigger.to_dict())}"]
    except UnwritableValue:
        return [f"# trigger: {_comment(trigger.describe())} (a schedule file cannot express this trigger)"]


def _comment(text: str) -> str:
    """``text`` safe inside a ``#`` comment: one line, control characters shown escaped."""
    return toml_string(text)[1:-1]


def _option_value(key: str, value: Any) -> Any:
    if key in ("misfire_grace", "jitter"):
        return _seconds(value)
    if key == "retry" and isinstance(value, Mapping):
        return {k: _seconds(v) for k, v in value.items()}
    if key in ("start_at", "end_at") and isinstance(value, str):
        return datetime.fromisoformat(value)
    return value


def schedule_to_toml(schedule: Schedule) -> str:
    """One ``[[schedule]]`` table for ``schedule`` (see the module docstring for what round-trips)."""
    lines = ["[[schedule]]", f"id = {toml_string(schedule.id)}", f"task = {toml_string(schedule.task)}"]
    lines += _trigger_lines(schedule)
    data = schedule.to_dict(compact=True)
    if schedule.serializer is not Serializer.JSON:
        data.pop("args", None)
        data.pop("kwargs", None)
        lines.append(
            f"# args and kwargs are stored with the {schedule.serializer.value} serializer and cannot be written here"
        )
    for key, value in data.items():
        if key in _NOT_OPTIONS:
            continue
        if key in ("args", "kwargs") and not value:
            continue
        try:
            lines.append(f"{toml_key(key)} = {toml_value(_option_value(key, value))}")
        except UnwritableValue as exc:
            lines.append(f"# {toml_key(key)}: not written ({exc})")
    return "\n".join(lines) + "\n"


def schedules_to_toml(schedules: Iterable[Schedule]) -> str:
    """A whole schedule file: one table per schedule, separated by blank lines."""
    parts: Sequence[str] = [schedule_to_toml(s) for s in schedules]
    return "\n".join(parts)
