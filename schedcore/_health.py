"""Is the scheduling healthy? The verdict behind ``schedcore status``'s exit code.

A store holds enough to tell whether due work is being picked up: the heartbeats of the
live schedulers (:meth:`Store.schedulers <schedcore.protocols.Store.schedulers>`) and
what is due and claimed (:meth:`Store.stats <schedcore.protocols.Store.stats>`).
Scheduling is unhealthy when due work waits with nobody alive to take it, when the
oldest due entry has waited longer than an operator's bound, or when fewer schedulers
are alive than the operator expects.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import attrs

from schedcore._time import iso
from schedcore.protocols import SchedulerBeat, StoreStats

__all__ = ["HEALTHY", "UNHEALTHY", "Health", "assess"]

#: ``schedcore status`` exit codes (1 is any failure to read the store, 2 a bad command line).
HEALTHY = 0
UNHEALTHY = 3


@attrs.frozen
class Health:
    """The verdict: ``problems`` is empty when healthy, else one sentence per problem."""

    problems: tuple[str, ...] = ()

    @property
    def healthy(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems

    @property
    def exit_code(self) -> int:
        """:data:`HEALTHY` or :data:`UNHEALTHY`."""
        return HEALTHY if self.healthy else UNHEALTHY


def assess(
    beats: Sequence[SchedulerBeat],
    stats: StoreStats,
    now: datetime,
    *,
    max_late: timedelta | None = None,
    min_schedulers: int = 0,
) -> Health:
    """Judge the store's state at ``now``.

    Unhealthy when: runs are due, or claims expired, and no scheduler is alive (nothing
    will run them); the oldest due entry is overdue by more than ``max_late`` (schedulers
    are stuck, overloaded or partitioned from the store); fewer than ``min_schedulers``
    are alive.
    """
    problems: list[str] = []
    if not beats and (stats.due or stats.expired):
        waiting = f"{stats.due} due" + (f", {stats.expired} claim(s) with an expired lease" if stats.expired else "")
        problems.append(f"runs are due but no scheduler is alive ({waiting}): nothing will run them")
    if max_late is not None and stats.oldest_due is not None and now - stats.oldest_due > max_late:
        late = (now - stats.oldest_due).total_seconds()
        problems.append(
            f"the oldest due run has waited {late:.1f}s (due {iso(stats.oldest_due)}), "
            f"more than --max-late {max_late.total_seconds():g}s"
        )
    if len(beats) < min_schedulers:
        problems.append(f"{len(beats)} live scheduler(s), fewer than --min-schedulers {min_schedulers}")
    return Health(tuple(problems))
