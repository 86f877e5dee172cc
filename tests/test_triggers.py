"""At, Interval and trigger_from_dict (Cron's own tests are in test_cron*.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schedcore import At, Cron, Interval, Trigger, ValidationError
from schedcore.triggers import trigger_from_dict

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

instants = st.datetimes(
    min_value=datetime(1971, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, ZoneInfo("Europe/Paris"), timezone(timedelta(hours=5, minutes=30))]),
)
whole_ms = st.integers(1, 10**11).map(lambda ms: timedelta(milliseconds=ms))


# -- At -------------------------------------------------------------------------------------


def test_at_fires_once_strictly_after() -> None:
    when = datetime(2025, 5, 1, 12, tzinfo=UTC)
    t = At(when)
    assert isinstance(t, Trigger)
    assert t.next_after(when - timedelta(microseconds=1)) == when
    assert t.next_after(when) is None
    assert t.next_after(when + timedelta(days=1)) is None
    assert t.describe() == "at 2025-05-01T12:00:00+00:00"
    assert t.to_dict() == {"type": "at", "when": "2025-05-01T12:00:00+00:00"}


def test_at_normalizes_to_utc_milliseconds() -> None:
    t = At(datetime(2025, 5, 1, 14, 0, 0, 123_456, tzinfo=ZoneInfo("Europe/Paris")))
    assert t.when == datetime(2025, 5, 1, 12, 0, 0, 123_000, tzinfo=UTC)
    assert t.when.utcoffset() == timedelta(0)
    assert At("2025-05-01T12:00:00.123Z") == t
    assert t.to_dict()["when"] == "2025-05-01T12:00:00.123+00:00"


@pytest.mark.parametrize("when", [datetime(2025, 5, 1), "2025-05-01T12:00:00", "tomorrow", 1_700_000_000, None])
def test_at_refuses_naive_and_non_instants(when: Any) -> None:
    with pytest.raises(ValidationError) as info:
        At(when)
    assert info.value.field == "trigger.when"


def test_next_after_refuses_naive_instants() -> None:
    naive = datetime(2025, 1, 1)
    triggers: list[Trigger] = [At(datetime(2030, 1, 1, tzinfo=UTC)), Interval(60), Cron("* * * * *")]
    for trigger in triggers:
        with pytest.raises(ValidationError) as info:
            trigger.next_after(naive)
        assert info.value.field == "instant"


# -- Interval -------------------------------------------------------------------------------


def test_interval_defaults_to_the_epoch_grid() -> None:
    hourly = Interval(3600)
    assert hourly.every == timedelta(hours=1)
    assert hourly.start == EPOCH
    assert hourly.next_after(datetime(2025, 1, 1, 10, 30, tzinfo=UTC)) == datetime(2025, 1, 1, 11, tzinfo=UTC)
    assert hourly.next_after(datetime(2025, 1, 1, 11, tzinfo=UTC)) == datetime(2025, 1, 1, 12, tzinfo=UTC)
    assert hourly.describe() == "every 3600s"
    assert Interval(timedelta(minutes=1)) == Interval(60) == Interval(60.0)


def test_interval_first_fire_is_start() -> None:
    start = datetime(2025, 1, 1, 9, tzinfo=UTC)
    t = Interval(90, start)
    assert t.next_after(start - timedelta(days=3)) == start
    assert t.next_after(start - timedelta(microseconds=1)) == start
    assert t.next_after(start) == start + timedelta(seconds=90)
    assert t.describe() == "every 90s from 2025-01-01T09:00:00+00:00"


def test_interval_results_are_utc() -> None:
    t = Interval(60)
    got = t.next_after(datetime(2025, 1, 1, 10, 0, 30, tzinfo=ZoneInfo("Asia/Kolkata")))
    assert got == datetime(2025, 1, 1, 4, 31, tzinfo=UTC)
    assert got is not None
    assert got.utcoffset() == timedelta(0)


@given(every=whole_ms, start=instants, instant=instants)
def test_interval_is_the_next_grid_point(every: timedelta, start: datetime, instant: datetime) -> None:
    t = Interval(every, start)
    got = t.next_after(instant)
    assert got is not None
    assert got > instant
    k, rest = divmod(got - t.start, every)
    assert rest == timedelta(0)
    assert k >= 0
    if got != t.start:
        assert got - every <= instant  # no grid point was skipped


@given(every=st.integers(1, 10**7).map(lambda ms: timedelta(milliseconds=ms)), start=instants)
def test_interval_never_drifts(every: timedelta, start: datetime) -> None:
    t = Interval(every, start)
    fire = t.next_after(t.start - timedelta(milliseconds=1))
    assert fire == t.start
    for k in range(1, 300):
        assert fire is not None
        late = every * (k % 3) / 3  # asked late, up to two thirds of a period
        fire = t.next_after(fire + late)
        assert fire == t.start + k * every  # exact: the grid never shifts


@pytest.mark.parametrize(
    ("every", "reason"),
    [
        (0, "positive"),
        (-5, "positive"),
        (timedelta(0), "positive"),
        (timedelta(seconds=-1), "positive"),
        (0.0004, "at least 1 millisecond"),
        (1e-9, "at least 1 millisecond"),
        (1e20, "at most 100 years"),
        (1e300, "at most 100 years"),
        (timedelta.max, "at most 100 years"),
        (timedelta(microseconds=1500), "whole number of milliseconds"),
        (float("nan"), "finite"),
        (float("inf"), "finite"),
        (True, "expected seconds"),
        ("60", "expected seconds"),
        (None, "expected seconds"),
    ],
)
def test_interval_refuses_bad_every(every: Any, reason: str) -> None:
    with pytest.raises(ValidationError) as info:
        Interval(every)
    assert info.value.field == "trigger.every"
    assert reason in info.value.reason


def test_interval_past_year_9999_has_no_next_fire() -> None:
    every = Interval(timedelta(days=36_000))
    assert every.next_after(datetime(9990, 1, 1, tzinfo=timezone.utc)) is None
    hourly = Interval(3600)
    assert hourly.next_after(datetime(9999, 12, 31, 22, 30, tzinfo=timezone.utc)) == datetime(
        9999, 12, 31, 23, tzinfo=timezone.utc
    )
    assert hourly.next_after(datetime(9999, 12, 31, 23, 30, tzinfo=timezone.utc)) is None


@pytest.mark.parametrize("start", [datetime(2025, 1, 1), "2025-01-01T00:00:00", "soon", 0])
def test_interval_refuses_bad_start(start: Any) -> None:
    with pytest.raises(ValidationError) as info:
        Interval(60, start)
    assert info.value.field == "trigger.start"


# -- trigger_from_dict ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "trigger",
    [
        At(datetime(2025, 5, 1, 12, 0, 0, 5000, tzinfo=UTC)),
        Interval(0.001),
        Interval(timedelta(days=3, milliseconds=7), datetime(2024, 2, 29, 23, 59, 59, 999000, tzinfo=UTC)),
        Cron("0 3 * * *"),
        Cron("*/15 30 2 * * MON-FRI", "Europe/Paris"),
        Cron("@hourly", "Australia/Lord_Howe"),
    ],
)
def test_round_trip(trigger: Trigger) -> None:
    data = trigger.to_dict()
    assert trigger_from_dict(data) == trigger
    assert trigger_from_dict(dict(data)).to_dict() == data


@given(every=whole_ms, start=instants)
def test_interval_round_trip_property(every: timedelta, start: datetime) -> None:
    t = Interval(every, start)
    assert trigger_from_dict(t.to_dict()) == t


@given(when=instants)
def test_at_round_trip_property(when: datetime) -> None:
    t = At(when)
    assert trigger_from_dict(t.to_dict()) == t


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"type": "weekly", "day": 1}, "trigger.type"),
        ({"expr": "0 3 * * *"}, "trigger.type"),
        ({"type": "cron", "expr": "0 3 * * *", "zone": "UTC"}, "trigger.zone"),
        ({"type": "interval", "every": 60, "jitter": 5}, "trigger.jitter"),
        ({"type": "at", "when": "2025-01-01T00:00:00Z", "tz": "UTC"}, "trigger.tz"),
        ({"type": "cron", "expr": "61 * * * *", "tz": "UTC"}, "trigger.expr"),
        ({"type": "cron", "expr": "0 0 30 2 *"}, "trigger.expr"),
        ({"type": "cron", "expr": "0 3 * * *", "tz": "Mars/Base"}, "trigger.tz"),
        ({"type": "interval", "every": 0}, "trigger.every"),
        ({"type": "interval", "every": -60}, "trigger.every"),
        ({"type": "interval", "every": 60, "start": "2025-01-01T00:00:00"}, "trigger.start"),
        ({"type": "at", "when": "2025-01-01T00:00:00"}, "trigger.when"),
        ({"type": "cron"}, "trigger.expr"),
        ({"type": "cron", "tz": "UTC"}, "trigger.expr"),
        ({"type": "at"}, "trigger.when"),
        ({"type": "interval", "start": "2025-01-01T00:00:00Z"}, "trigger.every"),
        ("cron", "trigger"),
        (None, "trigger"),
    ],
)
def test_bad_dicts_name_the_field(data: Any, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        trigger_from_dict(data)
    assert info.value.field == field
