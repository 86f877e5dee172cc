"""``schedcore list`` and ``schedcore show``: the schedules in a store, and one with its runs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from schedcore._cli_options import _command, _opened
from schedcore._cli_output import _next_times, _schedule_zone, _seconds, _table, _utc, _when, _zoned

if TYPE_CHECKING:
    from schedcore.records import RunRecord, StoredSchedule


def _summary(stored: StoredSchedule, last: Any) -> dict[str, Any]:
    from schedcore.sync import SOURCE_KEY

    schedule = stored.schedule
    nxt = stored.next_fire
    zone = _schedule_zone(schedule)
    retry_at = last.retry_at if last is not None else None
    return {
        "id": schedule.id,
        "task": schedule.task,
        "trigger": schedule.trigger.describe(),
        "zone": str(zone),
        "next_fire": _utc(nxt.nominal) if nxt else None,
        "next_fire_zoned": _zoned(nxt.nominal, zone) if nxt else None,
        "paused": schedule.paused,
        "running": list(stored.running),
        "last_outcome": last.status.value if last is not None else None,
        "last_run": last.run_id if last is not None else None,
        "retry_at": _utc(retry_at) if retry_at else None,
        "retry_at_zoned": _zoned(retry_at, zone) if retry_at else None,
        "source": schedule.meta.get(SOURCE_KEY),
    }


@_command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array of objects instead of the table.")
def list_command(*, as_json: bool, **options: Any) -> None:
    """List the stored schedules: id, trigger, next fire time (in the schedule's zone and in UTC), paused,
    last outcome (with the time of its pending retry)."""
    with _opened(click.get_current_context()) as scheduler:
        items = []
        for stored in scheduler.iter_schedules():
            history = scheduler.history(stored.schedule.id, 1)
            items.append(_summary(stored, history[0] if history else None))
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    if not items:
        click.echo("no schedules")
        return
    rows = [
        [
            item["id"],
            item["trigger"],
            item["next_fire_zoned"] or "-",
            item["next_fire"] or "-",
            "yes" if item["paused"] else "no",
            (item["last_outcome"] or "-") + (f", retry at {item['retry_at_zoned']}" if item["retry_at"] else ""),
        ]
        for item in items
    ]
    click.echo(_table(["ID", "TRIGGER", "NEXT FIRE (ZONE)", "NEXT FIRE (UTC)", "PAUSED", "LAST"], rows))


@_command("show")
@click.argument("schedule_id", metavar="ID")
@click.option("--runs", type=click.IntRange(1, 1000), default=10, show_default=True, help="How many recent runs.")
@click.option(
    "--traceback",
    "tracebacks",
    type=click.Choice(["newest", "all", "none"]),
    default="newest",
    show_default=True,
    help="Whose traceback to print under the runs: the newest failed run's, every shown run's, or none.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
def show_command(*, schedule_id: str, runs: int, tracebacks: str, as_json: bool, **options: Any) -> None:
    """Show schedule ID: its definition, next 5 fire times and recent runs with their outcome, and
    the traceback of the newest failed run."""
    from schedcore.exceptions import ScheduleNotFound

    with _opened(click.get_current_context()) as scheduler:
        stored = scheduler.get(schedule_id)
        if stored is None:
            raise ScheduleNotFound(schedule_id)
        history = scheduler.history(schedule_id, runs)
    times = _next_times(stored, 5)
    schedule = stored.schedule
    zone = _schedule_zone(schedule)
    if as_json:
        data = {
            "definition": schedule.to_dict(),
            "zone": str(zone),
            "next_fires": [_utc(t) for t in times],
            "runs_started": stored.runs_started,
            "running": list(stored.running),
            # lateness: nominal -> hand-over; start_lateness: nominal -> the task really starting
            "runs": [{**r.to_dict(), "lateness": r.lateness, "start_lateness": r.start_lateness} for r in history],
        }
        click.echo(json.dumps(data, indent=2))
        return
    definition = schedule.to_dict(compact=True)
    for key in ("schema", "id", "task", "trigger"):
        definition.pop(key, None)
    lines = [
        f"id:        {schedule.id}",
        f"task:      {schedule.task}",
        f"trigger:   {schedule.trigger.describe()}",
        f"paused:    {'yes' if schedule.paused else 'no'}",
        f"started:   {stored.runs_started} occurrence(s)"
        + (f" of at most {schedule.max_runs}" if schedule.max_runs else ""),
        f"running:   {', '.join(stored.running) or 'none'}",
    ]
    for key, value in sorted(definition.items()):
        if key != "paused":
            lines.append(f"{key + ':':<10} {json.dumps(value)}")
    lines.append(f"next fire times ({zone}, then UTC):")
    lines += [f"  {_when(t, zone)}" for t in times] or ["  none (paused or finished)"]
    lines.append("recent runs:")
    if history:
        # Two latenesses: handed over (dispatch) and really started (as the executor reported it).
        header = ["RUN", "KIND", f"NOMINAL ({zone})", "DISPATCH LATE", "START LATE", "OUTCOME", "RETRY AT", "ERROR"]
        rows = [
            [
                r.run_id,
                r.kind.value,
                _zoned(r.nominal, zone),
                "-" if r.lateness is None else _seconds(r.lateness),
                "-" if r.start_lateness is None else _seconds(r.start_lateness),
                r.status.value,
                _zoned(r.retry_at, zone),
                _printable(r.error or r.note or ""),
            ]
            for r in history
        ]
        lines += ["  " + line for line in _table(header, rows).splitlines()]
        lines += _traceback_lines(history, tracebacks)
    else:
        lines.append("  none")
    click.echo("\n".join(lines))


def _traceback_lines(history: Sequence[RunRecord], which: str) -> list[str]:
    """The ``show`` lines of the tracebacks kept in ``history`` (newest first): ``which`` is
    ``newest`` (the newest run that has one), ``all`` or ``none``. Stored text is anyone's:
    control characters are shown escaped, so that none reaches the terminal."""
    records = [r for r in history if r.traceback] if which != "none" else []
    lines = []
    for record in records[:1] if which == "newest" else records:
        lines.append(f"traceback of {record.run_id} ({record.status.value}):")
        lines += ["  " + _printable(line) for line in (record.traceback or "").split("\n")]
    return lines


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() or c == "\t" else ascii(c)[1:-1] for c in text)
