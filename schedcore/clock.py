"""Time sources: the real clock and a simulated one for tests.

Everything in schedcore that needs "now" or needs to sleep asks a :class:`Clock`,
so that tests run in simulated time with :class:`FakeClock` -- no sleeping, no
patching of ``datetime.now``.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Protocol, runtime_checkable

from schedcore._time import require_aware, to_utc

__all__ = ["Clock", "FakeClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Where the scheduler reads the time and waits."""

    def now(self) -> datetime:
        """Return the current instant as an aware UTC datetime."""
        ...

    def wait(self, event: threading.Event, deadline: datetime | None) -> bool:
        """Block until ``event`` is set or ``deadline`` passes (``None``: no deadline).

        Returns True when the event was set, False when the deadline passed.
        """
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def wait(self, event: threading.Event, deadline: datetime | None) -> bool:
        while True:
            if deadline is None:
                return event.wait()
            remaining = (deadline - self.now()).total_seconds()
            if remaining <= 0:
                return event.is_set()
            # Event.wait is capped so that a wall-clock jump cannot stall us for long.
            if event.wait(min(remaining, 60.0)):
                return True


class FakeClock:
    """A simulated clock: time moves only when told to, or when someone waits.

    ``wait`` never blocks: if the event is not set it jumps straight to the deadline,
    firing on the way, in order, the timers registered with :meth:`call_at` (a timer
    may set the event, which ends the wait at the timer's instant). Waiting with no
    deadline jumps to the next timer; with no timer and no event set it is an error,
    since in simulated time it would block forever.
    """

    def __init__(self, start: datetime | None = None) -> None:
        if start is None:
            start = datetime(2025, 1, 1, tzinfo=timezone.utc)
        self._now = to_utc(require_aware(start, "start"))
        self._lock = threading.Lock()
        self._timers: list[tuple[datetime, int, Callable[[], None]]] = []
        self._seq = itertools.count()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def call_at(self, when: datetime, fn: Callable[[], None]) -> None:
        """Call ``fn()`` when simulated time reaches ``when`` (at once if it has already).

        Timers fire in instant order (then registration order), outside the clock's lock,
        while :meth:`wait`, :meth:`advance` or :meth:`set` move the time past them.
        """
        when = to_utc(require_aware(when, "when"))
        with self._lock:
            heapq.heappush(self._timers, (when, next(self._seq), fn))
            due = when <= self._now
        if due:
            self._run_timers(when)

    def pending_timers(self) -> int:
        """How many timers have not fired yet."""
        with self._lock:
            return len(self._timers)

    def next_timer(self) -> datetime | None:
        """The instant of the earliest timer not fired yet."""
        with self._lock:
            return self._timers[0][0] if self._timers else None

    def set(self, instant: datetime) -> None:
        """Move to ``instant`` (never backwards), firing the timers up to it."""
        instant = to_utc(require_aware(instant, "instant"))
        with self._lock:
            if instant < self._now:
                raise ValueError(f"FakeClock cannot go back from {self._now} to {instant}")
        self._move_to(instant, None)

    def advance(self, delta: timedelta | float) -> datetime:
        """Move forward by ``delta`` (seconds or timedelta), firing timers; return the new now."""
        if not isinstance(delta, timedelta):
            delta = timedelta(seconds=delta)
        if delta < timedelta(0):
            raise ValueError("FakeClock cannot go back in time")
        with self._lock:
            target = self._now + delta
        self._move_to(target, None)
        return self.now()

    def wait(self, event: threading.Event, deadline: datetime | None) -> bool:
        if event.is_set():
            return True
        if deadline is None:
            target = self.next_timer()
            if target is None:
                raise RuntimeError("FakeClock.wait with no deadline and no timer would block forever")
            self._move_to(max(target, self.now()), event)
            return event.is_set()
        self._move_to(to_utc(deadline), event)
        return event.is_set()

    def _move_to(self, target: datetime, event: threading.Event | None) -> None:
        """Advance to ``target`` timer by timer; stop early when ``event`` gets set."""
        while True:
            with self._lock:
                if self._timers and self._timers[0][0] <= target:
                    when, _, fn = heapq.heappop(self._timers)
                    self._now = max(self._now, when)
                else:
                    self._now = max(self._now, target)
                    return
            fn()  # outside the lock: timers may read the clock or register timers
            if event is not None and event.is_set():
                return

    def _run_timers(self, upto: datetime) -> None:
        while True:
            with self._lock:
                if not (self._timers and self._timers[0][0] <= max(upto, self._now)):
                    return
                _, _, fn = heapq.heappop(self._timers)
            fn()
