"""The contracts every trigger, store and executor keeps -- all in one place.

The engine (:class:`schedcore.Scheduler`) talks to storage and execution only
through :class:`Store` and :class:`Executor`. Implementations are checked by the
shared conformance suite in :mod:`schedcore.testing`; :class:`schedcore.MemoryStore`
is the reference implementation of :class:`Store`.

How one occurrence travels (the exactly-once protocol)::

    store.claim_due(now)    --> Claim (lease + fencing token)     atomically, many schedulers may race
    executor.submit(runs)   --> idempotent per Run.id             a repeat hand-over is harmless
    store.commit(commits)   --> next fire time + run records      refused (False) when the lease was lost
    executor reports Outcome --> store.record_outcome(...)         idempotent per run id; may add a retry

If a scheduler dies between ``submit`` and ``commit``, its lease expires, the entry
returns to the time index, another scheduler claims it again, rebuilds the same
runs (run ids are derived from schedule id, nominal fire time and attempt) and
the executor drops the repeat. Nothing is lost and nothing runs twice.
Once the commit succeeded, the engine tells the executor (``executor.settled(run_ids)``):
no scheduler can rebuild those runs from that entry any more, so whatever the executor
kept to recognise a repeat may go.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

if TYPE_CHECKING:
    from schedcore.doctor import CheckReport
    from schedcore.model import Conflict, Schedule
    from schedcore.records import AddResult, Claim, Commit, Outcome, Pending, Run, RunRecord, StoredSchedule

__all__ = ["Executor", "SchedulerBeat", "Store", "StoreStats", "Trigger", "missing_methods"]


@runtime_checkable
class Trigger(Protocol):
    """When a schedule fires. Triggers are pure, immutable and serializable."""

    def next_after(self, instant: datetime) -> datetime | None:
        """Return the first fire time strictly after ``instant`` (aware), or None if there is none.

        Naive ``instant`` raises :class:`~schedcore.exceptions.ValidationError`. The result is
        aware; successive calls fed with their own result yield a strictly increasing series.
        """
        ...

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict with a ``"type"`` key; :func:`schedcore.triggers.trigger_from_dict` reverses it."""
        ...

    def describe(self) -> str:
        """A short human-readable description (``"cron '0 3 * * *' Europe/Paris"``)."""
        ...


@attrs.frozen(kw_only=True)
class SchedulerBeat:
    """The last heartbeat of one live scheduler, as :meth:`Store.schedulers` returns it."""

    owner: str  #: the scheduler's owner id (the one in its leases)
    beat_at: datetime  #: when it last beat (aware UTC, ms precision)
    expires_at: datetime  #: when it counts as dead if it does not beat again
    info: dict[str, Any] = attrs.field(factory=dict)  #: host, pid, started, version, ... (JSON-safe)


@attrs.frozen(kw_only=True)
class StoreStats:
    """What :meth:`Store.stats` reports about the time index at one instant."""

    schedules: int  #: schedules stored
    due: int  #: index entries due at or before ``now`` and not claimed
    oldest_due: datetime | None  #: the earliest due instant among them (None: nothing due)
    in_flight: int  #: claims whose lease has not expired at ``now``
    expired: int  #: claims whose lease expired at or before ``now`` (due again, not taken back yet)


@runtime_checkable
class Store(Protocol):
    """Where schedules, their pending occurrences (the time index) and run history live.

    Every method is safe to call from several threads, and -- for shared stores --
    from several processes at once. Instants are aware UTC datetimes with millisecond
    precision. Errors reaching the store are raised as
    :class:`~schedcore.exceptions.StoreUnavailable`; data that cannot be decoded for
    one schedule is reported for that schedule and skipped, never failing the others.

    The time index holds :class:`~schedcore.records.Pending` entries: at most one
    ``fire`` entry per schedule (its next occurrence) plus any number of ``retry``,
    ``manual`` and ``backfill`` entries, each keyed by :attr:`Pending.key` within its
    schedule. A schedule may also hold one *parked* entry (overlap ``buffer_one``)
    outside the index until its running runs have all finished.

    Every method below is required: ``isinstance(store, Store)`` and the conformance suite
    (:class:`schedcore.testing.StoreConformance`) check them all. Those with a natural
    fallback -- :meth:`add_many`, :meth:`claim_due_nowait`, :meth:`commit_and_next_due`,
    :meth:`record_outcomes`, :meth:`warnings` and :meth:`check` -- have a default in
    :class:`schedcore.storekit.StoreBase`, which implementations may inherit (every
    shipped store does); the engine, sync and the command line call each method directly.

    Where the contract leaves room, every store takes the reading that keeps exactly-once
    (the conformance suite checks these choices):

    * *Lease held* means the claim's token is still the current one for its entry. A
      lease is lost when a ``claim_due(now)`` with ``now`` at or after its expiry takes the
      entry back, or when the schedule is removed; until then the late holder may still
      commit -- nobody else can have the entry.
    * A paused schedule never has a fire entry, also when it is added or replaced with
      ``paused=True`` (``first`` is then ignored). Replacing a paused definition by a
      running one installs ``first``, as a resume would.
    * A fire entry held by a claim is still the schedule's fire entry. When it is
      superseded while claimed (replace with a different timing, pause), the claim stays
      committable -- its dispatched runs are recorded -- but its ``next_fire`` is
      ignored, and releasing it (or its lease expiring) drops the entry instead of
      putting it back. So there is never more than one fire entry per schedule.
    * ``next_fire`` of a commit of a non-fire claim is ignored. Entries of kind ``fire``
      are refused (ValidationError) where a non-fire entry is expected (``enqueue``,
      retries, ``park``), and ``next_fire``/``first`` must be of kind ``fire``.
    * ``park`` with no run of the schedule left running after the commit (the run ended
      between claim and commit) goes straight into the index, so it is never stranded.
    * ``enqueue``, retries and un-parking ignore an entry whose key is already in the
      index or held by a claim.
    * The records of one commit enter the history ordered by (nominal, attempt), so the
      newest occurrence ends up first. ``history`` of an unknown schedule is empty.
    * An exception in a ``watch`` callback is logged and does not affect the store.
    """

    # -- definitions -----------------------------------------------------------------

    def add(self, schedule: Schedule, first: Pending | None, conflict: Conflict) -> AddResult:
        """Store ``schedule`` with ``first`` as its fire entry (None: nothing to fire).

        Atomic. When the id is taken: ``conflict="error"`` raises ScheduleExists and
        changes nothing; ``"keep"`` changes nothing and returns ``KEPT``; ``"replace"``
        stores the new definition and returns ``REPLACED`` -- or ``UNCHANGED`` without
        writing when the definition is equal. On replace the existing fire entry is kept
        when :meth:`Schedule.same_timing` holds between old and new (so a re-sync never
        skips or repeats an occurrence) and replaced by ``first`` otherwise; run counts,
        running runs, retries and history are kept.
        """
        ...

    def add_many(self, items: Sequence[tuple[Schedule, Pending | None]], conflict: Conflict) -> list[AddResult]:
        """Store each ``(schedule, first)`` pair as :meth:`add` would; one result per item, in input order.

        Each schedule's add is atomic and follows :meth:`add` to the letter (a batch may
        cover many round trips: it is not one transaction, except as said here). The whole
        batch is checked before anything is written: items must be ``(Schedule, fire entry
        or None)`` pairs with distinct ids -- a repeated id raises ValidationError naming
        it -- and ``conflict`` valid; bad input changes nothing. With ``conflict="error"``,
        ScheduleExists (naming the first taken id in input order) is raised and nothing is
        written when any id is taken. An empty batch returns ``[]``.

        Default (:class:`~schedcore.storekit.StoreBase`): one :meth:`add` per item.
        """
        ...

    def remove(self, schedule_id: str) -> bool:
        """Delete the definition, its index entries, parked entry, state and history at once.

        Returns False when there was no such schedule. Claims held on the schedule can
        no longer be committed (commit returns False for them).
        """
        ...

    def get(self, schedule_id: str) -> StoredSchedule | None:
        """The stored schedule with its state, or None."""
        ...

    def list_schedules(self, *, after: str | None = None, limit: int = 100) -> list[StoredSchedule]:
        """Up to ``limit`` schedules with ids greater than ``after``, in id order (pagination)."""
        ...

    def set_paused(self, schedule_id: str, paused: bool, next_fire: Pending | None) -> StoredSchedule:
        """Pause or resume atomically; raises ScheduleNotFound.

        Pausing stores the definition with ``paused=True`` and takes its fire entry out of
        the index (retries already scheduled still run). Resuming stores ``paused=False``
        and makes ``next_fire`` its fire entry. Pausing a paused schedule (or resuming a
        running one) changes nothing.
        """
        ...

    def enqueue(self, schedule_id: str, entries: Sequence[Pending]) -> int:
        """Add extra ``manual``/``backfill`` entries to the index; raises ScheduleNotFound.

        Entries whose key is already present are ignored. Returns how many were added.
        """
        ...

    def history(self, schedule_id: str, limit: int = 50) -> list[RunRecord]:
        """The schedule's newest run records first (bounded; the store keeps a capped history)."""
        ...

    # -- the time index ----------------------------------------------------------------

    def claim_due_nowait(self, now: datetime, *, limit: int, lease: timedelta, owner: str) -> Callable[[], list[Claim]]:
        """Start :meth:`claim_due` and return at once, with a function that waits for it and
        returns (or raises) what :meth:`claim_due` would have.

        The engine sends the next batch's claim this way before handing the current batch
        over (:meth:`Executor.submit_nowait`), so both travel together. It calls the returned
        function exactly once, before any other method of the store. Default
        (:class:`~schedcore.storekit.StoreBase`): :meth:`claim_due` at once, its answer (or
        error) kept for that function (nothing overlaps).
        """
        ...

    def claim_due(self, now: datetime, *, limit: int, lease: timedelta, owner: str) -> list[Claim]:
        """Atomically take up to ``limit`` entries due at or before ``now``, earliest first.

        Each claimed entry leaves the index and is held under a lease until
        ``now + lease`` with a fresh fencing token (strictly greater than any token the
        store issued before). Entries whose lease expired at or before ``now`` are due
        again and may be claimed by anyone. Two concurrent callers never receive the
        same entry under live leases. Entries of schedules whose data cannot be decoded
        are reported (logged) and left in place, not returned.

        Failover: first, the claims of every *other* owner whose heartbeat expired at or
        before ``now`` are taken back at once (their entries due again, whatever their
        leases say; :func:`schedcore.storekit.log_taken_back` logs it) and those beats are
        dropped. An owner that never beat keeps its claims until their leases expire, and
        the caller's own claims are never taken back (it is claiming: it is alive).
        """
        ...

    def commit(self, commits: Sequence[Commit]) -> list[bool]:
        """Apply each commit atomically, only while its claim's lease (token) is held.

        For each item, in one atomic step: append ``dispatched`` and ``skipped`` records to
        the history, mark the dispatched runs as running, add ``runs_started``, put
        ``next_fire`` in the index as the schedule's fire entry (claims of fire entries
        only), park ``park`` (replacing a parked entry), and release the claim. Returns one
        bool per item: False means the lease was lost or the schedule removed, and that
        nothing of that item was written.
        """
        ...

    def commit_and_next_due(self, commits: Sequence[Commit]) -> tuple[list[bool], datetime | None]:
        """:meth:`commit`, then :meth:`next_due` as of right after it -- in one round trip
        where the store can (the engine's loop calls this for the last batch of a tick).

        An error is raised as :meth:`commit` would raise it (the commit may then have been
        applied or not, as with a lost reply). Default
        (:class:`~schedcore.storekit.StoreBase`): the two calls.
        """
        ...

    def release(self, claims: Sequence[Claim]) -> None:
        """Give claims back unchanged: their entries return to the index at once (lease held only)."""
        ...

    def record_outcome(self, outcome: Outcome, retry: Pending | None) -> bool:
        """Record how a run ended, atomically and at most once per run id.

        Updates the run's history record and removes it from the running runs; adds
        ``retry`` to the index when given; and when no run of the schedule is left
        running, moves a parked entry into the index. Returns False and changes nothing
        when the run is not running (unknown, already finished, or schedule removed).
        """
        ...

    def record_outcomes(self, items: Sequence[tuple[Outcome, Pending | None]]) -> list[bool]:
        """:meth:`record_outcome` for each ``(outcome, retry)`` pair, in order, with one result
        per item -- in one transaction or round trip where the store can (the engine records
        the outcomes reported since its last look this way).

        Each item is atomic on its own, as :meth:`record_outcome` is; bad input raises
        ValidationError before anything is written. Default
        (:class:`~schedcore.storekit.StoreBase`): one :meth:`record_outcome` per item.
        """
        ...

    def next_due(self) -> datetime | None:
        """Earliest instant at which something needs the engine: the earliest index entry
        or the earliest lease expiry of a claim in flight. None when both are empty."""
        ...

    def watch(self, callback: Callable[[datetime], None]) -> Callable[[], None]:
        """Call ``callback(due)`` whenever an entry is put in the index by anyone (for
        shared stores: by any process), so that a sleeping engine can wake early.

        Returns a function that stops the notifications. Callbacks may come from another
        thread and must return quickly.
        """
        ...

    # -- operations ------------------------------------------------------------------

    def heartbeat(self, owner: str, info: Mapping[str, Any], *, now: datetime, ttl: timedelta) -> None:
        """Record that scheduler ``owner`` is alive at ``now``, with ``info`` (JSON-safe).

        Replaces the owner's previous beat; the owner counts as live until ``now + ttl``
        (``ttl`` positive). One atomic write; beats of owners dead for longer than their
        TTL may be dropped at the same time. Never touches schedules or the index.
        """
        ...

    def schedulers(self, now: datetime) -> list[SchedulerBeat]:
        """The schedulers whose last beat has not expired at ``now``, by owner id."""
        ...

    def stats(self, now: datetime) -> StoreStats:
        """Counts of the time index at ``now``: see :class:`StoreStats`. Read-only; for a
        shared store one consistent read (one round trip)."""
        ...

    def warnings(self) -> list[str]:
        """What in the store's own configuration can lose schedules, one sentence each
        (Redis: persistence off, an evicting ``maxmemory-policy``).

        ``schedcore status`` and ``schedcore web`` show them (through
        :func:`schedcore.storekit.store_warnings`, which logs a failure and shows nothing).
        Must not raise for an unreachable store. Default: ``[]``.
        """
        ...

    def check(self, *, repair: bool = False, now: datetime) -> CheckReport:
        """Check the store's own consistency (``schedcore doctor``); with ``repair``, fix what
        can be fixed safely while schedulers keep running (see :mod:`schedcore.doctor`).

        Default (:class:`~schedcore.storekit.StoreBase`): raises StoreError -- the store has
        no consistency checker.
        """
        ...

    def close(self) -> None:
        """Release connections and threads. Idempotent."""
        ...


@runtime_checkable
class Executor(Protocol):
    """What runs the tasks. Hand-over is idempotent per :attr:`Run.id`.

    Every method below is required (``isinstance(executor, Executor)`` and
    :class:`schedcore.testing.ExecutorConformance` check them all); :meth:`submit_nowait`
    and :meth:`settled` have defaults in :class:`schedcore.executors.ExecutorBase`, which
    implementations may inherit (every shipped executor does). The engine calls each
    method directly.
    """

    def validate(self, schedule: Schedule) -> None:
        """Check executor-specific options of ``schedule`` at add time; raise ValidationError."""
        ...

    def task_references(self, schedule: Schedule) -> Sequence[tuple[str, str]]:
        """The code a run of ``schedule`` imports besides its task, as ``(field,
        "module:function")`` pairs (the RQ executor's ``on_success``/``on_failure``
        callbacks), so that the scheduler checks them against its task allow-list when the
        schedule is added. Connects to nothing. Default
        (:class:`~schedcore.executors.ExecutorBase`): none.
        """
        ...

    def start(self, report: Callable[[Outcome], None]) -> None:
        """Begin work. ``report`` is called (from any thread) once per finished run; a
        repeat report for the same run is allowed and ignored by the core."""
        ...

    def submit(self, runs: Sequence[Run]) -> None:
        """Hand ``runs`` over for execution.

        Idempotent: a run whose id was handed over before is not executed again. A task
        that cannot be imported or called is a *failed run* (reported), never an error
        here. Raises ExecutorUnavailable when nothing could be handed over now -- the
        engine then releases the claims to try again later.
        """
        ...

    def submit_nowait(self, runs: Sequence[Run]) -> Callable[[], None]:
        """Start handing ``runs`` over and return at once, with a function that waits until
        the hand-over is done and raises what :meth:`submit` would have raised.

        The engine claims and plans its next batch while the runs travel, so its work, the
        store's and the executor's overlap (worth it when they wait on a network). It calls
        the returned function exactly once, before it commits the batch, and never has two
        hand-overs in flight. Default (:class:`~schedcore.executors.ExecutorBase`):
        :meth:`submit` at once, and a function with nothing left to wait for.
        """
        ...

    def settled(self, run_ids: Sequence[str]) -> None:
        """Hear that the hand-over of ``run_ids`` is committed in the store: no scheduler can
        hand these run ids over again (the claims they came from are released for good).

        The engine calls it after each commit, with the ids of the runs of the claims the
        store accepted -- never for a claim whose commit was refused or failed (another
        scheduler re-claims that entry and rebuilds the same run ids, whose repeat hand-over
        must still be recognised). An executor that keeps per-run state only to drop such
        repeats (the RQ executor's hand-off markers) may forget it now; the others do nothing.
        Best effort: it must not block on the network, must not raise for ids it does not
        know or was told about before, and a failure here is only logged by the engine.
        Default (:class:`~schedcore.executors.ExecutorBase`): nothing to forget.
        """
        ...

    def shutdown(self, wait: bool = True) -> None:
        """Stop accepting runs; with ``wait``, let running ones finish and report. Idempotent.

        An executor whose runs execute in other processes (RQ workers) must not hold a
        stopping scheduler hostage to jobs that may run for hours: it may return sooner,
        provided the outcomes of runs still running are kept durably by its backend and
        reported by the next executor started on that backend. Such an executor declares
        it with a class attribute ``durable_outcomes = True``.
        """
        ...


def missing_methods(implementation: object, protocol: type) -> list[str]:
    """The methods of ``protocol`` (:class:`Store`, :class:`Executor`...) that
    ``implementation`` (an instance or a class) lacks, in the protocol's order.

    What ``isinstance(obj, protocol)`` answers with a bare False, by name: the base classes
    refuse to build an incomplete implementation with it, and the suites report it.
    """
    members = [name for name, value in vars(protocol).items() if callable(value) and not name.startswith("_")]
    return [name for name in members if not callable(getattr(implementation, name, None))]
