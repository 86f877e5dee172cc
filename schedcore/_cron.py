"""The :class:`Cron` trigger: cron expressions in an IANA zone, with an exact daylight-saving rule.

Expression language
-------------------
Five fields ``minute hour day-of-month month day-of-week``, or six with a leading
*seconds* field (the Quartz/Spring order ``sec min hour dom month dow``). Aliases:
``@yearly``/``@annually``, ``@monthly``, ``@weekly``, ``@daily``/``@midnight``, ``@hourly``.
Each field is a comma-separated list of ``*``, ``*/n``, ``a``, ``a-b``, ``a-b/n`` or
``a/n`` (``a`` to the field's maximum, every ``n``). Months accept ``JAN``-``DEC`` and
weekdays ``SUN``-``SAT`` (any case, also in ranges); weekday ``7`` is Sunday, like ``0``.

Day semantics are Vixie cron's: when both day-of-month and day-of-week are restricted
(neither starts with ``*``) a day matches if *either* matches; otherwise both must.

The daylight-saving rule
------------------------
An expression whose minute or hour field starts with ``*`` (after alias expansion, so
``@hourly`` = ``0 * * * *`` counts) is a *wildcard* job: it fires at every real instant
whose local wall-clock time matches. Both passes of a repeated hour fire, and times inside
a spring-forward gap simply do not happen.

Any other expression is a *fixed-time* job: each matching wall-clock time fires exactly
once -- at its first real instant when it occurs twice, and at the end of the gap (the
transition instant) when it does not occur at all. Matches that land on the same instant
fire once.

How it is computed
------------------
Instants are handled as integer POSIX seconds and wall-clock times as integer "local
seconds" (seconds since 1970-01-01 00:00 on the local clock). A pure matcher
(:func:`_next_local`) jumps field by field to the first matching wall-clock time. The UTC
timeline is then walked segment by segment, a segment being a stretch of constant UTC
offset; offset transitions are found once per zone and year by sampling every 12 hours and
bisecting to the exact second, and cached.

For fixed-time jobs the walk uses ``H(x)``, the largest wall-clock time reached at or
before instant ``x``. A match ``L`` fires at the first instant ``x`` with ``H(x) >= L``:
that is its first real instant, or the transition instant when ``L`` lies in a gap. This
map is non-decreasing in ``L``, so the next fire after ``u`` is the image of the first
match greater than ``H(u)`` -- which also explains why a repeated hour never fires twice.
"""

from __future__ import annotations

import calendar
import functools
from bisect import bisect_left, bisect_right
from datetime import date, datetime, timedelta, timezone
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from schedcore._time import require_aware
from schedcore.exceptions import ValidationError

__all__ = ["Cron"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DAY = 86_400
# A valid expression fires at least once every 40 years or so (29 February on a given
# weekday across a skipped leap year is the worst case); 100 years is a safe bound.
_HORIZON_YEARS = 100
_MAX_YEAR = 9998  # keep a margin below datetime's year 9999 for offset arithmetic
_SAMPLE_STEP = 12 * 3600  # transitions are at least this far apart in every real zone

_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = {name: i for i, name in enumerate(calendar.month_abbr) if name}  # Jan=1 .. Dec=12
_MONTH_NAMES = {k.upper(): v for k, v in _MONTHS.items()}
_DOW_NAMES = {"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}
# Longest length of each month in any year (February: leap years).
_MONTH_MAX_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class _FieldDef(NamedTuple):
    name: str
    lo: int
    hi: int  # largest value accepted in the text
    star_hi: int  # largest value ``*`` and ``a/n`` reach
    names: dict[str, int]


_SECOND = _FieldDef("second", 0, 59, 59, {})
_MINUTE = _FieldDef("minute", 0, 59, 59, {})
_HOUR = _FieldDef("hour", 0, 23, 23, {})
_DOM = _FieldDef("day-of-month", 1, 31, 31, {})
_MONTH = _FieldDef("month", 1, 12, 12, _MONTH_NAMES)
# 7 is accepted as Sunday, but ``*`` and ``a/n`` stop at 6 so Sunday is not counted twice.
_DOW = _FieldDef("day-of-week", 0, 7, 6, _DOW_NAMES)


class _Spec(NamedTuple):
    """A parsed expression: the sorted values of each field plus the flags the rules need."""

    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    doms: frozenset[int]
    months: tuple[int, ...]
    dows: frozenset[int]
    day_or: bool  # both day fields restricted: Vixie's "either matches"
    wildcard: bool  # minute or hour field starts with '*': fires at every real matching instant


def _bad(value: str, reason: str) -> ValidationError:
    return ValidationError("trigger.expr", value, reason)


def _number(expr: str, fd: _FieldDef, item: str, token: str) -> int:
    upper = token.upper()
    if upper in fd.names:
        return fd.names[upper]
    if not token.isdigit() or not token.isascii():
        what = f"a number {fd.lo}-{fd.hi}"
        if fd.names:
            what += " or a name (" + ", ".join(list(fd.names)[:3]) + ", ...)"
        raise _bad(expr, f"{fd.name} field {item!r}: {token!r} is not {what}")
    value = int(token)
    if not fd.lo <= value <= fd.hi:
        if token == item:
            raise _bad(expr, f"{fd.name} field {item!r} out of range {fd.lo}-{fd.hi}")
        raise _bad(expr, f"{fd.name} field {item!r}: {value} out of range {fd.lo}-{fd.hi}")
    return value


#: Parsed fields by (field name, text): expressions differ in a field or two and share the
#: others ("*", "1-5"...), and a claim of a schedule decodes its expression afresh. Only
#: valid fields are kept (an error names the whole expression).
_FIELDS: dict[tuple[str, str], frozenset[int]] = {}
_FIELDS_MAX = 4096


def _parse_field(expr: str, fd: _FieldDef, text: str) -> frozenset[int]:
    key = (fd.name, text)
    values = _FIELDS.get(key)
    if values is None:
        values = _parse_field_text(expr, fd, text)
        if len(_FIELDS) >= _FIELDS_MAX:
            _FIELDS.clear()
        _FIELDS[key] = values
    return values


def _parse_field_text(expr: str, fd: _FieldDef, text: str) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise _bad(expr, f"{fd.name} field {text!r} has an empty list item")
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or not step_text.isascii() or int(step_text) == 0:
                raise _bad(expr, f"{fd.name} field {item!r}: step {step_text!r} is not a positive whole number")
            step = int(step_text)
        if base == "*":
            lo, hi = fd.lo, fd.star_hi
        elif "-" in base:
            first, _, last = base.partition("-")
            lo, hi = _number(expr, fd, item, first), _number(expr, fd, item, last)
            if fd is _DOW and hi == 0 and lo > 0:
                hi = 7  # FRI-SUN: Sunday closes the week
            if lo > hi:
                raise _bad(expr, f"{fd.name} field {item!r}: range {base!r} runs backwards")
        else:
            lo = _number(expr, fd, item, base)
            # "a/n" means a, a+n, ... up to the field's maximum; a plain "a" is just a.
            hi = fd.star_hi if slash else lo
            hi = max(hi, lo)
        values.update(range(lo, hi + 1, step))
    if fd is _DOW and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values)


@functools.lru_cache(maxsize=1024)
def _parse(expr: str) -> _Spec:
    """Parse ``expr`` (already stripped) or raise ValidationError; cached per text."""
    text = expr
    if text.startswith("@"):
        alias = _ALIASES.get(text.lower())
        if alias is None:
            raise _bad(expr, f"unknown alias; expected one of {', '.join(sorted(_ALIASES))}")
        text = alias
    parts = text.split()
    if len(parts) == 5:
        parts = ["0", *parts]
    elif len(parts) != 6:
        raise _bad(
            expr,
            f"expected 5 fields (minute hour day-of-month month day-of-week) or 6 with leading seconds, "
            f"got {len(parts)}",
        )
    defs = (_SECOND, _MINUTE, _HOUR, _DOM, _MONTH, _DOW)
    sec, minute, hour, dom, month, dow = (_parse_field(expr, fd, part) for fd, part in zip(defs, parts, strict=True))
    dom_star, dow_star = parts[3].startswith("*"), parts[5].startswith("*")
    day_or = not dom_star and not dow_star
    if not day_or and not any(d <= _MONTH_MAX_DAYS[m] for m in month for d in dom):
        # Only the AND case can be impossible: every month has every weekday, and a
        # day-of-month field starting with '*' contains day 1.
        raise _bad(expr, "can never fire: no month in the month field has any of those days")
    return _Spec(
        seconds=tuple(sorted(sec)),
        minutes=tuple(sorted(minute)),
        hours=tuple(sorted(hour)),
        doms=dom,
        months=tuple(sorted(month)),
        dows=dow,
        day_or=day_or,
        wildcard=parts[1].startswith("*") or parts[2].startswith("*"),
    )


def _first_day(spec: _Spec, year: int, month: int, day: int) -> int:
    """The first matching day >= ``day`` in the month, or 0 when there is none."""
    first_weekday, ndays = calendar.monthrange(year, month)  # Monday = 0
    dow = (first_weekday + day) % 7  # cron numbering (Sunday = 0) of ``day``
    doms, dows, day_or = spec.doms, spec.dows, spec.day_or
    for d in range(day, ndays + 1):
        in_dom, in_dow = d in doms, dow in dows
        if (in_dom or in_dow) if day_or else (in_dom and in_dow):
            return d
        dow = (dow + 1) % 7
    return 0


def _next_local(spec: _Spec, local: int) -> int | None:
    """The first matching wall-clock time >= ``local`` (local seconds), or None within the horizon.

    Jumps field by field -- month, day, hour, minute, second -- resetting the smaller
    fields whenever a larger one moves, so a yearly expression costs a handful of steps.
    """
    days, rem = divmod(local, _DAY)
    start = date.fromordinal(_EPOCH_ORDINAL + days)
    y, mo, d = start.year, start.month, start.day
    h, rem = divmod(rem, 3600)
    mi, s = divmod(rem, 60)
    last_year = min(y + _HORIZON_YEARS, _MAX_YEAR)
    months, hours, minutes, seconds = spec.months, spec.hours, spec.minutes, spec.seconds
    while True:
        if y > last_year:
            return None
        i = bisect_left(months, mo)
        if i == len(months):
            y, mo, d, h, mi, s = y + 1, months[0], 1, 0, 0, 0
            continue
        if months[i] != mo:
            mo, d, h, mi, s = months[i], 1, 0, 0, 0
        nd = _first_day(spec, y, mo, d)
        if nd == 0:
            y, mo, d, h, mi, s = (y + 1, 1, 1, 0, 0, 0) if mo == 12 else (y, mo + 1, 1, 0, 0, 0)
            continue
        if nd != d:
            d, h, mi, s = nd, 0, 0, 0
        i = bisect_left(hours, h)
        if i == len(hours):
            d, h, mi, s = d + 1, 0, 0, 0  # _first_day returns 0 past the month's end
            continue
        if hours[i] != h:
            h, mi, s = hours[i], 0, 0
        i = bisect_left(minutes, mi)
        if i == len(minutes):
            h, mi, s = h + 1, 0, 0
            continue
        if minutes[i] != mi:
            mi, s = minutes[i], 0
        i = bisect_left(seconds, s)
        if i == len(seconds):
            mi, s = mi + 1, 0
            continue
        s = seconds[i]
        return (date(y, mo, d).toordinal() - _EPOCH_ORDINAL) * _DAY + h * 3600 + mi * 60 + s


# -- zones -------------------------------------------------------------------------------


def _zone(key: str) -> ZoneInfo:
    return ZoneInfo(key)  # ZoneInfo keeps its own cache of instances


def _offset(zone: ZoneInfo, instant: int) -> int:
    """UTC offset in seconds in force at POSIX second ``instant``."""
    off = (_EPOCH + timedelta(seconds=instant)).astimezone(zone).utcoffset()
    assert off is not None  # a ZoneInfo always knows its offset for an aware instant
    return off.days * _DAY + off.seconds


@functools.lru_cache(maxsize=256)
def _fixed_offset(key: str) -> int | None:
    """The constant offset of zones that never change it (UTC, Etc/GMT+5, ...), else None.

    Those zones skip the transition search altogether.
    """
    if key in {"UTC", "UCT", "GMT", "Zulu", "Universal", "Greenwich"} or key.startswith("Etc/"):
        return _offset(_zone(key), 0)
    return None


class _Transition(NamedTuple):
    at: int  # first POSIX second with the new offset
    before: int
    after: int


class _YearTable(NamedTuple):
    first: int  # offset in force at the year's first second
    ats: tuple[int, ...]  # the transitions' instants, for bisection
    transitions: tuple[_Transition, ...]


@functools.lru_cache(maxsize=8192)
def _year_table(key: str, year: int) -> _YearTable:
    """Offset transitions of zone ``key`` with ``at`` inside UTC calendar year ``year``.

    Sampled every 12 hours and bisected to the exact second (tzdata transitions fall on
    whole seconds); computed once per zone and year.
    """
    zone = _zone(key)
    start = (date(year, 1, 1).toordinal() - _EPOCH_ORDINAL) * _DAY
    end = (date(year + 1, 1, 1).toordinal() - _EPOCH_ORDINAL) * _DAY
    found: list[_Transition] = []
    prev_t, prev_o = start - 1, _offset(zone, start - 1)
    while prev_t < end - 1:
        t = min(prev_t + _SAMPLE_STEP, end - 1)
        o = _offset(zone, t)
        lo, lo_o = prev_t, prev_o
        while o != lo_o:
            # Bisect (lo, t] for the first second whose offset differs from lo's; loop
            # again in case a second transition hides in the same sampling step.
            a, b = lo, t
            while b - a > 1:
                mid = (a + b) // 2
                if _offset(zone, mid) == lo_o:
                    a = mid
                else:
                    b = mid
            new_o = _offset(zone, b)
            found.append(_Transition(b, lo_o, new_o))
            lo, lo_o = b, new_o
        prev_t, prev_o = t, o
    return _YearTable(_offset(zone, start), tuple(tr.at for tr in found), tuple(found))


def _year_transitions(key: str, year: int) -> tuple[_Transition, ...]:
    return _year_table(key, year).transitions


def _year_of(instant: int) -> int:
    return date.fromordinal(_EPOCH_ORDINAL + instant // _DAY).year


def _offset_at(key: str, instant: int) -> int:
    """UTC offset at POSIX second ``instant``, from the cached transition table."""
    table = _year_table(key, _year_of(instant))
    i = bisect_right(table.ats, instant)
    return table.transitions[i - 1].after if i else table.first


def _next_transition(key: str, after: int, until: int) -> _Transition | None:
    """The first transition with ``after < at <= until``, or None."""
    for year in range(_year_of(after), _year_of(until) + 1):
        table = _year_table(key, year)
        i = bisect_right(table.ats, after)
        if i < len(table.ats):
            return table.transitions[i] if table.ats[i] <= until else None
    return None


def _max_local_before(key: str, instant: int) -> int:
    """``H(instant)``: the largest wall-clock time shown at or before ``instant``.

    It differs from the current wall-clock time only during the second pass of a repeated
    hour, where it is the last second shown before the clock was turned back.
    """
    best = instant + _offset_at(key, instant)
    window = 2 * _DAY  # longer than any backward jump in tzdata
    for year in range(_year_of(instant - window), _year_of(instant) + 1):
        table = _year_table(key, year)
        lo, hi = bisect_right(table.ats, instant - window), bisect_right(table.ats, instant)
        for tr in table.transitions[lo:hi]:
            best = max(best, tr.at - 1 + tr.before)
    return best


def _next_fire(expr: str, key: str, instant: int) -> int | None:
    """First fire time (POSIX seconds) strictly after POSIX second ``instant``."""
    spec = _parse(expr)
    t = instant + 1  # first instant that may fire; every segment start below is inclusive
    off = _fixed_offset(key)
    if off is not None:
        local = _next_local(spec, t + off)
        return None if local is None else local - off
    limit = t + (_HORIZON_YEARS + 1) * 366 * _DAY
    off = _offset_at(key, t)
    if spec.wildcard:
        while t < limit:
            local = _next_local(spec, t + off)
            if local is None:
                return None
            candidate = local - off
            tr = _next_transition(key, t, candidate)
            if tr is None:
                return candidate
            # The offset changes before the candidate: redo the search on the clock shown
            # from the transition on (inclusive, as that instant itself may match).
            t, off = tr.at, tr.after
        return None
    target = _next_local(spec, _max_local_before(key, instant) + 1)
    if target is None:
        return None
    while t < limit:
        # In this segment the clock shows x + off; the first instant showing at least
        # ``target`` is target - off, or the segment start if the clock jumped past it.
        candidate = max(t, target - off)
        tr = _next_transition(key, t, candidate)
        if tr is None:
            return candidate
        t, off = tr.at, tr.after
    return None


# -- the trigger -------------------------------------------------------------------------


def _expr(value: Any) -> str:
    if not isinstance(value, str):
        raise ValidationError("trigger.expr", value, "expected a cron expression string such as '0 3 * * *'")
    return value.strip()


def _tz(value: Any) -> str:
    if isinstance(value, ZoneInfo):
        value = value.key
    if not isinstance(value, str) or not value:
        raise ValidationError("trigger.tz", value, "expected an IANA zone name such as 'Europe/Paris'")
    try:
        _zone(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValidationError(
            "trigger.tz", value, "unknown time zone; expected an IANA name such as 'Europe/Paris'"
        ) from None
    return value


@attrs.frozen
class Cron:
    """Fire at the times a cron expression matches on the wall clock of zone ``tz``.

    ``expr`` has 5 fields (``minute hour day-of-month month day-of-week``), 6 with a
    leading seconds field, or is an alias such as ``@daily``; ``tz`` is an IANA zone name.
    Both are checked here: a bad field, an expression that can never fire, or an unknown
    zone raises :class:`~schedcore.exceptions.ValidationError` naming ``trigger.expr`` or
    ``trigger.tz``.

    Daylight saving: *wildcard* jobs (minute or hour field starting with ``*``) fire at
    every real instant whose wall-clock time matches; other (*fixed-time*) jobs fire each
    matching wall-clock time once -- at its first instant when repeated, at the end of the
    gap when skipped. See :mod:`schedcore._cron` for the details.
    """

    expr: str = attrs.field(converter=_expr)
    tz: str = attrs.field(default="UTC", converter=_tz)

    @expr.validator
    def _check_expr(self, _: attrs.Attribute[str], value: str) -> None:
        _parse(value)

    @property
    def is_wildcard(self) -> bool:
        """True when the minute or hour field starts with ``*``: every real matching instant fires."""
        return _parse(self.expr).wildcard

    def next_after(self, instant: datetime) -> datetime | None:
        """The first fire time strictly after ``instant``, aware and in the trigger's zone.

        Fire times are whole seconds. Returns None only near the end of the calendar
        (year 9998), as every accepted expression fires again within a few decades.

        The result carries ``fold=1`` in the second pass of a repeated hour. Python compares
        two datetimes of the *same* zone by wall clock, ignoring ``fold`` (PEP 495), so
        order or store fire times as UTC (``.astimezone(timezone.utc)``), never as local.
        """
        require_aware(instant, "instant")
        delta = instant - _EPOCH
        seconds = delta.days * _DAY + delta.seconds  # floor: fire times are whole seconds
        try:
            fire = _next_fire(self.expr, self.tz, seconds)
            if fire is None:
                return None
            return (_EPOCH + timedelta(seconds=fire)).astimezone(_zone(self.tz))
        except (OverflowError, ValueError):
            return None  # beyond datetime's range (years 1-9999)

    def to_dict(self) -> dict[str, Any]:
        """``{"type": "cron", "expr": ..., "tz": ...}``."""
        return {"type": "cron", "expr": self.expr, "tz": self.tz}

    def describe(self) -> str:
        """``cron '0 3 * * *' Europe/Paris``."""
        return f"cron {self.expr!r} {self.tz}"
