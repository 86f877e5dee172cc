"""``schedcore migrate rq-scheduler``: registered on the ``schedcore`` command group by
:mod:`schedcore.cli`. Light to import (every ``schedcore`` command imports it): redis, rq and
the migration itself (:mod:`schedcore_rq.compat._migrate`) load only when it runs."""

from __future__ import annotations

import json
from typing import Any

import click

from schedcore.cli import _allowed_tasks, _table, cli


@cli.group("migrate")
def migrate_group() -> None:
    """Bring the jobs another scheduler stored into schedcore (docs/migrating.md)."""


@migrate_group.command("rq-scheduler")
@click.option(
    "--redis-url",
    required=True,
    metavar="URL",
    envvar="SCHEDCORE_REDIS_URL",
    help="Redis of rq-scheduler's jobs; schedcore's schedules are written there too (env: SCHEDCORE_REDIS_URL).",
)
@click.option("--namespace", default="default", show_default=True, help="schedcore's key namespace in that Redis.")
@click.option("--dry-run", is_flag=True, help="Report what would be migrated; write nothing.")
@click.option("--remove-source", is_flag=True, help="Remove migrated jobs from rq-scheduler's sorted set.")
@click.option("--force", is_flag=True, help="Run even while rq-scheduler's lock (rq:scheduler_lock) is held.")
@click.option(
    "--rename-invalid-ids",
    is_flag=True,
    help="Migrate jobs whose id RQ >= 2.8 refuses under the new id the report shows (else: refused).",
)
@click.option(
    "--path",
    default=".",
    show_default=True,
    metavar="DIRS",
    help="':'-separated directories where the jobs' modules are looked for (none is imported).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of the table.")
def rq_scheduler_command(
    *,
    redis_url: str,
    namespace: str,
    dry_run: bool,
    remove_source: bool,
    force: bool,
    rename_invalid_ids: bool,
    path: str,
    as_json: bool,
) -> int:
    """Migrate the jobs rq-scheduler 0.14 stored into schedules: one-shots, interval and cron
    jobs keep their next run time. Exit code 0 when every job was migrated or skipped (already
    migrated), 1 when one was refused or failed (or rq-scheduler is running), 2 for bad usage."""
    from redis import Redis

    from schedcore._oneshot import one_shot
    from schedcore_rq.compat._migrate import CRON_CHECKS, add_path, migrate

    if dry_run and remove_source:
        raise click.UsageError("--dry-run writes nothing: it cannot --remove-source")
    try:
        connection = Redis.from_url(redis_url)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--redis-url") from None
    add_path(path)
    allowed = _allowed_tasks(click.get_current_context())
    try:
        with one_shot():  # a server that never answers fails in seconds
            report = migrate(
                connection,
                namespace=namespace,
                dry_run=dry_run,
                remove_source=remove_source,
                force=force,
                rename_invalid_ids=rename_invalid_ids,
                allowed_tasks=allowed,
            )
    finally:
        connection.close()
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return report.exit_code
    if report.rows:
        rows: list[list[Any]] = [
            [row.outcome, row.source_id, row.schedule_id, row.kind,
             row.next_run.isoformat() if row.next_run else "-", row.reason or "-"]
            for row in report.rows
        ]  # fmt: skip
        click.echo(_table(["OUTCOME", "RQ JOB", "SCHEDULE", "KIND", "NEXT RUN", "REASON"], rows))
    else:
        click.echo("rq-scheduler has no scheduled jobs")
    differences = report.cron_differences
    if differences:
        click.echo(
            f"cron jobs whose next {CRON_CHECKS} times differ between schedcore and croniter (rq-scheduler's engine):"
        )
        for row in differences:
            click.echo(f"  {row.source_id}: {row.cron_difference}")
    click.echo(report.summary())
    return report.exit_code
