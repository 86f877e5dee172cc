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
from schedcore.trigger_types import default_registry

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
    """Rebuild a trigger from its ``to_dict()`` output.

    ``data["type"]`` selects among the registered trigger types (the built-in ``at``,
    ``interval`` and ``cron``, and those of plugins: see :mod:`schedcore.trigger_types`); an
    unregistered name is a ValidationError saying that its plugin may be missing.
    """
    if not isinstance(data, Mapping):
        raise ValidationError("trigger", data, "expected a dict with a 'type' key")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ValidationError("trigger.type", kind, "expected the name of a trigger type, such as 'cron'")
    registry = default_registry()
    ttype = registry.get(kind)
    if ttype is None:
        raise ValidationError("trigger.type", kind, registry.missing(kind))
    fields = {k: v for k, v in data.items() if k != "type"}
    try:
        trigger: Trigger = ttype.build(fields)
    except ValidationError:
        raise
    except Exception as exc:  # a plugin's loader on bad data: still one clear error, never a crash
        raise ValidationError(
            "trigger", dict(data), f"not a valid {kind} trigger ({type(exc).__name__}: {exc})"
        ) from None
    if type(trigger) is not ttype.cls and not isinstance(trigger, ttype.cls):
        raise ValidationError("trigger.type", kind, f"its loader returned a {type(trigger).__name__}")
    return trigger


from schedcore._cron import Cron  # noqa: E402  (Cron lives with its DST machinery)
