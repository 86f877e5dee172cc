"""Drive a :class:`~schedcore.Scheduler` in simulated time, with downtime windows.

::

    sim = Simulation.create(handler)             # FakeClock + MemoryStore + CallbackExecutor
    sim.scheduler.add(Schedule(...))
    sim.run_until(T0 + timedelta(days=1), downtime=[(T0 + timedelta(hours=2), T0 + timedelta(hours=5))])
    sim.executor.executed                        # every run, in hand-over order

The loop ticks exactly when the scheduler asks to be woken (its store's next due
instant, or an executor report), so every run is dispatched at its due instant unless
the scheduler is *down*: inside a downtime window it does nothing; it resumes at the
window's end, where catch-up applies. Simulated runs keep finishing during downtime
(the executor is another system); their outcomes are recorded when the scheduler is back.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs
import pluggy

from schedcore.clock import FakeClock
from schedcore.plugins import get_plugin_manager
from schedcore.scheduler import Scheduler
from schedcore.testing.executors import CallbackExecutor, Handler

__all__ = ["Downtime", "Simulation", "run_until"]

#: A window ``(start, end)`` during which the scheduler is down: it ticks again at ``end``.
Downtime = tuple[datetime, datetime]

_MS = timedelta(milliseconds=1)


def run_until(scheduler: Scheduler, until: datetime, *, downtime: Sequence[Downtime] = ()) -> int:
    """Tick ``scheduler`` (whose clock must be a FakeClock) until simulated time ``until``.

    Ticks at every wake-up the scheduler asks for, and a last time at ``until``; skips
    the ``downtime`` windows (``[start, end)``, non-overlapping). Returns the number of ticks.
    """
    clock = scheduler.clock
    if not isinstance(clock, FakeClock):
        raise TypeError("run_until needs a scheduler with a FakeClock")
    windows = sorted(downtime)
    for (_, end), (start, _) in itertools.pairwise(windows):
        if start < end:
            raise ValueError("downtime windows overlap")
    ticks = 0
    stalled = 0
    while True:
        now = clock.now()
        window = next((w for w in windows if w[0] <= now < w[1]), None)
        if window is not None:
            clock.set(min(window[1], until) if now < until else now)
            if now >= until or window[1] > until:
                return ticks
            continue
        scheduler.clear_wakeup()  # before the tick: a report during it wakes us again
        wake_at = scheduler.tick()
        ticks += 1
        if now >= until:
            return ticks
        target = until if wake_at is None else min(wake_at, until)
        starts = [a for a, _ in windows if a > now]
        if starts:
            target = min(target, starts[0])
        if target <= now:
            stalled += 1  # something is due now but could not be taken: do not spin forever
            if stalled < 100:
                continue
            target = now + _MS
        stalled = 0
        scheduler.wait(target)


_PM: pluggy.PluginManager | None = None


def _plugin_manager() -> pluggy.PluginManager:
    # One shared manager without entry-point scanning: simulations are built by the hundred.
    global _PM
    if _PM is None:
        _PM = get_plugin_manager(entry_points=False)
    return _PM


@attrs.define(kw_only=True)
class Simulation:
    """A scheduler on a :class:`FakeClock`, a :class:`MemoryStore` and a :class:`CallbackExecutor`."""

    clock: FakeClock
    executor: CallbackExecutor
    scheduler: Scheduler

    @classmethod
    def create(
        cls, handler: Handler | None = None, *, start: datetime | None = None, **scheduler_options: Any
    ) -> Simulation:
        """Build the trio; ``scheduler_options`` go to :class:`Scheduler` (``store=...``, ``plugins=...``)."""
        from schedcore.memory import MemoryStore

        clock = FakeClock(start)
        executor = CallbackExecutor(handler, clock=clock)
        scheduler_options.setdefault("store", MemoryStore(history_limit=100_000))
        scheduler_options.setdefault("plugins", _plugin_manager())
        scheduler = Scheduler(executor=executor, clock=clock, **scheduler_options)
        return cls(clock=clock, executor=executor, scheduler=scheduler)

    def run_until(self, until: datetime, *, downtime: Sequence[Downtime] = ()) -> int:
        """:func:`run_until` on this simulation's scheduler."""
        return run_until(self.scheduler, until, downtime=downtime)

    def advance(self, delta: timedelta | float, *, downtime: Sequence[Downtime] = ()) -> int:
        """Run for ``delta`` (seconds or timedelta) of simulated time from now."""
        if not isinstance(delta, timedelta):
            delta = timedelta(seconds=delta)
        return self.run_until(self.clock.now() + delta, downtime=downtime)
