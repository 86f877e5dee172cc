"""What the commands that work on a store share: ``--store``/``-S``, ``--executor``/``-E``, the
options plugins add, the trigger options, and opening the store (``_opened``)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from schedcore._cli_app import Settings, _allowed_tasks, _from_default, _plugin_options, cli, log
from schedcore.exceptions import ConfigError, PluginError, ValidationError, shown
from schedcore.executors import ExecutorBase

if TYPE_CHECKING:
    from schedcore._precheck import ScheduleCheck
    from schedcore.model import Schedule
    from schedcore.plugins import ExecutorFactory, Hooks
    from schedcore.protocols import Store
    from schedcore.scheduler import Scheduler
    from schedcore.settings import MergedOption


_F = TypeVar("_F", bound=Callable[..., Any])


_MEMORY_ONLY_IN_RUN = (
    "the memory store lives inside one 'schedcore run' process and is gone when it exits, so "
    "'schedcore {command}' cannot see it; leave --store out for the default sqlite file, or choose "
    "a shared store with --store NAME (e.g. --store redis), SCHEDCORE_STORE or 'store = ...' in the settings file"
)


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


_CHECKED_FOR = (
    "Executor of the schedulers that will run the schedules: each is checked for it (its "
    "executor_options above all) before anything is written, without connecting to it "
    "(env: SCHEDCORE_EXECUTOR)."
)


def _trigger_options(cron_example: str) -> Callable[[_F], _F]:
    """``--cron EXPR [--tz ZONE]`` or ``--every SECONDS [--start ISO8601]``: the trigger ``next``
    prints and ``add`` stores, declared once so that both commands read it alike."""
    options = (
        click.option("--cron", "cron_expr", metavar="EXPR", help=f"Cron expression, e.g. {cron_example} or @daily."),
        click.option("--tz", metavar="ZONE", help="IANA zone of the cron expression (default UTC)."),
        click.option(
            "--every",
            type=float,
            metavar="SECONDS",
            help="Fire every SECONDS, at start + k * SECONDS: counted from the Unix epoch (UTC) unless --start "
            "is given, so --every 86400 fires at each UTC midnight and --every 3600 on the hour.",
        ),
        click.option(
            "--start",
            metavar="ISO8601",
            help="Anchor of --every, e.g. 2025-01-01T09:30:00+01:00 (default: the Unix epoch).",
        ),
    )

    def decorate(f: _F) -> _F:
        for option in reversed(options):  # as if stacked above the function, in this order
            f = option(f)
        return f

    return decorate


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


def _names(factories: dict[str, Any]) -> str:
    return ", ".join(sorted(factories)) or "none"


class _NoExecutor(ExecutorBase):
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
