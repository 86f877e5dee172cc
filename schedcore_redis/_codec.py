"""How schedules, index entries and run records are written as Redis strings."""

from __future__ import annotations

import functools
import json
from datetime import datetime
from json.encoder import encode_basestring_ascii as _json_str  # json.dumps's own string encoder
from typing import Any

import attrs

from schedcore._time import from_ms, to_ms
from schedcore.exceptions import CorruptScheduleData
from schedcore.model import RetryPolicy, Schedule
from schedcore.records import Outcome, Pending, PendingKind, RunRecord, text_or_none

__all__ = [
    "decode_fire",
    "decode_parked",
    "decode_record",
    "decode_schedule",
    "encode_fire",
    "encode_parked",
    "encode_record",
    "encode_schedule",
    "member",
    "member_sid",
    "outcome_patch",
    "parse_member",
    "split_state",
    "text",
]

KIND_CHAR = {
    PendingKind.FIRE: "f",
    PendingKind.RETRY: "r",
    PendingKind.MANUAL: "m",
    PendingKind.BACKFILL: "b",
    PendingKind.BUFFERED: "u",
}
CHAR_KIND = {v: k for k, v in KIND_CHAR.items()}


def text(value: Any) -> str:
    """A reply value as text, whatever the client's ``decode_responses``."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _int(value: Any) -> int:
    return int(float(text(value)))


def member(schedule_id: str, entry: Pending) -> str:
    """The index member of ``entry``: the bare id for the fire entry, ``id|k|nominal|attempt`` otherwise."""
    if entry.kind is PendingKind.FIRE:
        return schedule_id
    return f"{schedule_id}|{KIND_CHAR[entry.kind]}|{to_ms(entry.nominal)}|{entry.attempt}"


def member_sid(value: str) -> str:
    """The schedule id of an index member."""
    return value.split("|", 1)[0]


def parse_member(value: str, due: Any) -> Pending:
    """The non-fire entry named by ``value`` due at ``due`` (ms)."""
    _, kind, nominal, attempt = value.split("|")
    return Pending(kind=CHAR_KIND[kind], nominal=from_ms(int(nominal)), due=from_ms(_int(due)), attempt=int(attempt))


def encode_fire(entry: Pending) -> str:
    """The fire entry as stored: ``nominal,due,attempt``, or just ``nominal`` when due is
    nominal and attempt is 1 (the common case)."""
    nominal, due = to_ms(entry.nominal), to_ms(entry.due)
    if due == nominal and entry.attempt == 1:
        return str(nominal)
    return f"{nominal},{due},{entry.attempt}"


def decode_fire(value: Any) -> Pending:
    """Reverse :func:`encode_fire` (memoised: the claims of a batch that fell due together
    mostly carry the same text, and a Pending is immutable)."""
    return _decode_fire(text(value))


@functools.lru_cache(maxsize=4096)
def _decode_fire(value: str) -> Pending:
    parts = value.split(",")
    if len(parts) == 1:
        parts += [parts[0], "1"]
    nominal, due, attempt = parts
    return Pending(kind=PendingKind.FIRE, nominal=from_ms(int(nominal)), due=from_ms(int(due)), attempt=int(attempt))


def encode_parked(entry: Pending) -> str:
    """The ``p`` field: ``kind|nominal|due|attempt``."""
    return f"{KIND_CHAR[entry.kind]}|{to_ms(entry.nominal)}|{to_ms(entry.due)}|{entry.attempt}"


def decode_parked(value: Any) -> Pending:
    """Reverse :func:`encode_parked`."""
    kind, nominal, due, attempt = text(value).split("|")
    return Pending(kind=CHAR_KIND[kind], nominal=from_ms(int(nominal)), due=from_ms(int(due)), attempt=int(attempt))


_RETRY_DEFAULTS = RetryPolicy().to_dict()

# Short names of the definition's own keys (never of user data: args, kwargs, meta and
# executor options are stored as given). Full names are read too (hand-written data).
_SHORT = {
    "task": "k",
    "trigger": "t",
    "args": "a",
    "kwargs": "w",
    "queue": "q",
    "retry": "r",
    "catchup": "c",
    "catchup_limit": "l",
    "misfire_grace": "g",
    "overlap": "o",
    "jitter": "j",
    "start_at": "s",
    "end_at": "e",
    "max_runs": "n",
    "paused": "p",
    "meta": "m",
    "executor_options": "x",
    "serializer": "z",
    "payload": "b",
}
_SHORT_RETRY = {"max_attempts": "m", "initial_delay": "d", "factor": "f", "max_delay": "x", "jitter": "j"}
_SHORT_TRIGGER = {"type": "y"}
_LONG = {v: k for k, v in _SHORT.items()}
_LONG_RETRY = {v: k for k, v in _SHORT_RETRY.items()}
_LONG_TRIGGER = {v: k for k, v in _SHORT_TRIGGER.items()}


def _rename(data: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    return {names.get(k, k): v for k, v in data.items()}


def encode_schedule(schedule: Schedule) -> str:
    """The definition as stored: its schema version, then compact JSON with short key names,
    without the id (the field name holds it) and without default values (also default
    retry settings): ``1{"k":"app.jobs:nightly","t":{"y":"cron","expr":"0 3 * * *"}}``."""
    data = schedule.to_dict(compact=True)
    del data["id"]
    version = data.pop("schema")
    if isinstance(data.get("retry"), dict):
        retry = {k: v for k, v in data["retry"].items() if _RETRY_DEFAULTS.get(k) != v}
        data["retry"] = _rename(retry, _SHORT_RETRY)
    if isinstance(data.get("trigger"), dict):
        data["trigger"] = _rename(data["trigger"], _SHORT_TRIGGER)
    return f"{version}{json.dumps(_rename(data, _SHORT), separators=(',', ':'))}"


def decode_schedule(schedule_id: str, raw: Any) -> Schedule:
    """The schedule stored as ``raw``; CorruptScheduleData when it cannot be read.

    Decoded schedules are cached by (id, stored text): schedules are immutable and
    validating one costs far more than a claim's share of the round trip.
    """
    if raw is None:
        raise CorruptScheduleData(schedule_id, "no definition stored")
    return _decode_cached(schedule_id, text(raw))


@functools.lru_cache(maxsize=16384)
def _decode_cached(schedule_id: str, raw: str) -> Schedule:
    version, brace, body = raw.partition("{")
    if not brace or (version and not version.isdigit()):
        raise CorruptScheduleData(schedule_id, "definition is not '<schema version>{json}'")
    try:
        data = json.loads(brace + body)
    except ValueError as exc:
        raise CorruptScheduleData(schedule_id, f"definition is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CorruptScheduleData(schedule_id, f"definition is a JSON {type(data).__name__}, not an object")
    data = _rename(data, _LONG)
    if isinstance(data.get("retry"), dict):
        data["retry"] = _rename(data["retry"], _LONG_RETRY)
    if isinstance(data.get("trigger"), dict):
        data["trigger"] = _rename(data["trigger"], _LONG_TRIGGER)
    data.setdefault("id", schedule_id)
    if version:
        data.setdefault("schema", int(version))
    try:
        schedule = Schedule.from_dict(data)
    except Exception as exc:  # ValidationError, TypeError from a foreign shape...
        raise CorruptScheduleData(schedule_id, f"{type(exc).__name__}: {exc}") from None
    if schedule.id != schedule_id:
        raise CorruptScheduleData(schedule_id, f"definition carries another id {schedule.id!r}")
    return schedule


_SCHEDULE_FIELDS = tuple(a.name for a in attrs.fields(Schedule))


def with_id(schedule: Schedule, schedule_id: str) -> Schedule:
    """``schedule`` under another (already validated) id, without validating it again.

    For claims of schedules that share a definition but for the id: ``copy.copy`` of a
    slotted attrs class goes through pickling's generic state protocol, several times
    slower than setting the slots directly.
    """
    copy = object.__new__(Schedule)
    setter = object.__setattr__
    for name in _SCHEDULE_FIELDS:
        setter(copy, name, getattr(schedule, name))
    setter(copy, "id", schedule_id)
    return copy


def split_state(schedule_id: str, value: Any) -> tuple[str, str, str, str]:
    """``(f, n, p, definition)`` of a ``sched`` hash value; CorruptScheduleData if malformed."""
    head, newline, definition = text(value).partition("\n")
    parts = head.split(";")
    if not newline or len(parts) != 3:
        raise CorruptScheduleData(schedule_id, "stored state is not in the schedcore layout")
    return parts[0], parts[1], parts[2], definition


def encode_record(record: RunRecord) -> str:
    """A history line: compact JSON, run id first, instants as ms epochs, nulls left out.

    ``{"i": run id, "k": kind, "n": nominal, "d": due (if not nominal), "a": attempt,
    "s": status, "t": dispatched at, "f": finished at, "e": error, "r": retry at, "o": note,
    "tb": traceback}`` -- about half the size of :meth:`RunRecord.to_dict` JSON (a failed
    run's traceback, up to 4 kB, is only there for failures; records written before it
    existed have none). Written piece by piece: one
    line per dispatched run is on the commit's hot path, and this is the very text
    ``json.dumps`` makes of that dict (compact separators, ASCII), in a fraction of the time.
    """
    nominal = to_ms(record.nominal)
    parts = [f'{{"i":{_json_str(record.run_id)},"k":"{KIND_CHAR[record.kind]}","n":{nominal}']
    if record.due != record.nominal:
        parts.append(f',"d":{to_ms(record.due)}')
    parts.append(f',"a":{int(record.attempt)},"s":"{record.status.value}"')
    for key, instant in (("t", record.dispatched_at), ("f", record.finished_at), ("r", record.retry_at)):
        if instant is not None:
            parts.append(f',"{key}":{to_ms(instant)}')
    if record.error is not None:
        parts.append(f',"e":{_json_str(record.error)}')
    if record.note is not None:
        parts.append(f',"o":{_json_str(record.note)}')
    if record.traceback is not None:
        parts.append(f',"tb":{_json_str(record.traceback)}')
    parts.append("}")
    return "".join(parts)


def decode_record(raw: Any) -> RunRecord:
    """Reverse :func:`encode_record` (also reads what the Lua scripts re-encode, and full
    :meth:`RunRecord.to_dict` JSON). A traceback that is not text is ignored and a long one
    trimmed (by RunRecord): the record itself is still read."""
    data = json.loads(raw)
    if "i" not in data:
        return RunRecord.from_dict(data)

    def instant(key: str) -> datetime | None:
        value = data.get(key)
        return None if value is None else from_ms(int(value))

    nominal = from_ms(int(data["n"]))
    return RunRecord(
        run_id=data["i"],
        kind=CHAR_KIND[data["k"]],
        nominal=nominal,
        due=instant("d") or nominal,
        attempt=int(data["a"]),
        status=data["s"],
        dispatched_at=instant("t"),
        finished_at=instant("f"),
        error=data.get("e"),
        retry_at=instant("r"),
        note=data.get("o"),
        traceback=text_or_none(data.get("tb")),
    )


def outcome_patch(outcome: Outcome, retry: Pending | None) -> str:
    """The fields ``record_outcome`` sets on the run's history record (compact names), as JSON."""
    patch: dict[str, Any] = {
        "s": outcome.status.value,
        "f": to_ms(outcome.finished_at),
        "e": outcome.error,
        "r": to_ms(retry.due) if retry is not None else None,
    }
    if outcome.traceback is not None:  # only failures have one: nothing more to send otherwise
        patch["tb"] = outcome.traceback
    return json.dumps(patch, separators=(",", ":"))
