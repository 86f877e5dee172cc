"""``schedcore plugins``: the loaded plugins and what they register."""

from __future__ import annotations

import click

from schedcore._cli_app import _PM_KEY, _plugin_options, cli
from schedcore.settings import STORE_COMMANDS


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
