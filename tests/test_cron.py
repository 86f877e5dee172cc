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
