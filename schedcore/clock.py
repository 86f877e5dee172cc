"""Time sources: the real clock and a simulated one for tests.

Everything in schedcore that needs "now" or needs to sleep asks a :class:`Clock`,
so that tests run in simulated time with :class:`FakeClock` -- no sleeping, no
patching of ``datetime.now``.
"""

from __future__ import annotations

import threading
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

    ``wait`` never blocks: if the event is not set it jumps straight to the deadline.
    Waiting with no deadline and no event set is an error, since in simulated time
    it would block forever.
    """

    def __init__(self, start: datetime | None = None) -> None:
        if start is None:
            start = datetime(2025, 1, 1, tzinfo=timezone.utc)
        self._now = to_utc(require_aware(start, "start"))
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, instant: datetime) -> None:
        """Move to ``instant`` (never backwards)."""
        instant = to_utc(require_aware(instant, "instant"))
        with self._lock:
            if instant < self._now:
                raise ValueError(f"FakeClock cannot go back from {self._now} to {instant}")
            self._now = instant

    def advance(self, delta: timedelta | float) -> datetime:
        """Move forward by ``delta`` (seconds or timedelta) and return the new now."""
        if not isinstance(delta, timedelta):
            delta = timedelta(seconds=delta)
        if delta < timedelta(0):
            raise ValueError("FakeClock cannot go back in time")
        with self._lock:
            self._now += delta
            return self._now

    def wait(self, event: threading.Event, deadline: datetime | None) -> bool:
        if event.is_set():
            return True
        if deadline is None:
            raise RuntimeError("FakeClock.wait with no deadline would block forever")
        with self._lock:
            if deadline > self._now:
                self._now = to_utc(deadline)
        return event.is_set()
