"""Schedules and retry policies: immutable, validated on construction, JSON round-trippable."""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any

import attrs

from schedcore._cron import Cron
from schedcore._time import iso, parse_instant, require_aware, to_timedelta, trunc_ms
from schedcore._validate import check_id, check_json, check_queue, task_reference
from schedcore.exceptions import ValidationError
from schedcore.protocols import Trigger
from schedcore.signing import open_payload, require_key, seal_payload

__all__ = ["SCHEMA_VERSION", "Catchup", "Conflict", "Overlap", "RetryPolicy", "Schedule", "Serializer"]

SCHEMA_VERSION = 1


class Catchup(str, Enum):
    """What to do with occurrences missed by more than ``misfire_grace`` (downtime, pauses of the loop)."""

    SKIP = "skip"  #: drop them; fire again at the next future occurrence
    LATEST = "latest"  #: one run for the newest missed occurrence
    ALL = "all"  #: every missed occurrence, oldest first, up to ``catchup_limit``


class Overlap(str, Enum):
    """What to do when an occurrence comes while a previous run of the schedule is still running."""

    ALLOW = "allow"  #: start it anyway
    SKIP = "skip"  #: skip it (recorded in the history)
    BUFFER_ONE = "buffer_one"  #: hold (at most) one, start it when the running run finishes


class Conflict(str, Enum):
    """What ``add`` does when the id is already taken."""

    REPLACE = "replace"
    KEEP = "keep"
    ERROR = "error"


class Serializer(str, Enum):
    """How ``args``/``kwargs`` are stored: JSON (default, portable) or pickle (opt-in, signed).

    Pickle needs a signing key (:mod:`schedcore.signing`): whoever holds it can make any
    process reading the store run code.
    """

    JSON = "json"
    PICKLE = "pickle"


def _enum(cls: type[Enum], field: str) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, cls):
            return value
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(repr(m.value) for m in cls)
            raise ValidationError(field, value, f"expected one of {choices}") from None

    return convert


def _optional_instant(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = parse_instant(value, field)
    return trunc_ms(require_aware(value, field))


# mypy's attrs plugin only understands named converters, hence one small function per field.
def _retry_initial_delay(value: Any) -> timedelta:
    return to_timedelta(value, "retry.initial_delay")


def _retry_max_delay(value: Any) -> timedelta:
    return to_timedelta(value, "retry.max_delay")


def _retry_jitter(value: Any) -> timedelta:
    return to_timedelta(value, "retry.jitter")


def _misfire_grace(value: Any) -> timedelta:
    return to_timedelta(value, "misfire_grace")


def _jitter(value: Any) -> timedelta:
    return to_timedelta(value, "jitter")


def _start_at(value: Any) -> datetime | None:
    return _optional_instant(value, "start_at")


def _end_at(value: Any) -> datetime | None:
    return _optional_instant(value, "end_at")


def _catchup(value: Any) -> Catchup:
    return _enum(Catchup, "catchup")(value)  # type: ignore[no-any-return]


def _overlap(value: Any) -> Overlap:
    return _enum(Overlap, "overlap")(value)  # type: ignore[no-any-return]


def _serializer(value: Any) -> Serializer:
    return _enum(Serializer, "serializer")(value)  # type: ignore[no-any-return]


def _kwargs(value: Any) -> dict[str, Any]:
    return _dict(value, "kwargs")


def _meta(value: Any) -> dict[str, Any]:
    return _dict(value, "meta")


def _executor_options(value: Any) -> dict[str, Any]:
    return _dict(value, "executor_options")


def _unit_fraction(value: str) -> float:
    """A deterministic number in [0, 1) derived from ``value`` (for jitter)."""
    digest = hashlib.sha256(value.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How failed runs are retried: exponential backoff with a cap and deterministic jitter.

    ``max_attempts`` counts the first run: ``RetryPolicy(max_attempts=3)`` runs a task at
    most three times. The delay before attempt ``n + 1`` is
    ``min(initial_delay * factor ** (n - 1), max_delay)`` plus up to ``jitter``, the jitter
    being a fixed function of the run (the same run always waits the same time).
    """

    max_attempts: int = attrs.field(default=1)
    initial_delay: timedelta = attrs.field(default=timedelta(seconds=10), converter=_retry_initial_delay)
    factor: float = attrs.field(default=2.0)
    max_delay: timedelta = attrs.field(default=timedelta(hours=1), converter=_retry_max_delay)
    jitter: timedelta = attrs.field(default=timedelta(0), converter=_retry_jitter)

    @max_attempts.validator
    def _check_attempts(self, _: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value > 1000:
            raise ValidationError("retry.max_attempts", value, "must be an integer from 1 to 1000")

    @factor.validator
    def _check_factor(self, _: attrs.Attribute[float], value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1.0 <= value <= 100.0:
            raise ValidationError("retry.factor", value, "must be a number from 1 to 100")

    def can_retry(self, attempt: int) -> bool:
        """True when a failure of attempt number ``attempt`` may be followed by another."""
        return attempt < self.max_attempts

    def delay(self, attempt: int, key: str) -> timedelta:
        """Wait after a failure of attempt ``attempt`` (1-based) before the next one."""
        base = self.initial_delay.total_seconds() * self.factor ** max(attempt - 1, 0)
        seconds = min(base, self.max_delay.total_seconds())
        seconds += self.jitter.total_seconds() * _unit_fraction(f"retry:{key}")
        return timedelta(seconds=seconds)

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_attempts": self.max_attempts,
            "initial_delay": self.initial_delay.total_seconds(),
            "factor": self.factor,
            "max_delay": self.max_delay.total_seconds(),
            "jitter": self.jitter.total_seconds(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RetryPolicy:
        _no_unknown_keys(data, {"max_attempts", "initial_delay", "factor", "max_delay", "jitter"}, "retry")
        return cls(**data)


def _retry(value: Any) -> RetryPolicy:
    if value is None:
        return RetryPolicy()
    if isinstance(value, RetryPolicy):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return RetryPolicy(max_attempts=value)
    if isinstance(value, Mapping):
        return RetryPolicy.from_dict(value)
    raise ValidationError("retry", value, "expected a RetryPolicy")


def _trigger(value: Any) -> Trigger:
    from schedcore.triggers import trigger_from_dict

    if isinstance(value, Mapping):
        return trigger_from_dict(value)
    if not isinstance(value, Trigger):
        raise ValidationError("trigger", value, "expected a trigger such as Cron(...), Interval(...) or At(...)")
    return value


def _args(value: Any) -> tuple[Any, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(value)
    raise ValidationError("args", value, "expected a list or tuple")


def _dict(value: Any, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValidationError(field, value, "expected a dict with string keys")
    return dict(value)


@attrs.frozen(kw_only=True)
class Schedule:
    """One scheduled task: what to run, when, and the policies around it.

    Immutable and validated on construction; every invalid field raises
    :class:`~schedcore.exceptions.ValidationError` naming the field and the value.
    """

    id: str = attrs.field(converter=check_id)
    task: str = attrs.field(converter=task_reference)
    trigger: Trigger = attrs.field(converter=_trigger)
    args: tuple[Any, ...] = attrs.field(default=(), converter=_args)
    kwargs: dict[str, Any] = attrs.field(factory=dict, converter=_kwargs)
    queue: str = attrs.field(default="default", converter=check_queue)
    retry: RetryPolicy = attrs.field(factory=RetryPolicy, converter=_retry)
    catchup: Catchup = attrs.field(default=Catchup.LATEST, converter=_catchup)
    catchup_limit: int = attrs.field(default=100)
    misfire_grace: timedelta = attrs.field(default=timedelta(seconds=60), converter=_misfire_grace)
    overlap: Overlap = attrs.field(default=Overlap.ALLOW, converter=_overlap)
    jitter: timedelta = attrs.field(default=timedelta(0), converter=_jitter)
    start_at: datetime | None = attrs.field(default=None, converter=_start_at)
    end_at: datetime | None = attrs.field(default=None, converter=_end_at)
    max_runs: int | None = attrs.field(default=None)
    paused: bool = attrs.field(default=False)
    meta: dict[str, Any] = attrs.field(factory=dict, converter=_meta)
    executor_options: dict[str, Any] = attrs.field(factory=dict, converter=_executor_options)
    serializer: Serializer = attrs.field(default=Serializer.JSON, converter=_serializer)

    def __attrs_post_init__(self) -> None:
        if isinstance(self.trigger, Cron):
            # H fields hash the schedule's id; the seed is kept with the trigger from now on.
            object.__setattr__(self, "trigger", self.trigger.with_seed(self.id))
        if (
            isinstance(self.catchup_limit, bool)
            or not isinstance(self.catchup_limit, int)
            or not (1 <= self.catchup_limit <= 100_000)
        ):
            raise ValidationError("catchup_limit", self.catchup_limit, "must be an integer from 1 to 100000")
        if self.max_runs is not None and (
            isinstance(self.max_runs, bool) or not isinstance(self.max_runs, int) or self.max_runs < 1
        ):
            raise ValidationError("max_runs", self.max_runs, "must be a positive integer or None")
        if not isinstance(self.paused, bool):
            raise ValidationError("paused", self.paused, "must be true or false")
        if self.start_at and self.end_at and self.end_at <= self.start_at:
            raise ValidationError("end_at", self.end_at, "must be after start_at")
        check_json(self.meta, "meta")
        check_json(self.executor_options, "executor_options")
        if self.serializer is Serializer.JSON:
            check_json(list(self.args), "args")
            check_json(self.kwargs, "kwargs")
        else:
            require_key("serializer")  # nothing pickled is stored or read without the operator's key
            try:
                pickle.dumps((self.args, self.kwargs))
            except Exception as exc:
                raise ValidationError("args", self.args, f"cannot be pickled ({exc})") from None

    def same_timing(self, other: Schedule) -> bool:
        """True when ``other`` fires at exactly the same instants (so a replace keeps the fire entry)."""
        return (
            self.trigger == other.trigger
            and self.start_at == other.start_at
            and self.end_at == other.end_at
            and self.jitter == other.jitter
        )

    def evolve(self, **changes: Any) -> Schedule:
        """A copy with ``changes`` applied (validated like a new schedule)."""
        return attrs.evolve(self, **changes)

    def to_dict(self, *, compact: bool = False) -> dict[str, Any]:
        """A JSON-safe dict carrying the schema version; :meth:`from_dict` reverses it.

        ``compact=True`` leaves out fields that hold their default value (stores use it
        to keep each schedule small); :meth:`from_dict` fills them back in.
        """
        data: dict[str, Any] = {
            "schema": SCHEMA_VERSION,
            "id": self.id,
            "task": self.task,
            "trigger": self.trigger.to_dict(),
            "queue": self.queue,
            "retry": self.retry.to_dict(),
            "catchup": self.catchup.value,
            "catchup_limit": self.catchup_limit,
            "misfire_grace": self.misfire_grace.total_seconds(),
            "overlap": self.overlap.value,
            "jitter": self.jitter.total_seconds(),
            "start_at": iso(self.start_at) if self.start_at else None,
            "end_at": iso(self.end_at) if self.end_at else None,
            "max_runs": self.max_runs,
            "paused": self.paused,
            "meta": self.meta,
            "executor_options": self.executor_options,
            "serializer": self.serializer.value,
        }
        if self.serializer is Serializer.JSON:
            data["args"] = list(self.args)
            data["kwargs"] = self.kwargs
        else:
            data["payload"] = seal_payload(self.id, self.args, self.kwargs)
        if compact:
            defaults = _default_dict()
            data = {k: v for k, v in data.items() if k in _ALWAYS_KEPT or defaults.get(k, _MISSING) != v}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schedule:
        """Rebuild a schedule from :meth:`to_dict` output; refuses unknown keys and schema versions."""
        if not isinstance(data, Mapping):
            raise ValidationError("schedule", data, "expected a dict")
        version = data.get("schema")
        if version != SCHEMA_VERSION:
            raise ValidationError(
                "schema", version, f"unsupported schedule schema (this version reads {SCHEMA_VERSION})"
            )
        fields = dict(data)
        del fields["schema"]
        allowed = {a.name for a in attrs.fields(cls)} | {"payload"}
        _no_unknown_keys(fields, allowed, "schedule")
        if "payload" in fields:
            if fields.get("serializer") != Serializer.PICKLE.value:
                raise ValidationError("payload", "...", "a pickled payload needs serializer='pickle'")
            # Verified against the operator's key and this id before anything is unpickled.
            fields["args"], fields["kwargs"] = open_payload(check_id(fields.get("id")), fields.pop("payload"))
        return cls(**fields)


def _no_unknown_keys(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValidationError(
            f"{where}.{unknown[0]}", data[unknown[0]], f"unknown key (allowed: {', '.join(sorted(allowed))})"
        )


_MISSING = object()
_ALWAYS_KEPT = frozenset({"schema", "id", "task", "trigger"})


def _default_dict() -> dict[str, Any]:
    """to_dict() of a schedule whose every optional field holds its default."""
    global _DEFAULTS
    if _DEFAULTS is None:
        from schedcore.triggers import At

        _DEFAULTS = Schedule(id="x", task="x:x", trigger=At(datetime(2000, 1, 1, tzinfo=timezone.utc))).to_dict()
    return _DEFAULTS


_DEFAULTS: dict[str, Any] | None = None
