"""``schedcore run`` and ``schedcore sync``: run the schedulers, and make a store hold a file's schedules."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from schedcore._cli_app import Settings, _allowed_tasks, log
from schedcore._cli_options import (
    _CHECKED_FOR,
    _command,
    _create_store,
    _executor_choice,
    _executor_factory,
    _names,
    _opened,
    _plugin_manager,
    _resolve_options,
)
from schedcore.exceptions import ConfigError, ValidationError


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
