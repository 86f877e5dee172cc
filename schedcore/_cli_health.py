"""``schedcore status`` and ``schedcore doctor``: the health of the schedulers, and of the store's data."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import click

from schedcore._cli_options import _command, _opened
from schedcore._cli_output import _table, _utc

if TYPE_CHECKING:
    from schedcore.scheduler import Scheduler


@_command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
@click.option(
    "--max-late",
    type=click.FloatRange(min=0, max=100 * 365 * 86400),
    metavar="SECONDS",
    help="Unhealthy (exit code 3) when the oldest due run has waited longer than this (default: no limit).",
)
@click.option(
    "--min-schedulers",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    metavar="N",
    help="Unhealthy (exit code 3) when fewer schedulers are alive.",
)
def status_command(*, as_json: bool, max_late: float | None, min_schedulers: int, **options: Any) -> int:
    """Show the live schedulers with their last heartbeat, what is due now, the oldest
    overdue entry, the claims in flight and what the store warns about.

    A health check: exit code 0 when healthy, 3 when runs are due (or claims expired) and
    no scheduler is alive, when the oldest due run is later than --max-late or fewer than
    --min-schedulers are alive, 1 when the store cannot be read."""
    from datetime import timedelta

    from schedcore._health import assess
    from schedcore.storekit import store_warnings

    now = datetime.now(timezone.utc)
    with _opened(click.get_current_context()) as scheduler:
        store = scheduler.store
        beats = store.schedulers(now)
        stats = store.stats(now)
        store_said = store_warnings(store)  # persistence off, an evicting memory policy (Redis)
    limit = timedelta(seconds=max_late) if max_late is not None else None
    health = assess(beats, stats, now, max_late=limit, min_schedulers=min_schedulers)
    if as_json:
        data = {
            "now": _utc(now),
            "schedulers": [
                {"owner": b.owner, "last_beat": _utc(b.beat_at), "expires": _utc(b.expires_at), **b.info} for b in beats
            ],
            "schedules": stats.schedules,
            "due_now": stats.due,
            "oldest_overdue": _utc(stats.oldest_due) if stats.oldest_due else None,
            "in_flight": stats.in_flight,
            "expired_claims": stats.expired,
            "warnings": store_said,
            "healthy": health.healthy,
            "problems": list(health.problems),
        }
        click.echo(json.dumps(data, indent=2))
        return health.exit_code
    lines = [f"schedulers: {len(beats)} live"]
    if beats:
        rows = [
            [b.owner, str(b.info.get("host", "-")), str(b.info.get("pid", "-")), _utc(b.beat_at),
             f"{(now - b.beat_at).total_seconds():.1f}s ago", str(b.info.get("version", "-"))]
            for b in beats
        ]  # fmt: skip
        lines += [
            "  " + line for line in _table(["OWNER", "HOST", "PID", "LAST BEAT", "AGE", "VERSION"], rows).splitlines()
        ]
    lines.append(f"schedules: {stats.schedules}")
    overdue = ""
    if stats.oldest_due is not None:
        overdue = f" (oldest overdue by {(now - stats.oldest_due).total_seconds():.1f}s, due {_utc(stats.oldest_due)})"
    lines.append(f"due now: {stats.due}{overdue}")
    lines.append(
        f"in flight: {stats.in_flight} claim(s)" + (f", {stats.expired} with an expired lease" if stats.expired else "")
    )
    lines += [f"unhealthy: {problem}" for problem in health.problems]
    lines += _allowlist_warnings(scheduler, beats)
    lines += [f"warning: {warning}" for warning in store_said]
    click.echo("\n".join(lines))
    return health.exit_code


def _allowlist_warnings(scheduler: Scheduler, beats: Sequence[Any]) -> list[str]:
    """Warnings when the task allow-list is off here or in a live scheduler (its heartbeat says)."""
    off = [b.owner for b in beats if b.info.get("allowed_tasks") is False]
    lines = []
    if not scheduler.allowed_tasks.enabled:
        lines.append("warning: the task allow-list is off here: any task can be added (set SCHEDCORE_ALLOWED_TASKS)")
    if off:
        lines.append(f"warning: the task allow-list is off in {len(off)} live scheduler(s): {', '.join(off)}")
    return lines


@_command("doctor")
@click.option("--repair", is_flag=True, help="Fix what can be fixed safely (schedulers may keep running).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of the table.")
def doctor_command(*, repair: bool, as_json: bool, **options: Any) -> int:
    """Check the store's consistency: index entries without schedule, schedules missing their
    fire entry, claims without lease or of dead owners, wrong-typed keys, unreadable records.
    Exit code 0 when nothing is left to fix, 1 when problems remain (see docs/cli.md)."""

    with _opened(click.get_current_context()) as scheduler:
        report = scheduler.store.check(repair=repair, now=datetime.now(timezone.utc))
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        if report.findings:
            click.echo(_table(["KIND", "SCHEDULE", "KEY", "DETAIL", "RESULT"], report.rows()))
        click.echo(report.summary())
    return report.exit_code
