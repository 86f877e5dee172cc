"""The engine: claims due occurrences, plans them, hands runs over and records outcomes.

One loop per :class:`Scheduler`; any number of schedulers (threads or processes) may
share one store -- the store's leases make each occurrence go to one of them, and run
ids make a repeated hand-over harmless (see :mod:`schedcore.protocols`). The loop
sleeps until the store's next due instant exactly; it is woken early by the store
(``watch``), by ``add``/``trigger_now``/... and by outcomes the executor reports.
"""

from __future__ import annotations

import builtins
import contextlib
import itertools
import logging
import os
import queue
import signal
import socket
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from types import FrameType
from typing import Any

import attrs
import pluggy

from schedcore._beater import BeatThread
from schedcore._dist import version
from schedcore._planner import (
    Plan,
    TriggerMemo,
    backfill_entries,
    expired_one_shot,
    first_fire,
    next_fire_utc,
    plan,
    retry_entry,
)
from schedcore._time import iso
from schedcore.allowlist import TaskAllowList
from schedcore.clock import Clock, SystemClock
from schedcore.events import EVENTS
from schedcore.exceptions import (
    CorruptStore,
    ExecutorError,
    ExecutorUnavailable,
    ScheduleNotFound,
    StoreUnavailable,
    ValidationError,
)
from schedcore.model import Conflict, Schedule
from schedcore.plugins import Hooks, get_plugin_manager
from schedcore.protocols import Executor, Store
from schedcore.records import (
    AddResult,
    Claim,
    Outcome,
    OutcomeStatus,
    Pending,
    PendingKind,
    Run,
    RunRecord,
    RunStatus,
    StoredSchedule,
    make_run_id,
)
from schedcore.trigger_types import register_plugin_manager

__all__ = ["Scheduler"]

log = logging.getLogger("schedcore.scheduler")

_MS = timedelta(milliseconds=1)
_MAX_ROUNDS = 10_000  # claim rounds per tick: a guard against a store that keeps handing entries back
_STUCK_POLL = timedelta(seconds=1)  # re-check of an entry the store reports due but does not hand out
_DEFERRED_POLL = timedelta(seconds=1)  # re-try of an outcome whose run is not committed yet
_OUTCOME_BATCH = 512  # outcomes recorded per store call (one SQLite transaction: the write lock is held that long)


def _permanent(exc: Exception) -> bool:
    """An executor error that is not a passing outage (ExecutorUnavailable)."""
    return isinstance(exc, ExecutorError) and not isinstance(exc, ExecutorUnavailable)


@attrs.frozen
class _Ahead:
    """A batch claimed and planned while the batch before it was handed over: the store
    showed it the state without that batch, which its plans took into account."""

    claims: list[Claim]
    plans: list[Plan]


#: The level of each event's log line, from :data:`schedcore.events.EVENTS` (INFO when not listed).
EVENT_LEVELS: dict[str, int] = {event.name: event.level for event in EVENTS.values()}


class Scheduler:
    """Runs schedules from ``store`` on ``executor``.

    ``store`` defaults to a new :class:`~schedcore.memory.MemoryStore`, ``executor`` to a
    :class:`~schedcore.executors.LocalExecutor`, ``clock`` to the system clock and
    ``plugins`` to the plugin manager of :func:`schedcore.plugins.get_plugin_manager`
    (pass a ``pluggy.PluginManager``, or plugin objects to register on a new one).
    ``owner`` names this scheduler in leases (default: host, pid and a random suffix);
    ``batch_size`` bounds the entries claimed at once; ``lease`` is how long a claim is
    held before another scheduler may take it over; store outages are retried with
    exponential back-off up to ``max_backoff``. While :meth:`run` loops, the scheduler writes
    a heartbeat to the store every ``heartbeat`` (owner, host, pid, start time, version; it
    counts as live for three intervals), which ``schedcore status`` shows; None turns it off.
    With the system clock a background thread keeps beating while a long batch holds the
    loop. Once its heartbeat has expired, other schedulers take back its claims without
    waiting for the lease (failover within about three intervals, 6 s by default).
    ``allowed_tasks`` (a :class:`~schedcore.allowlist.TaskAllowList` or ``module:function``
    patterns such as ``"app.jobs:*"``; default: ``SCHEDCORE_ALLOWED_TASKS``, else every task)
    is enforced by :meth:`add`, :meth:`add_many` and sync, and again at hand-off: a run of
    a task it refuses is never given to the executor but recorded as failed, without retries.

    Use :meth:`run` for the loop, or :meth:`tick` to drive it yourself (tests, simulation).
    """

    def __init__(
        self,
        store: Store | None = None,
        executor: Executor | None = None,
        *,
        clock: Clock | None = None,
        plugins: pluggy.PluginManager | Iterable[object] | None = None,
        owner: str | None = None,
        batch_size: int = 256,
        lease: timedelta = timedelta(seconds=30),
        max_backoff: timedelta = timedelta(seconds=30),
        heartbeat: timedelta | None = timedelta(seconds=2),
        allowed_tasks: TaskAllowList | Iterable[str] | str | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError("batch_size must be a positive integer")
        if lease <= timedelta(0):
            raise ValueError("lease must be positive")
        if heartbeat is not None and heartbeat <= timedelta(0):
            raise ValueError("heartbeat must be positive (or None for no heartbeat)")
        self.clock: Clock = clock if clock is not None else SystemClock()
        if store is None:
            from schedcore.memory import MemoryStore

            store = MemoryStore()
        if executor is None:
            from schedcore.executors import LocalExecutor

            executor = LocalExecutor(clock=self.clock)
        self.store: Store = store
        self.executor: Executor = executor
        pm = plugins if isinstance(plugins, pluggy.PluginManager) else get_plugin_manager(plugins=tuple(plugins or ()))
        self.plugin_manager = pm
        self.hooks = Hooks(pm)
        register_plugin_manager(pm)  # its plugins' trigger types are readable from every store
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.batch_size = batch_size
        self.lease = lease
        self.max_backoff = max_backoff
        self.heartbeat = heartbeat
        self.allowed_tasks = TaskAllowList.of(allowed_tasks)
        self._disallowed: set[str] = set()  # run ids refused at hand-off: failed, never retried
        self._next_beat: datetime | None = None  # when the loop beats next
        self._beat_lock = threading.Lock()  # the loop and the beat thread (see run)
        self._started_at: datetime | None = None
        self._wake = threading.Event()  # set: something may be due sooner than planned
        self._stopping = threading.Event()
        self._outcomes: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self._unapplied: deque[Outcome] = deque()  # taken off the queue, not yet in the store
        self._deferred: dict[str, tuple[Outcome, datetime]] = {}  # refused: hand-off not committed yet
        self._lock = threading.Lock()
        self._started = False
        self._ran = False
        self._failures = 0  # consecutive failed ticks, for the back-off
        self._last_error: Exception | None = None  # of the last failed tick (a burst run raises it)
        self._last_manual: dict[str, datetime] = {}  # newest manual nominal time per schedule

    def __repr__(self) -> str:
        return f"<Scheduler owner={self.owner!r} store={self.store!r} executor={self.executor!r}>"

    # -- schedules ---------------------------------------------------------------------

    def add(self, schedule: Schedule, conflict: Conflict | str = "replace") -> AddResult:
        """Store ``schedule`` (see :meth:`Store.add` for ``conflict``); returns what happened.

        Its first fire time is its first occurrence at or after now: occurrences in the
        past are not run (use :meth:`backfill` for those). A one-shot (``At``) whose instant
        passed at most ``misfire_grace`` ago fires at the next dispatch; one that passed
        longer ago is stored but can never fire: the result is then ``EXPIRED`` and a
        warning is logged (``schedule_expired``).
        """
        if not isinstance(schedule, Schedule):
            raise TypeError(f"expected a Schedule, got {type(schedule).__name__}")
        conflict = Conflict(conflict)
        self.allowed_tasks.check(schedule.task)
        self.executor.validate(schedule)
        self._check_references(schedule)
        runs_started = 0
        if schedule.max_runs is not None:
            existing = self.store.get(schedule.id)
            runs_started = existing.runs_started if existing is not None else 0
        now = self.clock.now()
        first = first_fire(schedule, now, runs_started)
        result = self._expired(schedule, first, now, self.store.add(schedule, first, conflict))
        self._event(
            "schedule_added",
            schedule_id=schedule.id,
            result=result.value,
            next_fire=first.nominal if first else None,
        )
        self.hooks.emit("schedcore_schedule_added", scheduler=self, schedule=schedule, result=result.value)
        self._wake.set()
        return result

    def _check_references(self, schedule: Schedule) -> None:
        """The allow-list covers all the code a run imports: besides the task, what the
        executor's ``task_references(schedule)`` names (``(field, "module:function")`` pairs:
        the RQ executor's callbacks)."""
        if self.allowed_tasks.enabled:
            for field, reference in self.executor.task_references(schedule):
                self.allowed_tasks.check(reference, field)

    def add_many(self, schedules: Iterable[Schedule], conflict: Conflict | str = "replace") -> builtins.list[AddResult]:
        """Store several schedules, each as :meth:`add` would; returns their results in input order.

        Everything is checked before anything is written -- each is a Schedule the executor
        accepts, no id appears twice (ValidationError) -- and the first fire times are
        computed from one ``now``. With ``conflict="error"`` a taken id raises ScheduleExists
        and nothing is written. The same events and hooks as :meth:`add` follow for each
        schedule. The store writes the batch with :meth:`Store.add_many` (a few round trips
        for thousands of schedules on Redis); a store without it gets one :meth:`Store.add`
        per schedule, after a check that no id is taken when ``conflict="error"``.
        """
        batch = builtins.list(schedules)
        conflict = Conflict(conflict)
        seen: set[str] = set()
        for schedule in batch:
            if not isinstance(schedule, Schedule):
                raise TypeError(f"expected Schedule items, got {type(schedule).__name__}")
            if schedule.id in seen:
                raise ValidationError("id", schedule.id, "appears more than once in one batch")
            seen.add(schedule.id)
            self.allowed_tasks.check(schedule.task)
            self.executor.validate(schedule)
            self._check_references(schedule)
        now = self.clock.now()
        # Schedules of one trigger, window and grace without jitter share their first fire entry:
        # computing it costs far more than the lookup (tens of microseconds for a cron).
        shared: dict[tuple[object, ...], Pending | None] = {}
        items: builtins.list[tuple[Schedule, Pending | None]] = []
        for schedule in batch:
            if schedule.max_runs is not None:
                existing = self.store.get(schedule.id)
                if existing is not None and existing.runs_started >= schedule.max_runs:
                    items.append((schedule, None))
                    continue
            if schedule.jitter:  # its due instant depends on its id
                items.append((schedule, first_fire(schedule, now)))
                continue
            key = (schedule.trigger, schedule.start_at, schedule.end_at, schedule.misfire_grace)
            try:
                first = shared[key]
            except KeyError:
                first = shared[key] = first_fire(schedule, now)
            except TypeError:  # an unhashable trigger: computed on its own
                first = first_fire(schedule, now)
            items.append((schedule, first))
        results = [
            self._expired(schedule, first, now, result)
            for (schedule, first), result in zip(items, self.store.add_many(items, conflict), strict=True)
        ]
        # What add logs and emits for each; skipped when nobody would see it (a tenth of a bulk add).
        logged = log.isEnabledFor(logging.INFO)
        hooked = self.hooks.heard("schedcore_schedule_added")
        for (schedule, first), result in zip(items, results, strict=True):
            value = result.value
            if logged:
                self._event(
                    "schedule_added",
                    schedule_id=schedule.id,
                    result=value,
                    next_fire=first.nominal if first else None,
                )
            if hooked:
                self.hooks.emit("schedcore_schedule_added", scheduler=self, schedule=schedule, result=value)
        self._wake.set()
        return results

    def _expired(self, schedule: Schedule, first: Pending | None, now: datetime, result: AddResult) -> AddResult:
        """``EXPIRED`` (with a warning) instead of ``result`` when ``schedule`` was written
        and is a one-shot that can never fire; else ``result``."""
        if first is not None or result not in (AddResult.ADDED, AddResult.REPLACED):
            return result  # it fires, or nothing was written
        when = expired_one_shot(schedule, now)
        if when is None:
            return result
        if result is AddResult.REPLACED:
            stored = self.store.get(schedule.id)  # a replace of the same timing kept its entry
            if stored is not None and stored.next_fire is not None:
                return result
        grace = schedule.misfire_grace.total_seconds()
        log.warning(
            "schedule %s will never fire: its one-shot time %s passed %.3fs ago, more than its misfire_grace (%gs)",
            schedule.id,
            iso(when),
            (now - when).total_seconds(),
            grace,
            extra={"event": "schedule_expired", "schedule_id": schedule.id, "when": when, "misfire_grace": grace},
        )
        return AddResult.EXPIRED

    def remove(self, schedule_id: str) -> bool:
        """Delete a schedule with its pending entries and history; False if there was none."""
        removed = self.store.remove(schedule_id)
        if removed:
            self._event("schedule_removed", schedule_id=schedule_id)
            self.hooks.emit("schedcore_schedule_removed", scheduler=self, schedule_id=schedule_id)
        return removed

    def get(self, schedule_id: str) -> StoredSchedule | None:
        """The stored schedule with its state, or None."""
        return self.store.get(schedule_id)

    def list(self) -> list[StoredSchedule]:
        """Every stored schedule, in id order."""
        return list(self.iter_schedules())

    def iter_schedules(self, page_size: int = 100) -> Iterator[StoredSchedule]:
        """Every stored schedule, in id order, fetched a page at a time."""
        after: str | None = None
        while True:
            page = self.store.list_schedules(after=after, limit=page_size)
            yield from page
            if len(page) < page_size:
                return
            after = page[-1].schedule.id

    def history(self, schedule_id: str, limit: int = 50) -> builtins.list[RunRecord]:
        """The schedule's newest run records first."""
        return self.store.history(schedule_id, limit)

    def pause(self, schedule_id: str) -> StoredSchedule:
        """Stop firing the schedule's occurrences (scheduled retries still run); ScheduleNotFound."""
        current = self._require(schedule_id)
        stored = self.store.set_paused(schedule_id, True, None)
        if current.schedule.paused:
            return stored  # already paused: nothing happened
        self._event("schedule_paused", schedule_id=schedule_id)
        self.hooks.emit("schedcore_schedule_paused", scheduler=self, schedule_id=schedule_id)
        return stored

    def resume(self, schedule_id: str) -> StoredSchedule:
        """Fire again from now on: occurrences that fell in the pause are not run; ScheduleNotFound."""
        current = self._require(schedule_id)
        if not current.schedule.paused:
            return current  # not paused: its fire entry stays as it is
        schedule = current.schedule.evolve(paused=False)
        next_fire = first_fire(schedule, self.clock.now(), current.runs_started, late_one_shot=False)
        stored = self.store.set_paused(schedule_id, False, next_fire)
        nominal = next_fire.nominal if next_fire else None
        self._event("schedule_resumed", schedule_id=schedule_id, next_fire=nominal)
        self.hooks.emit("schedcore_schedule_resumed", scheduler=self, schedule_id=schedule_id, next_fire=nominal)
        self._wake.set()
        return stored

    def trigger_now(self, schedule_id: str) -> str:
        """Run the schedule once now, outside its timing; returns the run id. ScheduleNotFound.

        The manual run's nominal time is now, moved on by a millisecond while it would
        coincide with an occurrence, a known run or an earlier manual run of this
        scheduler (run ids must stay unique). Two schedulers triggering the same schedule
        within the same millisecond get one run.
        """
        stored = self._require(schedule_id)
        now = self.clock.now()
        taken = set(stored.running) | {r.run_id for r in self.store.history(schedule_id, 1000)}
        nominal = now.replace(microsecond=now.microsecond // 1000 * 1000)
        with self._lock:  # two calls within one millisecond: the second gets the next one
            last = self._last_manual.get(schedule_id)
            if last is not None and nominal <= last:
                nominal = last + _MS
        for _ in range(10_000):
            occurs = next_fire_utc(stored.schedule.trigger, nominal - _MS) == nominal
            if not occurs and make_run_id(schedule_id, nominal, 1) not in taken:
                break
            nominal += _MS
        with self._lock:
            self._last_manual[schedule_id] = max(nominal, self._last_manual.get(schedule_id, nominal))
        entry = Pending(kind=PendingKind.MANUAL, nominal=nominal, due=now)
        self.store.enqueue(schedule_id, [entry])
        run_id = make_run_id(schedule_id, entry.nominal, 1)
        self._event("run_triggered", schedule_id=schedule_id, run_id=run_id)
        self._wake.set()
        return run_id

    def backfill(self, schedule_id: str, start: datetime, end: datetime) -> int:
        """Queue a run for each occurrence in ``[start, end]`` (``end`` capped at now) that has
        no run record in the history (skipped ones are run); returns how many were queued."""
        stored = self._require(schedule_id)
        end = min(end, self.clock.now())
        if end < start:
            return 0
        entries = backfill_entries(stored.schedule, start, end)
        known = set(stored.running) | {
            r.run_id for r in self.store.history(schedule_id, 100_000) if r.status is not RunStatus.SKIPPED
        }
        fresh = [e for e in entries if make_run_id(schedule_id, e.nominal, 1) not in known]
        added = self.store.enqueue(schedule_id, fresh) if fresh else 0
        self._event("backfill_queued", schedule_id=schedule_id, count=added)
        self._wake.set()
        return added

    def _require(self, schedule_id: str) -> StoredSchedule:
        stored = self.store.get(schedule_id)
        if stored is None:
            raise ScheduleNotFound(schedule_id)
        return stored

    # -- the loop ----------------------------------------------------------------------

    def run(self, burst: bool = False) -> None:
        """Run the loop until :meth:`stop` (or SIGINT/SIGTERM on the main thread).

        Stopping is clean: no new claims, the executor finishes its running runs
        (``shutdown(wait=True)``), their outcomes are recorded. With ``burst=True``,
        dispatch what is due now, wait for those runs to finish, record them and return
        (retries due later are left in the store). A scheduler runs once.
        """
        with self._lock:
            if self._ran:
                raise RuntimeError("Scheduler.run() can be called once: the executor is shut down when it returns")
            self._ran = True
        restore = self._install_signal_handlers()
        # A burst ticks once and never waits, so nothing would read a subscription's wake-ups:
        # not subscribing saves its set-up and the watcher's poll at stop (cron / CronJob use).
        unwatch = None if burst else self._watch()
        beater: BeatThread | None = None
        if self.heartbeat is not None and isinstance(self.clock, SystemClock):  # (a fake clock is the loop's)
            beater = BeatThread(self._beat, self.heartbeat, name=f"schedcore-beat-{self.owner}")
        try:
            self._ensure_started()
            self._started_at = self.clock.now()
            self.hooks.emit("schedcore_scheduler_started", scheduler=self)
            self._event("scheduler_started", owner=self.owner, burst=burst)
            self._beat()  # before the first claim: others know this owner from now on
            if beater is not None:
                beater.start()
            if burst:
                self.tick()
                if self._failures and self._last_error is not None:
                    # Nothing (or not everything) due was dispatched: a burst run that
                    # could not do its one job must not look like a success (exit 0).
                    raise self._last_error
            else:
                while not self._stopping.is_set():
                    self._wake.clear()  # before the tick: a wake-up during it is kept
                    if unwatch is None:
                        unwatch = self._watch()
                    self._beat()
                    wake_at = self.tick()
                    if self._stopping.is_set():
                        break
                    if self._next_beat is not None and not self._failures:
                        wake_at = self._next_beat if wake_at is None else min(wake_at, self._next_beat)
                    self.wait(wake_at)
        finally:
            try:
                if unwatch is not None:
                    unwatch()
                self.executor.shutdown(wait=True)
                self._apply_outcomes_safely()
                if beater is not None:
                    beater.stop()
                self._last_beat()
            finally:
                restore()
                self._event("scheduler_stopped", owner=self.owner)
                self.hooks.emit("schedcore_scheduler_stopped", scheduler=self)

    def stop(self) -> None:
        """Ask :meth:`run` to stop (from any thread); returns at once.

        From a signal handler, call it on another thread (as :meth:`run`'s own handler
        does): it sets ``threading.Event`` objects, whose lock the interrupted thread may hold.
        """
        self._stopping.set()
        self._wake.set()

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stopping.is_set()

    def tick(self) -> datetime | None:
        """Apply reported outcomes, then claim and dispatch everything due now, in batches.

        Returns the instant the loop should wake up next (None: nothing scheduled). Never
        raises for a store or executor outage: it logs it and returns a back-off instant.
        """
        self._ensure_started()
        claimed_at: datetime | None = None
        self._unapplied.extend(outcome for outcome, _ in self._deferred.values())  # try kept outcomes again
        ahead: _Ahead | None = None  # the next batch, claimed while this one was handed over
        try:
            try:
                peeked: tuple[datetime | None] | None = None  # next_due read with the last commit
                for round_ in range(_MAX_ROUNDS):
                    peeked = None
                    self._apply_outcomes()
                    if self._stopping.is_set():
                        break
                    claimed_at = self.clock.now()
                    claimed, peeked, ahead = self._dispatch_batch(
                        claimed_at, ahead, claim_ahead=round_ + 1 < _MAX_ROUNDS
                    )
                    if ahead is None and claimed < self.batch_size and self._outcomes.empty() and not self._unapplied:
                        break
                wake_at = peeked[0] if peeked is not None else self.store.next_due()
            finally:
                if ahead is not None:  # stopping, or an error: give the early claims back
                    self._release(ahead.claims)
        except ExecutorUnavailable as exc:
            return self._back_off("executor unavailable", exc)
        except ExecutorError as exc:  # one retrying does not cure (NOPERM...): said loudly, still retried
            return self._back_off("executor error", exc)
        except Exception as exc:
            return self._back_off("store error", exc)
        self._failures = 0
        if self._deferred:
            retry_at = self.clock.now() + _DEFERRED_POLL
            wake_at = retry_at if wake_at is None else min(wake_at, retry_at)
        if wake_at is not None and claimed_at is not None and wake_at <= claimed_at:
            # Due at the last claim, yet not handed out: the store keeps it back (a schedule
            # whose data cannot be decoded is left in the index). Poll instead of spinning.
            log.debug("an entry due at %s is not claimable; polling", wake_at.isoformat())
            wake_at = self.clock.now() + _STUCK_POLL
        return wake_at

    def wait(self, deadline: datetime | None) -> bool:
        """Sleep on this scheduler's clock until ``deadline`` or an early wake-up (True).

        While backing off from an outage only :meth:`stop` cuts the sleep short: the
        claims released by a failed tick notify the store's watchers, and waking up for
        those would turn the back-off into a busy loop.
        """
        if self._failures:
            return self.clock.wait(self._stopping, deadline)
        return self.clock.wait(self._wake, deadline)

    def clear_wakeup(self) -> None:
        """Forget earlier wake-up requests (call before :meth:`tick` when driving the loop)."""
        self._wake.clear()

    # -- internals ---------------------------------------------------------------------

    def _ensure_started(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        self.executor.start(self._report)

    def _beat(self) -> None:
        """Write the heartbeat when it is due (at most once per interval); failures are logged."""
        if self.heartbeat is None or not self._beat_lock.acquire(blocking=False):
            return  # (the other thread is beating right now)
        try:
            self._beat_now()
        finally:
            self._beat_lock.release()

    def _beat_now(self) -> None:
        assert self.heartbeat is not None
        now = self.clock.now()
        if self._next_beat is not None and now < self._next_beat:
            return
        self._next_beat = now + self.heartbeat
        try:
            self.store.heartbeat(self.owner, self._beat_info(), now=now, ttl=self.heartbeat * 3)
        except Exception as exc:
            log.warning(
                "cannot write the heartbeat (%s: %s)",
                type(exc).__name__,
                exc,
                extra={"event": "heartbeat_failed", "error": f"{type(exc).__name__}: {exc}"},
            )

    def _last_beat(self) -> None:
        """A clean stop leaves ``status`` at once: the last beat expires a millisecond later."""
        if self.heartbeat is None or self._next_beat is None:
            return
        try:
            self.store.heartbeat(self.owner, self._beat_info(), now=self.clock.now(), ttl=_MS)
        except Exception as exc:
            log.warning("cannot clear the heartbeat (%s: %s)", type(exc).__name__, exc)

    def _beat_info(self) -> dict[str, Any]:
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": (self._started_at or self.clock.now()).isoformat(timespec="milliseconds"),
            "version": version(),
            "store": type(self.store).__name__,
            "executor": type(self.executor).__name__,
            "allowed_tasks": self.allowed_tasks.enabled,  # `schedcore status` warns when it is off
        }

    def _report(self, outcome: Outcome) -> None:
        """The executor's callback (any thread): queue the outcome for the loop and wake it."""
        self._outcomes.put(outcome)
        self._wake.set()

    def _on_store_put(self, due: datetime) -> None:
        self._wake.set()

    def _watch(self) -> Callable[[], None] | None:
        """Subscribe to the store's index changes; None (tried again next loop) when it fails."""
        try:
            return self.store.watch(self._on_store_put)
        except Exception as exc:
            # Without it the loop still wakes at the next due instant; only early wake-ups
            # from other processes are missed until the subscription succeeds.
            log.warning(
                "cannot watch the store (%s: %s); will retry",
                type(exc).__name__,
                exc,
                extra={"event": "watch_failed", "error": f"{type(exc).__name__}: {exc}"},
            )
            return None

    def _back_off(self, what: str, exc: Exception) -> datetime:
        self._failures += 1
        self._last_error = exc
        seconds = min(0.5 * 2 ** min(self._failures - 1, 20), self.max_backoff.total_seconds())
        log.log(
            # damage or a refusal retrying does not cure: loud until an operator acts
            logging.ERROR if isinstance(exc, CorruptStore) or _permanent(exc) else logging.WARNING,
            "%s (%s: %s); retrying in %.1fs",
            what,
            type(exc).__name__,
            exc,
            seconds,
            exc_info=not isinstance(exc, (ExecutorError, StoreUnavailable, CorruptStore)),  # known: one line
            extra={"event": "backoff", "error": f"{type(exc).__name__}: {exc}", "delay": seconds},
        )
        return self.clock.now() + timedelta(seconds=seconds)

    def _dispatch_batch(
        self, now: datetime, ahead: _Ahead | None = None, *, claim_ahead: bool = False
    ) -> tuple[int, tuple[datetime | None] | None, _Ahead | None]:
        """Claim one batch due at ``now`` (or take ``ahead``, claimed and planned earlier),
        plan it, hand the runs over, commit; return how many were claimed, for a short
        (likely last) batch the store's next due instant read with the commit
        (``commit_and_next_due``), and the next batch when it was claimed during this one.

        With ``claim_ahead`` and a full batch, the next batch is claimed
        (``claim_due_nowait``) and planned while the runs travel (``submit_nowait``): where
        the store and the executor send those at once (Redis, RQ), the engine's work, the
        store's and the executor's overlap instead of taking turns; with the base classes'
        defaults they simply follow each other, in the same order.
        Claimed before this batch is committed, the next batch sees the state without it,
        exactly like a second half of this batch (see :meth:`_plan_batch`).
        """
        if ahead is None:
            claims = self.store.claim_due(now, limit=self.batch_size, lease=self.lease, owner=self.owner)
            if not claims:
                return 0, None, None
            plans = self._plan_batch(claims, now, {})
        else:
            claims, plans = ahead.claims, ahead.plans
        runs = [run for p in plans for run in p.runs]
        refused = self._refuse(runs) if self.allowed_tasks.enabled else None
        if refused:
            runs = [run for run in runs if run.id not in refused]
        held = [p.commit.claim for p in plans]
        following: _Ahead | None = None
        if runs and claim_ahead and len(claims) >= self.batch_size:
            claimed_at, claimed = self._start_claim_ahead()
            try:
                handed = self.executor.submit_nowait(runs)
            except Exception:
                following = self._finish_claim_ahead(claimed_at, claimed, plans)
                self._release(held + (following.claims if following is not None else []))
                raise
            following = self._finish_claim_ahead(claimed_at, claimed, plans)
            try:
                handed()
            except Exception:
                self._release(held + (following.claims if following is not None else []))
                raise
        elif runs:
            try:
                self.executor.submit(runs)
            except Exception:
                self._release(held)
                raise
        commits = [p.commit for p in plans]
        peeked: tuple[datetime | None] | None = None
        try:
            if len(claims) < self.batch_size:  # the tick's last batch: saves the loop's next_due round trip
                results, due = self.store.commit_and_next_due(commits)
                peeked = (due,)
            else:
                results = self.store.commit(commits)
        except Exception:
            if following is not None:
                self._release(following.claims)
            raise
        for p, ok in zip(plans, results, strict=True):
            self._after_commit(p, ok)
            if refused and ok:
                self._fail_refused(p, refused)
        if refused:
            # Recorded now, not on a later tick: a refused run has no executor that would ever
            # report it, so the shorter it is "running", the smaller the window a crash leaves.
            self._apply_outcomes_safely()
        self._settled([run.id for p, ok in zip(plans, results, strict=True) if ok for run in p.runs])
        return len(claims), peeked, following

    def _refuse(self, runs: Sequence[Run]) -> dict[str, str]:
        """Runs whose task the allow-list refuses (run id -> error); they are never handed over."""
        allowed = self.allowed_tasks
        return {run.id: allowed.refusal(run.task) for run in runs if not allowed.allows(run.task)}

    def _fail_refused(self, p: Plan, refused: dict[str, str]) -> None:
        """Report the committed runs of ``p`` that were refused as failed, through the outcome
        path like any executor's report (so history, events and hooks see them), without retry."""
        now = self.clock.now()
        for run in p.runs:
            error = refused.get(run.id)
            if error is None:
                continue
            log.error(
                "run %s refused: %s",
                run.id,
                error,
                extra={"event": "run_refused", "schedule_id": run.schedule_id, "run_id": run.id},
            )
            self._disallowed.add(run.id)
            self._outcomes.put(
                Outcome(
                    run_id=run.id,
                    schedule_id=run.schedule_id,
                    nominal=run.nominal,
                    attempt=run.attempt,
                    status=OutcomeStatus.FAILED,
                    finished_at=now,
                    error=error,
                )
            )
        self._wake.set()

    def _settled(self, run_ids: builtins.list[str]) -> None:
        """Tell the executor which hand-overs are committed (``Executor.settled``; best effort)."""
        if not run_ids:
            return
        try:
            self.executor.settled(run_ids)
        except Exception:
            # Only bookkeeping is lost (the executor keeps what recognises a repeat a while longer).
            log.warning("executor.settled failed for %d runs", len(run_ids), exc_info=True)

    def _plan_batch(
        self, claims: Sequence[Claim], now: datetime, earlier: dict[str, builtins.list[Plan]]
    ) -> builtins.list[Plan]:
        """Plan each claim of a batch; a claim whose plan raises is left out (and logged).

        ``earlier``: plans of the batch before, by schedule id, that were not committed yet
        when these claims were taken (:meth:`_finish_claim_ahead`).
        """
        plans: list[Plan] = []
        by_schedule: dict[str, builtins.list[Plan]] = {sid: list(previous) for sid, previous in earlier.items()}
        memo: TriggerMemo = {}  # schedules of one batch often share a trigger and its answers
        # Claims of one schedule taken before the plans of the others were committed (two
        # entries of one batch, a fire entry and an un-parked one, say; or entries of the
        # batch before, claimed ahead) each see the state without the others: add what those
        # plans did, or overlap and max_runs would be decided on stale counts.
        for claimed in claims:
            claim = claimed
            try:
                previous = by_schedule.setdefault(claim.schedule_id, [])
                if previous:
                    claim = attrs.evolve(
                        claimed,
                        running=claim.running + sum(len(p.runs) for p in previous),
                        runs_started=claim.runs_started + sum(p.commit.runs_started for p in previous),
                        parked=claim.parked or any(p.commit.park is not None for p in previous),
                    )
                planned = plan(claim, now, memo)
                plans.append(planned)
                previous.append(planned)
            except Exception:
                # One bad schedule (a trigger that raises...) must not stop the others; its
                # claim is kept until the lease expires, which paces the next attempt.
                log.exception(
                    "cannot plan %s of schedule %s",
                    claim.entry.kind.value,
                    claim.schedule_id,
                    extra={"event": "plan_failed", "schedule_id": claim.schedule_id},
                )
        return plans

    def _start_claim_ahead(self) -> tuple[datetime, Callable[[], builtins.list[Claim]] | None]:
        """Start claiming the next batch (``Store.claim_due_nowait``); None: sending it failed."""
        claimed_at = self.clock.now()
        try:
            return claimed_at, self.store.claim_due_nowait(
                claimed_at, limit=self.batch_size, lease=self.lease, owner=self.owner
            )
        except Exception as exc:
            log.debug("claiming ahead failed (%s: %s); claiming after the commit", type(exc).__name__, exc)
            return claimed_at, None

    def _finish_claim_ahead(
        self, claimed_at: datetime, claimed: Callable[[], builtins.list[Claim]] | None, plans: Sequence[Plan]
    ) -> _Ahead | None:
        """The next batch, claimed before ``plans`` are committed, and planned (None: nothing
        due, or the claim failed -- the next round claims again and meets the error the usual way)."""
        if claimed is None:
            return None
        try:
            claims = claimed()
        except Exception as exc:
            log.debug("claiming ahead failed (%s: %s); claiming after the commit", type(exc).__name__, exc)
            return None
        if not claims:
            return None
        earlier: dict[str, builtins.list[Plan]] = {}
        for p in plans:
            earlier.setdefault(p.commit.claim.schedule_id, []).append(p)
        return _Ahead(claims=claims, plans=self._plan_batch(claims, claimed_at, earlier))

    def _release(self, claims: Sequence[Claim]) -> None:
        try:
            self.store.release(claims)
        except Exception:
            log.exception("could not release %d claims; their leases will expire", len(claims))

    def _after_commit(self, p: Plan, ok: bool) -> None:
        claim = p.commit.claim
        sid = claim.schedule_id
        if not ok:
            # The lease was lost (or the schedule removed): another scheduler owns the entry
            # now and rebuilds the same run ids, which the executor drops as repeats. A store
            # also refuses an item whose records are damaged; it logs that itself, naming the key.
            log.warning(
                "commit refused for %s of schedule %s (lease lost, schedule removed, or its records damaged)",
                claim.entry.kind.value,
                sid,
                extra={"event": "lease_lost", "schedule_id": sid, "runs": [r.id for r in p.runs]},
            )
            return
        for run, record in zip(p.runs, p.commit.dispatched, strict=True):
            self._event(
                "run_dispatched",
                schedule_id=sid,
                run_id=run.id,
                kind=run.kind.value,
                attempt=run.attempt,
                nominal=run.nominal,
                lateness=record.lateness,
            )
            self.hooks.emit("schedcore_run_dispatched", scheduler=self, run=run, record=record)
        for record in p.skipped:
            reason = record.note or "skipped"
            self._event(
                "misfire_skipped",
                schedule_id=sid,
                run_id=record.run_id,
                nominal=record.nominal,
                reason=reason,
            )
            self.hooks.emit(
                "schedcore_misfire_skipped", scheduler=self, schedule_id=sid, nominal=record.nominal, reason=reason
            )
        if p.unrecorded or p.jumped:
            log.warning(
                "schedule %s: %s more missed occurrences skipped without a history record",
                sid,
                "many" if p.jumped else p.unrecorded,
                extra={"event": "misfire_skipped_bulk", "schedule_id": sid, "count": p.unrecorded},
            )
        if p.commit.park is not None:
            parked = p.commit.park
            self._event(
                "run_buffered",
                schedule_id=sid,
                run_id=make_run_id(sid, parked.nominal, parked.attempt),
                nominal=parked.nominal,
            )
        if claim.entry.kind is PendingKind.FIRE and p.commit.next_fire is None and not claim.schedule.paused:
            self._event("schedule_finished", schedule_id=sid)

    def _apply_outcomes(self) -> None:
        """Record reported outcomes in the store, a batch per call (``Store.record_outcomes``:
        one transaction or round trip where the store can); raises on a store error, nothing is lost."""
        while True:
            try:
                self._unapplied.append(self._outcomes.get_nowait())
            except queue.Empty:
                break
        while self._unapplied:
            batch = list(itertools.islice(self._unapplied, _OUTCOME_BATCH))  # kept queued until the store has them
            prepared = [(outcome, self._retry_for(outcome)) for outcome in batch]
            try:
                results = self.store.record_outcomes(prepared)
            except StoreUnavailable:
                raise  # transient: back off and try again
            except Exception:
                # Not transient (an item the store cannot take): one by one, so that one bad
                # outcome never blocks the others.
                log.exception("cannot record %d outcomes together; recording them one by one", len(batch))
                for outcome, retry in prepared:
                    ok = self._record_alone(outcome, retry)
                    if ok is not None:
                        self._after_outcome(outcome, retry, ok)
                    self._unapplied.popleft()
                continue
            for (outcome, retry), ok in zip(prepared, results, strict=True):
                self._after_outcome(outcome, retry, ok)
                self._unapplied.popleft()

    def _apply_outcomes_safely(self) -> None:
        try:
            self._apply_outcomes()
        except Exception:
            log.exception("could not record %d outcomes", len(self._unapplied) + self._outcomes.qsize())

    def _retry_for(self, outcome: Outcome) -> Pending | None:
        """The retry entry to record with ``outcome`` (reads the schedule only when one may be due)."""
        if outcome.status not in (OutcomeStatus.FAILED, OutcomeStatus.LOST) or outcome.run_id in self._disallowed:
            return None  # never retried (see retry_entry); a refused task is not retried either
        try:
            stored = self.store.get(outcome.schedule_id)
        except StoreUnavailable:
            raise
        except Exception:
            # Not transient (undecodable schedule...): record the end without a retry rather
            # than block every later outcome behind this one.
            log.exception(
                "cannot apply the outcome of %s; recording it without a retry",
                outcome.run_id,
                extra={"event": "outcome_failed", "schedule_id": outcome.schedule_id, "run_id": outcome.run_id},
            )
            return None
        return retry_entry(outcome, stored.schedule) if stored is not None else None

    def _record_alone(self, outcome: Outcome, retry: Pending | None) -> bool | None:
        """``record_outcome`` for one outcome, without its retry if that fails; None: dropped."""
        for attempt in (retry, None) if retry is not None else (None,):
            try:
                return self.store.record_outcome(outcome, attempt)
            except StoreUnavailable:
                raise
            except Exception:
                log.exception(
                    "cannot record the outcome of %s%s",
                    outcome.run_id,
                    " with its retry" if attempt is not None else "; dropping it",
                    extra={"event": "outcome_failed", "schedule_id": outcome.schedule_id, "run_id": outcome.run_id},
                )
        return None

    def _after_outcome(self, outcome: Outcome, retry: Pending | None, recorded: bool) -> None:
        """Events and hooks of an outcome the store recorded; a refused one is sorted out."""
        sid = outcome.schedule_id
        if not recorded:
            try:
                gone = self.store.get(sid) is None
            except StoreUnavailable:
                raise
            except Exception:
                gone = False  # there, though unreadable: refused like any other
            if gone:
                self._disallowed.discard(outcome.run_id)
                self._deferred.pop(outcome.run_id, None)  # kept earlier: nobody can commit it now
                log.info(
                    "outcome of %s ignored: schedule %s is gone",
                    outcome.run_id,
                    sid,
                    extra={"event": "outcome_ignored", "schedule_id": sid, "run_id": outcome.run_id},
                )
            elif not self._keep_refused(outcome):
                self._disallowed.discard(outcome.run_id)
                log.debug("repeat outcome of %s ignored", outcome.run_id)
            return  # a duplicate report, or kept for later: no events now
        self._disallowed.discard(outcome.run_id)
        self._deferred.pop(outcome.run_id, None)
        fields: dict[str, Any] = {
            "schedule_id": sid,
            "run_id": outcome.run_id,
            "attempt": outcome.attempt,
            "status": outcome.status.value,
            "nominal": outcome.nominal,
        }
        if outcome.status is OutcomeStatus.SUCCEEDED:
            self._event("run_succeeded", **fields)
            self.hooks.emit("schedcore_run_succeeded", scheduler=self, outcome=outcome)
            return
        self._event("run_failed", error=outcome.error, **fields)
        self.hooks.emit("schedcore_run_failed", scheduler=self, outcome=outcome)
        if retry is not None:
            self._event(
                "run_retry_scheduled",
                retry_at=retry.due,
                **fields,
            )
            self.hooks.emit(
                "schedcore_run_retry_scheduled",
                scheduler=self,
                outcome=outcome,
                retry_at=retry.due,
                attempt=retry.attempt,
            )
        elif outcome.status is not OutcomeStatus.STOPPED:
            self._event("run_exhausted", **fields)
            self.hooks.emit("schedcore_run_exhausted", scheduler=self, outcome=outcome)

    def _keep_refused(self, outcome: Outcome) -> bool:
        """Keep an outcome the store refused if its run may still be committed; True if kept.

        The store refuses an outcome for a run that is not running: a repeat report of a
        finished run -- or a run whose hand-off is not committed yet, which happens when
        several schedulers share one executor backend and another one's report overtakes
        the commit. The latter is tried again on every tick until the claim's lease must
        have ended (twice the lease); after that nobody can commit the run any more.
        """
        finished = any(
            record.run_id == outcome.run_id and record.status is not RunStatus.DISPATCHED
            for record in self.store.history(outcome.schedule_id, 1000)
        )
        now = self.clock.now()
        first_seen = self._deferred.get(outcome.run_id, (outcome, now))[1]
        if finished or now - first_seen > 2 * self.lease:
            if not finished:
                log.warning(
                    "outcome of %s dropped: its run was never committed",
                    outcome.run_id,
                    extra={"event": "outcome_dropped", "schedule_id": outcome.schedule_id, "run_id": outcome.run_id},
                )
            self._deferred.pop(outcome.run_id, None)
            return False
        self._deferred[outcome.run_id] = (outcome, first_seen)
        return True

    def _event(self, event: str, /, **fields: Any) -> None:
        """Log ``event`` with ``fields`` as its table (:data:`schedcore.events.EVENTS`) says."""
        spec = EVENTS[event]
        if log.isEnabledFor(spec.level):
            log.log(spec.level, spec.message_for(fields), extra={"event": event, **fields})

    def _install_signal_handlers(self) -> Any:
        """SIGINT/SIGTERM stop the loop cleanly; returns a function restoring the old handlers."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def handle(signum: int, frame: FrameType | None) -> None:
            if self._stopping.is_set():
                # A second signal while running tasks finish: give up waiting for them.
                log.warning("signal %s again: exiting without waiting", signum, extra={"event": "signal"})
                raise KeyboardInterrupt
            log.info("signal %s: stopping", signum, extra={"event": "signal", "signal": signum})
            # Not self.stop() here: the handler runs on the main thread between two bytecodes,
            # possibly while that thread holds the (non-reentrant) lock inside one of our
            # Events -- setting the Event from here could then wait for itself forever.
            threading.Thread(target=self.stop, name="schedcore-signal", daemon=True).start()

        previous: dict[int, Any] = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError, OSError):  # not supported on this platform
                previous[sig] = signal.signal(sig, handle)

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore
