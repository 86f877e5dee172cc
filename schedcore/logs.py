"""Logging set-up for the command line: readable text or one JSON object per line.

The engine logs each lifecycle event with structured ``extra`` fields (``event``,
``schedule_id``, ``run_id``, ``lateness``, ...). Both formats keep them: text appends
them as ``key=value`` pairs, JSON puts them next to ``ts``, ``level``, ``logger`` and
``message``::

    {"ts": "2025-03-09T08:00:00.004Z", "level": "INFO", "logger": "schedcore.scheduler",
     "message": "dispatched nightly@1741507200000.1", "event": "run_dispatched",
     "schedule_id": "nightly", "run_id": "nightly@1741507200000.1", "lateness": 0.004}

Library code never calls :func:`configure`; only the CLI (or an application that wants
the same output) does.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import date, datetime, timedelta, timezone
from enum import Enum
from typing import Any, TextIO

__all__ = ["FORMATS", "LEVELS", "JsonFormatter", "TextFormatter", "configure", "record_extras"]

FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error", "critical")

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))) | {"message", "asctime"}


def record_extras(record: logging.LogRecord) -> dict[str, Any]:
    """The fields passed through ``extra=`` when ``record`` was logged, in the order given."""
    return {key: value for key, value in vars(record).items() if key not in _STANDARD and not key.startswith("_")}


def _plain(value: Any) -> Any:
    """A JSON-friendly form of the values the engine puts in ``extra``."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc)
            return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return value.isoformat(timespec="milliseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (set, frozenset, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def _timestamp(record: logging.LogRecord) -> str:
    when = datetime.fromtimestamp(record.created, tz=timezone.utc)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts``, ``level``, ``logger``, ``message``, the extras,
    and ``exc`` (the formatted traceback) when the record carries an exception."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record_extras(record).items():
            data.setdefault(key, value)
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exc"] = record.exc_text
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json.dumps(data, default=_plain, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``2025-03-09T08:00:00.004Z INFO  schedcore.scheduler: message key=value ...``."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        extras = record_extras(record)
        if extras:
            line += " " + " ".join(f"{key}={_text(value)}" for key, value in extras.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        elif record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


def _text(value: Any) -> str:
    if value is None or isinstance(value, (bool, int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        return value if value and not any(c.isspace() or c in "\"'=" for c in value) else json.dumps(value)
    return json.dumps(value, default=_plain, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the record (test runners swap it)."""

    def __init__(self, stream: TextIO | None) -> None:
        super().__init__(stream or sys.stderr)
        self._fixed = stream

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = self._fixed or sys.stderr
        super().emit(record)


_HANDLER_NAME = "schedcore.cli"


def configure(level: str = "info", fmt: str = "text", *, stream: TextIO | None = None) -> logging.Handler:
    """Send log records at ``level`` and above to stderr (or ``stream``) as ``fmt``.

    Installs one handler on the root logger, so that the tasks' own log lines show
    too, and replaces the handler a previous call installed (safe to call again).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if level.lower() not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; expected one of {', '.join(LEVELS)}")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    handler = _StderrHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
