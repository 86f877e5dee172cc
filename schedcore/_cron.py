"""The :class:`Cron` trigger: cron expressions in an IANA zone, with an exact daylight-saving rule.

Expression language
-------------------
Five fields ``minute hour day-of-month month day-of-week``, or six with a leading
*seconds* field (the Quartz/Spring order ``sec min hour dom month dow``). Aliases:
``@yearly``/``@annually``, ``@monthly``, ``@weekly``, ``@daily``/``@midnight``, ``@hourly``.
Each field is a comma-separated list of ``*``, ``*/n``, ``a``, ``a-b``, ``a-b/n`` or
``a/n`` (``a`` to the field's maximum, every ``n``). Months accept ``JAN``-``DEC`` and
weekdays ``SUN``-``SAT`` (any case, also in ranges); weekday ``7`` is Sunday, like ``0``.

Croniter's extensions: ``L`` (last day), ``a-L``, ``dW``/``Wd`` (the weekday nearest day d,
within the month; a day past the month's end means its last day) and ``LW`` in
day-of-month; ``dL``/``Ld`` (the month's last weekday d) and ``d#n`` (its n-th) in
day-of-week; ``?`` alone as ``*`` in either day field; ranges that wrap round (``FRI-MON``,
``22-2``, ``NOV-FEB``, ``7-FRI``), stepping on through the field's cycle (``22-3/3`` is 22,
1); and, as a whole field, ``H``, ``H/n``, ``H(a-b)``, ``H(a-b)/n`` resolved from
``crc32(seed) >> croniter's field index`` (croniter's values; a plain ``H`` in
day-of-month picks 1-28). ``@reboot``, year fields, ``R``, ``L-n`` are refused as "not
supported". docs/concepts.md lists the deliberate differences from croniter.

Day semantics are Vixie cron's: when both day-of-month and day-of-week are restricted
(neither starts with ``*``, is ``?`` or is ``H/n``) a day matches if *either* matches;
otherwise both must. The month-dependent forms (L, W, #) are matched through a cached
table of each month's matching days; plain expressions keep the per-day loop.

The daylight-saving rule
------------------------
An expression whose minute or hour field starts with ``*`` or is ``H/n`` (after alias
expansion, so ``@hourly`` = ``0 * * * *`` counts) is a *wildcard* job: it fires at every real instant
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
import re
import zlib
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
    star_hi: int  # largest value ``*``, ``a/n`` and ``H`` reach
    names: dict[str, int]
    hash_shift: int  # croniter's field index: ``H`` hashes ``crc32(seed) >> hash_shift``


# The shifts are croniter's field indexes, so ``H`` picks croniter's values for the same id.
_SECOND = _FieldDef("second", 0, 59, 59, {}, 5)
_MINUTE = _FieldDef("minute", 0, 59, 59, {}, 0)
_HOUR = _FieldDef("hour", 0, 23, 23, {}, 1)
_DOM = _FieldDef("day-of-month", 1, 31, 31, {}, 2)
_MONTH = _FieldDef("month", 1, 12, 12, _MONTH_NAMES, 3)
# 7 is accepted as Sunday, but ``*`` and ``a/n`` stop at 6 so Sunday is not counted twice.
_DOW = _FieldDef("day-of-week", 0, 7, 6, _DOW_NAMES, 4)
# A plain ``H`` in day-of-month picks from 1-28, as Jenkins does: a day every month has.
_DOM_HASH_HI = 28


class _Field(NamedTuple):
    """One parsed field: its plain values, plus the day forms that depend on the month."""

    values: frozenset[int]
    last: bool = False  # day-of-month ``L``: the month's last day
    # day-of-month ``dW``: the weekday nearest day d (d past the month's end means its last
    # day, so ``LW`` is stored as 31)
    nearest: frozenset[int] = frozenset()
    last_dow: frozenset[int] = frozenset()  # day-of-week ``dL``/``Ld``: the month's last weekday d
    nth: frozenset[tuple[int, int]] = frozenset()  # day-of-week ``d#n``: the month's n-th weekday d

    @property
    def by_month(self) -> bool:
        """True when the field has a form whose days depend on the month (L, W, #)."""
        return self.last or bool(self.nearest or self.last_dow or self.nth)


class _Days(NamedTuple):
    """The day fields when one of them uses a form that depends on the month."""

    dom: _Field
    dow: _Field
    day_or: bool


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
    days: _Days | None  # L, W, # forms: matched per month (None: plain sets, the fast path)
    text: str  # the expression with aliases expanded and H resolved, in the fields given (5 or 6)
    hashed: bool  # some field uses H


def _bad(value: str, reason: str) -> ValidationError:
    return ValidationError("trigger.expr", value, reason)


# Why an item is refused when it looks like one of the extensions used where it does not
# belong (checked only once it is neither a number nor a name of the field).
_QUESTION = "? is supported only alone, in day-of-month or day-of-week (it means *)"
_HINTS = (
    (
        re.compile(r"R(\(.*\))?(/.*)?", re.ASCII),
        "R (random values) is not supported: fire times must be reproducible; use H",
    ),
    (re.compile(r"H(\(.*\))?(/.*)?", re.ASCII), "H is supported only as the whole field: H, H/n, H(a-b) or H(a-b)/n"),
    (re.compile(r".*#.*", re.ASCII), "# is supported as d#n in day-of-week (1#2: the second Monday of the month)"),
    (re.compile(r"L-.*", re.ASCII), "L-n (n days before the last) is not supported; use L, LW or a-L"),
    (
        re.compile(r"[\d/-]*L[\dW/-]*", re.ASCII),
        "L is supported as L, LW or a-L in day-of-month and as 5L or L5 (the last Friday) in day-of-week",
    ),
    (
        re.compile(r"[\d/-]*W[\d/-]*", re.ASCII),
        "W is supported as dW, Wd or LW in day-of-month (the weekday nearest day d, or the last weekday)",
    ),
)


def _refusal(fd: _FieldDef, item: str, token: str) -> str:
    for pattern, hint in _HINTS:
        if pattern.fullmatch(item.upper()):
            return f"{fd.name} field {item!r}: {token!r} is not supported there: {hint}"
    what = f"a number {fd.lo}-{fd.hi}"
    if fd.names:
        what += " or a name (" + ", ".join(list(fd.names)[:3]) + ", ...)"
    return f"{fd.name} field {item!r}: {token!r} is not {what}"


def _number(expr: str, fd: _FieldDef, item: str, token: str) -> int:
    upper = token.upper()
    if upper in fd.names:
        return fd.names[upper]
    if not token.isdigit() or not token.isascii():
        raise _bad(expr, _refusal(fd, item, token))
    value = int(token)
    if not fd.lo <= value <= fd.hi:
        if token == item:
            raise _bad(expr, f"{fd.name} field {item!r} out of range {fd.lo}-{fd.hi}")
        raise _bad(expr, f"{fd.name} field {item!r}: {value} out of range {fd.lo}-{fd.hi}")
    return value


#: Parsed fields by (field name, text): expressions differ in a field or two and share the
#: others ("*", "1-5"...), and a claim of a schedule decodes its expression afresh. Only
#: valid fields are kept (an error names the whole expression). ``H`` is resolved before,
#: so the key is the concrete text.
_FIELDS: dict[tuple[str, str], _Field] = {}
_FIELDS_MAX = 4096


def _parse_field(expr: str, fd: _FieldDef, text: str) -> _Field:
    key = (fd.name, text)
    parsed = _FIELDS.get(key)
    if parsed is None:
        parsed = _parse_field_text(expr, fd, text)
        if len(_FIELDS) >= _FIELDS_MAX:
            _FIELDS.clear()
        _FIELDS[key] = parsed
    return parsed


_NEAREST = re.compile(r"(\d+)W|W(\d+)", re.ASCII)
_WEEKDAY = r"(?:\d+|[A-Z]{3})"
_LAST_DOW = re.compile(rf"L({_WEEKDAY})|({_WEEKDAY})L", re.ASCII)
_NTH = re.compile(rf"({_WEEKDAY})#(\d+)", re.ASCII)


def _parse_field_text(expr: str, fd: _FieldDef, text: str) -> _Field:
    values: set[int] = set()
    last = False
    nearest: set[int] = set()
    last_dow: set[int] = set()
    nth: set[tuple[int, int]] = set()
    for item in text.split(","):
        if not item:
            raise _bad(expr, f"{fd.name} field {text!r} has an empty list item")
        upper = item.upper()
        if fd is _DOM:
            if upper == "L":
                last = True
                continue
            if upper == "LW":
                nearest.add(31)  # the weekday nearest the last day: 31 is clamped to the month
                continue
            match = _NEAREST.fullmatch(upper)
            if match:
                nearest.add(_number(expr, fd, item, match[1] or match[2]))
                continue
        elif fd is _DOW:
            match = _LAST_DOW.fullmatch(upper)
            if match:
                last_dow.add(_number(expr, fd, item, match[1] or match[2]) % 7)
                continue
            match = _NTH.fullmatch(upper)
            if match:
                n = match[2]
                if not n.isdigit() or not 1 <= int(n) <= 5:
                    raise _bad(expr, f"{fd.name} field {item!r}: #{n} is not an occurrence 1-5 of a weekday")
                nth.add((_number(expr, fd, item, match[1]) % 7, int(n)))
                continue
        values.update(_plain_item(expr, fd, item))
    if fd is _DOW and 7 in values:
        values.discard(7)
        values.add(0)
    return _Field(frozenset(values), last, frozenset(nearest), frozenset(last_dow), frozenset(nth))


def _plain_item(expr: str, fd: _FieldDef, item: str) -> range | list[int]:
    """The values of ``*``, ``a``, ``a-b`` (wrapping round when ``a > b``), each with ``/n``."""
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or not step_text.isascii() or int(step_text) == 0:
            raise _bad(expr, f"{fd.name} field {item!r}: step {step_text!r} is not a positive whole number")
        step = int(step_text)
    if base == "*":
        return range(fd.lo, fd.star_hi + 1, step)
    if "-" not in base:
        lo = _number(expr, fd, item, base)
        # "a/n" means a, a+n, ... up to the field's maximum; a plain "a" is just a.
        return range(lo, max(fd.star_hi if slash else lo, lo) + 1, step)
    first, _, last = base.partition("-")
    lo = _number(expr, fd, item, first)
    hi = fd.hi if fd is _DOM and last.upper() == "L" else _number(expr, fd, item, last)  # "a-L": to the last day
    if fd is _DOW:
        if lo == 7:
            lo = 0  # 7-FRI: Sunday opens the week
        if hi == 0 and lo > 0:
            hi = 7  # FRI-SUN: Sunday closes the week
    if lo <= hi:
        return range(lo, hi + 1, step)
    # A range that wraps round (FRI-MON, 22-2, NOV-FEB): walk on through the field's cycle,
    # so the step keeps its rhythm across the end (22-3/3 is 22, 1).
    cycle = fd.star_hi - fd.lo + 1
    return [v if v <= fd.star_hi else v - cycle for v in range(lo, hi + cycle + 1, step)]


_HASH = re.compile(r"H(?:\((\d+)-(\d+)\))?(?:/(\d+))?", re.ASCII | re.IGNORECASE)


def _resolve_hash(expr: str, fd: _FieldDef, match: re.Match[str], seed: str) -> str:
    """The concrete text of ``H``, ``H/n``, ``H(a-b)`` or ``H(a-b)/n`` for ``seed``.

    Values are croniter's: ``crc32(seed) >> field index``, modulo the range's size, so a
    migrated job keeps its times -- except a plain ``H`` in day-of-month, which picks from
    1-28 (Jenkins' rule) so that it fires every month.
    """
    first, last, step_text = match.groups()
    lo, hi = fd.lo, fd.star_hi
    if first is not None:
        lo, hi = int(first), int(last)
        if not (fd.lo <= lo <= fd.hi and fd.lo <= hi <= fd.hi):
            raise _bad(expr, f"{fd.name} field {match[0]!r}: range {lo}-{hi} is out of range {fd.lo}-{fd.hi}")
        if lo >= hi:
            raise _bad(expr, f"{fd.name} field {match[0]!r}: H(a-b) needs a < b")
    elif fd is _DOM and step_text is None:
        hi = _DOM_HASH_HI
    crc = zlib.crc32(seed.encode("utf-8")) >> fd.hash_shift
    if step_text is None:
        return str(lo + crc % (hi - lo + 1))
    step = int(step_text)
    if step == 0:
        raise _bad(expr, f"{fd.name} field {match[0]!r}: step '0' is not a positive whole number")
    # The hashed start lies in the first period; the step then runs to the range's end.
    start = lo + crc % (min(lo + step - 1, hi) - lo + 1)
    return str(start) if start == hi else f"{start}-{hi}/{step}"


_DEFS = (_SECOND, _MINUTE, _HOUR, _DOM, _MONTH, _DOW)


@functools.lru_cache(maxsize=1024)
def _parse(expr: str, seed: str | None = None) -> _Spec:
    """Parse ``expr`` (already stripped) or raise ValidationError; cached per text and seed.

    Without a seed, ``H`` fields are resolved with the empty seed: enough to check the
    expression, and :class:`Cron` refuses to compute fire times from them.
    """
    text = expr
    if text.startswith("@"):
        alias = _ALIASES.get(text.lower())
        if alias is None:
            if text.lower() == "@reboot":
                raise _bad(expr, "@reboot is not supported: a scheduler has no boot to run at")
            raise _bad(expr, f"alias {text!r} is not supported; expected one of {', '.join(sorted(_ALIASES))}")
        text = alias
    parts = text.split()
    given = len(parts)
    if given == 5:
        parts = ["0", *parts]
    elif given == 7:
        raise _bad(expr, "7 fields (a year field, as croniter allows) are not supported; expected 5 or 6")
    elif given != 6:
        raise _bad(
            expr,
            f"expected 5 fields (minute hour day-of-month month day-of-week) or 6 with leading seconds, "
            f"got {len(parts)}",
        )
    hashed = False
    # A field "starting with *" for the day-saving and day rules: '*', '*/n', '?' and 'H/n'
    # (every n, from a hashed start).
    stars: list[bool] = []
    for i, fd in enumerate(_DEFS):
        part, star = parts[i], parts[i].startswith("*")
        if "?" in part:
            if part != "?" or fd not in (_DOM, _DOW):
                raise _bad(expr, f"{fd.name} field {part!r}: {_QUESTION}")
            parts[i], star = "*", True
        match = _HASH.fullmatch(part)
        if match:
            parts[i] = _resolve_hash(expr, fd, match, "" if seed is None else seed)
            star, hashed = match[1] is None and match[3] is not None, True
        stars.append(star)
    sec, minute, hour, dom, month, dow = (_parse_field(expr, fd, part) for fd, part in zip(_DEFS, parts, strict=True))
    day_or = not stars[3] and not stars[5]
    months = tuple(sorted(month.values))
    days = _Days(dom, dow, day_or) if dom.by_month or dow.by_month else None
    if days is not None:
        # The day sets of a month depend only on its length and first weekday, and every
        # combination occurs in 2000-2027 (a 28-year cycle with no skipped leap year).
        if not any(_month_days(days, y, m) for y in range(2000, 2028) for m in months):
            raise _bad(expr, "can never fire: no month in the month field has a day matching both day fields")
    elif not day_or and not any(d <= _MONTH_MAX_DAYS[m] for m in months for d in dom.values):
        # Only the AND case can be impossible: every month has every weekday, and a
        # day-of-month field starting with '*' contains day 1.
        raise _bad(expr, "can never fire: no month in the month field has any of those days")
    return _Spec(
        seconds=tuple(sorted(sec.values)),
        minutes=tuple(sorted(minute.values)),
        hours=tuple(sorted(hour.values)),
        doms=dom.values,
        months=months,
        dows=dow.values,
        day_or=day_or,
        wildcard=stars[1] or stars[2],
        days=days,
        text=" ".join(parts[6 - given :]),
        hashed=hashed,
    )


def _nearest_weekday(first_weekday: int, ndays: int, day: int) -> int:
    """The weekday (Monday-Friday) nearest ``day`` without leaving the month (Quartz's ``W``)."""
    day = min(day, ndays)
    weekday = (first_weekday + day - 1) % 7  # Monday = 0
    if weekday == 5:  # Saturday: the Friday before, or the Monday after on the 1st
        return day - 1 if day > 1 else day + 2
    if weekday == 6:  # Sunday: the Monday after, or the Friday before on the last day
        return day + 1 if day < ndays else day - 2
    return day


@functools.lru_cache(maxsize=4096)
def _month_days(days: _Days, year: int, month: int) -> tuple[int, ...]:
    """The matching days of a month, in order, for expressions with L, W or # forms."""
    first_weekday, ndays = calendar.monthrange(year, month)  # Monday = 0
    first_dow = (first_weekday + 1) % 7  # cron numbering (Sunday = 0) of the 1st
    dom, dow = days.dom, days.dow
    in_dom = {d for d in dom.values if d <= ndays}
    if dom.last:
        in_dom.add(ndays)
    in_dom.update(_nearest_weekday(first_weekday, ndays, d) for d in dom.nearest)
    in_dow = {d for d in range(1, ndays + 1) if (first_dow + d - 1) % 7 in dow.values}
    for weekday, n in dow.nth:
        d = 1 + (weekday - first_dow) % 7 + 7 * (n - 1)
        if d <= ndays:
            in_dow.add(d)
    last_dow = (first_dow + ndays - 1) % 7
    in_dow.update(ndays - (last_dow - weekday) % 7 for weekday in dow.last_dow)
    return tuple(sorted(in_dom | in_dow if days.day_or else in_dom & in_dow))


def _first_day(spec: _Spec, year: int, month: int, day: int) -> int:
    """The first matching day >= ``day`` in the month, or 0 when there is none."""
    if spec.days is not None:
        table = _month_days(spec.days, year, month)
        i = bisect_left(table, day)
        return table[i] if i < len(table) else 0
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


def _next_fire(spec: _Spec, key: str, instant: int) -> int | None:
    """First fire time (POSIX seconds) strictly after POSIX second ``instant``."""
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


def _seed(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ValidationError("trigger.seed", value, "expected a non-empty string (a schedule id) or None")
    return value


@attrs.frozen
class Cron:
    """Fire at the times a cron expression matches on the wall clock of zone ``tz``.

    ``expr`` has 5 fields (``minute hour day-of-month month day-of-week``), 6 with a
    leading seconds field, or is an alias such as ``@daily``; ``tz`` is an IANA zone name.
    Both are checked here: a bad field, an expression that can never fire, or an unknown
    zone raises :class:`~schedcore.exceptions.ValidationError` naming ``trigger.expr`` or
    ``trigger.tz``.

    ``seed`` picks the values of ``H`` fields (``H 3 * * *``: one minute of 03:00 chosen by a
    stable hash of the seed). A :class:`~schedcore.Schedule` sets it to its own id when it
    is None, and it is stored with the trigger, so the times never move; fire times of an
    ``H`` expression without a seed cannot be computed (ValidationError).

    Daylight saving: *wildcard* jobs (minute or hour field starting with ``*``) fire at
    every real instant whose wall-clock time matches; other (*fixed-time*) jobs fire each
    matching wall-clock time once -- at its first instant when repeated, at the end of the
    gap when skipped. See :mod:`schedcore._cron` for the details.
    """

    expr: str = attrs.field(converter=_expr)
    tz: str = attrs.field(default="UTC", converter=_tz)
    seed: str | None = attrs.field(default=None, converter=_seed, kw_only=True)

    @expr.validator
    def _check_expr(self, _: attrs.Attribute[str], value: str) -> None:
        _parse(value)  # without the seed first: an error must not depend on it when it can
        if self.seed is not None:
            _parse(value, self.seed)

    @property
    def is_wildcard(self) -> bool:
        """True when the minute or hour field starts with ``*``: every real matching instant fires."""
        return _parse(self.expr).wildcard

    @property
    def uses_hash(self) -> bool:
        """True when a field is an ``H`` form, whose values come from :attr:`seed`."""
        return _parse(self.expr).hashed

    @property
    def expanded(self) -> str:
        """The expression with aliases expanded and ``H`` resolved, in the fields it was given.

        ``Cron("H H * * *", seed="my-job").expanded`` is ``"40 8 * * *"`` (the same values as
        croniter's for that id); ``Cron("@daily").expanded`` is ``"0 0 * * *"``. Raises
        ValidationError for an ``H`` expression without a seed.
        """
        return self._spec().text

    def with_seed(self, seed: str) -> Cron:
        """This trigger with ``seed`` when it uses ``H`` and has none yet, else itself.

        :class:`~schedcore.Schedule` calls it with its id.
        """
        if self.seed is not None or not self.uses_hash:
            return self
        return attrs.evolve(self, seed=seed)

    def _spec(self) -> _Spec:
        spec = _parse(self.expr, self.seed)
        if spec.hashed and self.seed is None:
            raise ValidationError(
                "trigger.seed",
                None,
                f"{self.expr!r} uses H, whose values are hashed from a seed: add the trigger to a Schedule "
                "(its id is the seed) or pass Cron(..., seed=...)",
            )
        return spec

    def next_after(self, instant: datetime) -> datetime | None:
        """The first fire time strictly after ``instant``, aware and in the trigger's zone.

        Fire times are whole seconds. Returns None only near the end of the calendar
        (year 9998), as every accepted expression fires again within a few decades.

        The result carries ``fold=1`` in the second pass of a repeated hour. Python compares
        two datetimes of the *same* zone by wall clock, ignoring ``fold`` (PEP 495), so
        order or store fire times as UTC (``.astimezone(timezone.utc)``), never as local.
        """
        require_aware(instant, "instant")
        spec = self._spec()
        delta = instant - _EPOCH
        seconds = delta.days * _DAY + delta.seconds  # floor: fire times are whole seconds
        try:
            fire = _next_fire(spec, self.tz, seconds)
            if fire is None:
                return None
            return (_EPOCH + timedelta(seconds=fire)).astimezone(_zone(self.tz))
        except (OverflowError, ValueError):
            return None  # beyond datetime's range (years 1-9999)

    def to_dict(self) -> dict[str, Any]:
        """``{"type": "cron", "expr": ..., "tz": ...}``, plus ``"seed"`` when there is one."""
        data: dict[str, Any] = {"type": "cron", "expr": self.expr, "tz": self.tz}
        if self.seed is not None:
            data["seed"] = self.seed
        return data

    def describe(self) -> str:
        """``cron '0 3 * * *' Europe/Paris``; an ``H`` expression adds its resolved fields."""
        text = f"cron {self.expr!r} {self.tz}"
        if self.uses_hash:
            if self.seed is None:
                return f"{text} (H not yet seeded)"
            return f"{text} (H = {_parse(self.expr, self.seed).text!r})"
        return text
