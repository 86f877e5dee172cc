"""How the commands (and the dashboard) print times, durations and tables."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone, tzinfo
from typing import TYPE_CHECKING, Any

from schedcore._time import iso

if TYPE_CHECKING:
    from schedcore.records import StoredSchedule


def _when(instant: datetime, zone: tzinfo = timezone.utc) -> str:
    """``2025-03-09T04:00:00+01:00 (2025-03-09T03:00:00Z)``: in the schedule's zone, then UTC."""
    return f"{_zoned(instant, zone)} ({_utc(instant)})"


def _schedule_zone(schedule: Any) -> tzinfo:
    """The zone a schedule's times are read in: its cron zone, else UTC (intervals and one-shots)."""
    from zoneinfo import ZoneInfo

    name = getattr(schedule.trigger, "tz", None)
    return ZoneInfo(name) if isinstance(name, str) and name != "UTC" else timezone.utc


def _zoned(instant: datetime | None, zone: tzinfo) -> str:
    return "-" if instant is None else iso(instant.astimezone(zone))


def _utc(instant: datetime | None) -> str:
    return "-" if instant is None else iso(instant.astimezone(timezone.utc)).replace("+00:00", "Z")


def _seconds(value: float) -> str:
    """A duration as people read it: ``12 ms``, ``1.25 s``, ``3 min 5 s``."""
    if abs(value) < 1:
        return f"{value * 1000:.0f} ms"
    if abs(value) < 60:
        return f"{value:.2f} s"
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes} min {seconds} s"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in (header, *rows)]  # fmt: skip
    return "\n".join(lines)


def _next_times(stored: StoredSchedule, count: int) -> list[datetime]:
    """The next ``count`` fire times from the stored fire entry (none when paused or finished)."""
    from schedcore._planner import next_fire_utc

    schedule = stored.schedule
    if stored.next_fire is None or schedule.paused:
        return []
    times = [stored.next_fire.nominal]
    left = None if schedule.max_runs is None else schedule.max_runs - stored.runs_started
    while len(times) < count and (left is None or len(times) < left):
        nxt = next_fire_utc(schedule.trigger, times[-1])
        if nxt is None or (schedule.end_at is not None and nxt > schedule.end_at):
            break
        times.append(nxt)
    return times
