"""Small helpers for aware datetimes and millisecond epochs.

Stores keep instants as integer milliseconds since the Unix epoch; the public API
uses aware datetimes only. Naive datetimes are refused everywhere.
"""

from __future__ import annotations

import functools
import math
from datetime import datetime, timedelta, timezone
from typing import Any

from schedcore.exceptions import ValidationError

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def require_aware(value: Any, field: str) -> datetime:
    """Return ``value`` if it is an aware datetime, else raise ValidationError naming ``field``."""
    if not isinstance(value, datetime):
        raise ValidationError(field, value, "expected a timezone-aware datetime")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValidationError(
            field, value, "naive datetimes are ambiguous; attach a timezone (e.g. tzinfo=timezone.utc)"
        )
    return value


def to_utc(value: datetime) -> datetime:
    """Convert an aware datetime to UTC."""
    return value.astimezone(timezone.utc)


# The engine converts the same few instants over and over (every schedule of a batch that
# fires at one minute has the same nominal and due instants), so the conversions are memoised.


@functools.lru_cache(maxsize=4096)
def to_ms(value: datetime) -> int:
    """Milliseconds since the epoch, rounding toward the past."""
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


@functools.lru_cache(maxsize=4096)
def from_ms(ms: int) -> datetime:
    """Aware UTC datetime for a millisecond epoch."""
    return EPOCH + timedelta(milliseconds=ms)


def trunc_ms(value: datetime) -> datetime:
    """Aware UTC datetime truncated to whole milliseconds (what stores can keep)."""
    if type(value) is datetime and value.tzinfo is timezone.utc and not value.microsecond % 1000:
        return value  # already one: most values the engine passes around
    return from_ms(to_ms(value))


#: The longest duration any field accepts. Every duration is added to instants somewhere
#: (a next fire, a retry, a grace window), and a datetime ends in year 9999: a century keeps
#: each sum far inside that range, so no arithmetic downstream can overflow.
MAX_DURATION = timedelta(days=36_525)


def to_timedelta(value: Any, field: str, *, allow_zero: bool = True) -> timedelta:
    """Seconds (int/float) or a timedelta up to :data:`MAX_DURATION`; refuse negatives (and zero unless allowed)."""
    if isinstance(value, bool):
        raise ValidationError(field, value, "expected seconds or a timedelta")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValidationError(field, value, "must be a finite number of seconds")
        if value < 0 or (not allow_zero and value == 0):
            raise ValidationError(field, value, "must be positive" if not allow_zero else "must not be negative")
        if value > MAX_DURATION.total_seconds():
            raise ValidationError(field, value, f"must be at most 100 years ({MAX_DURATION.total_seconds():.0f} s)")
        value = timedelta(seconds=value)
    if not isinstance(value, timedelta):
        raise ValidationError(field, value, "expected seconds or a timedelta")
    if value < timedelta(0) or (not allow_zero and value == timedelta(0)):
        raise ValidationError(field, value, "must be positive" if not allow_zero else "must not be negative")
    if value > MAX_DURATION:
        raise ValidationError(field, value, f"must be at most 100 years ({MAX_DURATION.total_seconds():.0f} s)")
    return value


def parse_instant(text: str, field: str) -> datetime:
    """Parse an ISO-8601 instant with an offset ('Z' accepted); naive text is refused."""
    if not isinstance(text, str):
        raise ValidationError(field, text, "expected an ISO-8601 string")
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValidationError(field, text, "not an ISO-8601 date-time") from None
    return require_aware(value, field)


def iso(value: datetime) -> str:
    """ISO-8601 text of an aware datetime, with milliseconds only when needed."""
    if value.microsecond:
        return value.isoformat(timespec="milliseconds")
    return value.isoformat(timespec="seconds")
