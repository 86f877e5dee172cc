"""``schedcore next``: the next fire times of a cron or interval schedule (no store)."""

from __future__ import annotations

from datetime import datetime, timezone, tzinfo

import click

from schedcore._cli_app import _is_zone_field, _option_instant, _usage, _zone, cli
from schedcore._cli_options import _trigger_options
from schedcore._time import iso
from schedcore.exceptions import ValidationError
from schedcore.protocols import Trigger


@cli.command("next")
@_trigger_options('"30 2 * * *"')
@click.option(
    "--id",
    "schedule_id",
    metavar="ID",
    help="Schedule id whose hash picks the values of H fields (as a schedule with that id would fire).",
)
@click.option("--after", metavar="ISO8601", help="List fire times strictly after this instant (default now).")
@click.option(
    "-n", "count", type=click.IntRange(1, 100_000), metavar="N", default=5, show_default=True, help="How many times."
)
def next_command(
    *,
    cron_expr: str | None,
    tz: str | None,
    every: float | None,
    start: str | None,
    schedule_id: str | None,
    after: str | None,
    count: int,
) -> None:
    """Print the next fire times of a cron or interval schedule.

    One ISO-8601 timestamp with its UTC offset per line, in the schedule's zone
    (UTC for --every). Cron follows the daylight-saving rule: fixed-time jobs fire
    once per matching wall-clock time, wildcard jobs at every real matching instant.
    """
    if (cron_expr is None) == (every is None):
        raise click.UsageError("give exactly one of --cron EXPR or --every SECONDS")
    if cron_expr is None and tz is not None:
        raise click.UsageError("--tz only goes with --cron")
    if every is None and start is not None:
        raise click.UsageError("--start only goes with --every")
    if cron_expr is None and schedule_id is not None:
        raise click.UsageError("--id only goes with --cron")
    instant = datetime.now(timezone.utc) if after is None else _option_instant(after, "--after")

    zone: tzinfo = timezone.utc
    trigger: Trigger
    if cron_expr is not None:
        from schedcore.triggers import Cron

        tz = "UTC" if tz is None else tz  # --tz "" is refused by Cron, not taken for UTC
        try:
            trigger = Cron(cron_expr, tz=tz, seed=schedule_id)
        except ValidationError as exc:
            if _is_zone_field(exc, tz):
                raise _usage(exc, "--tz", tz) from None
            if exc.field == "trigger.seed":
                raise _usage(exc, "--id", schedule_id) from None
            raise _usage(exc, "--cron", cron_expr) from None
        if trigger.uses_hash and schedule_id is None:
            raise click.UsageError(f"--cron {cron_expr!r} has H fields: give --id, the schedule id that seeds them")
        zone = _zone(tz)
    else:
        from schedcore.triggers import Interval

        assert every is not None
        anchor = None if start is None else _option_instant(start, "--start")
        try:
            trigger = Interval(every) if anchor is None else Interval(every, start=anchor)
        except ValidationError as exc:
            if exc.field.endswith("start"):
                raise _usage(exc, "--start", start) from None
            raise _usage(exc, "--every", f"{every:g}") from None

    lines = []
    for _ in range(count):
        fire = trigger.next_after(instant)
        if fire is None:
            break
        lines.append(iso(fire.astimezone(zone)))
        instant = fire
    if lines:
        click.echo("\n".join(lines))
