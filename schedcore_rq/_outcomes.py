"""Keys, outcome payloads and the claim-once script shared by the executor and the worker side.

Every key of ours lives under ``{schedcore:<namespace>}:rq:`` on the RQ connection:

``handed:<job id>``   hand-off marker (string with a TTL): this run was handed over once
``outstanding``       sorted set of job ids handed over whose outcome is not known yet (score: hand-off ms)
``runs``              hash job id -> JSON run info (run id, schedule id, nominal ms, attempt)
``outcomes``          list of outcome payloads (JSON) waiting to be reported to the core
``processing``        list of payloads taken from ``outcomes`` and being reported (at-least-once)
``alive:<job id>``    worker-side liveness key (string with a short TTL) while a task runs
``quarantine``        hash of records set aside because they could not be decoded (see
                      :mod:`schedcore_rq._quarantine`)

An outcome enters ``outcomes`` only through :data:`FINISH_LUA`, which removes the job id
from ``outstanding`` and pushes the payload in one atomic step -- and only if the id was
still outstanding. Worker callbacks and the executor's reconciler both go through it, so
exactly one of them reports each job.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from json.encoder import encode_basestring_ascii
from typing import Any

import attrs

from schedcore._time import from_ms
from schedcore.records import Outcome, OutcomeStatus, text_or_none
from schedcore.tracebacks import trim_traceback

__all__ = [
    "FINISH_LUA",
    "META_KEY",
    "BadRecord",
    "Keys",
    "RunInfo",
    "error_text",
    "load_object",
    "outcome_from_payload",
    "payload",
]

#: The key of schedcore's entry in an RQ job's ``meta``.
META_KEY = "schedcore"

#: KEYS: outstanding, outcomes. ARGV: job id, payload, a key that must be missing ('' = none),
#: another key that must be missing ('' = none). Returns 1 when the payload was pushed, 0 when
#: the job was no longer outstanding (someone reported it already), <0 when a guard key exists.
FINISH_LUA = """
if ARGV[3] ~= '' and redis.call('EXISTS', ARGV[3]) == 1 then return -1 end
if ARGV[4] ~= '' and redis.call('EXISTS', ARGV[4]) == 1 then return -2 end
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('LPUSH', KEYS[2], ARGV[2])
  return 1
end
return 0
"""

_MAX_ERROR = 2000
# A sane attempt number (instants out of datetime's range fail in from_ms: OverflowError).
_ATTEMPT_LIMIT = 1_000_000_000


class BadRecord(ValueError):
    """A record read from Redis that cannot be decoded (the message says why)."""


def load_object(raw: bytes | str) -> dict[str, Any]:
    """``json.loads(raw)`` of a record read from Redis, which must be a JSON object.

    Every stored byte is hostile: whatever goes wrong (not UTF-8, not JSON, nested deeper
    than the parser's recursion limit, not an object) raises :class:`BadRecord`.
    """
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise BadRecord(f"not JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise BadRecord(f"a JSON {type(data).__name__}, not an object")
    return data


def _field(data: dict[str, Any], name: str, kind: type, *, optional: bool = False) -> Any:
    value: Any = data.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BadRecord(f"field {name!r} is {type(value).__name__}, not {kind.__name__}")
    return value


@attrs.frozen
class Keys:
    """The Redis keys of one schedcore namespace on the RQ connection."""

    namespace: str

    @property
    def prefix(self) -> str:
        return f"{{schedcore:{self.namespace}}}:rq:"

    @property
    def outstanding(self) -> str:
        return self.prefix + "outstanding"

    @property
    def runs(self) -> str:
        return self.prefix + "runs"

    @property
    def outcomes(self) -> str:
        return self.prefix + "outcomes"

    @property
    def processing(self) -> str:
        return self.prefix + "processing"

    @property
    def handed_prefix(self) -> str:
        return self.prefix + "handed:"

    def handed(self, job_id: str) -> str:
        return self.handed_prefix + job_id

    def alive(self, job_id: str) -> str:
        return self.prefix + "alive:" + job_id

    def template(self, digest: str) -> str:
        return self.prefix + "template:" + digest

    @property
    def quarantine(self) -> str:
        return self.prefix + "quarantine"


@attrs.frozen(kw_only=True)
class RunInfo:
    """What the executor needs to know about a handed-over run to report its outcome."""

    run_id: str
    schedule_id: str
    nominal_ms: int
    attempt: int

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.run_id, "sid": self.schedule_id, "nominal": self.nominal_ms, "attempt": self.attempt}

    def to_json(self) -> str:
        """``json.dumps(self.to_dict(), separators=(",", ":"))``, written directly: the same
        text in a fraction of the time (one per handed-over run)."""
        return (
            f'{{"run":{encode_basestring_ascii(self.run_id)},"sid":{encode_basestring_ascii(self.schedule_id)},'
            f'"nominal":{int(self.nominal_ms)},"attempt":{int(self.attempt)}}}'
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunInfo:
        """The run info of a decoded record; :class:`BadRecord` when a field is missing or of the wrong type."""
        attempt = _field(data, "attempt", int)
        if not 0 <= attempt <= _ATTEMPT_LIMIT:
            raise BadRecord("field 'attempt' is out of range")
        return cls(
            run_id=_field(data, "run", str),
            schedule_id=_field(data, "sid", str),
            nominal_ms=_field(data, "nominal", int),
            attempt=attempt,
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> RunInfo:
        """The run info stored in the ``runs`` hash; :class:`BadRecord` when it is not one."""
        return cls.from_dict(load_object(raw))


def now_ms() -> int:
    return int(time.time() * 1000)


def error_text(exc_type: Any, exc_value: Any) -> str:
    """``"ExceptionType: message"``, bounded in length."""
    name = getattr(exc_type, "__name__", None) or type(exc_value).__name__
    message = str(exc_value) if exc_value is not None else ""
    text = f"{name}: {message}" if message else name
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 3] + "..."


def payload(
    job_id: str,
    info: RunInfo,
    status: OutcomeStatus,
    *,
    error: str | None = None,
    traceback: str | None = None,
    started_ms: int | None = None,
    finished_ms: int | None = None,
) -> str:
    """The JSON text of one outcome, as pushed to the ``outcomes`` list (``tb``, the trimmed
    traceback, only when there is one)."""
    data = info.to_dict()
    data.update(
        {
            "job": job_id,
            "status": status.value,
            "error": error,
            "started": started_ms,
            "finished": finished_ms if finished_ms is not None else now_ms(),
        }
    )
    if traceback is not None:
        data["tb"] = trim_traceback(traceback)
    return json.dumps(data, separators=(",", ":"))


def outcome_from_payload(raw: bytes | str) -> tuple[str, Outcome]:
    """Decode a payload into ``(job id, Outcome)``; :class:`BadRecord` when malformed in any way
    -- but for its traceback, which is only ignored when it is not text (and trimmed when long):
    the outcome itself still counts."""
    data = load_object(raw)
    job_id = _field(data, "job", str)
    info = RunInfo.from_dict(data)
    status = _field(data, "status", str)
    try:
        outcome_status = OutcomeStatus(status)
    except ValueError:
        raise BadRecord(f"unknown status {status[:40]!r}") from None
    started = _field(data, "started", int, optional=True)
    error = _field(data, "error", str, optional=True)
    try:
        outcome = Outcome(
            run_id=info.run_id,
            schedule_id=info.schedule_id,
            nominal=from_ms(info.nominal_ms),
            attempt=info.attempt,
            status=outcome_status,
            finished_at=from_ms(_field(data, "finished", int)),
            started_at=from_ms(started) if started is not None else None,
            error=error,
            traceback=text_or_none(data.get("tb")),
        )
    except (ValueError, TypeError, OverflowError) as exc:  # a datetime out of range...
        raise BadRecord(f"{type(exc).__name__}: {str(exc)[:200]}") from None
    return job_id, outcome


def ms_of(value: datetime | None) -> int | None:
    """Milliseconds since the epoch of an RQ timestamp (naive UTC or aware), or None."""
    if value is None:
        return None
    if value.tzinfo is None:
        from datetime import timezone

        value = value.replace(tzinfo=timezone.utc)
    return int(value.timestamp() * 1000)
