"""Boundary checks shared by every :class:`~schedcore.protocols.Store` implementation.

A store validates its arguments before it touches anything, so that bad input changes
nothing; these helpers keep the wording of those errors the same in every store (the
memory and Redis stores use them, and third-party stores may too).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from schedcore._time import require_aware, to_ms
from schedcore.exceptions import ValidationError
from schedcore.model import Conflict, Schedule
from schedcore.records import Commit, Outcome, Pending, PendingKind, RunRecord, RunStatus

if TYPE_CHECKING:
    from schedcore.protocols import Store

__all__ = [
    "DEAD_BEATS_KEPT",
    "check_add_items",
    "check_claim",
    "check_commit",
    "check_conflict",
    "check_extra_entry",
    "check_fire_entry",
    "check_heartbeat",
    "check_limit",
    "check_outcomes",
    "finished_record",
    "log_taken_back",
    "notify",
    "record_outcomes",
    "store_warnings",
]

_MS = timedelta(milliseconds=1)

#: How long a store keeps an expired heartbeat. Until a claim takes back the claims of the
#: lapsed owner (and drops its beat: see ``Store.claim_due``), the beat is the evidence that
#: the owner was alive and stopped; ``heartbeat`` drops beats that expired this long ago, so
#: owners of restarted schedulers do not pile up where nobody claims.
DEAD_BEATS_KEPT = timedelta(hours=1)


def check_conflict(value: object) -> Conflict:
    """The :class:`Conflict` named by ``value`` (an enum member or its string)."""
    try:
        return Conflict(value)
    except ValueError:
        raise ValidationError("conflict", value, "expected 'replace', 'keep' or 'error'") from None


def check_limit(limit: object) -> None:
    """A page or batch size: an integer of at least 1."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValidationError("limit", limit, "must be an integer >= 1")


def check_fire_entry(entry: Pending | None, field: str) -> None:
    """None, or a :class:`Pending` of kind ``fire`` (a schedule's regular occurrence)."""
    if entry is None:
        return
    if not isinstance(entry, Pending):
        raise ValidationError(field, entry, "expected a Pending entry or None")
    if entry.kind is not PendingKind.FIRE:
        raise ValidationError(field, entry, "a fire entry must be of kind 'fire'")


def check_extra_entry(entry: Pending, field: str) -> None:
    """A :class:`Pending` of any kind but ``fire`` (retry, manual, backfill, buffered)."""
    if not isinstance(entry, Pending):
        raise ValidationError(field, entry, "expected a Pending entry")
    if entry.kind is PendingKind.FIRE:
        raise ValidationError(field, entry, "must not be of kind 'fire' (a schedule has one fire entry)")


def _pairs(items: object, pair: str, article: str) -> list[tuple[Any, Any]]:
    """``items`` as 2-tuples: a batch argument must be a sequence (not a string) of pairs."""
    if not isinstance(items, Sequence) or isinstance(items, str):
        raise ValidationError("items", items, f"expected a sequence of {pair} pairs")
    out: list[tuple[Any, Any]] = []  # unchecked: the caller checks each half
    for item in items:
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise ValidationError("items", item, f"expected {article} {pair} pair")
        out.append((item[0], item[1]))
    return out


def check_add_items(items: object) -> list[tuple[Schedule, Pending | None]]:
    """``add_many``'s items: ``(Schedule, fire entry or None)`` pairs whose ids are all distinct.

    A repeated id is refused (naming it) rather than applied twice: within one batch the
    second would silently replace the first, which is never what the caller meant.
    """
    out: list[tuple[Schedule, Pending | None]] = []
    seen: set[str] = set()
    for schedule, first in _pairs(items, "(schedule, first)", "a"):
        if not isinstance(schedule, Schedule):
            raise ValidationError("schedule", schedule, "expected a Schedule")
        check_fire_entry(first, "first")
        if schedule.id in seen:
            raise ValidationError("id", schedule.id, "appears more than once in one batch")
        seen.add(schedule.id)
        out.append((schedule, first))
    return out


def check_claim(now: datetime, limit: object, lease: object, owner: object) -> tuple[int, int]:
    """Validate ``claim_due``'s arguments; return ``(now_ms, lease_expires_ms)``.

    The lease is rounded up to whole milliseconds (and is at least one), so that a claim
    never expires before the lease it was asked for.
    """
    now_ms = to_ms(require_aware(now, "now"))
    check_limit(limit)
    if not isinstance(lease, timedelta) or lease <= timedelta(0):
        raise ValidationError("lease", lease, "must be a positive timedelta")
    if not isinstance(owner, str):
        raise ValidationError("owner", owner, "must be a string")
    return now_ms, now_ms + max(1, -(-lease // _MS))


def check_commit(item: object) -> Commit:
    """One item of ``commit``: a :class:`Commit` whose entries are of the right kinds."""
    if not isinstance(item, Commit):
        raise ValidationError("commits", item, "expected Commit items")
    check_fire_entry(item.next_fire, "next_fire")
    if item.park is not None:
        check_extra_entry(item.park, "park")
    if item.runs_started < 0:
        raise ValidationError("runs_started", item.runs_started, "must not be negative")
    return item


def check_outcomes(items: object) -> list[tuple[Outcome, Pending | None]]:
    """``record_outcomes``' items: ``(Outcome, retry entry or None)`` pairs (checked before
    anything is written, so one bad item changes nothing)."""
    out: list[tuple[Outcome, Pending | None]] = []
    for outcome, retry in _pairs(items, "(outcome, retry)", "an"):
        if not isinstance(outcome, Outcome):
            raise ValidationError("outcome", outcome, "expected an Outcome")
        if retry is not None:
            check_extra_entry(retry, "retry")
        out.append((outcome, retry))
    return out


def record_outcomes(store: Store, items: Sequence[tuple[Outcome, Pending | None]]) -> list[bool]:
    """Record many outcomes: the store's optional ``record_outcomes`` (one transaction or
    round trip for the batch), else ``record_outcome`` for each item in order.

    The one place that knows the method is optional: the engine calls this, never the
    method itself. Returns one bool per item, as ``record_outcome`` would have.
    """
    checked = check_outcomes(items)  # all of them before the first is written
    batch = getattr(store, "record_outcomes", None)
    if callable(batch):
        return [bool(ok) for ok in batch(checked)]
    return [bool(store.record_outcome(outcome, retry)) for outcome, retry in checked]


def check_heartbeat(owner: object, info: object, ttl: object) -> None:
    """``heartbeat``'s arguments: a non-empty owner, a mapping of info, a positive TTL."""
    if not isinstance(owner, str) or not owner:
        raise ValidationError("owner", owner, "must be a non-empty string")
    if not isinstance(ttl, timedelta) or ttl <= timedelta(0):
        raise ValidationError("ttl", ttl, "must be a positive timedelta")
    if not isinstance(info, Mapping):
        raise ValidationError("info", info, "expected a mapping")


def notify(log: logging.Logger, callbacks: Iterable[Callable[[datetime], None]], dues: Sequence[datetime]) -> None:
    """Tell each watch callback each due instant; a failing callback is logged, never raised."""
    callbacks = list(callbacks)
    for due in dues:
        for callback in callbacks:
            try:
                callback(due)
            except Exception:
                log.exception("store watch callback %r failed", callback)


def log_taken_back(log: logging.Logger, owner: str, claims: int) -> None:
    """Log that ``claim_due`` took back the ``claims`` of ``owner``, whose heartbeat expired."""
    if claims:  # a scheduler that stopped cleanly holds none: nothing to say
        log.warning(
            "scheduler %s stopped beating (heartbeat expired): took back its %d claims before their leases end",
            owner,
            claims,
            extra={"event": "claims_taken_back", "owner": owner, "claims": claims},
        )


_log = logging.getLogger("schedcore.store")


def store_warnings(store: object) -> list[str]:
    """What ``store`` reports about its own configuration that can lose schedules (the optional
    ``Store.warnings()``: Redis says persistence off or an evicting memory policy), one
    sentence each. A store without the method has nothing to say; one that raises is logged
    and treated the same, so a status page never fails over a warning."""
    method = getattr(store, "warnings", None)
    if not callable(method):
        return []
    try:
        found = method()
    except Exception:
        _log.exception("%s.warnings() raised; no store warnings shown", type(store).__name__)
        return []
    return [str(w) for w in found] if isinstance(found, (list, tuple)) else []


def finished_record(record: RunRecord, outcome: Outcome, retry: Pending | None) -> RunRecord:
    """The history record of a dispatched run once its outcome is known (``retry``: the
    attempt the retry policy scheduled, if any) -- what every store writes in ``record_outcome``."""
    import attrs

    return attrs.evolve(
        record,
        status=RunStatus(outcome.status.value),
        finished_at=outcome.finished_at,
        error=outcome.error,
        traceback=outcome.traceback,
        retry_at=retry.due if retry is not None else None,
    )
