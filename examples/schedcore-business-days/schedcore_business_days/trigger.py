"""The :class:`BusinessDays` trigger.

Daylight saving comes from :class:`schedcore.Cron`, which does the wall-clock arithmetic:
``at`` is a *fixed-time* cron job (``MM HH * * mon-fri``), so each business day fires
exactly once --

* when ``at`` falls in a spring-forward gap (it does not exist that day), at the end of the
  gap, the transition instant (``02:30`` in a zone that jumps 02:00 -> 03:00 fires at 03:00);
* when ``at`` occurs twice (autumn), at its first occurrence only.

Holidays are dates on the zone's own calendar: a fire time whose local date is a holiday is
passed over, and the next business day's fire time is returned instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

import attrs

from schedcore import Cron, ValidationError

__all__ = ["BusinessDays"]

_AT = re.compile(r"([01]\d|2[0-3]):([0-5]\d)\Z")
_DAY = "(?:mon|tue|wed|thu|fri|sat|sun)"
# Day names, ranges and lists only: the value goes into a cron expression, so nothing else.
_WEEKDAYS = re.compile(rf"{_DAY}(?:-{_DAY})?(?:,{_DAY}(?:-{_DAY})?)*\Z")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
#: A bound on stored data: a few decades of holidays, never a list that makes decoding slow.
MAX_HOLIDAYS = 10_000


def _at(value: Any) -> str:
    if not isinstance(value, str) or not _AT.match(value):
        raise ValidationError("trigger.at", value, "expected a wall-clock time HH:MM, from 00:00 to 23:59")
    return value


def _weekdays(value: Any) -> str:
    if isinstance(value, str) and _WEEKDAYS.match(value.strip().lower()):
        return value.strip().lower()
    raise ValidationError(
        "trigger.weekdays", value, "expected day names, ranges and lists such as 'mon-fri' or 'sun-thu'"
    )


def _holiday(value: Any) -> date:
    if isinstance(value, datetime):  # (a datetime is a date too, but a holiday is a whole day)
        raise ValidationError("trigger.holidays", value, "expected dates (YYYY-MM-DD), not date-times")
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _ISO_DATE.match(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValidationError("trigger.holidays", value, "expected a date written YYYY-MM-DD")


def _holidays(value: Any) -> tuple[date, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValidationError("trigger.holidays", value, "expected a list of dates (YYYY-MM-DD)")
    items = list(value)
    if len(items) > MAX_HOLIDAYS:
        raise ValidationError("trigger.holidays", f"{len(items)} dates", f"at most {MAX_HOLIDAYS} dates")
    return tuple(sorted({_holiday(item) for item in items}))


@attrs.frozen
class BusinessDays:
    """Fire at ``at`` (``"HH:MM"``, local time in IANA zone ``tz``) on ``weekdays``
    (``"mon-fri"``; day names, ranges, lists), except on the dates in ``holidays``.

    Pure and immutable; equal triggers have equal ``to_dict()``. Holidays may be given as
    dates or ``"YYYY-MM-DD"`` strings, in any order, repeated or not: they are kept sorted
    and unique. Daylight saving: see the module docstring.
    """

    at: str = attrs.field(converter=_at)
    tz: str = attrs.field(default="UTC")
    holidays: tuple[date, ...] = attrs.field(default=(), converter=_holidays)
    weekdays: str = attrs.field(default="mon-fri", converter=_weekdays)
    # Derived, never stored or compared: the cron trigger doing the calendar work.
    _cron: Cron = attrs.field(init=False, eq=False, repr=False)
    _skip: frozenset[date] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        hour, minute = self.at.split(":")
        # Cron checks tz (ValidationError naming trigger.tz); at and weekdays are checked above.
        object.__setattr__(self, "_cron", Cron(f"{int(minute)} {int(hour)} * * {self.weekdays}", tz=self.tz))
        object.__setattr__(self, "_skip", frozenset(self.holidays))

    def next_after(self, instant: datetime) -> datetime | None:
        """The first business-day fire time strictly after ``instant`` (aware, in ``tz``)."""
        fire = self._cron.next_after(instant)  # (refuses a naive instant)
        # Each step moves to a later day, so this passes over at most len(holidays) dates.
        while fire is not None and fire.date() in self._skip:
            fire = self._cron.next_after(fire)
        return fire

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "business_days",
            "at": self.at,
            "tz": self.tz,
            "holidays": [day.isoformat() for day in self.holidays],
            "weekdays": self.weekdays,
        }

    def describe(self) -> str:
        text = f"business days ({self.weekdays}) at {self.at} {self.tz}"
        if self.holidays:
            count = len(self.holidays)
            text += f", except {count} holiday{'s' if count > 1 else ''}"
        return text
