"""Small builders for schedules, index entries, records and commits used by tests.

Everything is relative to :data:`T0`, a fixed aware UTC instant: tests pass time
explicitly (``at(90)`` is ``T0 + 90 s``) and never sleep.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from schedcore.model import Schedule
from schedcore.records import (
    Claim,
    Commit,
    Outcome,
    OutcomeStatus,
    Pending,
    PendingKind,
    RunRecord,
    RunStatus,
    make_run_id,
)
from schedcore.triggers import Interval

__all__ = [
    "NOOP",
    "T0",
    "at",
    "commit_for",
    "dispatched_record",
    "entry",
    "fire_entry",
    "make_schedule",
    "outcome_for",
    "run_id",
    "skipped_record",
]

#: The reference instant of the tests.
T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
#: A task reference every test schedule can use.
NOOP = "schedcore.testing.tasks:noop"


def at(seconds: float) -> datetime:
    """``T0 + seconds``."""
    return T0 + timedelta(seconds=seconds)


def make_schedule(id: str = "s1", **changes: Any) -> Schedule:
    """A valid schedule (noop task, every minute from T0) with ``changes`` applied."""
    fields: dict[str, Any] = {"id": id, "task": NOOP, "trigger": Interval(60, start=T0)}
    fields.update(changes)
    return Schedule(**fields)


def entry(
    kind: PendingKind | str, nominal: datetime | float, due: datetime | float | None = None, attempt: int = 1
) -> Pending:
    """An index entry; instants may be given as seconds after T0. ``due`` defaults to ``nominal``."""
    nominal_at = nominal if isinstance(nominal, datetime) else at(nominal)
    due_at = nominal_at if due is None else (due if isinstance(due, datetime) else at(due))
    return Pending(kind=PendingKind(kind), nominal=nominal_at, due=due_at, attempt=attempt)


def fire_entry(nominal: datetime | float, due: datetime | float | None = None) -> Pending:
    """A ``fire`` entry (the schedule's next regular occurrence)."""
    return entry(PendingKind.FIRE, nominal, due)


def run_id(schedule_id: str, pending: Pending) -> str:
    """The id of the run that ``pending`` becomes."""
    return make_run_id(schedule_id, pending.nominal, pending.attempt)


def dispatched_record(schedule_id: str, pending: Pending, dispatched_at: datetime | None = None) -> RunRecord:
    """The DISPATCHED history record of ``pending``'s run."""
    return RunRecord(
        run_id=run_id(schedule_id, pending),
        kind=pending.kind,
        nominal=pending.nominal,
        due=pending.due,
        attempt=pending.attempt,
        status=RunStatus.DISPATCHED,
        dispatched_at=dispatched_at or pending.due,
    )


def skipped_record(schedule_id: str, pending: Pending, note: str = "skipped") -> RunRecord:
    """The SKIPPED history record of ``pending``'s occurrence."""
    return RunRecord(
        run_id=run_id(schedule_id, pending),
        kind=pending.kind,
        nominal=pending.nominal,
        due=pending.due,
        attempt=pending.attempt,
        status=RunStatus.SKIPPED,
        note=note,
    )


def commit_for(
    claim: Claim,
    *,
    dispatch: bool = True,
    skip: bool = False,
    next_fire: Pending | None = None,
    park: Pending | None = None,
) -> Commit:
    """The commit of ``claim`` that dispatches (or skips) its entry's run.

    ``runs_started`` is 1 for a dispatched fire/manual/backfill entry, 0 otherwise.
    """
    sid = claim.schedule_id
    dispatched = (dispatched_record(sid, claim.entry),) if dispatch else ()
    skipped = (skipped_record(sid, claim.entry),) if skip else ()
    started = 1 if dispatch and claim.entry.kind is not PendingKind.RETRY else 0
    return Commit(
        claim=claim, dispatched=dispatched, skipped=skipped, next_fire=next_fire, park=park, runs_started=started
    )


def outcome_for(
    schedule_id: str,
    pending: Pending,
    status: OutcomeStatus | str = OutcomeStatus.SUCCEEDED,
    finished_at: datetime | None = None,
    error: str | None = None,
    *,
    traceback: str | None = None,
) -> Outcome:
    """The outcome the executor reports for ``pending``'s run."""
    return Outcome(
        run_id=run_id(schedule_id, pending),
        schedule_id=schedule_id,
        nominal=pending.nominal,
        attempt=pending.attempt,
        status=OutcomeStatus(status),
        finished_at=finished_at or pending.due + timedelta(seconds=1),
        error=error,
        traceback=traceback,
    )
