"""Values that travel between the engine, stores and executors.

All frozen; instants are aware UTC datetimes truncated to milliseconds, which is
what every store keeps.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

import attrs

from schedcore._time import from_ms, iso, parse_instant, to_ms, trunc_ms
from schedcore.model import Schedule, Serializer
from schedcore.tracebacks import trim_traceback

__all__ = [
    "AddResult",
    "Claim",
    "Commit",
    "Outcome",
    "OutcomeStatus",
    "Pending",
    "PendingKind",
    "Run",
    "RunRecord",
    "RunStatus",
    "StoredSchedule",
    "make_run_id",
    "text_or_none",
]


def make_run_id(schedule_id: str, nominal: datetime, attempt: int) -> str:
    """The deterministic id of one run: schedule id, nominal fire time (ms epoch), attempt.

    ``"nightly@1735700400000.1"``. Handing the same run over twice is recognisable by it.
    """
    return f"{schedule_id}@{to_ms(nominal)}.{attempt}"


class PendingKind(str, Enum):
    """Why an entry is in the time index."""

    FIRE = "fire"  #: the schedule's next regular occurrence (one per schedule)
    RETRY = "retry"  #: a later attempt of a failed run
    MANUAL = "manual"  #: ``trigger_now``
    BACKFILL = "backfill"  #: ``backfill(id, start, end)``
    BUFFERED = "buffered"  #: an occurrence held by overlap ``buffer_one``


class AddResult(str, Enum):
    """What ``Store.add`` (and ``Scheduler.add``) did."""

    ADDED = "added"
    REPLACED = "replaced"
    UNCHANGED = "unchanged"
    KEPT = "kept"
    #: ``Scheduler.add`` only (stores never return it): stored (added or replaced), but a
    #: one-shot whose instant passed more than ``misfire_grace`` ago -- it will never fire.
    EXPIRED = "expired"


def _as_kind(value: Any) -> PendingKind:
    return value if type(value) is PendingKind else PendingKind(value)  # the common case without Enum's lookup


def _as_run_status(value: Any) -> RunStatus:
    return value if type(value) is RunStatus else RunStatus(value)


def _as_outcome_status(value: Any) -> OutcomeStatus:
    return value if type(value) is OutcomeStatus else OutcomeStatus(value)


def _as_traceback(value: str | None) -> str | None:
    # Bounded whoever made it (an executor, a store's decoder): see schedcore.tracebacks.
    return None if value is None else trim_traceback(value) or None


def text_or_none(value: Any) -> str | None:
    """A stored optional text field: anything but a str (hostile or foreign data) reads as None."""
    return value if isinstance(value, str) else None


@attrs.frozen(kw_only=True)
class Pending:
    """One entry of the time index: an occurrence waiting for its ``due`` instant.

    ``nominal`` is the occurrence's fire time from the trigger; ``due`` is when it may
    be dispatched (nominal plus jitter, or a retry's backoff).
    """

    kind: PendingKind = attrs.field(converter=_as_kind)
    nominal: datetime = attrs.field(converter=trunc_ms)
    due: datetime = attrs.field(converter=trunc_ms)
    attempt: int = 1

    def key(self, schedule_id: str) -> str:
        """The entry's key within its schedule: one fire entry per schedule, others per run."""
        if self.kind is PendingKind.FIRE:
            return "fire"
        return f"{self.kind.value}:{make_run_id(schedule_id, self.nominal, self.attempt)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "nominal": to_ms(self.nominal),
            "due": to_ms(self.due),
            "attempt": self.attempt,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Pending:
        return cls(
            kind=data["kind"],
            nominal=from_ms(int(data["nominal"])),
            due=from_ms(int(data["due"])),
            attempt=int(data["attempt"]),
        )


@attrs.frozen(kw_only=True)
class StoredSchedule:
    """A schedule as stored, with its scheduling state."""

    schedule: Schedule
    next_fire: Pending | None  #: the fire entry in the index (or held by a claim), None if finished/paused
    runs_started: int  #: occurrences dispatched so far (for ``max_runs``); retries not counted
    running: tuple[str, ...]  #: ids of dispatched runs with no outcome yet
    parked: Pending | None  #: occurrence held by overlap ``buffer_one``


@attrs.frozen(kw_only=True)
class Claim:
    """An index entry taken by one scheduler under a lease. Only its holder may commit it."""

    schedule: Schedule
    entry: Pending
    token: int  #: fencing token, strictly increasing across the store
    owner: str
    lease_expires: datetime
    runs_started: int
    running: int  #: runs of the schedule dispatched and not finished, when claimed
    parked: bool  #: whether a buffered occurrence is already parked

    @property
    def schedule_id(self) -> str:
        return self.schedule.id


class RunStatus(str, Enum):
    """The state of a run in the history."""

    DISPATCHED = "dispatched"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    LOST = "lost"
    STOPPED = "stopped"
    SKIPPED = "skipped"


class OutcomeStatus(str, Enum):
    """How a run ended, as an executor reports it."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"  #: the task raised (or could not be imported/called)
    LOST = "lost"  #: the worker died or the run vanished (RQ: abandoned)
    STOPPED = "stopped"  #: stopped on purpose by an operator; never retried


@attrs.frozen(kw_only=True)
class Run:
    """One execution handed to an executor."""

    id: str
    schedule_id: str
    task: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    queue: str
    executor_options: dict[str, Any]
    serializer: Serializer
    kind: PendingKind
    nominal: datetime
    due: datetime
    attempt: int

    @classmethod
    def create(cls, schedule: Schedule, entry: Pending) -> Run:
        """The run for ``entry`` of ``schedule`` (its id is :func:`make_run_id`)."""
        return cls(
            id=make_run_id(schedule.id, entry.nominal, entry.attempt),
            schedule_id=schedule.id,
            task=schedule.task,
            args=schedule.args,
            kwargs=schedule.kwargs,
            queue=schedule.queue,
            executor_options=schedule.executor_options,
            serializer=schedule.serializer,
            kind=entry.kind,
            nominal=entry.nominal,
            due=entry.due,
            attempt=entry.attempt,
        )


@attrs.frozen(kw_only=True)
class Outcome:
    """How one run ended, reported by the executor."""

    run_id: str
    schedule_id: str
    nominal: datetime = attrs.field(converter=trunc_ms)
    attempt: int
    status: OutcomeStatus = attrs.field(converter=_as_outcome_status)
    finished_at: datetime = attrs.field(converter=trunc_ms)
    started_at: datetime | None = None
    error: str | None = None  #: ``"ExceptionType: message"`` for failures
    #: The failure's traceback as Python prints it, trimmed to the innermost frames and the
    #: exception line (:func:`schedcore.tracebacks.trim_traceback`); None when there is none.
    traceback: str | None = attrs.field(default=None, converter=_as_traceback)


@attrs.frozen(kw_only=True)
class RunRecord:
    """One line of a schedule's run history."""

    run_id: str
    kind: PendingKind = attrs.field(converter=_as_kind)
    nominal: datetime = attrs.field(converter=trunc_ms)
    due: datetime = attrs.field(converter=trunc_ms)
    attempt: int
    status: RunStatus = attrs.field(converter=_as_run_status)
    dispatched_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    retry_at: datetime | None = None  #: when a failed/lost run will be retried, if it will
    note: str | None = None  #: why a run was skipped, etc.
    #: The trimmed traceback of a failed run, from its :attr:`Outcome.traceback`.
    traceback: str | None = attrs.field(default=None, converter=_as_traceback)

    @property
    def lateness(self) -> float | None:
        """Seconds from nominal fire time to hand-over (firing lateness), if dispatched."""
        if self.dispatched_at is None:
            return None
        return (self.dispatched_at - self.nominal).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "kind": self.kind.value,
            "nominal": iso(self.nominal),
            "due": iso(self.due),
            "attempt": self.attempt,
            "status": self.status.value,
            "dispatched_at": iso(self.dispatched_at) if self.dispatched_at else None,
            "finished_at": iso(self.finished_at) if self.finished_at else None,
            "error": self.error,
            "retry_at": iso(self.retry_at) if self.retry_at else None,
            "note": self.note,
            "traceback": self.traceback,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        def instant(key: str) -> datetime | None:
            value = data.get(key)
            return parse_instant(value, key) if value else None

        return cls(
            run_id=data["run_id"],
            kind=data["kind"],
            nominal=parse_instant(data["nominal"], "nominal"),
            due=parse_instant(data["due"], "due"),
            attempt=int(data["attempt"]),
            status=data["status"],
            dispatched_at=instant("dispatched_at"),
            finished_at=instant("finished_at"),
            error=data.get("error"),
            retry_at=instant("retry_at"),
            note=data.get("note"),
            traceback=text_or_none(data.get("traceback")),  # absent in records written before it existed
        )


@attrs.frozen(kw_only=True)
class Commit:
    """What the engine decided for one claim; applied by ``Store.commit`` all or nothing."""

    claim: Claim
    dispatched: tuple[RunRecord, ...] = ()  #: runs handed to the executor (status DISPATCHED)
    skipped: tuple[RunRecord, ...] = ()  #: occurrences skipped by catch-up or overlap (status SKIPPED)
    next_fire: Pending | None = None  #: the schedule's next fire entry (fire claims only); None: finished
    park: Pending | None = None  #: overlap buffer_one: hold this occurrence until nothing runs
    runs_started: int = 0  #: how many occurrences this commit started (for max_runs)
