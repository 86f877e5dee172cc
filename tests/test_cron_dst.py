"""Cron across daylight-saving transitions: pinned examples and brute-force oracles.

The rule under test (see :mod:`schedcore._cron`): a *wildcard* job (minute or hour field
starting with ``*``) fires at every real instant whose wall-clock time matches; a
*fixed-time* job fires each matching wall-clock time once -- at its first real instant,
or at the transition instant when the time falls in a spring-forward gap.

The oracles below know nothing of the implementation: they walk real UTC minutes (for
wildcard jobs) or local wall-clock minutes (for fixed-time jobs) over a bounded window and
apply the rule literally, using only ``zoneinfo`` and the field sets the expression
strategy says it meant.
"""

from __future__ import annotations

import calendar
import functools
import itertools
from datetime import date, datetime, timedelta, timezone
from typing import NamedTuple
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from schedcore import Cron, ValidationError

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NAIVE_EPOCH = datetime(1970, 1, 1)
DAY = 86_400


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def series(expr: str, tz: str, start: datetime, n: int) -> list[str]:
    trigger = Cron(expr, tz)
    out: list[str] = []
    t: datetime | None = start
    for _ in range(n):
        assert t is not None
        t = trigger.next_after(t)
        assert t is not None
        assert isinstance(t.tzinfo, ZoneInfo)
        assert t.tzinfo.key == tz
        out.append(t.isoformat())
    return out


# -- pinned examples -----------------------------------------------------------------------

NY = "America/New_York"


@pytest.mark.parametrize(
    ("expr", "tz", "start", "expected"),
    [
        # New York, spring forward 2025-03-09 02:00 -> 03:00.
        (
            "30 2 * * *",
            NY,
            "2025-03-08T12:00:00+00:00",
            ["2025-03-09T03:00:00-04:00", "2025-03-10T02:30:00-04:00"],
        ),
        # Two skipped times land on the same instant: it fires once.
        ("0,30 2 * * *", NY, "2025-03-09T00:00:00-05:00", ["2025-03-09T03:00:00-04:00", "2025-03-10T02:00:00-04:00"]),
        ("0 2,3 * * *", NY, "2025-03-09T00:00:00-05:00", ["2025-03-09T03:00:00-04:00", "2025-03-10T02:00:00-04:00"]),
        # A wildcard job simply has no 02:xx that day.
        ("*/30 2 * * *", NY, "2025-03-09T00:00:00-05:00", ["2025-03-10T02:00:00-04:00"]),
        (
            "*/30 * * * *",
            NY,
            "2025-03-09T01:00:00-05:00",
            ["2025-03-09T01:30:00-05:00", "2025-03-09T03:00:00-04:00", "2025-03-09T03:30:00-04:00"],
        ),
        # New York, fall back 2025-11-02 02:00 -> 01:00: 01:xx happens twice.
        ("30 1 * * *", NY, "2025-11-01T12:00:00+00:00", ["2025-11-02T01:30:00-04:00", "2025-11-03T01:30:00-05:00"]),
        (
            "*/30 * * * *",
            NY,
            "2025-11-02T00:45:00-04:00",
            [
                "2025-11-02T01:00:00-04:00",
                "2025-11-02T01:30:00-04:00",
                "2025-11-02T01:00:00-05:00",
                "2025-11-02T01:30:00-05:00",
                "2025-11-02T02:00:00-05:00",
            ],
        ),
        (
            "@hourly",
            NY,
            "2025-11-02T00:00:00-04:00",
            ["2025-11-02T01:00:00-04:00", "2025-11-02T01:00:00-05:00", "2025-11-02T02:00:00-05:00"],
        ),
        # Fixed-time minutes inside the repeated hour fire in the first pass only.
        (
            "0,15,45 1 * * *",
            NY,
            "2025-11-02T00:59:00-04:00",
            [
                "2025-11-02T01:00:00-04:00",
                "2025-11-02T01:15:00-04:00",
                "2025-11-02T01:45:00-04:00",
                "2025-11-03T01:00:00-05:00",
            ],
        ),
        # Starting inside the second pass: 01:30 already happened (first pass), 01:40 did not.
        ("30 1 * * *", NY, "2025-11-02T01:10:00-05:00", ["2025-11-03T01:30:00-05:00"]),
        ("40 1 * * *", NY, "2025-11-02T01:45:00-04:00", ["2025-11-03T01:40:00-05:00"]),
        ("*/30 1 * * *", NY, "2025-11-02T01:10:00-05:00", ["2025-11-02T01:30:00-05:00", "2025-11-03T01:00:00-05:00"]),
        ("15 30 1 * * *", NY, "2025-11-02T01:10:00-05:00", ["2025-11-03T01:30:15-05:00"]),
        ("15 30 2 * * *", NY, "2025-03-09T01:59:59-05:00", ["2025-03-09T03:00:00-04:00"]),
        # Europe: transitions at 01:00 UTC.
        (
            "30 2 * * *",
            "Europe/Paris",
            "2025-03-29T12:00:00Z",
            ["2025-03-30T03:00:00+02:00", "2025-03-31T02:30:00+02:00"],
        ),
        (
            "30 2 * * *",
            "Europe/Paris",
            "2025-10-25T12:00:00Z",
            ["2025-10-26T02:30:00+02:00", "2025-10-27T02:30:00+01:00"],
        ),
        (
            "0 * * * *",
            "Europe/Berlin",
            "2025-10-26T01:30:00+02:00",
            ["2025-10-26T02:00:00+02:00", "2025-10-26T02:00:00+01:00", "2025-10-26T03:00:00+01:00"],
        ),
        (
            "0 * * * *",
            "Europe/Berlin",
            "2025-03-30T01:30:00+01:00",
            ["2025-03-30T03:00:00+02:00", "2025-03-30T04:00:00+02:00"],
        ),
        (
            "30 1 * * *",
            "Europe/London",
            "2025-03-29T12:00:00Z",
            ["2025-03-30T02:00:00+01:00", "2025-03-31T01:30:00+01:00"],
        ),
        (
            "30 1 * * *",
            "Europe/London",
            "2025-10-25T12:00:00Z",
            ["2025-10-26T01:30:00+01:00", "2025-10-27T01:30:00+00:00"],
        ),
        # Lord Howe moves its clock by 30 minutes.
        (
            "15 2 * * *",
            "Australia/Lord_Howe",
            "2025-10-04T00:00:00Z",
            ["2025-10-05T02:30:00+11:00", "2025-10-06T02:15:00+11:00"],
        ),
        (
            "45 1 * * *",
            "Australia/Lord_Howe",
            "2025-04-05T00:00:00Z",
            ["2025-04-06T01:45:00+11:00", "2025-04-07T01:45:00+10:30"],
        ),
        (
            "*/15 * * * *",
            "Australia/Lord_Howe",
            "2025-04-06T01:20:00+11:00",
            [
                "2025-04-06T01:30:00+11:00",
                "2025-04-06T01:45:00+11:00",
                "2025-04-06T01:30:00+10:30",
                "2025-04-06T01:45:00+10:30",
                "2025-04-06T02:00:00+10:30",
            ],
        ),
        # Santiago and Havana change at midnight: on spring-forward days the day starts at 01:00.
        (
            "0 0 * * *",
            "America/Santiago",
            "2025-09-05T12:00:00Z",
            ["2025-09-06T00:00:00-04:00", "2025-09-07T01:00:00-03:00", "2025-09-08T00:00:00-03:00"],
        ),
        (
            "@daily",
            "America/Havana",
            "2025-03-08T12:00:00Z",
            ["2025-03-09T01:00:00-04:00", "2025-03-10T00:00:00-04:00"],
        ),
        ("0 0 * * SUN", "America/Havana", "2025-03-08T12:00:00Z", ["2025-03-09T01:00:00-04:00"]),
        ("0 0 9 3 *", "America/Havana", "2025-03-08T12:00:00Z", ["2025-03-09T01:00:00-04:00"]),
        ("*/30 0 * * *", "America/Havana", "2025-03-08T12:00:00Z", ["2025-03-10T00:00:00-04:00"]),
        (
            "30 0 * * *",
            "America/Havana",
            "2025-11-01T12:00:00Z",
            ["2025-11-02T00:30:00-04:00", "2025-11-03T00:30:00-05:00"],
        ),
        # Santiago falls back at midnight to 23:00 of the day before: 23:xx of 5 April twice.
        (
            "30 23 * * *",
            "America/Santiago",
            "2025-04-05T12:00:00Z",
            ["2025-04-05T23:30:00-03:00", "2025-04-06T23:30:00-04:00"],
        ),
        (
            "*/30 23 * * *",
            "America/Santiago",
            "2025-04-05T12:00:00Z",
            [
                "2025-04-05T23:00:00-03:00",
                "2025-04-05T23:30:00-03:00",
                "2025-04-05T23:00:00-04:00",
                "2025-04-05T23:30:00-04:00",
                "2025-04-06T23:00:00-04:00",
            ],
        ),
        # Samoa skipped 30 December 2011 altogether.
        (
            "0 12 * * *",
            "Pacific/Apia",
            "2011-12-28T23:00:00Z",
            ["2011-12-29T12:00:00-10:00", "2011-12-31T00:00:00+14:00", "2011-12-31T12:00:00+14:00"],
        ),
        (
            "0 * * * *",
            "Pacific/Apia",
            "2011-12-29T22:30:00-10:00",
            ["2011-12-29T23:00:00-10:00", "2011-12-31T00:00:00+14:00", "2011-12-31T01:00:00+14:00"],
        ),
        (
            "0 12 30 12 *",
            "Pacific/Apia",
            "2011-12-01T00:00:00Z",
            ["2011-12-31T00:00:00+14:00", "2012-12-30T12:00:00+14:00"],
        ),
        ("0 * 30 12 *", "Pacific/Apia", "2011-12-01T00:00:00Z", ["2012-12-30T00:00:00+14:00"]),
        # No daylight saving at all.
        (
            "30 5 * * *",
            "Asia/Kolkata",
            "2025-03-09T00:00:00Z",
            ["2025-03-10T05:30:00+05:30", "2025-03-11T05:30:00+05:30"],
        ),
        # Casablanca: Ramadan time (back one hour at 03:00, forward at 02:00).
        (
            "30 2 * * *",
            "Africa/Casablanca",
            "2025-02-22T12:00:00Z",
            ["2025-02-23T02:30:00+01:00", "2025-02-24T02:30:00+00:00"],
        ),
        (
            "30 2 * * *",
            "Africa/Casablanca",
            "2025-04-05T12:00:00Z",
            ["2025-04-06T03:00:00+01:00", "2025-04-07T02:30:00+01:00"],
        ),
        # Fixed-offset zones take the fast path.
        ("0 9 * * *", "Etc/GMT+5", "2025-03-09T00:00:00Z", ["2025-03-09T09:00:00-05:00"]),
        ("0 9 * * *", "UTC", "2025-03-09T09:00:00Z", ["2025-03-10T09:00:00+00:00"]),
    ],
)
def test_examples(expr: str, tz: str, start: str, expected: list[str]) -> None:
    assert series(expr, tz, at(start), len(expected)) == expected


def test_instant_given_with_fold_is_read_as_the_real_instant() -> None:
    ny = ZoneInfo(NY)
    first = datetime(2025, 11, 2, 1, 10, tzinfo=ny)  # fold=0: 01:10 EDT
    second = datetime(2025, 11, 2, 1, 10, fold=1, tzinfo=ny)  # 01:10 EST, an hour later
    c = Cron("30 1 * * *", NY)
    assert c.next_after(first).isoformat() == "2025-11-02T01:30:00-04:00"  # type: ignore[union-attr]
    assert c.next_after(second).isoformat() == "2025-11-03T01:30:00-05:00"  # type: ignore[union-attr]


def test_results_in_a_repeated_hour_compare_by_instant_after_conversion() -> None:
    # PEP 495: an aware datetime inside a repeated hour never compares equal to one in
    # another zone. The result is correct; compare instants after converting to UTC.
    got = Cron("30 1 * * *", NY).next_after(at("2025-11-02T00:00:00-04:00"))
    assert got is not None
    assert got.fold == 0
    assert got.astimezone(UTC) == at("2025-11-02T05:30:00+00:00")
    assert got.timestamp() == at("2025-11-02T05:30:00+00:00").timestamp()


def test_fixed_time_job_fires_once_a_day_over_years() -> None:
    for tz in ("America/New_York", "Europe/Paris", "Australia/Lord_Howe", "America/Santiago"):
        c = Cron("30 2 * * *", tz)
        t: datetime | None = datetime(2020, 1, 1, tzinfo=UTC)
        days = set()
        for _ in range(3 * 366):
            assert t is not None
            nxt = c.next_after(t)
            assert nxt is not None
            assert nxt.astimezone(UTC) > t.astimezone(UTC)
            local = nxt.astimezone(ZoneInfo(tz))
            # Every day once, at 02:30, or at the end of the gap on the spring-forward day.
            assert local.time().isoformat() in ("02:30:00", "03:00:00"), local
            assert local.date() not in days
            days.add(local.date())
            t = nxt
        dates = sorted(days)
        assert all((b - a).days == 1 for a, b in itertools.pairwise(dates))


# -- property tests against brute-force oracles ---------------------------------------------

ZONES = [
    "America/New_York",
    "Europe/Paris",
    "Europe/London",
    "Europe/Dublin",  # "negative" DST in tzdata: winter is the saving time
    "Australia/Lord_Howe",  # 30-minute shifts
    "Australia/Sydney",
    "America/Santiago",  # midnight transitions
    "America/Havana",  # midnight transitions
    "America/Sao_Paulo",
    "America/St_Johns",
    "Pacific/Apia",  # skipped a day in 2011
    "Pacific/Chatham",  # +12:45 / +13:45
    "Asia/Tehran",
    "Asia/Kolkata",  # no DST
    "Africa/Casablanca",  # Ramadan time
    "Antarctica/Troll",  # two-hour shifts
    "America/Nuuk",
]


class Fields(NamedTuple):
    text: str
    second: frozenset[int]
    minute: frozenset[int]
    hour: frozenset[int]
    dom: frozenset[int]
    month: frozenset[int]
    dow: frozenset[int]
    day_or: bool
    wildcard: bool
    # croniter's day forms, spelled out for the oracle (see ``day_forms``)
    dom_last: bool = False  # L
    dom_near: frozenset[int] = frozenset()  # dW (LW = 31W)
    dow_last: frozenset[int] = frozenset()  # dL
    dow_nth: frozenset[tuple[int, int]] = frozenset()  # d#n


MONTH_NAMES = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DOW_NAMES = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]  # 7 stays numeric: "SUN-7" reads as 0-7


@st.composite
def field(
    draw: st.DrawFn, lo: int, hi: int, star_hi: int | None = None, names: list[str] | None = None
) -> tuple[str, frozenset[int]]:
    """A field's text and, independently, the set of values it means."""
    star_hi = hi if star_hi is None else star_hi

    def show(v: int) -> str:
        if names and v - lo < len(names) and draw(st.booleans()):
            name = names[v - lo]
            return draw(st.sampled_from([name, name.lower(), name.title()]))
        return str(v)

    kind = draw(st.sampled_from(["*", "*/n", "v", "list", "range", "range/n", "a/n", "wrap", "wrap/n"]))
    if kind == "*":
        return "*", frozenset(range(lo, star_hi + 1))
    if kind.startswith("wrap"):
        # FRI-MON, 22-2, NOV-FEB: on through the end of the field's cycle, the step keeping its rhythm.
        a = draw(st.integers(lo + 1, hi))
        b = draw(st.integers(lo, a - 1))
        n = draw(st.integers(1, hi - lo + 1)) if kind == "wrap/n" else 1
        text = f"{show(a)}-{show(b)}" + (f"/{n}" if kind == "wrap/n" else "")
        first, last = a, b
        if star_hi != hi:  # weekdays: 7-x starts on Sunday, x-SUN ends on it
            first, last = (0 if a == 7 else a), (7 if b == 0 else b)
        if first <= last:
            return text, frozenset(range(first, last + 1, n))
        cycle = star_hi - lo + 1
        return text, frozenset((v - lo) % cycle + lo for v in range(first, last + cycle + 1, n))
    if kind == "*/n":
        n = draw(st.integers(1, hi - lo + 1))
        return f"*/{n}", frozenset(range(lo, star_hi + 1, n))
    if kind == "v":
        v = draw(st.integers(lo, hi))
        return show(v), frozenset([v])
    if kind == "list":
        vs = draw(st.lists(st.integers(lo, hi), min_size=1, max_size=4))
        return ",".join(map(show, vs)), frozenset(vs)
    a = draw(st.integers(lo, hi))
    if kind == "a/n":
        n = draw(st.integers(1, hi - lo + 1))
        return f"{show(a)}/{n}", frozenset(range(a, max(a, star_hi) + 1, n))
    b = draw(st.integers(a, hi))
    if kind == "range":
        return f"{show(a)}-{show(b)}", frozenset(range(a, b + 1))
    n = draw(st.integers(1, hi - lo + 1))
    return f"{show(a)}-{show(b)}/{n}", frozenset(range(a, b + 1, n))


NEAR_TRANSITION_HOURS = st.sampled_from(["0", "1", "2", "3", "23", "1-3", "0,2", "2,3", "*/2", "0-3/2", "1/12"])


@st.composite
def expressions(draw: st.DrawFn) -> Fields:
    def sets(text: str, lo: int, hi: int, star_hi: int | None = None) -> tuple[str, frozenset[int]]:
        # Texts from the short list above; their meaning is plain enough to spell out here.
        values: set[int] = set()
        for item in text.split(","):
            base, _, step = item.partition("/")
            n = int(step) if step else 1
            if base == "*":
                a, b = lo, star_hi if star_hi is not None else hi
            elif "-" in base:
                a, b = map(int, base.split("-"))
            else:
                a = int(base)
                b = (star_hi if star_hi is not None else hi) if step else a
            values.update(range(a, b + 1, n))
        return text, frozenset(values)

    rare = st.integers(0, 3).map(lambda i: i == 0)  # restricted one time in four
    second = draw(field(0, 59)) if draw(rare) else None
    if second is not None and len(second[1]) > 4:
        second = ("*/20", frozenset([0, 20, 40]))
    minute = draw(field(0, 59))
    hour = sets(draw(NEAR_TRANSITION_HOURS), 0, 23) if draw(st.booleans()) else draw(field(0, 23))
    month = draw(field(1, 12, names=MONTH_NAMES)) if draw(rare) else ("*", frozenset(range(1, 13)))
    parts = [minute[0], hour[0], "", month[0], ""]
    if second is not None:
        parts.insert(0, second[0])
    base = Fields(
        text="",
        second=second[1] if second is not None else frozenset([0]),
        minute=minute[1],
        hour=hour[1],
        dom=frozenset(),
        month=month[1],
        dow=frozenset(),
        day_or=False,
        wildcard=minute[0].startswith("*") or hour[0].startswith("*"),
    )
    if draw(st.integers(0, 2)) == 0:  # one time in three: croniter's day forms
        return draw(day_forms(base, parts))
    dom = draw(field(1, 31)) if draw(rare) else ("*", frozenset(range(1, 32)))
    dow = draw(field(0, 7, star_hi=6, names=DOW_NAMES)) if draw(rare) else ("*", frozenset(range(7)))
    parts[-3], parts[-1] = dom[0], dow[0]
    return base._replace(
        text=" ".join(parts),
        dom=dom[1],
        dow=frozenset(0 if v == 7 else v for v in dow[1]),
        day_or=not dom[0].startswith("*") and not dow[0].startswith("*"),
    )


@st.composite
def day_forms(draw: st.DrawFn, base: Fields, parts: list[str]) -> Fields:
    """``base`` with day fields using L, LW, dW, Wd, a-L, ?, dL, Ld and d#n (mixed with plain items)."""
    dom_items: list[str] = []
    doms: set[int] = set()
    last, near = False, set()
    dom_kind = draw(st.sampled_from(["*", "?", "forms", "forms"]))
    if dom_kind == "forms":
        for _ in range(draw(st.integers(1, 3))):
            kind = draw(st.sampled_from(["v", "L", "LW", "dW", "Wd", "a-L"]))
            d = draw(st.integers(1, 31))
            if kind == "v":
                dom_items.append(str(d))
                doms.add(d)
            elif kind == "L":
                dom_items.append("L")
                last = True
            elif kind == "LW":
                dom_items.append("LW")
                near.add(31)  # the weekday nearest the last day
            elif kind == "a-L":
                dom_items.append(f"{d}-L")
                doms.update(range(d, 32))
            else:
                dom_items.append(f"{d}W" if kind == "dW" else f"W{d}")
                near.add(d)
    else:
        dom_items.append(dom_kind)
        doms = set(range(1, 32))
    dow_items: list[str] = []
    dows: set[int] = set()
    dow_last, nth = set(), set()
    dow_kind = draw(st.sampled_from(["*", "?", "forms", "forms"]))
    if dow_kind == "forms":
        for _ in range(draw(st.integers(1, 3))):
            kind = draw(st.sampled_from(["v", "dL", "Ld", "d#n"]))
            wd = draw(st.integers(0, 7))
            name = DOW_NAMES[wd % 7] if draw(st.booleans()) else str(wd)
            if kind == "v":
                dow_items.append(name)
                dows.add(wd % 7)
            elif kind == "d#n":
                n = draw(st.integers(1, 5))
                dow_items.append(f"{name}#{n}")
                nth.add((wd % 7, n))
            else:
                dow_items.append(f"{name}L" if kind == "dL" else f"L{name}")
                dow_last.add(wd % 7)
    else:
        dow_items.append(dow_kind)
        dows = set(range(7))
    dom_text, dow_text = ",".join(dom_items), ",".join(dow_items)
    parts = list(parts)
    parts[-3], parts[-1] = dom_text, dow_text
    return base._replace(
        text=" ".join(parts),
        dom=frozenset(doms),
        dow=frozenset(dows),
        day_or=dom_text not in ("*", "?") and dow_text not in ("*", "?"),
        dom_last=last,
        dom_near=frozenset(near),
        dow_last=frozenset(dow_last),
        dow_nth=frozenset(nth),
    )


@functools.lru_cache(maxsize=4096)
def nearest_weekday(year: int, month: int, day: int) -> int:
    """The Monday-Friday of the month closest to ``day`` (the month's last day if it is shorter)."""
    ndays = calendar.monthrange(year, month)[1]
    target = min(day, ndays)
    weekdays = [d for d in range(1, ndays + 1) if date(year, month, d).weekday() < 5]
    return min(weekdays, key=lambda d: abs(d - target))


def day_matches(f: Fields, local: datetime) -> bool:
    """Does the wall-clock date match the day fields (Vixie's OR when both are restricted)?"""
    ndays = calendar.monthrange(local.year, local.month)[1]
    weekday = local.isoweekday() % 7
    in_dom = (
        local.day in f.dom
        or (f.dom_last and local.day == ndays)
        or any(local.day == nearest_weekday(local.year, local.month, d) for d in f.dom_near)
    )
    in_dow = (
        weekday in f.dow
        or (weekday in f.dow_last and local.day + 7 > ndays)
        or (weekday, (local.day + 6) // 7) in f.dow_nth
    )
    return (in_dom or in_dow) if f.day_or else (in_dom and in_dow)


def matches(f: Fields, local: datetime) -> bool:
    """Does a wall-clock minute match (seconds are expanded by the callers)?"""
    return local.minute in f.minute and local.hour in f.hour and local.month in f.month and day_matches(f, local)


def offset(zone: ZoneInfo, instant: int) -> int:
    off = (EPOCH + timedelta(seconds=instant)).astimezone(zone).utcoffset()
    assert off is not None
    return int(off.total_seconds())


@functools.lru_cache(maxsize=512)
def transitions(key: str, year: int) -> tuple[int, ...]:
    """Transition instants of a zone in a year (6-hourly sampling, then second bisection)."""
    zone = ZoneInfo(key)
    start = int((datetime(year, 1, 1, tzinfo=UTC) - EPOCH).total_seconds())
    found = []
    prev = offset(zone, start)
    end = int((datetime(year + 1, 1, 1, tzinfo=UTC) - EPOCH).total_seconds())
    step = 6 * 3600
    for t in range(start + step, end + step, step):
        o = offset(zone, t)
        if o != prev:
            a, b = t - step, t
            while b - a > 1:
                mid = (a + b) // 2
                a, b = (mid, b) if offset(zone, mid) == prev else (a, mid)
            if b < end:
                found.append(b)
        prev = o
    return tuple(found)


def wildcard_oracle(f: Fields, zone: ZoneInfo, u: int, end: int) -> list[int]:
    """Every real instant in (u, end] whose wall-clock time matches, by walking UTC minutes."""
    out: list[int] = []
    for x in range(u - u % 60, end + 1, 60):
        local = (EPOCH + timedelta(seconds=x)).astimezone(zone)
        assert local.second == 0  # offsets are whole minutes in the sampled years
        if matches(f, local):
            out.extend(x + s for s in f.second if u < x + s <= end)
    return sorted(out)


def fixed_oracle(f: Fields, zone: ZoneInfo, u: int, end: int) -> list[int]:
    """Each matching wall-clock time once: its first real instant, or the end of its gap."""
    lo, hi = u - u % 60 - 3 * DAY, end + 3 * DAY
    # Offsets in force around the window, and each transition (instant, before, after).
    offsets: set[int] = set()
    trans: list[tuple[int, int, int]] = []
    prev_t, prev_o = lo, offset(zone, lo)
    offsets.add(prev_o)
    for t in range(lo + 900, hi, 900):
        o = offset(zone, t)
        if o != prev_o:
            first = next(m for m in range(prev_t + 60, t + 1, 60) if offset(zone, m) != prev_o)
            trans.append((first, prev_o, offset(zone, first)))
            offsets.add(o)
        prev_t, prev_o = t, o
    fires: set[int] = set()
    wall = u + min(offsets) - 2 * DAY
    wall -= wall % 60
    while wall <= end + max(offsets) + 2 * DAY:
        local = NAIVE_EPOCH + timedelta(seconds=wall)
        if matches(f, local):
            occurrences = [wall - o for o in offsets if offset(zone, wall - o) == o]
            if occurrences:
                fires.update(min(occurrences) + s for s in f.second)
            else:
                gaps = [t for t, before, after in trans if t + before <= wall < t + after]
                assert len(gaps) == 1, (local, trans)
                fires.add(gaps[0])
        wall += 60
    return sorted(x for x in fires if u < x <= end)


@st.composite
def starts(draw: st.DrawFn) -> tuple[str, int]:
    """A zone and a start instant, usually a little before one of its transitions."""
    key = draw(st.sampled_from(ZONES))
    year = draw(st.integers(1995, 2040))
    near = transitions(key, year)
    if near and draw(st.integers(0, 4)) > 0:  # four times in five
        u = draw(st.sampled_from(list(near))) + draw(st.integers(-20 * 3600, 4 * 3600))
    else:
        u = int((datetime(year, 1, 1, tzinfo=UTC) - EPOCH).total_seconds()) + draw(st.integers(0, 365 * DAY))
    return key, u


WINDOW = 24 * 3600


def run(trigger: Cron, start: datetime, end: int) -> list[int]:
    """Fire times (POSIX seconds) from ``start`` up to ``end``, checking they only increase."""
    out: list[int] = []
    t: datetime | None = start
    while True:
        assert t is not None
        nxt = trigger.next_after(t)
        assert nxt is not None
        # Compare in UTC: same-zone comparisons ignore ``fold`` (PEP 495), so 01:00 of
        # the second pass of a repeated hour would compare before 01:59 of the first.
        assert nxt.astimezone(UTC) > t.astimezone(UTC)
        assert isinstance(nxt.tzinfo, ZoneInfo)
        assert nxt.tzinfo.key == trigger.tz
        x = int((nxt - EPOCH).total_seconds())
        assert nxt.astimezone(UTC) == EPOCH + timedelta(seconds=x)  # whole seconds
        if x > end:
            return out
        out.append(x)
        t = nxt


def as_input(u: int, zone: ZoneInfo, how: int, micro: int) -> datetime:
    instant = EPOCH + timedelta(seconds=u, microseconds=micro)
    if how == 1:
        return instant.astimezone(zone)  # with fold=1 in a repeated hour
    if how == 2:
        return instant.astimezone(timezone(timedelta(hours=-7)))
    return instant


def possible(f: Fields, key: str) -> Cron:
    """The trigger of ``f``; an expression refused as one that can never fire is assumed away."""
    try:
        return Cron(f.text, key)
    except ValidationError as exc:
        assert "can never fire" in exc.reason
        assume(False)
        raise


@given(
    f=expressions(),
    start=starts(),
    how=st.integers(0, 2),
    micro=st.sampled_from([0, 0, 1, 999_999]),
    probe=st.integers(0, WINDOW),
)
def test_matches_brute_force_oracle(f: Fields, start: tuple[str, int], how: int, micro: int, probe: int) -> None:
    key, u = start
    trigger = possible(f, key)
    assert trigger.is_wildcard == f.wildcard
    zone = ZoneInfo(key)
    end = u + WINDOW
    got = run(trigger, as_input(u, zone, how, micro), end)
    oracle = wildcard_oracle if f.wildcard else fixed_oracle
    want = oracle(f, zone, u, end)
    assert got == want, (f.text, key, EPOCH + timedelta(seconds=u))
    # Each result's wall clock matches -- or, for fixed-time jobs, it is a transition instant.
    for x in got:
        local = (EPOCH + timedelta(seconds=x)).astimezone(zone)
        if f.wildcard or offset(zone, x - 1) == offset(zone, x):
            assert matches(f, local) and local.second in f.second
    # Starting anywhere inside the window gives the oracle's next fire after that point.
    p = u + probe
    after = [x for x in want if x > p]
    if after:
        nxt = trigger.next_after(EPOCH + timedelta(seconds=p))
        assert nxt is not None
        assert nxt.astimezone(UTC) == EPOCH + timedelta(seconds=after[0])


@given(start=starts(), f=expressions())
def test_fired_instants_never_repeat_a_fixed_wall_clock_time(start: tuple[str, int], f: Fields) -> None:
    key, u = start
    assume(not f.wildcard)
    try:
        trigger = Cron(f.text, key)
    except ValidationError:
        assume(False)
        return
    zone = ZoneInfo(key)
    walls = [
        (EPOCH + timedelta(seconds=x)).astimezone(zone).replace(tzinfo=None)
        for x in run(trigger, EPOCH + timedelta(seconds=u), u + DAY)
    ]
    assert walls == sorted(walls)
    assert len(set(walls)) == len(walls)


def posix(text: str) -> int:
    return int((at(text) - EPOCH).total_seconds())


def test_oracles_agree_with_pinned_examples() -> None:
    # Guard the oracles themselves on cases worked out by hand.
    every_half_hour = Fields(
        text="*/30 * * * *",
        second=frozenset([0]),
        minute=frozenset([0, 30]),
        hour=frozenset(range(24)),
        dom=frozenset(range(1, 32)),
        month=frozenset(range(1, 13)),
        dow=frozenset(range(7)),
        day_or=False,
        wildcard=True,
    )
    zone = ZoneInfo(NY)
    u = posix("2025-11-02T00:45:00-04:00")
    want = [posix(f"2025-11-02T01:{m}:00-0{h}:00") for h in (4, 5) for m in ("00", "30")]
    assert wildcard_oracle(every_half_hour, zone, u, want[-1]) == want
    fixed = every_half_hour._replace(text="0,30 0-23 * * *", wildcard=False)
    assert fixed_oracle(fixed, zone, u, want[-1] + 1800) == [want[0], want[1], want[3] + 1800]
    gap = fixed._replace(text="0,30 2 * * *", hour=frozenset([2]))
    u = posix("2025-03-09T00:00:00-05:00")
    assert fixed_oracle(gap, zone, u, u + DAY) == [posix("2025-03-09T03:00:00-04:00")]


def test_year_transition_cache_is_exact() -> None:
    # Transitions the implementation finds agree with an independent search, to the second.
    from schedcore._cron import _year_transitions

    for key in ZONES:
        for year in (2011, 2025):
            assert tuple(t.at for t in _year_transitions(key, year)) == transitions(key, year), (key, year)
    assert date(2011, 12, 30) not in {
        (EPOCH + timedelta(seconds=x)).astimezone(ZoneInfo("Pacific/Apia")).date()
        for x in range(int((at("2011-12-29T00:00:00Z") - EPOCH).total_seconds()), 1325376000, 1800)
    }


@st.composite
def day_form_expressions(draw: st.DrawFn) -> Fields:
    """Fixed-time expressions near the transitions' hours, with croniter's day forms."""
    minute = draw(st.sampled_from([("0", frozenset([0])), ("30", frozenset([30])), ("15,45", frozenset([15, 45]))]))
    hour = draw(st.sampled_from([("2", frozenset([2])), ("1,3", frozenset([1, 3])), ("0", frozenset([0]))]))
    month = draw(st.sampled_from([("*", frozenset(range(1, 13))), ("nov-feb", frozenset([11, 12, 1, 2]))]))
    base = Fields("", frozenset([0]), minute[1], hour[1], frozenset(), month[1], frozenset(), False, False)
    return draw(day_forms(base, [minute[0], hour[0], "", month[0], ""]))


def day_oracle(f: Fields, key: str, u: int, end: int) -> list[int]:
    """Fixed-time fires by walking local dates: each matching wall-clock time once, at its
    first real instant or at the end of its gap."""
    zone = ZoneInfo(key)
    first, last = (EPOCH + timedelta(seconds=u)).date(), (EPOCH + timedelta(seconds=end)).date()
    years = range(first.year - 1, last.year + 2)
    trans = [(t, offset(zone, t - 1), offset(zone, t)) for y in years for t in transitions(key, y)]
    offsets = {offset(zone, u)} | {o for _, before, after in trans for o in (before, after)}
    fires: set[int] = set()
    day = first - timedelta(days=2)
    while day <= last + timedelta(days=2):
        midnight = datetime(day.year, day.month, day.day)
        if day.month in f.month and day_matches(f, midnight):
            for h, m in itertools.product(f.hour, f.minute):
                wall = int((midnight + timedelta(hours=h, minutes=m) - NAIVE_EPOCH).total_seconds())
                real = [wall - o for o in offsets if offset(zone, wall - o) == o]
                if real:
                    fires.add(min(real))
                else:
                    gaps = [t for t, before, after in trans if t + before <= wall < t + after]
                    assert len(gaps) == 1, (midnight, h, m)
                    fires.add(gaps[0])
        day += timedelta(days=1)
    return sorted(x for x in fires if u < x <= end)


@given(
    f=day_form_expressions(),
    key=st.sampled_from(["America/New_York", "Europe/Paris", "Australia/Lord_Howe", "America/Santiago"]),
    year=st.integers(1995, 2040),
)
def test_day_forms_over_a_year_match_a_day_by_day_oracle(f: Fields, key: str, year: int) -> None:
    trigger = possible(f, key)
    u = int((datetime(year, 1, 1, tzinfo=UTC) - EPOCH).total_seconds())
    end = u + 400 * DAY
    assert run(trigger, EPOCH + timedelta(seconds=u), end) == day_oracle(f, key, u, end), (f.text, key, year)


def test_day_oracle_agrees_with_pinned_examples() -> None:
    # The last Friday of March 2025 in Paris at 02:30: the 28th, before the 30 March gap.
    f = Fields("30 2 * * 5L", frozenset([0]), frozenset([30]), frozenset([2]), frozenset(range(1, 32)),
               frozenset(range(1, 13)), frozenset(), False, False, dow_last=frozenset([5]))  # fmt: skip
    u = posix("2025-03-01T00:00:00+01:00")
    assert day_oracle(f, "Europe/Paris", u, u + 31 * DAY) == [posix("2025-03-28T02:30:00+01:00")]
    # The last Sunday of March at 02:30 is inside the gap: it fires at 03:00 CEST.
    g = f._replace(text="30 2 * * 0L", dow_last=frozenset([0]))
    assert day_oracle(g, "Europe/Paris", u, u + 31 * DAY) == [posix("2025-03-30T03:00:00+02:00")]
    assert series("30 2 * * 0L", "Europe/Paris", at("2025-03-01T00:00:00+01:00"), 1) == ["2025-03-30T03:00:00+02:00"]
