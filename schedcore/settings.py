"""Settings of the command line: flags, ``SCHEDCORE_*`` environment variables, a TOML file.

Precedence, per setting: a command-line flag wins over its environment variable, which
wins over the settings file (``--settings FILE`` or ``SCHEDCORE_SETTINGS``), which wins
over the default. A settings file is flat TOML::

    # schedcore.toml
    store = "redis"
    executor = "rq"
    config = "jobs.toml"          # a schedule file, relative to this file
    log_level = "info"
    redis_url = "redis://localhost:6379/0"   # an option a plugin offers (--redis-url)

    [store_options]               # like -S KEY=VALUE
    namespace = "prod"

    [executor_options]            # like -E KEY=VALUE
    queue = "low"

Plugins add command-line options through the ``schedcore_cli_options`` hook, described
declaratively by :class:`CliOption`; each one sets an option of a store or an executor
(``--redis-url`` sets ``url`` of the ``redis`` store, for example).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from schedcore.config import read_toml_text
from schedcore.exceptions import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = ["CORE_KEYS", "OPTION_TABLES", "STORE_COMMANDS", "CliOption", "load_settings", "merge_cli_options"]

#: Keys of a settings file that set the global options or the core options of commands.
#: The commands that open a store (every one but ``next``, ``plugins`` and ``migrate``): the
#: ones a store plugin's options (``schedcore_cli_options``) belong on.
STORE_COMMANDS: tuple[str, ...] = (
    "run", "sync", "add", "list", "show", "remove", "pause", "resume", "trigger", "backfill", "status", "doctor", "web",
)  # fmt: skip

CORE_KEYS = frozenset(
    {"debug", "log_level", "log_format", "allowed_tasks", "store", "executor", "config", "source", "burst"}
)
#: Tables of a settings file holding store and executor options (like ``-S``/``-E``).
OPTION_TABLES = ("store_options", "executor_options")
_TYPES = ("str", "int", "float", "flag")


def _check_type(instance: CliOption, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in _TYPES:
        raise ValueError(f"CliOption.type must be one of {', '.join(_TYPES)}, got {value!r}")


@attrs.frozen(kw_only=True)
class CliOption:
    """A command-line option a plugin adds (returned by the ``schedcore_cli_options`` hook).

    ``name`` is the long flag without dashes (``"redis-url"``); exactly one of ``store``
    and ``executor`` names the store or executor it applies to, and ``key`` the option it
    sets there (``CliOption(name="redis-url", store="redis", key="url", ...)``). ``type``
    is ``"str"``, ``"int"``, ``"float"`` or ``"flag"``; ``envvar`` defaults to
    ``SCHEDCORE_<NAME>`` (``SCHEDCORE_REDIS_URL``), and the settings-file key is the name
    with underscores (``redis_url``). Two plugins may offer the same option name with the
    same type: the option then sets both (``--redis-url`` of the Redis store and of the RQ
    executor).
    """

    name: str
    key: str
    help: str = ""
    store: str | None = None
    executor: str | None = None
    type: str = attrs.field(default="str", validator=_check_type)
    envvar: str | None = None
    metavar: str | None = None

    def __attrs_post_init__(self) -> None:
        if (self.store is None) == (self.executor is None):
            raise ValueError(f"CliOption {self.name!r}: give exactly one of store= or executor=")
        if not self.name or self.name.startswith("-") or not self.name.replace("-", "").isalnum():
            raise ValueError(f"CliOption name {self.name!r}: letters, digits and dashes, without leading dashes")

    @property
    def dest(self) -> str:
        """The parameter name (and settings-file key): ``redis_url``."""
        return self.name.replace("-", "_")

    @property
    def env(self) -> str:
        """The environment variable."""
        return self.envvar or "SCHEDCORE_" + self.dest.upper()


@attrs.frozen(kw_only=True)
class MergedOption:
    """One command-line option built from the :class:`CliOption` of one or more plugins."""

    spec: CliOption  #: the first declaration (flag, type, help, environment variable)
    targets: tuple[tuple[str, str, str], ...]  #: ("store" | "executor", name, key) it sets
    plugins: tuple[str, ...]  #: the plugins that declared it

    def applies_to(self, store: str | None, executor: str | None) -> list[tuple[str, str]]:
        """The (kind, key) pairs this option sets for the chosen store and executor."""
        chosen = {"store": store, "executor": executor}
        return [(kind, key) for kind, name, key in self.targets if chosen[kind] == name]

    def describe_targets(self) -> str:
        """``--store redis or --executor rq``."""
        return " or ".join(sorted({f"--{kind} {name}" for kind, name, _ in self.targets}))


def merge_cli_options(declared: Iterable[tuple[str, CliOption]]) -> tuple[list[MergedOption], list[str]]:
    """Merge ``(plugin name, option)`` pairs by option name; returns the options and problems.

    Same name and type: one option setting every target. Same name, other type: the later
    one is dropped and a problem is reported (the caller logs it).
    """
    merged: dict[str, MergedOption] = {}
    problems: list[str] = []
    # Store plugins first: a shared option (--redis-url) shows the store plugin's help.
    declared = sorted(declared, key=lambda item: not (isinstance(item[1], CliOption) and item[1].store))
    for plugin, option in declared:
        if not isinstance(option, CliOption):
            problems.append(f"plugin {plugin!r} returned {option!r} from schedcore_cli_options, not a CliOption")
            continue
        target = (
            ("store", option.store or "", option.key)
            if option.store
            else ("executor", option.executor or "", option.key)
        )
        found = merged.get(option.name)
        if found is None:
            merged[option.name] = MergedOption(spec=option, targets=(target,), plugins=(plugin,))
        elif found.spec.type != option.type:
            problems.append(
                f"plugin {plugin!r} offers --{option.name} as {option.type}, but {found.plugins[0]!r} "
                f"as {found.spec.type}; ignoring the one of {plugin!r}"
            )
        else:
            merged[option.name] = attrs.evolve(
                found,
                targets=(*found.targets, target),
                plugins=tuple(dict.fromkeys((*found.plugins, plugin))),
            )
    return list(merged.values()), problems


def load_settings(path: str | os.PathLike[str], *, allowed: Iterable[str] = ()) -> dict[str, Any]:
    """Read the settings file at ``path``: a flat dict plus the ``store_options`` and
    ``executor_options`` tables. ``allowed`` adds keys (plugin options) to :data:`CORE_KEYS`.

    Unknown keys (a typo such as ``stor``) and malformed TOML raise ConfigError naming the
    file. A relative ``config`` path is taken relative to the settings file.
    """
    source = os.fspath(path)
    text = read_toml_text(source, f"settings file {source}")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"settings file {source}: invalid TOML: {exc}") from None
    known = set(CORE_KEYS) | set(allowed) | set(OPTION_TABLES)
    for key, value in data.items():
        if key not in known:
            import difflib

            hint = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
            if key == "schedule":
                raise ConfigError(
                    f'settings file {source}: [[schedule]] tables go in a schedule file (config = "FILE")'
                )
            raise ConfigError(
                f"settings file {source}: unknown key {key!r}"
                + (f" (did you mean {hint[0]!r}?)" if hint else f" (allowed: {', '.join(sorted(known))})")
            )
        if key in OPTION_TABLES:
            if not isinstance(value, Mapping):
                raise ConfigError(f"settings file {source}: {key!r} must be a table, written [{key}]")
        elif isinstance(value, (Mapping, list)):
            raise ConfigError(f"settings file {source}: {key!r} must be a single value, not a table or array")
    settings = dict(data)
    if isinstance(settings.get("config"), str):
        settings["config"] = str(Path(source).parent / settings["config"])
    return settings
