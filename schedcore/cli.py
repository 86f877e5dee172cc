"""The ``schedcore`` command line.

::

    schedcore next --cron "30 2 * * *" --tz America/New_York -n 3
    schedcore run --config examples/hello.toml
    schedcore plugins

Settings come from flags first, then ``SCHEDCORE_*`` environment variables
(``SCHEDCORE_STORE``, ``SCHEDCORE_EXECUTOR``, ``SCHEDCORE_CONFIG``, ``SCHEDCORE_WORKERS``,
``SCHEDCORE_LOG_LEVEL``, ``SCHEDCORE_LOG_FORMAT``, ``SCHEDCORE_DEBUG``), then defaults.
(A settings file will slot in below the environment through click's ``default_map``.)

Every user error is one line on stderr starting with ``error:`` and a non-zero exit
code -- 2 for a bad command line, 1 when something failed while running -- and never a
traceback unless ``--debug`` is given.
"""

from __future__ import annotations

import errno
import os
import sys
import traceback
from collections.abc import Sequence
from datetime import datetime, timezone, tzinfo
from typing import Any, NoReturn

import attrs
import click

from schedcore import logs
from schedcore._time import iso, parse_instant
from schedcore.exceptions import SchedcoreError, ValidationError
from schedcore.protocols import Trigger

__all__ = ["cli", "main"]

USAGE_ERROR = 2
RUNTIME_ERROR = 1
INTERRUPTED = 130  # 128 + SIGINT, as shells report it


@attrs.define(kw_only=True)
class Settings:
    """What the top-level options decided; every command finds it as ``ctx.obj``."""

    debug: bool = False
    log_level: str = "info"
    log_format: str = "text"


class CliError(click.ClickException):
    """A failure while running a command (exit code 1); the message is one line."""

    exit_code = RUNTIME_ERROR


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip()) or "unknown error"


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {_one_line(message)}", err=True)
    sys.exit(code)


class SchedcoreGroup(click.Group):
    """A click group whose errors are one ``error:`` line (tracebacks only with ``--debug``)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.Abort, click.ClickException):
            raise
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise
            _show_traceback(ctx)
            raise CliError(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")) from exc
        except SchedcoreError as exc:
            _show_traceback(ctx)
            raise CliError(str(exc)) from exc
        except Exception as exc:
            _show_traceback(ctx)
            hint = "" if _debug(ctx) else " (run with --debug for the traceback)"
            raise CliError(f"unexpected {type(exc).__name__}: {exc}{hint}") from exc

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else "")
            sys.exit(USAGE_ERROR)
        except click.UsageError as exc:
            command = exc.ctx.command_path if exc.ctx else "schedcore"
            _fail(f"{exc.format_message()} (see '{command} --help')", exc.exit_code)
        except click.ClickException as exc:
            _fail(exc.format_message(), exc.exit_code)
        except (click.Abort, KeyboardInterrupt):  # click turns Ctrl-C into Abort
            _fail("interrupted", INTERRUPTED)
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise
            # stdout was closed early (``schedcore next -n 1000 | head``): leave quietly.
            sys.stderr = open(os.devnull, "w")  # noqa: SIM115
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
            sys.exit(RUNTIME_ERROR)
        sys.exit(result if isinstance(result, int) else 0)


def _debug(ctx: click.Context) -> bool:
    settings = ctx.find_object(Settings)
    return bool(settings and settings.debug)


def _show_traceback(ctx: click.Context) -> None:
    if _debug(ctx):
        traceback.print_exc(file=sys.stderr)


@click.group(
    name="schedcore",
    cls=SchedcoreGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--debug", is_flag=True, envvar="SCHEDCORE_DEBUG", help="Show tracebacks on errors (env: SCHEDCORE_DEBUG)."
)
@click.option(
    "--log-level",
    type=click.Choice(logs.LEVELS, case_sensitive=False),
    default="info",
    show_default=True,
    envvar="SCHEDCORE_LOG_LEVEL",
    help="Lowest level logged to stderr (env: SCHEDCORE_LOG_LEVEL).",
)
@click.option(
    "--log-format",
    type=click.Choice(logs.FORMATS),
    default="text",
    show_default=True,
    envvar="SCHEDCORE_LOG_FORMAT",
    help="text, or json for one JSON object per line (env: SCHEDCORE_LOG_FORMAT).",
)
@click.version_option(package_name="schedcore", prog_name="schedcore")
@click.pass_context
def cli(ctx: click.Context, debug: bool, log_level: str, log_format: str) -> None:
    """schedcore: decides what runs when, and hands each run to an executor."""
    ctx.obj = Settings(debug=debug, log_level=log_level.lower(), log_format=log_format)
    logs.configure("debug" if debug else log_level.lower(), log_format)


# -- next --------------------------------------------------------------------------------


@cli.command("next")
@click.option("--cron", "cron_expr", metavar="EXPR", help='Cron expression, e.g. "30 2 * * *" or @daily.')
@click.option("--tz", metavar="ZONE", help="IANA zone of the cron expression (default UTC).")
@click.option("--every", type=float, metavar="SECONDS", help="Fire every SECONDS, at start + k * SECONDS.")
@click.option("--start", metavar="ISO8601", help="Anchor of --every (default the Unix epoch).")
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
    instant = datetime.now(timezone.utc) if after is None else _option_instant(after, "--after")

    zone: tzinfo = timezone.utc
    trigger: Trigger
    if cron_expr is not None:
        from schedcore.triggers import Cron

        tz = tz or "UTC"
        try:
            trigger = Cron(cron_expr, tz=tz)
        except ValidationError as exc:
            if _is_zone_field(exc, tz):
                raise _usage(exc, "--tz", tz) from None
            raise _usage(exc, "--cron", cron_expr) from None
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


def _option_instant(text: str, option: str) -> datetime:
    try:
        return parse_instant(text, option)
    except ValidationError as exc:
        raise _usage(exc, option, text) from None


def _usage(exc: ValidationError, option: str, given: str | None = None) -> click.UsageError:
    """A usage error naming ``option`` and the value as typed (``given``); prints the traceback
    of the error being handled when ``--debug`` is on."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        _show_traceback(ctx)
    shown = repr(given if given is not None else exc.value)
    if len(shown) > 120:
        shown = shown[:117] + "..."
    reason = exc.reason
    if "naive" in reason:
        reason = "no UTC offset; write one, e.g. 2025-03-08T12:00:00-05:00 or 2025-03-08T17:00:00Z"
    return click.UsageError(f"invalid {option}={shown}: {reason}")


def _is_zone_field(exc: ValidationError, tz: str) -> bool:
    field = exc.field.lower()
    return field.endswith(("tz", "zone", "timezone")) or (exc.value == tz and "expr" not in field)


def _zone(name: str) -> tzinfo:
    from zoneinfo import ZoneInfo

    try:
        return ZoneInfo(name)
    except (ValueError, OSError):  # the trigger accepted it; show its own offsets then
        return timezone.utc


# -- run ---------------------------------------------------------------------------------


@cli.command("run")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False),
    envvar="SCHEDCORE_CONFIG",
    help="TOML schedule file to add before starting (env: SCHEDCORE_CONFIG).",
)
@click.option(
    "--store",
    "store_name",
    metavar="NAME",
    default="memory",
    show_default=True,
    envvar="SCHEDCORE_STORE",
    help="Store registered by a plugin (env: SCHEDCORE_STORE).",
)
@click.option(
    "--executor",
    "executor_name",
    metavar="NAME",
    default="local",
    show_default=True,
    envvar="SCHEDCORE_EXECUTOR",
    help="Executor registered by a plugin (env: SCHEDCORE_EXECUTOR).",
)
@click.option(
    "-S",
    "--store-option",
    "store_options",
    multiple=True,
    metavar="KEY=VALUE",
    envvar="SCHEDCORE_STORE_OPTIONS",
    help="Store option, repeatable: -S url=redis://host:6379/0 (env: SCHEDCORE_STORE_OPTIONS, space-separated).",
)
@click.option(
    "-E",
    "--executor-option",
    "executor_options",
    multiple=True,
    metavar="KEY=VALUE",
    envvar="SCHEDCORE_EXECUTOR_OPTIONS",
    help="Executor option, repeatable: -E queue=low (env: SCHEDCORE_EXECUTOR_OPTIONS, space-separated).",
)
@click.option("--burst", is_flag=True, help="Dispatch everything due now, wait for it, then exit.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    metavar="N",
    envvar="SCHEDCORE_WORKERS",
    help="Workers of the executor: threads for local (env: SCHEDCORE_WORKERS).",
)
def run_command(
    *,
    config_path: str | None,
    store_name: str,
    executor_name: str,
    store_options: tuple[str, ...],
    executor_options: tuple[str, ...],
    burst: bool,
    workers: int | None,
) -> None:
    """Run a scheduler until Ctrl-C or SIGTERM (or, with --burst, until nothing is due).

    With no --store or --executor it runs on the embedded default: the memory store
    and the local executor, with the schedules of --config. Option values are read as
    JSON when they parse (numbers, true/false, lists), as text otherwise.
    """
    import logging

    from schedcore.config import load_schedules
    from schedcore.exceptions import ConfigError
    from schedcore.plugins import Hooks

    log = logging.getLogger("schedcore.cli")
    store_opts = _key_values(store_options, "--store-option")
    executor_opts = _key_values(executor_options, "--executor-option")
    if workers:
        executor_opts["workers"] = workers
    schedules = load_schedules(config_path) if config_path else []

    pm = _plugin_manager(store_name, executor_name)
    hooks = Hooks(pm)
    stores = hooks.store_factories()
    if store_name not in stores:
        raise click.UsageError(f"unknown store {store_name!r}; registered stores: {_names(stores)}")
    executors = hooks.executor_factories()
    if executor_name not in executors:
        raise click.UsageError(f"unknown executor {executor_name!r}; registered executors: {_names(executors)}")

    from schedcore.scheduler import Scheduler

    try:
        store = hooks.create_store(store_name, store_opts)
    except (ValidationError, ConfigError) as exc:
        raise click.UsageError(f"store {store_name!r}: {exc}") from None
    executor = None
    running = False
    try:
        try:
            executor = hooks.create_executor(executor_name, executor_opts)
        except (ValidationError, ConfigError) as exc:
            raise click.UsageError(f"executor {executor_name!r}: {exc}") from None
        scheduler = Scheduler(store=store, executor=executor, plugins=pm)
        for schedule in schedules:
            scheduler.add(schedule, conflict="replace")
        if config_path:
            log.info(
                "loaded %d schedule(s) from %s",
                len(schedules),
                config_path,
                extra={"event": "config_loaded", "path": config_path, "count": len(schedules)},
            )
        elif store_name == "memory":
            log.warning("the memory store starts empty and no --config was given: nothing will run")
        log.info(
            "scheduler starting (store=%s, executor=%s%s)",
            store_name,
            executor_name,
            ", burst" if burst else "",
            extra={"event": "cli_run", "store": store_name, "executor": executor_name, "burst": burst},
        )
        running = True
        scheduler.run(burst=burst)  # shuts the executor down when it returns
    finally:
        if executor is not None and not running:
            executor.shutdown(wait=False)
        store.close()


def _plugin_manager(store_name: str, executor_name: str) -> Any:
    """The plugin manager with every installed plugin; when one cannot be loaded (say its
    optional driver is not installed) the built-in memory store and local executor still
    run, with a warning -- anything else needs the plugins and fails."""
    import logging

    from schedcore.exceptions import PluginError
    from schedcore.plugins import get_plugin_manager

    try:
        return get_plugin_manager()
    except PluginError as exc:
        if (store_name, executor_name) != ("memory", "local"):
            raise
        logging.getLogger("schedcore.cli").warning(
            "%s; running on the built-in memory store and local executor", exc, extra={"event": "plugin_load_failed"}
        )
        return get_plugin_manager(entry_points=False)


def _key_values(items: Sequence[str], option: str) -> dict[str, Any]:
    """``["url=redis://x", "limit=5"]`` -> ``{"url": "redis://x", "limit": 5}`` (JSON when it parses)."""
    import json

    options: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise click.UsageError(f"invalid {option}={item!r}: expected KEY=VALUE")
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        options[key] = value
    return options


def _names(factories: dict[str, Any]) -> str:
    return ", ".join(sorted(factories)) or "none"


# -- plugins -----------------------------------------------------------------------------


@cli.command("plugins")
def plugins_command() -> None:
    """List the loaded plugins and the stores and executors they register."""
    from schedcore.plugins import Hooks, get_plugin_manager

    pm = get_plugin_manager()
    hooks = Hooks(pm)
    dists = {id(plugin): f"{dist.project_name} {dist.version}" for plugin, dist in pm.list_plugin_distinfo()}
    click.echo("plugins:")
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: item[0]):
        module = getattr(plugin, "__name__", type(plugin).__name__)
        click.echo(f"  {name:<12} {module}  ({dists.get(id(plugin), 'not from a distribution')})")
    for title, factories in (("stores", hooks.store_factories()), ("executors", hooks.executor_factories())):
        click.echo(f"{title}:")
        for name in sorted(factories):
            click.echo(f"  {name:<12} {factories[name].description}".rstrip())


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of the ``schedcore`` console script."""
    cli.main(args=argv, prog_name="schedcore")
    sys.exit(0)  # pragma: no cover - cli.main always exits


if __name__ == "__main__":  # pragma: no cover
    main()
