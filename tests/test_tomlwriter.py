"""schedcore.tomlwriter: schedules written as schedule-file TOML parse back to the same schedule."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from schedcore import Cron, Interval, RetryPolicy, Schedule
from schedcore.config import parse_schedules
from schedcore.tomlwriter import schedule_to_toml, schedules_to_toml
from schedcore.triggers import At

_json_leaf = st.one_of(st.booleans(), st.integers(-(2**53), 2**53), st.text(max_size=20),
                       st.floats(allow_nan=False, allow_infinity=False))  # fmt: skip
_json = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1)).map(
    lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000, tzinfo=timezone.utc)
)
_triggers = st.one_of(
    st.sampled_from([Cron("30 2 * * *", tz="Europe/Paris"), Cron("*/5 * * * *"), Cron("@daily", tz="Asia/Kolkata")]),
    st.builds(Interval, st.integers(1, 10**6), start=_instants),
    st.floats(0.001, 10**5).map(lambda s: Interval(round(s, 3))),
    _instants.map(At),
)


@settings(max_examples=150, deadline=None)
@given(
    sid=st.from_regex(r"[A-Za-z0-9._-]{1,30}", fullmatch=True),
    trigger=_triggers,
    args=st.lists(_json, max_size=3),
    kwargs=st.dictionaries(st.text(max_size=10), _json, max_size=3),
    meta=st.dictionaries(st.text(max_size=10), _json, max_size=3),
    attempts=st.integers(1, 5),
    grace=st.integers(0, 3600),
    paused=st.booleans(),
    end=st.none() | _instants,
)
def test_every_json_schedule_round_trips_through_the_schedule_file_parser(
    sid: str, trigger: object, args: list[object], kwargs: dict[str, object], meta: dict[str, object],
    attempts: int, grace: int, paused: bool, end: datetime | None,
) -> None:  # fmt: skip
    schedule = Schedule(
        id=sid, task="app.jobs:run", trigger=trigger, args=args, kwargs=kwargs, meta=meta, paused=paused,
        retry=RetryPolicy(max_attempts=attempts), misfire_grace=timedelta(seconds=grace), end_at=end,
    )  # fmt: skip
    assert parse_schedules(schedule_to_toml(schedule)) == [schedule]


def test_only_non_default_options_are_written_like_a_person_would() -> None:
    text = schedule_to_toml(
        Schedule(id="nightly", task="app.jobs:backup", trigger=Cron("0 3 * * *", tz="Europe/Paris"))
    )
    assert text == '[[schedule]]\nid = "nightly"\ntask = "app.jobs:backup"\ncron = "0 3 * * *"\ntz = "Europe/Paris"\n'
    assert "every = 300\n" in schedule_to_toml(Schedule(id="i", task="m:f", trigger=Interval(300)))


def test_what_toml_cannot_hold_becomes_a_comment_and_the_text_still_parses() -> None:
    schedule = Schedule(id="x", task="m:f", trigger=Interval(60), meta={"owner": None})
    text = schedule_to_toml(schedule)
    assert "# meta: not written (TOML has no null value)" in text
    assert parse_schedules(text)[0].meta == {}
    two = schedules_to_toml([schedule, Schedule(id="y", task="m:f", trigger=Interval(5))])
    assert [s.id for s in parse_schedules(two)] == ["x", "y"]
