"""Triggers in words (``at 03:00 every day (Europe/Paris)``) and the daylight-saving rule
that applies to them -- what the schedules page and a schedule's page show."""

from __future__ import annotations

from schedcore._cron import _ALIASES
from schedcore.protocols import Trigger
from schedcore.triggers import At, Cron, Interval

__all__ = ["dst_rule", "trigger_in_words"]

_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_DAY_ABBR = {name[:3].lower(): str(number) for number, name in enumerate(_DAYS[:7])}
_MONTHS = ["", "January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"]  # fmt: skip


def _duration(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{unit}" if count == 1 else f"{count} {unit}s"
    if seconds == 1:
        return "second"
    shown = int(seconds) if float(seconds).is_integer() else seconds
    return f"{shown} seconds"


def _days_of_week(field: str) -> str | None:
    """``1-5`` -> ``Monday to Friday``; None when it is not a simple list or range."""
    text = field.lower()
    for abbr, number in _DAY_ABBR.items():
        text = text.replace(abbr, number)
    parts = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        if not low.isdigit() or (high and not high.isdigit()) or int(low) > 7 or (high and int(high) > 7):
            return None
        parts.append(f"{_DAYS[int(low)]} to {_DAYS[int(high)]}" if high else _DAYS[int(low)])
    return ", ".join(parts)


def _cron_words(expr: str) -> str | None:
    """Common cron shapes in words; None for anything else (the expression is shown instead)."""
    fields = _ALIASES.get(expr.strip().lower(), expr).split()
    if len(fields) != 5:
        return None
    minute, hour, dom, month, dow = fields
    if minute == "*" and hour == "*" and dom == month == dow == "*":
        return "every minute"
    if minute.startswith("*/") and minute[2:].isdigit() and hour == "*" and dom == month == dow == "*":
        return f"every {minute[2:]} minutes"
    if minute.isdigit() and hour == "*" and dom == month == dow == "*":
        return f"at minute {int(minute)} of every hour"
    if minute.isdigit() and hour.startswith("*/") and hour[2:].isdigit() and dom == month == dow == "*":
        return f"at minute {int(minute)} of every {hour[2:]} hours"
    if not (minute.isdigit() and hour.isdigit()):
        return None
    at = f"at {int(hour):02d}:{int(minute):02d}"
    if dom == month == "*":
        if dow == "*":
            return f"{at} every day"
        days = _days_of_week(dow)
        return f"{at} on {days}" if days else None
    if dow == "*" and dom.isdigit():
        if month == "*":
            return f"{at} on day {int(dom)} of every month"
        if month.isdigit() and 1 <= int(month) <= 12:
            return f"{at} on {_MONTHS[int(month)]} {int(dom)}"
    return None


def trigger_in_words(trigger: Trigger) -> str:
    """A short description people read at a glance; falls back to ``trigger.describe()``."""
    if isinstance(trigger, Cron):
        words = _cron_words(trigger.expr)
        zone = f" ({trigger.tz})"
        return (words + zone) if words else f"cron {trigger.expr}{zone}"
    if isinstance(trigger, Interval):
        return f"every {_duration(trigger.every.total_seconds())}"
    if isinstance(trigger, At):
        return "once"
    return trigger.describe()


def dst_rule(trigger: Trigger) -> str | None:
    """Which daylight-saving rule the trigger follows, in one sentence; None when it has none."""
    if isinstance(trigger, Cron):
        if trigger.tz == "UTC":
            return "UTC has no daylight saving: every occurrence is at the same UTC time."
        if trigger.is_wildcard:
            return (
                "A wildcard job (minute or hour is '*'): it fires at every real instant whose wall-clock "
                "time matches, so twice in a repeated hour and never in a skipped one."
            )
        return (
            "A fixed-time job: each matching wall-clock time fires once -- at its first instant when "
            "the clocks go back, at the end of the gap when they go forward."
        )
    if isinstance(trigger, Interval):
        return "An interval counts absolute time: daylight saving does not move it."
    return None
