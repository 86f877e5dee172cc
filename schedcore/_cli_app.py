"""The ``schedcore`` command group: its global options and settings file, the exit codes and
one-line errors of every command, and the options plugins add (see :mod:`schedcore.cli`)."""

from __future__ import annotations

import errno
import logging
import os
import sys
import traceback
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone, tzinfo
from typing import TYPE_CHECKING, Any, NoReturn

import attrs
import click

from schedcore import logs
from schedcore._dist import DISTRIBUTION
from schedcore._time import parse_instant
from schedcore.exceptions import ConfigError, PluginError, SchedcoreError, ValidationError, shown
from schedcore.settings import STORE_COMMANDS

if TYPE_CHECKING:
    from schedcore.allowlist import TaskAllowList
    from schedcore.settings import MergedOption


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


_PM_KEY = "schedcore.plugin_manager"
log = logging.getLogger("schedcore.cli")


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
