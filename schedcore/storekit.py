"""What every :class:`~schedcore.protocols.Store` implementation shares: the base class
with the contract's defaults, and the boundary checks.

:class:`StoreBase` is the one home of the defaults for the methods of the contract that
have a natural fallback (``add_many`` through ``add``, ``claim_due_nowait`` through
``claim_due``...); every shipped store inherits it, and so may third-party stores.

A store validates its arguments before it touches anything, so that bad input changes
nothing; the ``check_*`` helpers keep the wording of those errors the same in every store
(the memory, SQLite and Redis stores use them, and third-party stores may too).
"""

from __future__ import annotations

import abc
import enum
import functools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

from schedcore._time import require_aware, to_ms
from schedcore.exceptions import CorruptScheduleData, ScheduleExists, StoreError, ValidationError
from schedcore.model import Conflict, Schedule
from schedcore.protocols import Store, missing_methods
from schedcore.records import AddResult, Claim, Commit, Outcome, Pending, PendingKind, RunRecord, RunStatus

if TYPE_CHECKING:
    from schedcore.doctor import CheckReport

__all__ = [
    "DEAD_BEATS_KEPT",
    "FireMode",
    "StoreBase",
    "check_add",
    "check_add_items",
    "check_claim",
    "check_commit",
    "check_conflict",
    "check_extra_entry",
    "check_fire_entry",
    "check_heartbeat",
    "check_limit",
    "check_outcome",
    "check_outcomes",
    "check_set_paused",
    "finished_record",
    "fire_on_add",
    "fire_on_replace",
    "log_taken_back",
    "notify",
    "store_warnings",
    "with_id",
]

_MS = timedelta(milliseconds=1)


def _given(claims: list[Claim]) -> list[Claim]:
    return claims


def _reraise(error: Exception) -> list[Claim]:
    raise error


class StoreBase(abc.ABC):
    """The defaults of :class:`~schedcore.protocols.Store`, for implementations to inherit.

    A subclass implements every other method of the protocol (instantiating one that
    lacks any raises TypeError naming them) and gets these, each written only in terms
    of the required methods, so it keeps the contract documented in
    :class:`~schedcore.protocols.Store` as long as those do:

    * :meth:`add_many` -- one :meth:`add` per item, after checking the whole batch;
    * :meth:`claim_due_nowait` -- :meth:`claim_due` at once, its answer kept for the engine;
    * :meth:`commit_and_next_due` -- :meth:`commit`, then :meth:`next_due`;
    * :meth:`record_outcomes` -- one :meth:`record_outcome` per item, after checking them all;
    * :meth:`warnings` -- nothing to say;
    * :meth:`check` -- raises StoreError: no consistency checker.

    A store overrides one where it can do better (one round trip, one transaction). The
    memory, SQLite and Redis stores inherit this class.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> StoreBase:
        missing = missing_methods(cls, Store)
        if missing:  # at construction, not at the first tick of a running scheduler
            raise TypeError(f"store {cls.__qualname__} lacks required methods of Store: {', '.join(missing)}")
        return super().__new__(cls)

    # The required methods the defaults are written with (the others are checked by __new__).

    @abc.abstractmethod
    def add(self, schedule: Schedule, first: Pending | None, conflict: Conflict) -> AddResult: ...

    @abc.abstractmethod
    def get(self, schedule_id: str) -> Any: ...

    @abc.abstractmethod
    def claim_due(self, now: datetime, *, limit: int, lease: timedelta, owner: str) -> list[Claim]: ...

    @abc.abstractmethod
    def commit(self, commits: Sequence[Commit]) -> list[bool]: ...

    @abc.abstractmethod
    def next_due(self) -> datetime | None: ...

    @abc.abstractmethod
    def record_outcome(self, outcome: Outcome, retry: Pending | None) -> bool: ...

    # -- the defaults -------------------------------------------------------------------

    def add_many(self, items: Sequence[tuple[Schedule, Pending | None]], conflict: Conflict) -> list[AddResult]:
        """One :meth:`add` per item, in input order, after the whole batch was checked.

        With ``conflict="error"`` every id is looked up first, so that a taken id (or one
        whose stored data cannot be decoded: it is taken all the same) writes nothing.
        Between that look-up and the adds another writer may take an id; that add then
        raises ScheduleExists as :meth:`add` would (a store that can do better overrides this).
        """
        conflict = check_conflict(conflict)
        batch = check_add_items(items)
        if conflict is Conflict.ERROR:
            for schedule, _ in batch:
                try:
                    taken = self.get(schedule.id) is not None
                except CorruptScheduleData:
                    taken = True
                if taken:
                    raise ScheduleExists(schedule.id)
        return [self.add(schedule, first, conflict) for schedule, first in batch]

    def claim_due_nowait(self, now: datetime, *, limit: int, lease: timedelta, owner: str) -> Callable[[], list[Claim]]:
        """:meth:`claim_due` now; the returned function hands its answer back (or raises its
        error). Right for a store without a round trip to overlap (memory, a local file):
        the engine then claims ahead in the order it uses with a networked store."""
        try:
            claims = self.claim_due(now, limit=limit, lease=lease, owner=owner)
        except Exception as exc:  # raised where the answer is asked for, as the contract says
            return functools.partial(_reraise, exc)
        return functools.partial(_given, claims)

    def commit_and_next_due(self, commits: Sequence[Commit]) -> tuple[list[bool], datetime | None]:
        """:meth:`commit`, then :meth:`next_due` (two calls; a failure of either is raised)."""
        results = self.commit(commits)
        return results, self.next_due()

    def record_outcomes(self, items: Sequence[tuple[Outcome, Pending | None]]) -> list[bool]:
        """One :meth:`record_outcome` per ``(outcome, retry)`` pair, in order, after the whole
        batch was checked (so one bad item writes nothing); a store that can record them in
        one transaction or round trip overrides this."""
        return [self.record_outcome(outcome, retry) for outcome, retry in check_outcomes(items)]

    def warnings(self) -> list[str]:
        """Nothing in this store's configuration can lose schedules."""
        return []

    def check(self, *, repair: bool = False, now: datetime) -> CheckReport:
        """No consistency checker: raises StoreError (``schedcore doctor`` says so)."""
        raise StoreError(f"the store {type(self).__name__} has no consistency checker")


#: How long a store keeps an expired heartbeat. Until a claim takes back the claims of the
#: lapsed owner (and drops its beat: see ``Store.claim_due``), the beat is the evidence that
#: the owner was alive and stopped; ``heartbeat`` drops beats that expired this long ago, so
#: owners of restarted schedulers do not pile up where nobody claims.
DEAD_BEATS_KEPT = timedelta(hours=1)


class FireMode(enum.Enum):
    """What an add does to the schedule's fire entry (the Redis store's add script takes
    the value as its fire mode)."""

    KEEP = "keep"  #: the fire entry stays as it is (in the index or held by a claim)
    DROP = "drop"  #: the fire entry goes (a claim holding it no longer holds *the* fire entry)
    SET = "set"  #: the fire entry goes and ``first`` becomes the fire entry


def fire_on_add(new: Schedule, first: Pending | None) -> FireMode:
    """The fire entry of a schedule added under a free id: ``first``, unless there is none
    or the schedule is paused (a paused schedule never has a fire entry)."""
    return FireMode.SET if first is not None and not new.paused else FireMode.DROP


def fire_on_replace(old: Schedule | None, new: Schedule, first: Pending | None) -> FireMode | None:
    """The replace rule of ``Store.add``: what replacing ``old`` (None: unreadable) by
    ``new`` does to the fire entry; None when the definitions are equal (nothing is written).

    A paused ``new`` drops the fire entry (like pausing). The same timing
    (:meth:`Schedule.same_timing <schedcore.model.Schedule.same_timing>`) on a running
    schedule keeps the fire entry, so that a re-sync never skips or repeats an occurrence;
    anything else (new timing, resumed, unreadable before) installs ``first``. Run counts,
    running runs, retries, the parked entry and history are kept whatever the mode. Every
    store applies this one function (the Redis store's script applies the mode it returns).
    """
    if old is not None and old == new:
        return None
    if new.paused:
        return FireMode.DROP
    if old is None or old.paused or not old.same_timing(new):
        return fire_on_add(new, first)
    return FireMode.KEEP


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


def check_add(schedule: object, first: object) -> None:
    """``add``'s schedule and first fire entry (None, or a Pending of kind ``fire``)."""
    if not isinstance(schedule, Schedule):
        raise ValidationError("schedule", schedule, "expected a Schedule")
    check_fire_entry(first, "first")  # type: ignore[arg-type]  # checked here


def check_set_paused(paused: object, next_fire: object) -> None:
    """``set_paused``'s flag (a bool) and entry (None, or a Pending of kind ``fire``)."""
    if not isinstance(paused, bool):
        raise ValidationError("paused", paused, "must be true or false")
    check_fire_entry(next_fire, "next_fire")  # type: ignore[arg-type]  # checked here


def check_outcome(outcome: object, retry: object) -> None:
    """``record_outcome``'s outcome and retry entry (None, or a Pending of any kind but ``fire``)."""
    if not isinstance(outcome, Outcome):
        raise ValidationError("outcome", outcome, "expected an Outcome")
    if retry is not None:
        check_extra_entry(retry, "retry")  # type: ignore[arg-type]  # checked here


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
        check_outcome(outcome, retry)
        out.append((outcome, retry))
    return out


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


def store_warnings(store: Store) -> list[str]:
    """What ``store`` reports about its own configuration that can lose schedules
    (``Store.warnings()``: Redis says persistence off or an evicting memory policy), one
    sentence each. A store whose method raises is logged and has nothing to say, so that a
    status page never fails over a warning."""
    try:
        found = store.warnings()
    except Exception:
        _log.exception("%s.warnings() raised; no store warnings shown", type(store).__name__)
        return []
    return [str(w) for w in found] if isinstance(found, (list, tuple)) else []


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


def finished_record(record: RunRecord, outcome: Outcome, retry: Pending | None) -> RunRecord:
    """The history record of a dispatched run once its outcome is known (``retry``: the
    attempt the retry policy scheduled, if any) -- what every store writes in ``record_outcome``."""
    return attrs.evolve(
        record,
        status=RunStatus(outcome.status.value),
        finished_at=outcome.finished_at,
        started_at=outcome.started_at,
        error=outcome.error,
        traceback=outcome.traceback,
        retry_at=retry.due if retry is not None else None,
    )
