"""The ``schedcore`` command line.

::

    schedcore next --cron "30 2 * * *" --tz America/New_York -n 3
    schedcore run --config examples/hello.toml
    schedcore --settings schedcore.toml list
    schedcore plugins

Settings come from flags first, then ``SCHEDCORE_*`` environment variables, then the
settings file (``--settings FILE`` or ``SCHEDCORE_SETTINGS``, see :mod:`schedcore.settings`),
then defaults. Plugins add options through the ``schedcore_cli_options`` hook
(``--redis-url`` comes from the Redis plugin).

Every user error is one line on stderr starting with ``error:`` and a non-zero exit
code -- 2 for a bad command line, 1 when something failed while running -- and never a
traceback unless ``--debug`` is given.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import attrs
import click

from schedcore import logs
from schedcore._dist import DISTRIBUTION
from schedcore._time import iso, parse_instant
from schedcore.exceptions import ConfigError, PluginError, SchedcoreError, ValidationError, shown
from schedcore.protocols import Trigger
from schedcore.settings import STORE_COMMANDS

if TYPE_CHECKING:
    from schedcore._precheck import ScheduleCheck
    from schedcore.allowlist import TaskAllowList
    from schedcore.model import Schedule
    from schedcore.plugins import ExecutorFactory, Hooks
    from schedcore.protocols import Store
    from schedcore.records import RunRecord, StoredSchedule
    from schedcore.scheduler import Scheduler
    from schedcore.settings import MergedOption

__all__ = ["cli", "main"]

_F = TypeVar("_F", bound=Callable[..., Any])

USAGE_ERROR = 2
RUNTIME_ERROR = 1
INTERRUPTED = 130  # 128 + SIGINT, as shells report it


@attrs.define(kw_only=True)
class Settings:
    """What the top-level options decided; every command finds it as ``ctx.obj``."""

    debug: bool = False
    log_level: str = "info"
    log_format: str = "text"
    allowed_tasks: str | None = None  #: comma-separated ``module:function`` patterns (None: all)
    settings_file: str | None = None
    #: what the settings file says (``store_options``/``executor_options`` as tables)
    file: dict[str, Any] = attrs.field(factory=dict)


class CliError(click.ClickException):
    """A failure while running a command (exit code 1); the message is one line."""

    exit_code = RUNTIME_ERROR


class InputError(CliError):
    """The input given (a flag, a schedule or settings file) is wrong (exit code 2); one line."""

    exit_code = USAGE_ERROR


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip()) or "unknown error"


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {_one_line(message)}", err=True)
    sys.exit(code)


# The group's own options, which are also accepted after the subcommand
# (``schedcore run --log-level debug``): flags, and options that take a value.
_GLOBAL_FLAGS = frozenset({"--debug"})
_GLOBAL_VALUED = frozenset({"--log-level", "--log-format", "--settings", "--allowed-tasks"})


def _hoist_global_options(group: click.Group, ctx: click.Context, args: list[str]) -> list[str]:
    """Move the group's options found after the subcommand to before it.

    A token is only taken for a global option where it cannot be the value of one of
    the subcommand's own options, and nothing after ``--`` is touched.
    """
    index = 0
    while index < len(args) and args[index].startswith("-"):  # the group's options before the subcommand
        index += 2 if args[index] in _GLOBAL_VALUED else 1
    if index >= len(args):
        return args
    command = group.get_command(ctx, args[index])
    if command is None:
        return args
    valued = {
        opt for p in command.params if isinstance(p, click.Option) and not p.is_flag and not p.count for opt in p.opts
    }
    head, rest, hoisted = args[: index + 1], args[index + 1 :], []
    kept: list[str] = []
    position = 0
    while position < len(rest):
        token = rest[position]
        name = token.partition("=")[0]
        if token == "--":
            kept += rest[position:]
            break
        if token in valued:
            kept += rest[position : position + 2]
            position += 2
            continue
        if token in _GLOBAL_FLAGS or (name in _GLOBAL_VALUED and "=" in token):
            hoisted.append(token)
        elif token in _GLOBAL_VALUED and position + 1 < len(rest):
            hoisted += rest[position : position + 2]
            position += 1
        else:
            kept.append(token)
        position += 1
    return [*head[:-1], *hoisted, head[-1], *kept]


class SchedcoreGroup(click.Group):
    """A click group whose errors are one ``error:`` line (tracebacks only with ``--debug``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _hoist_global_options(self, ctx, list(args)))

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
        except (ValidationError, ConfigError) as exc:
            # The input given (a flag, a schedule or settings file) is wrong: like a bad
            # command line, exit code 2, so a script can tell it from a failure while running.
            _show_traceback(ctx)
            raise InputError(str(exc)) from exc
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
@click.option(
    "--settings",
    "settings_file",
    type=click.Path(dir_okay=False),
    envvar="SCHEDCORE_SETTINGS",
    metavar="FILE",
    help="TOML settings file, below flags and environment variables (env: SCHEDCORE_SETTINGS).",
)
@click.option(
    "--allowed-tasks",
    metavar="PATTERNS",
    envvar="SCHEDCORE_ALLOWED_TASKS",
    help="Comma-separated module:function patterns of the tasks that may run, e.g. 'app.jobs:*' "
    "(default: every task; env: SCHEDCORE_ALLOWED_TASKS).",
)
@click.version_option(package_name=DISTRIBUTION, prog_name="schedcore")
@click.pass_context
def cli(
    ctx: click.Context,
    *,
    debug: bool,
    log_level: str,
    log_format: str,
    allowed_tasks: str | None,
    settings_file: str | None,
) -> None:
    """schedcore: decides what runs when, and hands each run to an executor."""
    settings = Settings(debug=debug, log_level=log_level.lower(), log_format=log_format, allowed_tasks=allowed_tasks)
    ctx.obj = settings
    if settings_file:
        settings.settings_file = settings_file
        settings.file = _load_settings_file(ctx, settings_file)
        file = settings.file
        # The file only fills in what neither a flag nor the environment set.
        if "debug" in file and _from_default(ctx, "debug"):
            settings.debug = _file_value(file, "debug", click.BOOL)
        if "log_level" in file and _from_default(ctx, "log_level"):
            settings.log_level = _file_value(file, "log_level", click.Choice(logs.LEVELS, case_sensitive=False)).lower()
        if "log_format" in file and _from_default(ctx, "log_format"):
            settings.log_format = _file_value(file, "log_format", click.Choice(logs.FORMATS))
        if "allowed_tasks" in file and _from_default(ctx, "allowed_tasks"):
            settings.allowed_tasks = _file_value(file, "allowed_tasks", click.STRING)
        defaults = {k: v for k, v in file.items() if k not in _GLOBAL_KEYS and not isinstance(v, Mapping)}
        ctx.default_map = {name: dict(defaults) for name in getattr(ctx.command, "commands", {})}
    logs.configure("debug" if settings.debug else settings.log_level, settings.log_format)


_GLOBAL_KEYS = frozenset({"debug", "log_level", "log_format", "allowed_tasks"})


def _allowed_tasks(ctx: click.Context) -> TaskAllowList:
    """The allow-list of --allowed-tasks (or its variable, or the settings file)."""
    from schedcore.allowlist import TaskAllowList

    settings = ctx.find_object(Settings) or Settings()
    try:
        return TaskAllowList.parse(settings.allowed_tasks)
    except ValidationError as exc:
        raise _usage(exc, "--allowed-tasks", settings.allowed_tasks) from None


def _from_default(ctx: click.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source in (None, click.core.ParameterSource.DEFAULT)


def _file_value(file: Mapping[str, Any], key: str, kind: click.ParamType[Any]) -> Any:
    try:
        return kind.convert(file[key], None, None)
    except click.BadParameter as exc:
        raise ConfigError(f"settings file: invalid {key}={file[key]!r}: {exc.format_message()}") from None


def _load_settings_file(ctx: click.Context, path: str) -> dict[str, Any]:
    from schedcore.settings import load_settings

    allowed = {o.spec.dest for command in STORE_COMMANDS for o in _plugin_options(ctx, command)}
    return load_settings(path, allowed=allowed)


# -- next --------------------------------------------------------------------------------


@cli.command("next")
@click.option("--cron", "cron_expr", metavar="EXPR", help='Cron expression, e.g. "30 2 * * *" or @daily.')
@click.option("--tz", metavar="ZONE", help="IANA zone of the cron expression (default UTC).")
@click.option(
    "--every",
    type=float,
    metavar="SECONDS",
    help="Fire every SECONDS, at start + k * SECONDS: counted from the Unix epoch (UTC) unless --start is given, "
    "so --every 86400 fires at each UTC midnight and --every 3600 on the hour.",
)
@click.option(
    "--start", metavar="ISO8601", help="Anchor of --every, e.g. 2025-01-01T09:30:00+01:00 (default: the Unix epoch)."
)
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
    value = shown(given if given is not None else exc.value)
    reason = exc.reason
    if "naive" in reason:
        reason = "no UTC offset; write one, e.g. 2025-03-08T12:00:00-05:00 or 2025-03-08T17:00:00Z"
    return click.UsageError(f"invalid {option}={value}: {reason}")


def _is_zone_field(exc: ValidationError, tz: str) -> bool:
    field = exc.field.lower()
    return field.endswith(("tz", "zone", "timezone")) or (exc.value == tz and "expr" not in field)


def _zone(name: str) -> tzinfo:
    from zoneinfo import ZoneInfo

    try:
        return ZoneInfo(name)
    except (ValueError, OSError):  # the trigger accepted it; show its own offsets then
        return timezone.utc


# -- plugins' options and the store ------------------------------------------------------

#: The commands that open a store and take the store options (and plugins' options).

_PM_KEY = "schedcore.plugin_manager"
_OPTIONS_KEY = "schedcore.plugin_options"

log = logging.getLogger("schedcore.cli")

_MEMORY_ONLY_IN_RUN = (
    "the memory store lives inside one 'schedcore run' process and is gone when it exits, so "
    "'schedcore {command}' cannot see it; leave --store out for the default sqlite file, or choose "
    "a shared store with --store NAME (e.g. --store redis), SCHEDCORE_STORE or 'store = ...' in the settings file"
)


def _plugin_manager_or_none(ctx: click.Context) -> Any:
    """The entry-point plugin manager, loaded once per invocation; None when a plugin cannot load."""
    root = ctx.find_root()
    if _PM_KEY not in root.meta:
        from schedcore import plugins

        try:
            root.meta[_PM_KEY] = plugins.get_plugin_manager()
        except PluginError:
            root.meta[_PM_KEY] = None  # the command itself reports it, if it needs the plugins
    return root.meta[_PM_KEY]


def _plugin_options(ctx: click.Context, command: str) -> list[MergedOption]:
    """The options plugins add to ``command`` (a plugin raising in the hook is logged and skipped)."""
    from schedcore.plugins import Hooks
    from schedcore.settings import merge_cli_options

    pm = _plugin_manager_or_none(ctx)
    if pm is None:
        return []
    found = Hooks(pm).results_by_plugin("schedcore_cli_options", command=command)
    declared = [(plugin, option) for plugin, options in found for option in options]
    merged, problems = merge_cli_options(declared)
    for problem in problems:
        log.warning("%s", problem, extra={"event": "plugin_option_conflict"})
    return merged


class _PluginOption(click.Option):
    """An option a plugin added (see :class:`schedcore.settings.CliOption`)."""

    def __init__(self, merged: MergedOption) -> None:
        spec = merged.spec
        kinds = {"int": click.INT, "float": click.FLOAT, "str": click.STRING}
        source = ", ".join(merged.plugins)
        help_text = f"{spec.help} For {merged.describe_targets()} (plugin {source}; env: {spec.env})."
        if spec.type == "flag":
            super().__init__(
                [f"--{spec.name}", spec.dest], is_flag=True, default=None, envvar=spec.env, help=help_text.strip()
            )
        else:
            super().__init__(
                [f"--{spec.name}", spec.dest],
                type=kinds[spec.type],
                envvar=spec.env,
                metavar=spec.metavar or spec.type.upper(),
                help=help_text.strip(),
            )
        self.merged = merged


class PluginCommand(click.Command):
    """A command whose options include the ones installed plugins add (shown by ``--help`` too)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        core = [p for p in self.params if not isinstance(p, _PluginOption)]
        taken = {name for p in core for name in (*p.opts, *p.secondary_opts, p.name)}
        extra: list[click.Parameter] = []
        for merged in _plugin_options(ctx, self.name or ""):
            if f"--{merged.spec.name}" in taken or merged.spec.dest in taken:
                log.warning(
                    "plugin %s offers --%s, which schedcore %s has already; ignoring it",
                    ", ".join(merged.plugins),
                    merged.spec.name,
                    self.name,
                )
                continue
            taken |= {f"--{merged.spec.name}", merged.spec.dest}
            extra.append(_PluginOption(merged))
        self.params = core + extra
        return super().parse_args(ctx, args)


_RANK = {"COMMANDLINE": 3, "ENVIRONMENT": 2, "DEFAULT_MAP": 1}


def _rank(ctx: click.Context, name: str) -> int:
    source = ctx.get_parameter_source(name)
    return _RANK.get(source.name, 0) if source is not None else 0


def _resolve_options(
    ctx: click.Context, store: str | None, executor: str | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Store and executor options from every source: per key, a flag beats the environment,
    which beats the settings file (``-S``/``-E`` beat a plugin's option from the same source)."""
    settings = ctx.find_object(Settings) or Settings()
    chosen: dict[str, dict[str, tuple[int, Any]]] = {"store": {}, "executor": {}}

    def put(kind: str, key: str, rank: int, value: Any) -> None:
        if rank >= chosen[kind].get(key, (-1, None))[0]:
            chosen[kind][key] = (rank, value)

    for kind in ("store", "executor"):
        table = settings.file.get(f"{kind}_options", {})
        for key, value in table.items():
            put(kind, key, 1, value)
    for param in ctx.command.params:
        if not isinstance(param, _PluginOption) or param.name is None:
            continue
        value = ctx.params.get(param.name)
        if value is None:
            continue
        rank = _rank(ctx, param.name)
        targets = param.merged.applies_to(store, executor)
        if not targets:
            if rank == 3:  # given on this command line for nothing: say so
                chosen_text = f"--store {store}" + (f" and --executor {executor}" if executor else "")
                raise click.UsageError(
                    f"--{param.merged.spec.name} applies to {param.merged.describe_targets()}, not to {chosen_text}"
                )
            continue  # from the environment or the file, for another store: not ours
        for kind, key in targets:
            put(kind, key, rank, value)
    for kind, name, option in (
        ("store", "store_options", "--store-option"),
        ("executor", "executor_options", "--executor-option"),
    ):
        if name in ctx.params:
            for key, value in _key_values(ctx.params[name], option).items():
                put(kind, key, _rank(ctx, name), value)
    return (
        {key: value for key, (_, value) in chosen["store"].items()},
        {key: value for key, (_, value) in chosen["executor"].items()},
    )


def _choice(kind: str, short: str, default: str, example: str, help_text: str) -> Callable[[_F], _F]:
    """``--KIND NAME`` and ``SHORT KEY=VALUE`` (``--KIND-option``): which store or executor, with its options."""
    env = f"SCHEDCORE_{kind.upper()}"

    def decorate(f: _F) -> _F:
        f = click.option(
            short,
            f"--{kind}-option",
            f"{kind}_options",
            multiple=True,
            metavar="KEY=VALUE",
            envvar=f"{env}_OPTIONS",
            help=f"{kind.capitalize()} option, repeatable: {short} {example} (env: {env}_OPTIONS, space-separated).",
        )(f)
        return click.option(
            f"--{kind}", kind, metavar="NAME", default=default, show_default=True, envvar=env, help=help_text
        )(f)

    return decorate


#: ``--store NAME`` and ``-S KEY=VALUE``: the store a command works on.
_store_options = _choice(
    "store",
    "-S",
    "sqlite",
    "namespace=prod",
    "Store registered by a plugin; sqlite keeps everything in one file on this machine, "
    "memory nothing after run exits (env: SCHEDCORE_STORE).",
)


def _executor_choice(help_text: str) -> Callable[[_F], _F]:
    """``--executor NAME`` and ``-E KEY=VALUE``: the executor that runs (``run``) or that the
    schedules are checked for (``add``, ``sync``)."""
    return _choice("executor", "-E", "local", "queue=low", help_text)


def _command(name: str) -> Callable[[Callable[..., Any]], click.Command]:
    """A command working on a store: ``--store``, ``-S`` and the options plugins add."""

    def decorate(f: Callable[..., Any]) -> click.Command:
        return cli.command(name, cls=PluginCommand)(_store_options(f))

    return decorate


def _plugin_manager(store_name: str, executor_name: str) -> Any:
    """The plugin manager with every installed plugin; when one cannot be loaded (say its
    optional driver is not installed) the built-in stores (sqlite, memory) and local executor still
    run, with a warning -- anything else needs the plugins and fails."""
    from schedcore.plugins import get_plugin_manager

    try:
        return get_plugin_manager()
    except PluginError as exc:
        if store_name not in ("sqlite", "memory") or executor_name != "local":
            raise
        log.warning(
            "%s; running on the built-in %s store and local executor",
            exc,
            store_name,
            extra={"event": "plugin_load_failed"},
        )
        return get_plugin_manager(entry_points=False)


def _create_store(hooks: Hooks, name: str, options: Mapping[str, Any]) -> Store:
    stores = hooks.store_factories()
    if name not in stores:
        raise click.UsageError(f"unknown store {name!r}; registered stores: {_names(stores)}")
    try:
        return hooks.create_store(name, options)
    except (ValidationError, ConfigError) as exc:
        raise click.UsageError(f"store {name!r}: {exc}") from None


class _NoExecutor:
    """The executor of the management commands: they only change the store (nothing runs here).

    ``check`` (``add`` and ``sync``: the target executor's check, see :mod:`schedcore._precheck`)
    refuses what that executor would refuse; without it (the commands that add nothing) anything goes.
    """

    def __init__(self, check: Callable[[Schedule], None] | None = None) -> None:
        self._check = check

    def validate(self, schedule: Schedule) -> None:
        """Check ``schedule`` for the executor that will run it, without connecting to anything."""
        if self._check is not None:
            self._check(schedule)

    def start(self, report: Callable[[Any], None]) -> None:
        """Nothing to start."""

    def submit(self, runs: Sequence[Any]) -> None:
        from schedcore.exceptions import ExecutorUnavailable

        raise ExecutorUnavailable("the schedcore command line does not run tasks; 'schedcore run' does")

    def settled(self, run_ids: Sequence[str]) -> None:
        """Nothing was handed over."""

    def shutdown(self, wait: bool = True) -> None:
        """Nothing to stop."""


def _executor_factory(hooks: Hooks, name: str) -> ExecutorFactory:
    try:
        return hooks.executor_factory(name)
    except PluginError as exc:
        raise click.UsageError(str(exc)) from None


def _schedule_check(ctx: click.Context, hooks: Hooks, name: str, options: Mapping[str, Any]) -> ScheduleCheck:
    """The check of the schedules ``add``/``sync`` write, for executor ``name`` (``--executor``)."""
    from schedcore._precheck import ScheduleCheck

    factory = _executor_factory(hooks, name)
    if factory.validate is None:
        click.echo(
            f"warning: executor {name!r} cannot check schedules before it runs them (its plugin gives no "
            "validate); a schedule it refuses will fail when it runs",
            err=True,
        )
    return ScheduleCheck(factory, options)


def _note_default_executor(ctx: click.Context, schedules: Sequence[Schedule]) -> None:
    """Warn when schedules with ``executor_options`` are checked only for the default executor:
    the options are meant for another one, which nobody named (the issue's silent ``added``)."""
    with_options = [s.id for s in schedules if s.executor_options]
    if with_options and _from_default(ctx, "executor"):
        click.echo(
            f"warning: the executor_options of {shown(with_options[0])}"
            + (f" and {len(with_options) - 1} more" if len(with_options) > 1 else "")
            + f" were checked for --executor {ctx.params['executor']} (the default), which ignores them; "
            "give the executor of your schedulers (--executor NAME or SCHEDCORE_EXECUTOR) to check them",
            err=True,
        )


@contextlib.contextmanager
def _opened(ctx: click.Context, adding: Sequence[tuple[str, Schedule]] = ()) -> Iterator[Scheduler]:
    """A scheduler (that runs nothing) on the store the command's options select.

    ``adding``: the schedules the command will write, each with the file it comes from
    (or ""), checked -- allowed task, accepted by the ``--executor`` -- before the store is
    even opened, so that bad input changes nothing and needs no server to be reported.
    """
    from schedcore._oneshot import one_shot
    from schedcore.plugins import Hooks
    from schedcore.scheduler import Scheduler

    command = ctx.command.name or ""
    store_name = ctx.params["store"]
    if store_name == "memory":
        raise click.UsageError(_MEMORY_ONLY_IN_RUN.format(command=command))
    executor_name = ctx.params.get("executor")  # add and sync: the executor to check schedules for
    store_opts, executor_opts = _resolve_options(ctx, store_name, executor_name)
    pm = _plugin_manager(store_name, executor_name or "local")
    hooks = Hooks(pm)
    executor = _NoExecutor(None if executor_name is None else _schedule_check(ctx, hooks, executor_name, executor_opts))
    allowed = _allowed_tasks(ctx)
    for file, schedule in adding:
        try:
            allowed.check(schedule.task, f"{schedule.id}.task")
            executor.validate(schedule)
        except (ValidationError, ConfigError) as exc:
            if not file:
                raise
            raise ConfigError(f"{file}: {exc}") from None
    _note_default_executor(ctx, [schedule for _, schedule in adding])
    with one_shot():  # a one-shot command: a server that never answers fails in seconds
        store = _create_store(hooks, store_name, store_opts)
    try:
        yield Scheduler(store=store, executor=executor, plugins=pm, heartbeat=None, allowed_tasks=allowed)
    finally:
        store.close()


# -- run ---------------------------------------------------------------------------------


@_command("run")
@click.option(
    "--config",
    "config",
    type=click.Path(exists=True, dir_okay=False),
    envvar="SCHEDCORE_CONFIG",
    help="TOML schedule file synced into the store before starting (env: SCHEDCORE_CONFIG).",
)
@click.option(
    "--source",
    metavar="NAME",
    envvar="SCHEDCORE_SOURCE",
    help="Source id the --config schedules are marked with (default: the file's name; env: SCHEDCORE_SOURCE).",
)
@_executor_choice("Executor registered by a plugin (env: SCHEDCORE_EXECUTOR).")
@click.option("--burst", is_flag=True, help="Dispatch everything due now, wait for it, then exit.")
def run_command(
    *,
    config: str | None,
    source: str | None,
    store: str,
    executor: str,
    store_options: tuple[str, ...],
    executor_options: tuple[str, ...],
    burst: bool,
    **plugin_options: Any,
) -> None:
    """Run a scheduler until Ctrl-C or SIGTERM (or, with --burst, until nothing is due).

    With no --store or --executor it runs on the embedded default: the SQLite store (a
    file in your data directory, see --sqlite-path) and the local executor, with the
    schedules of --config. The --config file is synced
    like 'schedcore sync': its schedules are created or updated and the ones it no longer
    has are removed, so restarting (or running several schedulers) never duplicates one.
    Option values are read as JSON when they parse (numbers, true/false, lists), as text
    otherwise.
    """
    from schedcore.config import load_schedules
    from schedcore.plugins import Hooks
    from schedcore.sync import default_source, sync

    ctx = click.get_current_context()
    store_name, executor_name = store, executor
    store_opts, executor_opts = _resolve_options(ctx, store_name, executor_name)
    schedules = load_schedules(config) if config else []

    pm = _plugin_manager(store_name, executor_name)
    hooks = Hooks(pm)
    stores = hooks.store_factories()
    if store_name not in stores:
        raise click.UsageError(f"unknown store {store_name!r}; registered stores: {_names(stores)}")
    _executor_factory(hooks, executor_name)

    from schedcore.scheduler import Scheduler

    the_store = _create_store(hooks, store_name, store_opts)
    the_executor = None
    running = False
    try:
        try:
            the_executor = hooks.create_executor(executor_name, executor_opts)
        except (ValidationError, ConfigError) as exc:
            raise click.UsageError(f"executor {executor_name!r}: {exc}") from None
        allowed = _allowed_tasks(ctx)
        if allowed.patterns is not None:  # the workers this process supervises check it too
            os.environ["SCHEDCORE_ALLOWED_TASKS"] = ",".join(allowed.patterns)
        scheduler = Scheduler(store=the_store, executor=the_executor, plugins=pm, allowed_tasks=allowed)
        if config:
            report = sync(scheduler, schedules, source or default_source(config))
            log.info(
                "loaded %d schedule(s) from %s (%s)",
                len(schedules),
                config,
                report.summary(),
                extra={"event": "config_loaded", "path": config, "count": len(schedules)},
            )
        elif store_name in ("memory", "sqlite") and not the_store.list_schedules(limit=1):
            where = getattr(the_store, "path", "")
            log.warning("the %s store %s is empty and no --config was given: nothing will run", store_name, where)
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
        if the_executor is not None and not running:
            the_executor.shutdown(wait=False)
        the_store.close()


def _key_values(items: Sequence[str], option: str) -> dict[str, Any]:
    """``["url=redis://x", "limit=5"]`` -> ``{"url": "redis://x", "limit": 5}`` (JSON when it parses)."""
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
        except RecursionError:
            raise click.UsageError(f"invalid {option}={shown(item)}: nested too deeply") from None
        options[key] = value
    return options


def _names(factories: dict[str, Any]) -> str:
    return ", ".join(sorted(factories)) or "none"


# -- sync --------------------------------------------------------------------------------


_CHECKED_FOR = (
    "Executor of the schedulers that will run the schedules: each is checked for it (its "
    "executor_options above all) before anything is written, without connecting to it "
    "(env: SCHEDCORE_EXECUTOR)."
)


@_command("sync")
@click.argument("paths", nargs=-1, type=click.Path(exists=True), metavar="[FILE|DIR]...")
@click.option(
    "--source",
    metavar="NAME",
    envvar="SCHEDCORE_SOURCE",
    help="Source id the file's schedules are marked with (default: the file's name; one file only; "
    "env: SCHEDCORE_SOURCE).",
)
@click.option("--keep-removed", is_flag=True, help="Do not remove schedules that are gone from the file.")
@_executor_choice(_CHECKED_FOR)
def sync_command(*, paths: tuple[str, ...], source: str | None, keep_removed: bool, **options: Any) -> None:
    """Make the store hold exactly the schedules of the schedule files given.

    Each FILE (a directory stands for its *.toml files) is a source of its own: sync
    creates its new schedules, updates changed ones (keeping their pending occurrence
    when the timing is the same) and removes the ones that came from that file before
    and are gone from it. Schedules added by other means are left alone. Every file is
    read and checked before anything is written; syncing twice changes nothing. Without
    FILE: SCHEDCORE_CONFIG, or config in the settings file.
    """
    from schedcore.config import load_schedules
    from schedcore.sync import default_source, sync

    files = _schedule_files(paths)
    if source is not None and len(files) > 1:
        raise click.UsageError(f"--source names one file's schedules, but {len(files)} files were given")
    loaded = [(file, load_schedules(file), source or default_source(file)) for file in files]
    _check_distinct(loaded)
    adding = [(file, schedule) for file, schedules, _ in loaded for schedule in schedules]
    with _opened(click.get_current_context(), adding) as scheduler:  # checks every file first
        for _, schedules, name in loaded:
            report = sync(scheduler, schedules, name, prune=not keep_removed)
            for mark, ids in (("+", report.added), ("~", report.updated), ("-", report.removed)):
                for sid in ids:
                    click.echo(f"{mark} {sid}")
            click.echo(report.summary())


def _schedule_files(paths: Sequence[str]) -> list[str]:
    """The schedule files named: each file, and each directory's ``*.toml`` files in name order."""
    if not paths:
        settings = click.get_current_context().find_object(Settings)
        configured = os.environ.get("SCHEDCORE_CONFIG") or (settings.file.get("config") if settings else None)
        if not isinstance(configured, str) or not configured:
            raise click.UsageError("give a schedule FILE (or SCHEDCORE_CONFIG, or config in the settings file)")
        paths = [configured]
    files: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(str(p) for p in Path(path).glob("*.toml") if p.is_file())
            if not found:
                raise click.UsageError(f"{path}: a directory with no *.toml schedule files")
            files += found
        else:
            files.append(path)
    return list(dict.fromkeys(files))


def _check_distinct(loaded: Sequence[tuple[str, Sequence[Any], str]]) -> None:
    """Refuse files that would fight over a source id or a schedule id (before anything is written)."""
    sources: dict[str, str] = {}
    ids: dict[str, str] = {}
    for file, schedules, name in loaded:
        if name in sources:
            raise ConfigError(f"{file}: its source id {name!r} is also {sources[name]}'s (rename one, or sync apart)")
        sources[name] = file
        for schedule in schedules:
            if schedule.id in ids:
                raise ConfigError(f"{file}: schedule {schedule.id!r} is also in {ids[schedule.id]}")
            ids[schedule.id] = file


# -- add ---------------------------------------------------------------------------------


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
@click.option("--cron", "cron_expr", metavar="EXPR", help='Cron expression, e.g. "0 3 * * *" or @daily.')
@click.option("--tz", metavar="ZONE", help="IANA zone of the cron expression (default UTC).")
@click.option(
    "--every",
    type=float,
    metavar="SECONDS",
    help="Fire every SECONDS, at start + k * SECONDS: counted from the Unix epoch (UTC) unless --start is given, "
    "so --every 86400 fires at each UTC midnight and --every 3600 on the hour.",
)
@click.option(
    "--start", metavar="ISO8601", help="Anchor of --every, e.g. 2025-01-01T09:30:00+01:00 (default: the Unix epoch)."
)
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


# -- list / show -------------------------------------------------------------------------


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
            "runs": [{**r.to_dict(), "lateness": r.lateness} for r in history],
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
        header = ["RUN", "KIND", f"NOMINAL ({zone})", "LATENESS", "OUTCOME", "RETRY AT", "ERROR"]
        rows = [
            [
                r.run_id,
                r.kind.value,
                _zoned(r.nominal, zone),
                "-" if r.lateness is None else _seconds(r.lateness),
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


# -- remove / pause / resume / trigger / backfill -----------------------------------------


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
    """How many schedulers beat in ``store`` now; None when it cannot tell (no heartbeats, or
    reading them failed: the run is queued all the same, so that is no reason to fail)."""
    schedulers = getattr(store, "schedulers", None)
    if not callable(schedulers):
        return None
    try:
        return len(schedulers(datetime.now(timezone.utc)))
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


# -- status ------------------------------------------------------------------------------


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
        if not callable(getattr(store, "stats", None)) or not callable(getattr(store, "schedulers", None)):
            raise CliError(f"the store {type(store).__name__} does not report status (no heartbeats or stats)")
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


# -- doctor ------------------------------------------------------------------------------


@_command("doctor")
@click.option("--repair", is_flag=True, help="Fix what can be fixed safely (schedulers may keep running).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of the table.")
def doctor_command(*, repair: bool, as_json: bool, **options: Any) -> int:
    """Check the store's consistency: index entries without schedule, schedules missing their
    fire entry, claims without lease or of dead owners, wrong-typed keys, unreadable records.
    Exit code 0 when nothing is left to fix, 1 when problems remain (see docs/cli.md)."""
    from schedcore.doctor import check_store

    with _opened(click.get_current_context()) as scheduler:
        report = check_store(scheduler.store, repair=repair, now=datetime.now(timezone.utc))
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        if report.findings:
            click.echo(_table(["KIND", "SCHEDULE", "KEY", "DETAIL", "RESULT"], report.rows()))
        click.echo(report.summary())
    return report.exit_code


# -- plugins -----------------------------------------------------------------------------


@cli.command("plugins")
def plugins_command() -> None:
    """List the loaded plugins (with their package), the stores and executors they register
    and the command-line options they add."""
    from schedcore.plugins import Hooks, get_plugin_manager
    from schedcore.trigger_types import default_registry

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
            missing = factories[name].missing
            why = missing() if missing is not None else None
            if why:  # registered (the plugin ships with the core) but its driver is not here
                click.echo(f"  {'':<12} {why}")
    click.echo("triggers:")  # (the registry every store decodes with: see schedcore.trigger_types)
    for name, (ttype, source) in sorted(default_registry().sources().items()):
        click.echo(f"  {name:<12} {ttype.description}  ({source})")
    ctx = click.get_current_context()
    ctx.find_root().meta[_PM_KEY] = pm
    seen: dict[str, set[str]] = {}
    for command in STORE_COMMANDS:
        for merged in _plugin_options(ctx, command):
            seen.setdefault(
                f"--{merged.spec.name}  ({', '.join(merged.plugins)}; {merged.describe_targets()})", set()
            ).add(command)
    if seen:
        click.echo("options:")
        for option, commands in sorted(seen.items()):
            where = "every store command" if len(commands) == len(STORE_COMMANDS) else ", ".join(sorted(commands))
            click.echo(f"  {option}: {where}")


# `schedcore web` lives in its own package (its Flask and waitress are an optional extra,
# imported only when the command runs); a build without that package has no such command.
with contextlib.suppress(ImportError):
    import schedcore_web._cli  # noqa: F401  (registers the command)
# `schedcore migrate rq-scheduler` needs redis and rq, imported only when it runs.
with contextlib.suppress(ImportError):
    import schedcore_rq._migrate_cli  # noqa: F401  (registers the command group)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of the ``schedcore`` console script."""
    cli.main(args=argv, prog_name="schedcore")
    sys.exit(0)  # pragma: no cover - cli.main always exits


if __name__ == "__main__":  # pragma: no cover
    # ``python -m schedcore.cli`` runs a second copy of this module; `schedcore web` registers
    # on the imported ``schedcore.cli``, so run that one.
    from schedcore.cli import main as imported_main

    imported_main()
