"""Property checks for trigger authors: the :class:`~schedcore.protocols.Trigger` contract.

Call :func:`check_trigger` on a trigger from any test, or subclass
:class:`TriggerContract` and provide a ``trigger`` fixture (parametrize it to check several)::

    import pytest
    from schedcore.testing.trigger_suite import TriggerContract

    class TestBusinessDays(TriggerContract):
        @pytest.fixture(params=["09:00", "23:30"])
        def trigger(self, request):
            return BusinessDays(at=request.param, tz="Europe/Paris")

What is checked (each failure is an ``AssertionError`` naming the rule and the instants):

* ``describe()`` is a non-empty, one-line string;
* ``to_dict()`` is JSON-safe (``json.dumps`` without a ``default``, no NaN), carries a
  registered ``"type"``, and comes back through JSON and
  :func:`~schedcore.triggers.trigger_from_dict` as an equal trigger with the same dict (also
  inside a :class:`~schedcore.Schedule`, as every store keeps it);
* ``next_after`` refuses a naive instant with :class:`~schedcore.exceptions.ValidationError`;
* from a start instant, the series ``t1 = next_after(start)``, ``t2 = next_after(t1)``, ...
  is aware, strictly increasing, each ``t > `` the instant asked about, and consistent: the
  answer at any instant between two fire times (half-way, and just before the later one) is
  the later one (no fire time skipped or invented),
  whatever zone the question is asked in, and asking twice gives the same answer (pure);
* :meth:`TriggerContract.test_from_any_instant` checks the same from instants hypothesis draws
  (1971-2200, in UTC and zones with daylight saving, half-hour and unusual offsets).

A trigger that ends (``At``) may return None: the series stops there.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone, tzinfo
from typing import ClassVar
from zoneinfo import ZoneInfo

from schedcore.exceptions import ValidationError
from schedcore.protocols import Trigger

__all__ = ["ZONES", "TriggerContract", "check_serializable", "check_series", "check_trigger"]

#: Zones the checks ask questions in: UTC, both hemispheres' daylight saving, a half-hour
#: offset, Lord Howe's half-hour DST shift and a zone that skipped a whole day (2011-12-30).
ZONES: tuple[tzinfo, ...] = (
    timezone.utc,
    ZoneInfo("Europe/Paris"),
    ZoneInfo("America/New_York"),
    ZoneInfo("Asia/Kolkata"),
    ZoneInfo("Australia/Lord_Howe"),
    ZoneInfo("Pacific/Apia"),
)
_START = datetime(2024, 1, 1, tzinfo=timezone.utc)


def check_trigger(trigger: Trigger, *, start: datetime = _START, steps: int = 200) -> list[datetime]:
    """Check every rule of the module docstring on ``trigger``; the fire times seen, in UTC."""
    assert isinstance(trigger, Trigger), f"{trigger!r} lacks next_after, to_dict or describe"
    check_describe(trigger)
    check_serializable(trigger)
    check_naive_refused(trigger)
    return check_series(trigger, start, steps=steps)


def check_describe(trigger: Trigger) -> None:
    """``describe()`` is a non-empty one-line string."""
    text = trigger.describe()
    assert isinstance(text, str) and text.strip(), f"describe() of {trigger!r} must be a non-empty string: {text!r}"
    assert "\n" not in text and "\r" not in text, f"describe() must be one line: {text!r}"


def check_serializable(trigger: Trigger) -> None:
    """``to_dict()`` is JSON-safe and round-trips through ``trigger_from_dict`` (and a Schedule)."""
    from schedcore.model import Schedule
    from schedcore.trigger_types import default_registry
    from schedcore.triggers import trigger_from_dict

    data = trigger.to_dict()
    assert isinstance(data, dict), f"to_dict() must return a dict, got {type(data).__name__}"
    kind = data.get("type")
    assert isinstance(kind, str), f"to_dict() needs a 'type' naming the trigger type: {data!r}"
    assert default_registry().get(kind) is not None, (
        f"trigger type {kind!r} is not registered: return a TriggerType from the schedcore_trigger_types hook "
        "or call schedcore.trigger_types.register_trigger_type"
    )
    try:
        text = json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"to_dict() is not JSON-safe ({exc}): {data!r}") from None
    back = json.loads(text)
    assert back == data, f"to_dict() changes through JSON (tuples, non-string keys?): {data!r} -> {back!r}"
    rebuilt = trigger_from_dict(back)
    assert rebuilt == trigger, f"trigger_from_dict(to_dict()) is not equal: {trigger!r} -> {rebuilt!r}"
    assert rebuilt.to_dict() == data, f"to_dict() of the rebuilt trigger differs: {rebuilt.to_dict()!r} != {data!r}"
    schedule = Schedule(id="trigger-suite", task="schedcore.testing.tasks:noop", trigger=trigger)
    stored = Schedule.from_dict(json.loads(json.dumps(schedule.to_dict(compact=True))))
    assert stored.trigger == schedule.trigger, f"a Schedule does not keep the trigger: {stored.trigger!r}"


def check_naive_refused(trigger: Trigger) -> None:
    """``next_after`` of a naive datetime raises ValidationError."""
    try:
        trigger.next_after(datetime(2025, 1, 1, 12, 0))
    except ValidationError:
        return
    except Exception as exc:
        raise AssertionError(
            f"{trigger!r}.next_after(naive datetime) must raise schedcore.ValidationError, not {type(exc).__name__}"
        ) from exc
    raise AssertionError(f"{trigger!r}.next_after(naive datetime) must raise schedcore.ValidationError")


def _utc(value: datetime, asked: datetime) -> datetime:
    assert isinstance(value, datetime), f"next_after({asked.isoformat()}) returned {value!r}, not a datetime"
    assert value.tzinfo is not None and value.utcoffset() is not None, (
        f"next_after({asked.isoformat()}) returned a naive datetime: {value!r}"
    )
    return value.astimezone(timezone.utc)


def check_series(
    trigger: Trigger, start: datetime, *, steps: int = 200, zones: Sequence[tzinfo] = ZONES
) -> list[datetime]:
    """The series from ``start``: aware, strictly increasing, consistent; its instants in UTC."""
    seen: list[datetime] = []
    instant = start
    for step in range(steps):
        fire = trigger.next_after(instant)
        again = trigger.next_after(instant)
        assert fire == again, f"next_after({instant.isoformat()}) is not pure: {fire!r} then {again!r}"
        if fire is None:
            break
        utc = _utc(fire, instant)
        assert utc > instant, f"next_after({instant.isoformat()}) = {fire.isoformat()} is not after it"
        zone = zones[step % len(zones)]
        elsewhere = trigger.next_after(instant.astimezone(zone))
        assert elsewhere is not None and _utc(elsewhere, instant) == utc, (
            f"next_after({instant.isoformat()}) depends on the zone it is asked in: {fire!r} vs {elsewhere!r} ({zone})"
        )
        before = utc - timedelta(microseconds=1)
        if before > instant:
            just = trigger.next_after(before)
            assert just is not None and _utc(just, before) == utc, (
                f"next_after({before.isoformat()}) is {just!r}, not the fire time {utc.isoformat()} right after it"
            )
        if seen:
            middle = seen[-1] + (utc - seen[-1]) / 2
            between = trigger.next_after(middle)
            assert between is not None and _utc(between, middle) == utc, (
                f"between {seen[-1].isoformat()} and {utc.isoformat()}, next_after({middle.isoformat()}) "
                f"is {between!r}: a fire time was skipped or invented"
            )
        seen.append(utc)
        instant = fire
    return seen


class TriggerContract:
    """Subclass with a ``trigger`` fixture; every test checks one rule of the module docstring."""

    #: How many consecutive fire times :meth:`test_series_from_a_fixed_start` follows.
    steps: ClassVar[int] = 200
    #: Where that series starts.
    start: ClassVar[datetime] = _START

    def test_describe(self, trigger: Trigger) -> None:
        check_describe(trigger)

    def test_serializable(self, trigger: Trigger) -> None:
        check_serializable(trigger)

    def test_naive_instant_refused(self, trigger: Trigger) -> None:
        check_naive_refused(trigger)

    def test_series_from_a_fixed_start(self, trigger: Trigger) -> None:
        check_series(trigger, self.start, steps=self.steps)

    def test_from_any_instant(self, trigger: Trigger) -> None:
        from hypothesis import given
        from hypothesis import strategies as st

        instants = st.datetimes(
            min_value=datetime(1971, 1, 1),
            max_value=datetime(2200, 1, 1),
            timezones=st.sampled_from(ZONES),
        )

        @given(instant=instants)
        def series(instant: datetime) -> None:
            check_series(trigger, instant, steps=12)

        series()  # (run inside the test so the fixture's trigger is used, built once)
