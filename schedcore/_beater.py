"""The scheduler's heartbeat thread: beats keep coming while a long batch holds the loop.

Other schedulers take back the claims of an owner whose heartbeat expired (see
``Store.claim_due``), so a live scheduler must not miss beats because its loop is busy
dispatching a large batch, waiting on a slow executor or shutting down: the loop still
beats between ticks, and this thread beats whenever the loop did not in time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from schedcore._threads import StoppableThread

__all__ = ["BeatThread"]


class BeatThread(StoppableThread):
    """Calls ``beat`` every ``interval`` of real time on a daemon thread until :meth:`stop`.

    ``beat`` must be thread-safe and cheap when no beat is due (the scheduler's own
    ``_beat`` is rate-limited), and must not raise (it logs its failures).
    """

    def __init__(self, beat: Callable[[], None], interval: timedelta, name: str) -> None:
        super().__init__(name)
        self._beat = beat
        # A third of the interval: a beat is never more than that late, whatever the loop does.
        self._period = max(interval.total_seconds() / 3, 0.01)

    def _run(self) -> None:
        while not self._stopped.wait(self._period):
            self._beat()
