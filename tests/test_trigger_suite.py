"""The shipped trigger checks (schedcore.testing.trigger_suite): the built-in triggers pass
them, and each check fails for a trigger that breaks its rule."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import pytest

from schedcore import At, Cron, Interval, Trigger
from schedcore import trigger_types as tt
from schedcore._time import require_aware
from schedcore.testing.trigger_suite import TriggerContract, check_trigger
from schedcore.trigger_types import TriggerType

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)

BUILT_IN = [
    Interval(60),
    Interval(timedelta(hours=1, milliseconds=5), start="2024-03-10T01:30:00+00:00"),
    Interval(0.001),
    Cron("0 3 * * *", tz="Europe/Paris"),
    Cron("30 2 * * *", tz="America/New_York"),  # in the spring gap once a year
    Cron("*/20 1-2 * * *", tz="Europe/Paris"),  # a wildcard job: both passes of the repeated hour
    Cron("0 0 L * *"),
    Cron("15 4 * * 1#2", tz="Australia/Lord_Howe"),
    Cron("H H * * *", seed="job"),
    Cron("0 0 29 2 *"),
    At("2031-05-01T10:00:00+02:00"),
]


class TestBuiltInTriggers(TriggerContract):
    @pytest.fixture(params=BUILT_IN, ids=lambda t: t.describe())
    def trigger(self, request: pytest.FixtureRequest) -> Trigger:
        trigger: Trigger = request.param
        return trigger


# -- each rule catches a trigger that breaks it --------------------------------------------------


@attrs.frozen
class Broken:
    """Every hour, with one rule broken on purpose (``flaw``)."""

    flaw: str = "none"

    def next_after(self, instant: datetime) -> datetime | None:
        if self.flaw != "naive accepted":
            require_aware(instant, "instant")
        hour = datetime.fromtimestamp((int(instant.timestamp()) // 3600 + 1) * 3600, tz=timezone.utc)
        if self.flaw == "naive result":
            return hour.replace(tzinfo=None)
        if self.flaw == "not after":
            return instant
        if self.flaw == "skips":  # the answer jumps over even hours when asked half-way
            return hour + timedelta(hours=1) if instant.minute == 30 else hour
        return hour

    def to_dict(self) -> dict[str, Any]:
        if self.flaw == "not json":
            return {"type": "broken", "flaw": self.flaw, "when": T0}
        if self.flaw == "lossy":
            return {"type": "broken"}
        return {"type": "broken", "flaw": self.flaw}

    def describe(self) -> str:
        return "" if self.flaw == "no description" else f"hourly, broken: {self.flaw}"


@pytest.fixture
def broken_registered() -> Iterator[None]:
    tt.register_trigger_type(TriggerType(name="broken", cls=Broken))
    yield
    tt.default_registry().unregister("broken")


def test_a_sound_trigger_passes(broken_registered: None) -> None:
    times = check_trigger(Broken(), start=T0, steps=50)
    assert len(times) == 50 and times[0] == T0 + timedelta(hours=1)


@pytest.mark.parametrize(
    ("flaw", "message"),
    [
        ("naive accepted", "must raise schedcore.ValidationError"),
        ("naive result", "returned a naive datetime"),
        ("not after", "is not after it"),
        ("skips", "a fire time was skipped or invented"),
        ("not json", "not JSON-safe"),
        ("lossy", "is not equal"),
        ("no description", "non-empty string"),
    ],
)
def test_each_broken_rule_is_named(broken_registered: None, flaw: str, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        check_trigger(Broken(flaw), start=T0, steps=50)


def test_an_unregistered_type_is_named() -> None:
    with pytest.raises(AssertionError, match="trigger type 'broken' is not registered"):
        check_trigger(Broken(), start=T0)
