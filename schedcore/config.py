"""Schedule files: TOML with one ``[[schedule]]`` table per schedule.

::

    [[schedule]]
    id = "hello"
    task = "schedcore.demo:hello"
    every = 5                      # seconds; or cron = "0 3 * * *" (+ tz), or at = 2025-03-09T03:00:00-04:00
    args = ["world"]
    retry = { max_attempts = 3, initial_delay = 10 }

Each table takes exactly one trigger key -- ``cron`` (with an optional ``tz``),
``every`` (seconds, with an optional ``start``), ``at``, or ``trigger``, a table naming any
registered trigger type with its fields (``trigger = { type = "business_days", at = "09:00" }``
or a ``[schedule.trigger]`` table, read by :func:`~schedcore.triggers.trigger_from_dict`:
plugins' types too) -- and any of the
:class:`~schedcore.model.Schedule` options. Instants are TOML offset date-times or
ISO-8601 strings with an offset; naive ones are refused. Unknown keys (a typo such as
``crn``), malformed TOML and duplicate ids are refused with a
:class:`~schedcore.exceptions.ConfigError` whose one-line message names the file, the
schedule and the key.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from schedcore.exceptions import ConfigError, ValidationError
from schedcore.model import Schedule
from schedcore.protocols import Trigger
from schedcore.triggers import At, Cron, Interval, trigger_from_dict

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = ["SCHEDULE_KEYS", "TRIGGER_KEYS", "load_schedules", "parse_schedules"]

#: The keys that choose the trigger; exactly one per schedule.
TRIGGER_KEYS = ("cron", "every", "at", "trigger")
#: Keys that only make sense next to one trigger key.
_TRIGGER_OPTIONS = {"tz": "cron", "start": "every"}
#: Schedule options passed to :class:`~schedcore.model.Schedule` as they are.
_OPTIONS = (
    "args",
    "kwargs",
    "queue",
    "retry",
    "catchup",
    "catchup_limit",
    "misfire_grace",
    "overlap",
    "jitter",
    "start_at",
    "end_at",
    "max_runs",
    "paused",
    "meta",
    "executor_options",
)
#: Every key a ``[[schedule]]`` table may hold.
SCHEDULE_KEYS = frozenset({"id", "task", *TRIGGER_KEYS, *_TRIGGER_OPTIONS, *_OPTIONS})
_TOP_LEVEL_KEYS = frozenset({"schedule"})


def load_schedules(path: str | os.PathLike[str]) -> list[Schedule]:
    """Read the schedule file at ``path``; raises ConfigError for any problem in it."""
    source = os.fspath(path)
    return parse_schedules(read_toml_text(source, source), source=source)


def read_toml_text(path: str, label: str) -> str:
    """The text of a TOML file; ConfigError starting with ``label`` when it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{label}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{label}: is a directory, expected a TOML file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{label}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read ({exc.strerror or exc})") from None


def parse_schedules(text: str, *, source: str = "<string>") -> list[Schedule]:
    """Parse schedule-file ``text``; ``source`` names it in error messages."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    unknown = sorted(set(document) - _TOP_LEVEL_KEYS)
    if unknown:
        raise ConfigError(f"{source}: unknown top-level key {unknown[0]!r} (schedules go in [[schedule]] tables)")
    tables = document.get("schedule", [])
    if not isinstance(tables, list):
        raise ConfigError(f"{source}: 'schedule' must be an array of tables, written [[schedule]]")
    schedules: list[Schedule] = []
    seen: dict[str, int] = {}
    for number, table in enumerate(tables, start=1):
        where = f"{source}: schedule #{number}"
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: expected a [[schedule]] table, got {type(table).__name__}")
        if isinstance(table.get("id"), str):
            where = f"{source}: schedule {table['id']!r}"
        schedule = _schedule(table, where)
        if schedule.id in seen:
            raise ConfigError(
                f"{source}: duplicate schedule id {schedule.id!r} (schedules #{seen[schedule.id]} and #{number})"
            )
        seen[schedule.id] = number
        schedules.append(schedule)
    return schedules


def _schedule(table: Mapping[str, Any], where: str) -> Schedule:
    unknown = sorted(set(table) - SCHEDULE_KEYS)
    if unknown:
        hint = _suggest(unknown[0])
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}"
            + (f" (did you mean {hint!r}?)" if hint else f" (allowed: {', '.join(sorted(SCHEDULE_KEYS))})")
        )
    for key in ("id", "task"):
        if key not in table:
            raise ConfigError(f"{where}: missing required key {key!r}")
    given = [key for key in TRIGGER_KEYS if key in table]
    if len(given) != 1:
        found = f"got {' and '.join(repr(k) for k in given)}" if given else "got none"
        raise ConfigError(f"{where}: needs exactly one of 'cron', 'every', 'at' or 'trigger' ({found})")
    kind = given[0]
    for option, needs in _TRIGGER_OPTIONS.items():
        if option in table and kind != needs:
            raise ConfigError(f"{where}: {option!r} only goes with {needs!r}, not with {kind!r}")
    try:
        trigger = _trigger(kind, table)
        options = {key: table[key] for key in _OPTIONS if key in table}
        return Schedule(id=table["id"], task=table["task"], trigger=trigger, **options)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {_describe(exc, table, kind)}") from None


def _trigger(kind: str, table: Mapping[str, Any]) -> Trigger:
    value = table[kind]
    if kind == "cron":
        if not isinstance(value, str):
            raise ValidationError("cron", value, "expected a cron expression string such as '0 3 * * *'")
        tz = table.get("tz", "UTC")
        if not isinstance(tz, str):
            raise ValidationError("tz", tz, "expected an IANA zone name such as 'Europe/Paris'")
        return Cron(value, tz=tz)
    if kind == "every":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValidationError("every", value, "expected a number of seconds")
        if "start" in table:
            return Interval(value, start=table["start"])
        return Interval(value)
    if kind == "trigger":
        if not isinstance(value, Mapping) or not isinstance(value.get("type"), str):
            raise ValidationError(
                "trigger", value, "expected a table with a 'type', e.g. { type = 'cron', expr = '0 3 * * *' }"
            )
        return trigger_from_dict(value)
    return At(value)


#: Model field names as the schedule file spells them.
_FIELD_KEYS = {
    "trigger.expr": "cron",
    "trigger.tz": "tz",
    "trigger.every": "every",
    "trigger.start": "start",
    "trigger.when": "at",
}


def _describe(exc: ValidationError, table: Mapping[str, Any], kind: str) -> str:
    """``exc``'s one-line message with the field and value the way the user wrote them."""
    # In a ``trigger`` table the model's field names are the file's keys already.
    field = exc.field if kind == "trigger" else _FIELD_KEYS.get(exc.field, exc.field)
    value = exc.value
    raw: Any = table
    for part in field.split("."):
        if not isinstance(raw, Mapping) or part not in raw:
            break
        raw = raw[part]
    else:
        value = raw  # as written in the file, not as converted (5, not timedelta(seconds=5))
    # TOML date-times are shown as written, not as Python reprs.
    shown = value.isoformat() if isinstance(value, (datetime, date, time)) else repr(value)
    if len(shown) > 120:
        shown = shown[:117] + "..."
    reason = exc.reason
    if "naive" in reason:
        reason = "a date-time without a UTC offset is ambiguous; write one, e.g. 2025-03-09T03:00:00-04:00"
    elif "JSON-serializable" in reason:
        reason = "only strings, numbers, booleans, arrays and tables are allowed here (quote dates and times)"
    return f"invalid {field}={shown}: {reason}"


def _suggest(key: str) -> str | None:
    import difflib

    matches = difflib.get_close_matches(key, sorted(SCHEDULE_KEYS), n=1, cutoff=0.6)
    return matches[0] if matches else None
