"""Triggers: pure, immutable, serializable rules for when a schedule fires.

* :class:`At` -- once, at an instant.
* :class:`Interval` -- at ``start + k * every`` in absolute time, so lateness never causes drift.
* :class:`Cron` -- cron expressions in an IANA zone with the classic daylight-saving rule
  (see :mod:`schedcore._cron`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs

from schedcore._time import EPOCH, iso, parse_instant, require_aware, to_timedelta, trunc_ms
from schedcore.exceptions import ValidationError
from schedcore.protocols import Trigger

__all__ = ["At", "Cron", "Interval", "trigger_from_dict"]


def _instant(value: Any, field: str) -> datetime:
    if isinstance(value, str):
        value = parse_instant(value, field)
    return trunc_ms(require_aware(value, field))


def _when(value: Any) -> datetime:
    return _instant(value, "trigger.when")


def _start(value: Any) -> datetime:
    return _instant(value, "trigger.start")


def _every(value: Any) -> timedelta:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 0.001:
        # timedelta(seconds=1e-9) is zero: say what the real floor is, not "must be positive"
        raise ValidationError("trigger.every", value, "must be at least 1 millisecond")
    return to_timedelta(value, "trigger.every", allow_zero=False)


@attrs.frozen
class At:
    """Fire once, at ``when``."""

    when: datetime = attrs.field(converter=_when)

    def next_after(self, instant: datetime) -> datetime | None:
        require_aware(instant, "instant")
        return self.when if self.when > instant else None

    def to_dict(self) -> dict[str, Any]:
        return {"type": "at", "when": iso(self.when)}

    def describe(self) -> str:
        return f"at {iso(self.when)}"


@attrs.frozen
class Interval:
    """Fire every ``every`` (seconds or timedelta, at least 1 ms) at ``start + k * every``.

    Fire times are fixed in absolute time: a late run never shifts the later ones.
    ``start`` defaults to the Unix epoch, so ``Interval(3600)`` fires on the hour (UTC)
    and ``Interval(60)`` on every whole minute. The first fire is ``start`` itself.
    """

    every: timedelta = attrs.field(converter=_every)
    start: datetime = attrs.field(default=EPOCH, converter=_start)

    @every.validator
    def _check_every(self, _: attrs.Attribute[timedelta], value: timedelta) -> None:
        if value < timedelta(milliseconds=1):
            raise ValidationError("trigger.every", value, "must be at least 1 millisecond")
        if value % timedelta(milliseconds=1):
            raise ValidationError("trigger.every", value, "must be a whole number of milliseconds")

    def next_after(self, instant: datetime) -> datetime | None:
        require_aware(instant, "instant")
        if instant < self.start:
            return self.start
        # Integer arithmetic on timedeltas: exact, no float drift even after years.
        k = (instant - self.start) // self.every + 1
        try:
            return (self.start + k * self.every).astimezone(timezone.utc)
        except OverflowError:  # past year 9999: no fire time a datetime can hold
            return None

    def to_dict(self) -> dict[str, Any]:
        return {"type": "interval", "every": self.every.total_seconds(), "start": iso(self.start)}

    def describe(self) -> str:
        seconds = self.every.total_seconds()
        text = f"every {seconds:g}s"
        if self.start != EPOCH:
            text += f" from {iso(self.start)}"
        return text


def trigger_from_dict(data: Mapping[str, Any]) -> Trigger:
    """Rebuild a trigger from its ``to_dict()`` output."""
    if not isinstance(data, Mapping):
        raise ValidationError("trigger", data, "expected a dict with a 'type' key")
    kind = data.get("type")
    fields = {k: v for k, v in data.items() if k != "type"}
    classes: dict[str, type[Any]] = {"at": At, "interval": Interval, "cron": Cron}
    cls = classes.get(kind)  # type: ignore[arg-type]
    if cls is None:
        raise ValidationError("trigger.type", kind, f"expected one of {', '.join(sorted(classes))}")
    allowed = {a.name for a in attrs.fields(cls)}
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise ValidationError(f"trigger.{unknown[0]}", fields[unknown[0]], f"unknown key for a {kind} trigger")
    missing = [a.name for a in attrs.fields(cls) if a.default is attrs.NOTHING and a.name not in fields]
    if missing:
        raise ValidationError(f"trigger.{missing[0]}", None, f"missing from a {kind} trigger")
    trigger: Trigger = cls(**fields)
    return trigger


from schedcore._cron import Cron  # noqa: E402  (Cron lives with its DST machinery)
