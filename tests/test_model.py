"""The model: schedules and retry policies are validated on construction and round-trip."""

from __future__ import annotations

import json
import string
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schedcore import At, Cron, Interval, RetryPolicy, Schedule, ValidationError
from schedcore.model import SCHEMA_VERSION

UTC = timezone.utc
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def top_level_task() -> None:
    """A function workers can import by name."""


class Jobs:
    def method(self) -> None:
        """A method: not importable by name."""


# -- round trips -------------------------------------------------------------------------

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.text(max_size=20))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2060, 1, 1), timezones=st.just(UTC)).map(
    lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)
)
triggers = st.one_of(
    instants.map(At),
    st.builds(Interval, st.integers(1, 10**9).map(lambda ms: timedelta(milliseconds=ms)), instants),
    st.builds(
        Cron,
        st.sampled_from(["0 3 * * *", "*/15 * * * *", "@hourly", "30 2 * * MON-FRI", "0 0 0 1 JAN *"]),
        st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe"]),
    ),
)
durations = st.integers(0, 10**7).map(lambda ms: timedelta(milliseconds=ms))
retry_policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, 20),
    initial_delay=durations,
    factor=st.floats(1, 10),
    max_delay=durations,
    jitter=durations,
)


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    start_at = draw(st.none() | instants)
    end_at = draw(st.none() | instants.filter(lambda e: start_at is None or e > start_at))
    return Schedule(
        id=draw(st.text(string.ascii_letters + string.digits + "._-", min_size=1, max_size=200)),
        task=draw(st.sampled_from(["app.jobs:nightly", "pkg.mod:Cls.method", "m:f"])),
        trigger=draw(triggers),
        args=draw(st.lists(json_values, max_size=3)),
        kwargs=draw(st.dictionaries(st.text(max_size=8), json_values, max_size=3)),
        queue=draw(st.sampled_from(["default", "high", "q:1"])),
        retry=draw(retry_policies),
        catchup=draw(st.sampled_from(["skip", "latest", "all"])),
        catchup_limit=draw(st.integers(1, 100_000)),
        misfire_grace=draw(durations),
        overlap=draw(st.sampled_from(["allow", "skip", "buffer_one"])),
        jitter=draw(durations),
        start_at=start_at,
        end_at=end_at,
        max_runs=draw(st.none() | st.integers(1, 10**6)),
        paused=draw(st.booleans()),
        meta=draw(st.dictionaries(st.text(max_size=8), json_values, max_size=3)),
        executor_options=draw(st.dictionaries(st.text(max_size=8), json_values, max_size=3)),
    )


@given(schedules(), st.booleans())
def test_a_schedule_round_trips_through_json(schedule: Schedule, compact: bool) -> None:
    data = json.loads(json.dumps(schedule.to_dict(compact=compact), allow_nan=False))
    assert data["schema"] == SCHEMA_VERSION
    assert Schedule.from_dict(data) == schedule


@given(schedules())
def test_the_compact_form_leaves_out_only_defaults(schedule: Schedule) -> None:
    full, compact = schedule.to_dict(), schedule.to_dict(compact=True)
    assert {"schema", "id", "task", "trigger"} <= set(compact)
    assert all(full[key] == value for key, value in compact.items())


def test_pickled_arguments_round_trip_when_asked_for(pickle_key: bytes) -> None:
    schedule = Schedule(id="p", task="m:f", trigger=At(T0), args=[{1, 2}, T0], serializer="pickle")
    data = json.loads(json.dumps(schedule.to_dict()))
    assert "args" not in data and "payload" in data
    assert Schedule.from_dict(data) == schedule


def test_a_top_level_function_becomes_its_reference() -> None:
    schedule = Schedule(id="f", task=top_level_task, trigger=At(T0))
    assert schedule.task == f"{__name__}:top_level_task"


# -- bad input: each refused with the field and the value --------------------------------


def _schedule(**changes: Any) -> Schedule:
    fields: dict[str, Any] = {"id": "ok", "task": "app.jobs:run", "trigger": At(T0)}
    fields.update(changes)
    return Schedule(**fields)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"id": "has space"}, "id"),
        ({"id": ""}, "id"),
        ({"id": "x" * 201}, "id"),
        ({"id": "slash/no"}, "id"),
        ({"task": "no_colon"}, "task"),
        ({"task": "mod:"}, "task"),
        ({"task": "1mod:f"}, "task"),
        ({"task": lambda: None}, "task"),
        ({"task": Jobs().method}, "task"),
        ({"task": Jobs.method}, "task"),
        ({"task": 42}, "task"),
        ({"trigger": "0 3 * * *"}, "trigger"),
        ({"args": "abc"}, "args"),
        ({"args": [{1, 2}]}, "args"),
        ({"args": [float("nan")]}, "args"),
        ({"kwargs": {1: "x"}}, "kwargs"),
        ({"kwargs": {"when": T0}}, "kwargs"),
        ({"queue": "has space"}, "queue"),
        ({"catchup": "sometimes"}, "catchup"),
        ({"catchup_limit": 0}, "catchup_limit"),
        ({"misfire_grace": -1}, "misfire_grace"),
        ({"overlap": "never"}, "overlap"),
        ({"jitter": timedelta(seconds=-1)}, "jitter"),
        ({"start_at": datetime(2025, 1, 1)}, "start_at"),
        ({"end_at": "2025-01-01T00:00:00"}, "end_at"),
        ({"start_at": T0, "end_at": T0}, "end_at"),
        ({"max_runs": 0}, "max_runs"),
        ({"max_runs": True}, "max_runs"),
        ({"paused": "yes"}, "paused"),
        ({"meta": {"x": object()}}, "meta"),
        ({"executor_options": []}, "executor_options"),
        ({"serializer": "yaml"}, "serializer"),
        ({"retry": "3"}, "retry"),
    ],
    ids=lambda value: repr(value)[:40] if isinstance(value, dict) else value,
)
def test_bad_fields_are_refused_naming_field_and_value(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _schedule(**changes)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"invalid {field}=")


def test_nested_functions_are_refused() -> None:
    def nested() -> None:
        pass

    with pytest.raises(ValidationError, match="nested functions"):
        _schedule(task=nested)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"max_attempts": 0}, "retry.max_attempts"),
        ({"max_attempts": 1.5}, "retry.max_attempts"),
        ({"factor": 0.5}, "retry.factor"),
        ({"initial_delay": -1}, "retry.initial_delay"),
        ({"max_delay": "soon"}, "retry.max_delay"),
        ({"jitter": float("inf")}, "retry.jitter"),
    ],
)
def test_bad_retry_policies_are_refused(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RetryPolicy(**changes)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"schema": 99, "id": "a", "task": "m:f", "trigger": {"type": "at", "when": "2025-01-01T00:00:00Z"}}, "schema"),
        ({"id": "a", "task": "m:f", "trigger": {"type": "at", "when": "2025-01-01T00:00:00Z"}}, "schema"),
        (
            {
                "schema": 1,
                "id": "a",
                "task": "m:f",
                "trigger": {"type": "at", "when": "2025-01-01T00:00:00Z"},
                "crn": 1,
            },
            "schedule.crn",
        ),
        ({"schema": 1, "id": "a", "task": "m:f", "trigger": {"type": "cron", "expr": "61 * * * *"}}, "trigger.expr"),
    ],
)
def test_from_dict_refuses_foreign_data(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Schedule.from_dict(data)
    assert caught.value.field == field


# -- retry policy ------------------------------------------------------------------------


@given(retry_policies, st.integers(1, 30), st.text(max_size=30))
def test_backoff_grows_to_its_cap_plus_bounded_deterministic_jitter(
    policy: RetryPolicy, attempt: int, key: str
) -> None:
    delay = policy.delay(attempt, key)
    base = min(policy.initial_delay.total_seconds() * policy.factor ** (attempt - 1), policy.max_delay.total_seconds())
    assert base - 1e-6 <= delay.total_seconds() <= base + policy.jitter.total_seconds() + 1e-6
    assert policy.delay(attempt, key) == delay  # the same run always waits the same time


def test_retry_counts_the_first_run() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert [policy.can_retry(n) for n in (1, 2, 3)] == [True, True, False]
    assert [policy.delay(n, "k").total_seconds() for n in (1, 2, 3)] == [10.0, 20.0, 40.0]


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: RetryPolicy(max_delay=1e300), "retry.max_delay"),
        (lambda: RetryPolicy(initial_delay=1e20), "retry.initial_delay"),
        (lambda: RetryPolicy(jitter=timedelta.max), "retry.jitter"),
        (lambda: Schedule(id="a", task="m:f", trigger=Interval(60), misfire_grace=1e300), "misfire_grace"),
        (lambda: Schedule(id="a", task="m:f", trigger=Interval(60), jitter=1e20), "jitter"),
    ],
)
def test_out_of_range_durations_are_validation_errors(build: Any, field: str) -> None:
    """Huge numbers are refused by name, never an OverflowError from deep inside timedelta."""
    with pytest.raises(ValidationError) as info:
        build()
    assert info.value.field == field
    assert "at most 100 years" in info.value.reason
