"""Cron: parsing, validation, value semantics, and next times in UTC checked against croniter."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import given
from hypothesis import strategies as st

from schedcore import Cron, ValidationError
from schedcore.protocols import Trigger
from schedcore.triggers import trigger_from_dict

UTC = timezone.utc


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def series(trigger: Cron, start: datetime, n: int) -> list[datetime]:
    out: list[datetime] = []
    t: datetime | None = start
    for _ in range(n):
        assert t is not None
        t = trigger.next_after(t)
        assert t is not None
        out.append(t)
    return out


# -- construction and value semantics ------------------------------------------------------


def test_public_shape() -> None:
    c = Cron("0 3 * * *", "Europe/Paris")
    assert isinstance(c, Trigger)
    assert c.expr == "0 3 * * *"
    assert c.tz == "Europe/Paris"
    assert Cron("0 3 * * *").tz == "UTC"
    assert c.to_dict() == {"type": "cron", "expr": "0 3 * * *", "tz": "Europe/Paris"}
    assert c.describe() == "cron '0 3 * * *' Europe/Paris"
    assert trigger_from_dict(c.to_dict()) == c


def test_equality_and_hash_by_expr_and_tz() -> None:
    assert Cron("  0 3 * * *\n", "UTC") == Cron("0 3 * * *")
    assert hash(Cron("0 3 * * *")) == hash(Cron("0 3 * * *", "UTC"))
    assert Cron("0 3 * * *") != Cron("0 3 * * *", "Europe/Paris")
    # Same meaning, different text: the text is kept as given, so they differ.
    assert Cron("0 3 * * *") != Cron("0 3 * * 0-6")
    assert Cron("@daily").expr == "@daily"


def test_frozen() -> None:
    c = Cron("0 3 * * *")
    with pytest.raises(AttributeError):
        c.expr = "1 3 * * *"  # type: ignore[misc]


def test_zoneinfo_object_accepted_as_tz() -> None:
    assert Cron("0 3 * * *", ZoneInfo("Europe/Paris")).tz == "Europe/Paris"


@pytest.mark.parametrize(
    ("expr", "wildcard"),
    [
        ("0 3 * * *", False),
        ("* 3 * * *", True),
        ("0 * * * *", True),
        ("*/5 1 * * *", True),
        ("0 */2 * * *", True),
        ("0,30 1-3 * * *", False),
        ("@hourly", True),
        ("@daily", False),
        ("@midnight", False),
        ("@weekly", False),
        ("@monthly", False),
        ("@yearly", False),
        ("@annually", False),
        ("* 0 3 * * *", False),  # seconds do not count: minute and hour decide
        ("0 * 3 * * *", True),
        ("0 0 * * * *", True),
    ],
)
def test_is_wildcard(expr: str, wildcard: bool) -> None:
    assert Cron(expr).is_wildcard is wildcard


@pytest.mark.parametrize(
    ("expr", "reason"),
    [
        ("61 * * * *", "minute field '61' out of range 0-59"),
        ("* 24 * * *", "hour field '24' out of range 0-23"),
        ("* * 0 * *", "day-of-month field '0' out of range 1-31"),
        ("* * 32 * *", "day-of-month field '32' out of range 1-31"),
        ("* * * 13 *", "month field '13' out of range 1-12"),
        ("* * * * 8", "day-of-week field '8' out of range 0-7"),
        ("60 * * * * *", "second field '60' out of range 0-59"),
        ("5-61 * * * *", "minute field '5-61': 61 out of range 0-59"),
        ("*/0 * * * *", "minute field '*/0': step '0' is not a positive whole number"),
        ("*/x * * * *", "step 'x' is not a positive whole number"),
        ("1,,2 * * * *", "minute field '1,,2' has an empty list item"),
        ("x * * * *", "minute field 'x': 'x' is not a number 0-59"),
        ("* * * FOO *", "month field 'FOO': 'FOO' is not a number 1-12 or a name"),
        ("* * * * MOO", "day-of-week field 'MOO'"),
        ("* * * *", "expected 5 fields"),
        ("* * * * * * *", "7 fields (a year field, as croniter allows) are not supported"),
        ("", "got 0"),
        ("@reboot", "@reboot is not supported"),
        ("0 0 30 2 *", "can never fire"),
        ("0 0 31 4,6,9,11 *", "can never fire"),
        ("0 0 31 APR *", "can never fire"),
        ("0 0 30,31 2 */2", "can never fire"),
        ("-1 * * * *", "minute field '-1'"),
        ("1- * * * *", "minute field '1-'"),
        ("\u0661 * * * *", "is not a number"),  # Arabic-Indic 1: non-ASCII digits are refused, not int()-ed
    ],
)
def test_bad_expressions_name_the_field_and_reason(expr: str, reason: str) -> None:
    with pytest.raises(ValidationError) as info:
        Cron(expr)
    assert info.value.field == "trigger.expr"
    assert info.value.value == expr.strip()
    assert reason in info.value.reason
    assert "trigger.expr" in str(info.value)


@pytest.mark.parametrize("value", [None, 5, b"0 3 * * *", ["0", "3"]])
def test_expr_must_be_a_string(value: object) -> None:
    with pytest.raises(ValidationError) as info:
        Cron(value)
    assert info.value.field == "trigger.expr"


@pytest.mark.parametrize("tz", ["Mars/Olympus", "", "../etc/passwd", "/etc/localtime", "Europe/", 3, None])
def test_unknown_zone(tz: object) -> None:
    with pytest.raises(ValidationError) as info:
        Cron("0 3 * * *", tz)
    assert info.value.field == "trigger.tz"
    assert info.value.value == tz


@pytest.mark.parametrize(
    "expr",
    [
        "0 0 29 2 *",  # leap days only
        "0 0 30 2 1",  # both restricted: either matches, so every Monday in February
        "0 0 */30 2 1",  # AND (starts with '*'): day 1 of February on a Monday
        "0 0 31 * *",
    ],
)
def test_rare_but_possible_expressions_are_accepted(expr: str) -> None:
    c = Cron(expr)
    assert c.next_after(utc(2025, 1, 1)) is not None


def test_naive_instant_refused() -> None:
    with pytest.raises(ValidationError) as info:
        Cron("0 3 * * *").next_after(datetime(2025, 1, 1))
    assert info.value.field == "instant"


# -- expression language ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "same_as"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
        ("@DAILY", "0 0 * * *"),
        ("0 0 * * 7", "0 0 * * 0"),
        ("0 0 * * sun", "0 0 * * 0"),
        ("0 0 * * Mon-Fri", "0 0 * * 1-5"),
        ("0 0 * * FRI-SUN", "0 0 * * 5,6,0"),
        ("0 0 * * 5-7", "0 0 * * 5,6,0"),
        ("0 0 * * 1/2", "0 0 * * 1,3,5"),
        ("0 0 * * */3", "0 0 * * 0,3,6"),
        ("0 0 1 jan-mar/2 *", "0 0 1 1,3 *"),
        ("0 0 1 JAN,Jul *", "0 0 1 1,7 *"),
        ("50/4 * * * *", "50,54,58 * * * *"),
        ("0-10/5 * * * *", "0,5,10 * * * *"),
        ("0 0 0 * * *", "0 0 * * *"),
        ("*/20 * * * * *", "0,20,40 * * * * *"),
    ],
)
def test_equivalent_expressions(expr: str, same_as: str) -> None:
    start = utc(2024, 12, 30, 22, 59, 13)
    assert series(Cron(expr), start, 40) == series(Cron(same_as), start, 40)


def test_six_fields_put_seconds_first() -> None:
    c = Cron("15 30 2 * * *")
    assert c.next_after(utc(2025, 1, 1)) == utc(2025, 1, 1, 2, 30, 15)


def test_day_of_month_or_day_of_week_when_both_restricted() -> None:
    # 13th of the month OR any Friday (Vixie semantics).
    got = series(Cron("0 0 13 * 5"), utc(2025, 6, 1), 5)
    assert [d.day for d in got] == [6, 13, 20, 27, 4]


def test_day_of_month_and_day_of_week_when_one_starts_with_star() -> None:
    # Odd days that are Mondays: '*/2' starts with '*', so both must match.
    got = series(Cron("0 0 */2 * 1"), utc(2025, 6, 1), 4)
    assert all(d.day % 2 == 1 and d.weekday() == 0 for d in got)
    assert [d.date().isoformat() for d in got] == ["2025-06-09", "2025-06-23", "2025-07-07", "2025-07-21"]


def test_strictly_after_and_sub_second_instants() -> None:
    c = Cron("0 3 * * *")
    assert c.next_after(utc(2025, 1, 1, 3)) == utc(2025, 1, 2, 3)
    assert c.next_after(utc(2025, 1, 1, 2, 59, 59, 999_999)) == utc(2025, 1, 1, 3)
    assert c.next_after(utc(2025, 1, 1, 3, 0, 0, 1)) == utc(2025, 1, 2, 3)
    s = Cron("* * * * * *")
    assert s.next_after(utc(2025, 1, 1, 0, 0, 0, 500_000)) == utc(2025, 1, 1, 0, 0, 1)


def test_result_is_in_the_trigger_zone_whatever_the_input_zone() -> None:
    c = Cron("0 9 * * *", "Asia/Tokyo")
    got = c.next_after(datetime(2025, 1, 1, 12, tzinfo=ZoneInfo("America/New_York")))
    assert got == datetime(2025, 1, 2, 9, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert got is not None
    assert isinstance(got.tzinfo, ZoneInfo)
    assert got.tzinfo.key == "Asia/Tokyo"
    assert (got.hour, got.minute) == (9, 0)


def test_leap_day_and_rare_day_series() -> None:
    got = series(Cron("0 0 29 2 *"), utc(2095, 1, 1), 2)
    assert got == [utc(2096, 2, 29), utc(2104, 2, 29)]  # 2100 is not a leap year
    got = series(Cron("0 0 */30 2 1"), utc(2025, 1, 1), 2)
    assert got == [utc(2027, 2, 1), utc(2038, 2, 1)]  # 1 February on a Monday


def test_end_of_calendar_gives_none_not_an_error() -> None:
    assert Cron("0 0 1 1 *").next_after(utc(9998, 6, 1)) is None
    assert Cron("0 0 1 1 *", "Pacific/Kiritimati").next_after(datetime.max.replace(tzinfo=UTC)) is None


def test_next_after_is_fast() -> None:
    # The engine calls next_after for every fire; keep it in the microseconds.
    c = Cron("*/5 9-17 * * MON-FRI", "Europe/Paris")
    t: datetime | None = utc(2025, 1, 1)
    c.next_after(utc(2025, 1, 1))  # warm the caches (parse, zone transitions)
    began = time.perf_counter()
    for _ in range(2000):
        assert t is not None
        t = c.next_after(t)
    per_call = (time.perf_counter() - began) / 2000
    assert per_call < 500e-6, per_call  # generous: loaded CI machines


# -- next times against croniter (UTC) ---------------------------------------------------------


@st.composite
def field(draw: st.DrawFn, lo: int, hi: int) -> str:
    kind = draw(st.sampled_from(["*", "*/n", "v", "list", "range", "range/n", "a/n"]))
    if kind == "*":
        return "*"
    if kind == "*/n":
        return f"*/{draw(st.integers(1, hi - lo + 1))}"
    if kind == "v":
        return str(draw(st.integers(lo, hi)))
    if kind == "list":
        return ",".join(map(str, draw(st.lists(st.integers(lo, hi), min_size=1, max_size=4))))
    a = draw(st.integers(lo, hi))
    if kind == "a/n":
        return f"{a}/{draw(st.integers(1, hi - lo + 1))}"
    b = draw(st.integers(a, hi))
    if a == b:
        return str(a)  # croniter reads a degenerate range 'a-a' as '*'
    if kind == "range":
        return f"{a}-{b}"
    return f"{a}-{b}/{draw(st.integers(1, hi - lo + 1))}"


@st.composite
def croniter_compatible(draw: st.DrawFn) -> str:
    minute, hour = draw(field(0, 59)), draw(field(0, 23))
    dom, month, dow = draw(field(1, 31)), draw(field(1, 12)), draw(field(0, 6))
    # croniter treats '*/n' in a day field as "restricted" (either-matches); Vixie cron and
    # schedcore treat any field starting with '*' as unrestricted. Compare only where the
    # two conventions agree.
    if (dom.startswith("*") or dow.startswith("*")) and "*" not in (dom, dow):
        dow = "*"
    parts = [minute, hour, dom, month, dow]
    if draw(st.booleans()):
        parts.insert(0, draw(field(0, 59)))
    return " ".join(parts)


@given(
    expr=croniter_compatible(),
    start=st.datetimes(min_value=datetime(1995, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)),
)
def test_utc_series_matches_croniter(expr: str, start: datetime) -> None:
    try:
        trigger = Cron(expr)
    except ValidationError as exc:
        assert "can never fire" in exc.reason
        return
    start = start.replace(microsecond=0)
    six = len(expr.split()) == 6
    it = croniter(expr, start, second_at_beginning=six)
    for got in series(trigger, start, 8):
        want = it.get_next(datetime)
        assert got == want, (expr, start)
        assert got.tzinfo is not None
        assert got.utcoffset() == timedelta(0)


# -- croniter's extensions: L, W, #, ?, wrap-around ranges, H ----------------------------------


def days(expr: str, start: datetime, n: int, **kw: str) -> list[str]:
    return [d.strftime("%a %Y-%m-%d") for d in series(Cron(expr, **kw), start, n)]


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("0 0 L * *", ["Fri 2025-01-31", "Fri 2025-02-28", "Mon 2025-03-31", "Wed 2025-04-30"]),
        ("0 0 L 2 *", ["Fri 2025-02-28", "Sat 2026-02-28", "Sun 2027-02-28", "Tue 2028-02-29"]),
        ("0 0 1,L * *", ["Fri 2025-01-31", "Sat 2025-02-01", "Fri 2025-02-28", "Sat 2025-03-01"]),
        ("0 0 29-L * *", ["Wed 2025-01-29", "Thu 2025-01-30", "Fri 2025-01-31", "Sat 2025-03-29"]),
        ("0 0 * * 5L", ["Fri 2025-01-31", "Fri 2025-02-28", "Fri 2025-03-28", "Fri 2025-04-25"]),
        ("0 0 * * L5", ["Fri 2025-01-31", "Fri 2025-02-28", "Fri 2025-03-28", "Fri 2025-04-25"]),
        ("0 0 * * friL", ["Fri 2025-01-31", "Fri 2025-02-28", "Fri 2025-03-28", "Fri 2025-04-25"]),
        ("0 0 * * 0L", ["Sun 2025-01-26", "Sun 2025-02-23", "Sun 2025-03-30", "Sun 2025-04-27"]),
        ("0 0 * * 7L", ["Sun 2025-01-26", "Sun 2025-02-23", "Sun 2025-03-30", "Sun 2025-04-27"]),
        ("0 0 * * 1#2", ["Mon 2025-01-13", "Mon 2025-02-10", "Mon 2025-03-10", "Mon 2025-04-14"]),
        ("0 0 * * MON#1,FRI#3", ["Mon 2025-01-06", "Fri 2025-01-17", "Mon 2025-02-03", "Fri 2025-02-21"]),
        ("0 0 * * 1#5", ["Mon 2025-03-31", "Mon 2025-06-30", "Mon 2025-09-29", "Mon 2025-12-29"]),
        ("0 0 * * 1#2,3", ["Wed 2025-01-08", "Mon 2025-01-13", "Wed 2025-01-15", "Wed 2025-01-22"]),
        # The nearest weekday: Saturday gives the Friday before, Sunday the Monday after...
        ("0 0 15W * *", ["Wed 2025-01-15", "Fri 2025-02-14", "Fri 2025-03-14", "Tue 2025-04-15"]),
        ("0 0 W15 * *", ["Wed 2025-01-15", "Fri 2025-02-14", "Fri 2025-03-14", "Tue 2025-04-15"]),
        ("0 0 15W 6 *", ["Mon 2025-06-16", "Mon 2026-06-15", "Tue 2027-06-15", "Thu 2028-06-15"]),
        # ... but never across the month's edge: Saturday the 1st gives Monday the 3rd,
        # Sunday the 31st Friday the 29th; a day past the month's end means its last day.
        ("0 0 1W 2,3 *", ["Mon 2025-02-03", "Mon 2025-03-03", "Mon 2026-02-02", "Mon 2026-03-02"]),
        ("0 0 31W 8 *", ["Fri 2025-08-29", "Mon 2026-08-31", "Tue 2027-08-31", "Thu 2028-08-31"]),
        ("0 0 31W 4 *", ["Wed 2025-04-30", "Thu 2026-04-30", "Fri 2027-04-30", "Fri 2028-04-28"]),
        ("0 0 LW * *", ["Fri 2025-01-31", "Fri 2025-02-28", "Mon 2025-03-31", "Wed 2025-04-30", "Fri 2025-05-30"]),
        ("0 0 1W,15W * *", ["Wed 2025-01-15", "Mon 2025-02-03", "Fri 2025-02-14", "Mon 2025-03-03"]),
        ("0 0 ? * 1", ["Mon 2025-01-06", "Mon 2025-01-13", "Mon 2025-01-20", "Mon 2025-01-27"]),
        ("0 0 1 * ?", ["Sat 2025-02-01", "Sat 2025-03-01", "Tue 2025-04-01", "Thu 2025-05-01"]),
        ("0 0 * * fri-mon", ["Fri 2025-01-03", "Sat 2025-01-04", "Sun 2025-01-05", "Mon 2025-01-06", "Fri 2025-01-10"]),
        ("0 0 * * 7-fri", ["Thu 2025-01-02", "Fri 2025-01-03", "Sun 2025-01-05", "Mon 2025-01-06"]),
        ("0 0 1 nov-feb *", ["Sat 2025-02-01", "Sat 2025-11-01", "Mon 2025-12-01", "Thu 2026-01-01"]),
        ("0 0 30-2 * *", ["Thu 2025-01-02", "Thu 2025-01-30", "Fri 2025-01-31", "Sat 2025-02-01", "Sun 2025-02-02"]),
        # Vixie's OR holds for the new forms too: the last day OR any Monday.
        ("0 0 L * 1", ["Mon 2025-01-06", "Mon 2025-01-13", "Mon 2025-01-20", "Mon 2025-01-27", "Fri 2025-01-31"]),
        ("0 0 15 * 1#2", ["Mon 2025-01-13", "Wed 2025-01-15", "Mon 2025-02-10", "Sat 2025-02-15"]),
        # ... and the AND when one of them starts with '*': odd days that are last Fridays.
        ("0 0 */2 * 5L", ["Fri 2025-01-31", "Fri 2025-04-25", "Fri 2025-06-27", "Fri 2025-07-25"]),
    ],
)
def test_extension_examples(expr: str, expected: list[str]) -> None:
    assert days(expr, utc(2025, 1, 1), len(expected)) == expected


@pytest.mark.parametrize(
    ("expr", "hours"),
    [
        ("0 22-2 * * *", [22, 23, 0, 1, 2]),
        ("0 22-2/2 * * *", [22, 0, 2]),
        ("0 22-3/3 * * *", [22, 1]),  # the step keeps its rhythm across midnight (croniter: 22, 2)
        ("0 23-0 * * *", [23, 0]),
    ],
)
def test_wrap_around_hours(expr: str, hours: list[int]) -> None:
    got = series(Cron(expr), utc(2025, 1, 1, 12), len(hours))
    assert [d.hour for d in got] == hours


def test_wrap_around_minutes_and_weekday_steps() -> None:
    assert [d.minute for d in series(Cron("50-10/7 * * * *"), utc(2025, 1, 1, 0, 40), 4)] == [50, 57, 4, 50]
    assert days("0 0 * * fri-tue/3", utc(2025, 1, 1), 3) == ["Fri 2025-01-03", "Mon 2025-01-06", "Fri 2025-01-10"]


@pytest.mark.parametrize(
    ("expr", "reason"),
    [
        ("@reboot", "@reboot is not supported"),
        ("@every 5m", "alias '@every 5m' is not supported"),
        ("0 0 * * * * 2025", "7 fields (a year field, as croniter allows) are not supported"),
        ("0 0 L-3 * *", "day-of-month field 'L-3': 'L' is not supported there: L-n"),
        ("0 0 L/2 * *", "day-of-month field 'L/2': 'L' is not supported there: L is supported as"),
        ("0 L * * *", "hour field 'L': 'L' is not supported there: L is supported as L, LW or a-L in day-of-month"),
        ("0 0 * * L", "day-of-week field 'L': 'L' is not supported there"),
        ("0 0 * * 1-5L", "day-of-week field '1-5L'"),
        ("0 0 15W-20 * *", "day-of-month field '15W-20': '15W' is not supported there: W is supported as dW"),
        ("0 0 * * 15W", "day-of-week field '15W': '15W' is not supported there: W is supported as dW"),
        ("0 0 32W * *", "day-of-month field '32W': 32 out of range 1-31"),
        ("0 0 0W * *", "day-of-month field '0W': 0 out of range 1-31"),
        ("0 0 1#2 * *", "day-of-month field '1#2': '1#2' is not supported there: # is supported as d#n"),
        ("0 0 * * 1#6", "day-of-week field '1#6': #6 is not an occurrence 1-5 of a weekday"),
        ("0 0 * * 1#0", "#0 is not an occurrence 1-5"),
        ("0 0 * * 8#1", "day-of-week field '8#1': 8 out of range 0-7"),
        ("0 0 * * 1-3#2", "day-of-week field '1-3#2'"),
        ("? 0 * * *", "minute field '?': ? is supported only alone, in day-of-month or day-of-week"),
        ("0 0 ?/2 * *", "day-of-month field '?/2': ? is supported only alone"),
        ("H,5 * * * *", "minute field 'H': 'H' is not supported there: H is supported only as the whole field"),
        ("R * * * *", "minute field 'R': 'R' is not supported there: R (random values) is not supported"),
        ("H(30-10) * * * *", "minute field 'H(30-10)': H(a-b) needs a < b"),
        ("H(0-60) * * * *", "minute field 'H(0-60)': range 0-60 is out of range 0-59"),
        ("H/0 * * * *", "minute field 'H/0': step '0' is not a positive whole number"),
        ("0 0 * * sun-funday", "day-of-week field 'sun-funday': 'funday' is not a number 0-7 or a name"),
        ("0 0 1W 2 1#5", None),  # accepted: OR
        ("0 0 */30 2 1#5", "can never fire: no month in the month field has a day matching both day fields"),
        ("0 0 1-7 2 */7", None),  # accepted: AND of 1-7 and Sundays
    ],
)
def test_extension_refusals_name_the_field_and_say_not_supported(expr: str, reason: str | None) -> None:
    if reason is None:
        assert Cron(expr).next_after(utc(2025, 1, 1)) is not None
        return
    with pytest.raises(ValidationError) as info:
        Cron(expr)
    assert info.value.field == "trigger.expr"
    assert reason in info.value.reason, info.value.reason


def test_question_mark_and_h_slash_count_as_star_for_the_day_rule() -> None:
    # '?' is '*': day 1 AND any weekday -- not "day 1 OR every day".
    assert days("0 0 1 * ?", utc(2025, 1, 1), 2) == days("0 0 1 * *", utc(2025, 1, 1), 2)
    # H/n is */n from a hashed start: it starts with '*' for the day rule (AND with Mondays)...
    got = series(Cron("0 0 H/2 * 1", seed="a"), utc(2025, 1, 1), 6)
    start = int(Cron("0 0 H/2 * 1", seed="a").expanded.split()[2].split("-")[0])
    assert all(d.weekday() == 0 and (d.day - start) % 2 == 0 for d in got)
    # ... and for daylight saving (a wildcard job), like */15.
    assert Cron("H/15 2 * * *", seed="a").is_wildcard
    assert not Cron("H 2 * * *", seed="a").is_wildcard
    assert not Cron("H(0-29)/15 2 * * *", seed="a").is_wildcard


# -- H: values hashed from a seed (the schedule id) ----------------------------------------------


def test_h_values_are_croniters_for_the_same_id() -> None:
    # Pinned: the same id gives the same values on every machine and Python version
    # (crc32 of the UTF-8 id, as croniter does -- never Python's hash()).
    assert Cron("H H * * *", seed="my-job").expanded == "40 8 * * *"
    assert Cron("H H H H H", seed="nightly-backup").expanded == "24 12 27 4 6"
    assert Cron("H/15 H(9-17) * * *", seed="my-job").expanded == "10-59/15 17 * * *"
    assert Cron("H H * * * *", seed="my-job").expanded == "12 40 * * * *"  # seconds first
    assert Cron("H(0-29)/10 * * * *", seed="nightly-backup").expanded == "4-29/10 * * * *"


@given(
    seed=st.text(min_size=1, max_size=30),
    minute=st.sampled_from(["H", "H/15", "H/7", "H(0-29)", "H(10-50)/20", "H/59", "h"]),
    hour=st.sampled_from(["H", "H/6", "H(9-17)", "*"]),
    month=st.sampled_from(["H", "*", "H(3-5)"]),
    dow=st.sampled_from(["H", "*", "H(1-5)"]),
)
def test_h_expands_like_croniter(seed: str, minute: str, hour: str, month: str, dow: str) -> None:
    expr = f"{minute} {hour} * {month} {dow}"
    ours = Cron(expr, seed=seed).expanded.split()
    theirs = croniter.expand(expr, hash_id=seed.encode())[0]
    for i, text in enumerate(ours):
        if i == 2:
            continue  # day-of-month is '*' on both sides
        want = _star(i) if theirs[i] == ["*"] else theirs[i]
        assert sorted(_values(text, i)) == sorted(want), (expr, seed, ours, theirs)


def _star(i: int) -> list[int]:
    return list(range(*[(0, 60), (0, 24), (1, 32), (1, 13), (0, 7)][i]))


def _values(text: str, i: int) -> set[int]:
    """The values of a plain field text (a, a-b/n, *), read by hand."""
    if text == "*":
        return set(_star(i))
    base, _, step = text.partition("/")
    lo, _, hi = base.partition("-")
    if not step:
        return {int(lo)}
    return set(range(int(lo), int(hi) + 1, int(step)))


def test_h_in_day_of_month_picks_a_day_every_month_has() -> None:
    picked = {int(Cron("0 0 H * *", seed=f"job-{i}").expanded.split()[2]) for i in range(2000)}
    assert picked == set(range(1, 29))  # Jenkins' 1-28, not croniter's 1-31


def test_h_seed_is_stored_with_the_trigger_and_given_by_the_schedule() -> None:
    from schedcore import Schedule

    unseeded = Cron("H 3 * * *", "Europe/Paris")
    assert unseeded.uses_hash
    assert unseeded.to_dict() == {"type": "cron", "expr": "H 3 * * *", "tz": "Europe/Paris"}
    assert unseeded.describe() == "cron 'H 3 * * *' Europe/Paris (H not yet seeded)"
    with pytest.raises(ValidationError) as info:
        unseeded.next_after(utc(2025, 1, 1))
    assert info.value.field == "trigger.seed"
    assert "uses H" in info.value.reason

    schedule = Schedule(id="nightly-backup", task="schedcore.demo:hello", trigger=unseeded)
    seeded = schedule.trigger
    assert isinstance(seeded, Cron)
    assert seeded.seed == "nightly-backup"
    assert seeded.describe() == "cron 'H 3 * * *' Europe/Paris (H = '24 3 * * *')"
    assert seeded.to_dict() == {"type": "cron", "expr": "H 3 * * *", "tz": "Europe/Paris", "seed": "nightly-backup"}
    assert trigger_from_dict(seeded.to_dict()) == seeded
    assert Schedule.from_dict(schedule.to_dict()) == schedule
    got = seeded.next_after(utc(2025, 1, 1))
    assert got is not None
    assert (got.hour, got.minute) == (3, 24)
    # An explicit seed is kept; a renamed copy keeps its times (the seed travels with it).
    given = Cron("H 3 * * *", "Europe/Paris", seed="nightly-backup")
    explicit = Schedule(id="other", task="schedcore.demo:hello", trigger=given)
    assert explicit.trigger == seeded
    assert schedule.evolve(id="renamed").trigger == seeded
    # Expressions without H are left alone.
    plain = Schedule(id="x", task="schedcore.demo:hello", trigger=Cron("0 3 * * *"))
    assert plain.trigger == Cron("0 3 * * *")
    assert plain.trigger.to_dict() == {"type": "cron", "expr": "0 3 * * *", "tz": "UTC"}


@pytest.mark.parametrize("seed", ["", 5, b"x"])
def test_bad_seed(seed: object) -> None:
    with pytest.raises(ValidationError) as info:
        Cron("H * * * *", seed=seed)
    assert info.value.field == "trigger.seed"


def test_new_forms_keep_next_after_fast() -> None:
    for expr in ("0 9 * * 1#2", "0 0 LW * *", "*/5 22-2 ? * fri-mon", "H H * * 5L"):
        c = Cron(expr, "Europe/Paris", seed="bench")
        t: datetime | None = utc(2025, 1, 1)
        c.next_after(utc(2025, 1, 1))  # warm the caches
        began = time.perf_counter()
        for _ in range(500):
            assert t is not None
            t = c.next_after(t)
        per_call = (time.perf_counter() - began) / 500
        assert per_call < 1e-3, (expr, per_call)  # generous: loaded CI machines


# -- the new forms against croniter (UTC) -------------------------------------------------------


@st.composite
def extended(draw: st.DrawFn) -> tuple[str, str]:
    """An expression with croniter's extensions, as schedcore and as croniter spell it.

    Day fields: one of them is '*' or '?' (croniter intersects or fails when '#', 'W' or
    'L5' meet a restricted other day field; schedcore applies Vixie's OR -- see the docs).
    Wrap-around ranges have no step (croniter's steps lose their rhythm at the wrap).
    """
    hour_lo, hour_hi = draw(st.integers(0, 23)), draw(st.integers(0, 23))
    minute = draw(st.sampled_from(["0", "15", "H", "H/20", "H(0-29)", "50-10", "55-5"]))
    hour = draw(st.sampled_from(["*", "9", "H", "H(9-17)", f"{hour_lo}-{hour_hi}" if hour_lo != hour_hi else "3"]))
    month = draw(st.sampled_from(["*", "nov-feb", "oct-mar", "12-1", "H", "5-4"]))
    d = draw(st.integers(1, 31))
    wd, n = draw(st.integers(0, 6)), draw(st.integers(1, 5))
    dom_ours, dom_theirs = draw(
        st.sampled_from([("L", "L"), (f"{d}W", f"{d}W"), (f"W{d}", f"W{d}"), (f"{d}-L", f"{d}-L"), ("L,1", "L,1")])
    )
    dow_ours, dow_theirs = draw(
        st.sampled_from(
            [
                (f"{wd}L", f"L{wd}"),
                (f"L{wd}", f"L{wd}"),
                (f"{wd}#{n}", f"{wd}#{n}"),
                ("fri-mon", "fri-mon"),
                ("sat-tue", "sat-tue"),
                (f"{wd}#1,{(wd + 3) % 7}#{n}", f"{wd}#1,{(wd + 3) % 7}#{n}"),
            ]
        )
    )
    blank = draw(st.sampled_from(["*", "?"]))
    if draw(st.booleans()):
        days_ours, days_theirs = f"{dom_ours} {month} {blank}", f"{dom_theirs} {month} {blank}"
    else:
        days_ours, days_theirs = f"{blank} {month} {dow_ours}", f"{blank} {month} {dow_theirs}"
    return f"{minute} {hour} {days_ours}", f"{minute} {hour} {days_theirs}"


@given(
    pair=extended(),
    seed=st.sampled_from(["my-job", "nightly-backup", "reports.weekly", "x"]),
    start=st.datetimes(min_value=datetime(1995, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)),
)
def test_extensions_match_croniter_on_utc(pair: tuple[str, str], seed: str, start: datetime) -> None:
    ours, theirs = pair
    try:
        trigger = Cron(ours, seed=seed)
    except ValidationError as exc:
        assert "can never fire" in exc.reason
        return
    start = start.replace(microsecond=0)
    it = croniter(theirs, start, hash_id=seed.encode())
    assert series(trigger, start, 20) == [it.get_next(datetime) for _ in range(20)], (ours, theirs, start)


@pytest.mark.parametrize(
    ("ours", "theirs", "first_difference"),
    [
        # A wrap-around step keeps its rhythm (22, 1); croniter restarts it at 0 (22, 2).
        ("0 22-3/3 * * *", "0 22-3/3 * * *", (utc(2025, 1, 1, 1), utc(2025, 1, 1, 2))),
        # 'a-a' is the single value a; croniter reads it as the whole field.
        ("0 0 5-5 * *", "0 0 5-5 * *", (utc(2025, 1, 5), utc(2025, 1, 2))),
        # '*/n' in a day field starts with '*': AND (Vixie); croniter ORs it.
        ("0 0 */2 * 1", "0 0 */2 * 1", (utc(2025, 1, 13), utc(2025, 1, 3))),
        # '#' meeting a restricted day-of-month: OR; croniter intersects (here: never).
        ("0 0 15 * 1#2", None, None),
    ],
)
def test_documented_differences_from_croniter(
    ours: str, theirs: str | None, first_difference: tuple[datetime, datetime] | None
) -> None:
    start = utc(2025, 1, 1)
    mine = series(Cron(ours), start, 20)
    if theirs is None:
        with pytest.raises(Exception, match="failed to find next date"):
            croniter(ours, start).get_next(datetime)
        return
    it = croniter(theirs, start)
    other = [it.get_next(datetime) for _ in range(20)]
    diff = next((a, b) for a, b in zip(mine, other, strict=True) if a != b)
    assert diff == first_difference
