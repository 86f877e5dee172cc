"""The commands that change one schedule: ``add``, ``remove``, ``pause``, ``resume``, ``trigger``
and ``backfill``."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import click

from schedcore._cli_app import _is_zone_field, _option_instant, _usage, log
from schedcore._cli_options import _CHECKED_FOR, _command, _executor_choice, _opened, _trigger_options
from schedcore._cli_output import _schedule_zone, _when
from schedcore._time import iso
from schedcore.exceptions import SchedcoreError, ValidationError, shown
from schedcore.protocols import Trigger

if TYPE_CHECKING:
    from schedcore.protocols import Store


def _json_option(text: str | None, option: str, kind: type) -> Any:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise click.UsageError(f"invalid {option}={shown(text)}: not JSON ({exc})") from None
    except RecursionError:
        raise click.UsageError(f"invalid {option}={shown(text)}: nested too deeply") from None
    if not isinstance(value, kind):
        expected = "a JSON array, e.g. '[1, \"two\"]'" if kind is list else "a JSON object, e.g. '{\"key\": 1}'"
        raise click.UsageError(f"invalid {option}={shown(text)}: expected {expected}")
    return value


#: Schedule fields as the ``add`` options spell them (for error messages).
_ADD_OPTIONS = {
    "trigger.expr": "--cron",
    "trigger.tz": "--tz",
    "trigger.every": "--every",
    "trigger.start": "--start",
    "trigger.when": "--at",
    "id": "ID",
    "task": "TASK",
    "args": "--args",
    "kwargs": "--kwargs",
    "queue": "--queue",
    "retry.max_attempts": "--max-attempts",
    "retry.initial_delay": "--retry-delay",
    "retry.factor": "--retry-factor",
    "retry.max_delay": "--retry-max-delay",
    "retry.jitter": "--retry-jitter",
    "catchup": "--catchup",
    "catchup_limit": "--catchup-limit",
    "misfire_grace": "--misfire-grace",
    "overlap": "--overlap",
    "jitter": "--jitter",
    "start_at": "--start-at",
    "end_at": "--end-at",
    "max_runs": "--max-runs",
    "meta": "--meta",
    "executor_options": "--executor-options",
}


@_command("add")
@click.argument("schedule_id", metavar="ID")
@click.argument("task", metavar="TASK")
@_trigger_options('"0 3 * * *"')
@click.option("--at", "at_text", metavar="ISO8601", help="Fire once, at this instant (with a UTC offset).")
@click.option("--args", "args_json", metavar="JSON", help="Positional arguments of the task, a JSON array.")
@click.option("--kwargs", "kwargs_json", metavar="JSON", help="Keyword arguments of the task, a JSON object.")
@click.option("--queue", metavar="NAME", help="Queue of the runs (default: default).")
@click.option("--max-attempts", type=int, metavar="N", help="Runs per occurrence including retries (default 1).")
@click.option("--retry-delay", type=float, metavar="SECONDS", help="Wait before the first retry (default 10).")
@click.option("--retry-factor", type=float, metavar="F", help="Back-off factor between retries (default 2).")
@click.option("--retry-max-delay", type=float, metavar="SECONDS", help="Longest wait between retries (default 3600).")
@click.option("--retry-jitter", type=float, metavar="SECONDS", help="Up to this much added to each wait (default 0).")
@click.option("--catchup", type=click.Choice(["skip", "latest", "all"]), help="Missed occurrences (default latest).")
@click.option("--catchup-limit", type=int, metavar="N", help="With --catchup all: at most N (default 100).")
@click.option("--misfire-grace", type=float, metavar="SECONDS", help="Still on time when this late (default 60).")
@click.option(
    "--overlap", type=click.Choice(["allow", "skip", "buffer_one"]), help="While a run is running (default allow)."
)
@click.option("--jitter", type=float, metavar="SECONDS", help="Deterministic delay of up to SECONDS per occurrence.")
@click.option("--start-at", metavar="ISO8601", help="No occurrence before this instant.")
@click.option("--end-at", metavar="ISO8601", help="No occurrence after this instant.")
@click.option("--max-runs", type=int, metavar="N", help="Stop after N occurrences.")
@click.option("--paused", is_flag=True, help="Add it paused (resume it later).")
@click.option("--meta", "meta_json", metavar="JSON", help="Free-form metadata, a JSON object.")
@click.option("--executor-options", "executor_options_json", metavar="JSON", help="Executor options, a JSON object.")
@click.option(
    "--conflict",
    type=click.Choice(["error", "replace", "keep"]),
    default="error",
    show_default=True,
    help="When the id is taken: refuse, replace the definition, or keep the stored one.",
)
@_executor_choice(_CHECKED_FOR)
def add_command(
    *,
    schedule_id: str,
    task: str,
    cron_expr: str | None,
    tz: str | None,
    every: float | None,
    start: str | None,
    at_text: str | None,
    args_json: str | None,
    kwargs_json: str | None,
    queue: str | None,
    max_attempts: int | None,
    retry_delay: float | None,
    retry_factor: float | None,
    retry_max_delay: float | None,
    retry_jitter: float | None,
    catchup: str | None,
    catchup_limit: int | None,
    misfire_grace: float | None,
    overlap: str | None,
    jitter: float | None,
    start_at: str | None,
    end_at: str | None,
    max_runs: int | None,
    paused: bool,
    meta_json: str | None,
    executor_options_json: str | None,
    conflict: str,
    **options: Any,
) -> None:
    """Add schedule ID running TASK ("package.module:function") on one trigger:
    --cron EXPR [--tz ZONE], --every SECONDS [--start ISO8601] or --at ISO8601."""
    from schedcore.model import Schedule
    from schedcore.records import AddResult
    from schedcore.triggers import At, Cron, Interval

    given = [
        name for name, value in (("--cron", cron_expr), ("--every", every), ("--at", at_text)) if value is not None
    ]
    if len(given) != 1:
        raise click.UsageError("give exactly one of --cron EXPR, --every SECONDS or --at ISO8601")
    if tz is not None and cron_expr is None:
        raise click.UsageError("--tz only goes with --cron")
    if start is not None and every is None:
        raise click.UsageError("--start only goes with --every")
    raw = {"--cron": cron_expr, "--tz": tz, "--every": every, "--start": start, "--at": at_text}
    fields: dict[str, Any] = {}
    for key, value in (
        ("args", _json_option(args_json, "--args", list)),
        ("kwargs", _json_option(kwargs_json, "--kwargs", dict)),
        ("meta", _json_option(meta_json, "--meta", dict)),
        ("executor_options", _json_option(executor_options_json, "--executor-options", dict)),
        ("queue", queue),
        ("catchup", catchup),
        ("catchup_limit", catchup_limit),
        ("misfire_grace", misfire_grace),
        ("overlap", overlap),
        ("jitter", jitter),
        ("start_at", start_at),
        ("end_at", end_at),
        ("max_runs", max_runs),
    ):
        if value is not None:
            fields[key] = value
            raw[_ADD_OPTIONS[key]] = value
    retry = {
        key: value
        for key, value in (
            ("max_attempts", max_attempts),
            ("initial_delay", retry_delay),
            ("factor", retry_factor),
            ("max_delay", retry_max_delay),
            ("jitter", retry_jitter),
        )
        if value is not None
    }
    if retry:
        fields["retry"] = retry
        raw.update({_ADD_OPTIONS[f"retry.{k}"]: v for k, v in retry.items()})
    if paused:
        fields["paused"] = True
    zone = "UTC" if tz is None else tz  # --tz "" is refused by Cron, not taken for UTC
    try:
        trigger: Trigger
        if cron_expr is not None:
            trigger = Cron(cron_expr, tz=zone)
        elif every is not None:
            trigger = Interval(every) if start is None else Interval(every, start=start)
        else:
            trigger = At(at_text)
        schedule = Schedule(id=schedule_id, task=task, trigger=trigger, **fields)
    except ValidationError as exc:
        option = _ADD_OPTIONS.get(exc.field, "--tz" if cron_expr and _is_zone_field(exc, zone) else None)
        if option is None and exc.field.startswith("trigger"):
            option = given[0]
        option = option or exc.field
        value = raw.get(option)
        raise _usage(exc, option, None if value is None else str(value)) from None
    with _opened(click.get_current_context(), [("", schedule)]) as scheduler:
        result = scheduler.add(schedule, conflict)
        stored = scheduler.get(schedule.id)
    nxt = stored.next_fire if stored is not None else None
    when = f"next fire {_when(nxt.nominal, _schedule_zone(schedule))}" if nxt is not None else "nothing to fire"
    if stored is not None and stored.schedule.paused:
        when = "paused"
    click.echo(f"{result.value} {schedule.id}: {when}")
    if result is AddResult.EXPIRED:
        grace = schedule.misfire_grace.total_seconds()
        click.echo(
            f"warning: --at {at_text} passed more than its misfire grace ({grace:g}s) ago, so it will never fire; "
            "give a later --at or a larger --misfire-grace",
            err=True,
        )
    if isinstance(trigger, Interval) and start is None:
        # Drift-free, but a surprise for many: --every 86400 fires at UTC midnight, not now + 1 day.
        every = trigger.every.total_seconds()
        click.echo(f"  (at whole multiples of {every:g}s since 1970-01-01T00:00:00Z; --start sets another anchor)")
    _warn_unless_importable(schedule.task)


def _warn_unless_importable(task: str) -> None:
    """Say so when TASK's module cannot be found here (workers may have other code: only a warning)."""
    from schedcore._validate import task_module_found

    module = task.partition(":")[0]
    if not task_module_found(task):
        click.echo(
            f"warning: module {module!r} of task {task!r} cannot be found here; "
            "make sure the workers that run it can import it",
            err=True,
        )


@_command("remove")
@click.argument("schedule_id", metavar="ID")
def remove_command(*, schedule_id: str, **options: Any) -> None:
    """Remove schedule ID with its pending runs and history."""
    from schedcore.exceptions import ScheduleNotFound

    with _opened(click.get_current_context()) as scheduler:
        if not scheduler.remove(schedule_id):
            raise ScheduleNotFound(schedule_id)
    click.echo(f"removed {schedule_id}")


@_command("pause")
@click.argument("schedule_id", metavar="ID")
def pause_command(*, schedule_id: str, **options: Any) -> None:
    """Pause schedule ID: no more occurrences until resumed (scheduled retries still run)."""
    with _opened(click.get_current_context()) as scheduler:
        scheduler.pause(schedule_id)
    click.echo(f"paused {schedule_id}")


@_command("resume")
@click.argument("schedule_id", metavar="ID")
def resume_command(*, schedule_id: str, **options: Any) -> None:
    """Resume schedule ID from now on (occurrences that fell in the pause are not run)."""
    with _opened(click.get_current_context()) as scheduler:
        stored = scheduler.resume(schedule_id)
    nxt = stored.next_fire
    zone = _schedule_zone(stored.schedule)
    click.echo(
        f"resumed {schedule_id}: " + (f"next fire {_when(nxt.nominal, zone)}" if nxt else "nothing left to fire")
    )


@_command("trigger")
@click.argument("schedule_id", metavar="ID")
def trigger_command(*, schedule_id: str, **options: Any) -> None:
    """Run schedule ID once now, outside its timing (a running scheduler dispatches it)."""
    with _opened(click.get_current_context()) as scheduler:
        run_id = scheduler.trigger_now(schedule_id)
        alive = _live_schedulers(scheduler.store)
    click.echo(f"queued {run_id}")
    if alive == 0:
        _warn_nobody_runs("it")


def _warn_nobody_runs(what: str) -> None:
    click.echo(
        f"warning: no live scheduler was seen (no heartbeat in the store): nothing runs {what} until one "
        "starts ('schedcore run' on this store)",
        err=True,
    )


def _live_schedulers(store: Store) -> int | None:
    """How many schedulers beat in ``store`` now; None when it cannot tell (reading the
    heartbeats failed: the run is queued all the same, so that is no reason to fail)."""
    try:
        return len(store.schedulers(datetime.now(timezone.utc)))
    except SchedcoreError as exc:
        log.warning("could not read the schedulers' heartbeats: %s", exc)
        return None


@_command("backfill")
@click.argument("schedule_id", metavar="ID")
@click.option("--from", "start", required=True, metavar="ISO8601", help="First instant (with a UTC offset).")
@click.option("--to", "end", metavar="ISO8601", help="Last instant (default now; capped at now).")
def backfill_command(*, schedule_id: str, start: str, end: str | None, **options: Any) -> None:
    """Queue a run for each occurrence of schedule ID in [--from, --to] that has no run yet
    (past occurrences only; at most 10000 per backfill: split a longer range)."""
    now = datetime.now(timezone.utc)
    begin = _option_instant(start, "--from")
    finish = now if end is None else _option_instant(end, "--to")
    if begin > now:
        raise click.UsageError(
            f"invalid --from={shown(start)}: in the future (now is {iso(now)}); backfill queues past occurrences"
        )
    if finish < begin:
        raise click.UsageError(f"invalid --to={shown(end)}: before --from={shown(start)}")
    with _opened(click.get_current_context()) as scheduler:
        try:
            count = scheduler.backfill(schedule_id, begin, finish)
        except ValidationError as exc:
            if exc.field != "end":
                raise
            given = end if end is not None else f"now, {iso(finish)}"
            raise _usage(exc, "--to", given) from None
        alive = _live_schedulers(scheduler.store) if count else None
    click.echo(f"queued {count} backfill run(s) of {schedule_id}")
    if alive == 0:
        _warn_nobody_runs("them")
