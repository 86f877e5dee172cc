"""The engine across a repeated (fall-back) hour.

Cron returns fire times in its own zone; two such datetimes in the repeated hour
compare equal and hash alike (PEP 495 same-zone comparison ignores ``fold``), so the
engine must work on UTC instants. Wildcard jobs fire in both copies of the hour.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from schedcore import Cron, Schedule
from schedcore.testing.simulation import Simulation

UTC = timezone.utc


def _dispatched_nominals(
    trigger: Cron, start: datetime, end: datetime, downtime: list[tuple[datetime, datetime]] | None = None
) -> list[datetime]:
    sim = Simulation.create(start=start)
    sim.scheduler.add(
        Schedule(id="dst", task="schedcore.testing.tasks:noop", trigger=trigger, catchup="all", catchup_limit=50)
    )
    sim.run_until(end, downtime=downtime or [])
    return sorted(run.nominal for run in sim.executor.executed)


def test_wildcard_job_fires_in_both_copies_of_the_repeated_hour() -> None:
    # 2025-11-02 America/New_York: 01:00-01:59 happens twice (EDT, then EST).
    start = datetime(2025, 11, 2, 4, 50, tzinfo=UTC)  # 00:50 EDT
    end = datetime(2025, 11, 2, 7, 10, tzinfo=UTC)  # 02:10 EST
    got = _dispatched_nominals(Cron("*/30 * * * *", tz="America/New_York"), start, end)
    assert got == [
        datetime(2025, 11, 2, 5, 0, tzinfo=UTC),  # 01:00 EDT
        datetime(2025, 11, 2, 5, 30, tzinfo=UTC),  # 01:30 EDT
        datetime(2025, 11, 2, 6, 0, tzinfo=UTC),  # 01:00 EST
        datetime(2025, 11, 2, 6, 30, tzinfo=UTC),  # 01:30 EST
        datetime(2025, 11, 2, 7, 0, tzinfo=UTC),  # 02:00 EST
    ]
    assert len(set(got)) == len(got)


def test_fixed_time_job_fires_once_in_the_repeated_hour() -> None:
    start = datetime(2025, 11, 2, 4, 0, tzinfo=UTC)
    end = start + timedelta(days=1, hours=3)
    got = _dispatched_nominals(Cron("30 1 * * *", tz="America/New_York"), start, end)
    assert got == [datetime(2025, 11, 2, 5, 30, tzinfo=UTC), datetime(2025, 11, 3, 6, 30, tzinfo=UTC)]


def test_catch_up_all_across_the_repeated_hour_runs_each_instant_once() -> None:
    # Down from 00:50 EDT to 02:10 EST: catch-up walks through both copies of 01:xx.
    start = datetime(2025, 11, 2, 4, 40, tzinfo=UTC)
    down = (datetime(2025, 11, 2, 4, 45, tzinfo=UTC), datetime(2025, 11, 2, 7, 10, tzinfo=UTC))
    got = _dispatched_nominals(
        Cron("*/30 * * * *", tz="America/New_York"), start, datetime(2025, 11, 2, 7, 20, tzinfo=UTC), [down]
    )
    assert got == [datetime(2025, 11, 2, h, m, tzinfo=UTC) for h, m in [(5, 0), (5, 30), (6, 0), (6, 30), (7, 0)]]
