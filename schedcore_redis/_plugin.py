"""The ``redis`` store, registered through the ``schedcore`` entry-point group.

Options: ``url`` (default ``redis://localhost:6379/0``), ``namespace`` (default
``default``), ``history_limit``, ``history_ttl`` (seconds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from schedcore.exceptions import PluginError, ValidationError
from schedcore.hookspecs import hookimpl
from schedcore.plugins import StoreFactory
from schedcore.protocols import Store
from schedcore.settings import CliOption

_KNOWN = frozenset({"url", "namespace", "history_limit", "history_ttl"})


def create_store(options: Mapping[str, Any]) -> Store:
    """Build a :class:`~schedcore_redis.RedisStore` from plugin options (checks the server at once)."""
    unknown = sorted(set(options) - _KNOWN)
    if unknown:
        raise ValidationError(
            f"store.{unknown[0]}", options[unknown[0]], f"unknown option (known: {', '.join(sorted(_KNOWN))})"
        )
    try:
        from schedcore_redis._store import RedisStore
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise PluginError(f"the redis store needs redis-py: pip install 'schedcore[redis]' ({exc})") from None
    ttl = options.get("history_ttl")
    try:
        history_limit = int(options.get("history_limit") or 50)
        history_ttl = float(ttl) if ttl not in (None, "") else None
    except (TypeError, ValueError):
        raise ValidationError(
            "store.history_limit/history_ttl", (options.get("history_limit"), ttl), "expected numbers"
        ) from None
    return RedisStore.from_url(
        str(options.get("url") or "redis://localhost:6379/0"),
        namespace=str(options.get("namespace") or "default"),
        history_limit=history_limit,
        history_ttl=history_ttl,
    )


@hookimpl
def schedcore_store_factories() -> Sequence[StoreFactory]:
    """The ``redis`` store."""
    return [
        StoreFactory(name="redis", create=create_store, description="Redis: shared by many schedulers (url, namespace)")
    ]


#: The commands that open a store (every one but ``next`` and ``plugins``).
_STORE_COMMANDS = frozenset(
    {"run", "sync", "add", "list", "show", "remove", "pause", "resume", "trigger", "backfill", "status", "doctor"}
)


@hookimpl
def schedcore_cli_options(command: str) -> Sequence[CliOption]:
    """``--redis-url`` and ``--redis-namespace`` for ``--store redis``, on every command that opens a store."""
    if command not in _STORE_COMMANDS:
        return []
    return [
        CliOption(
            name="redis-url",
            store="redis",
            key="url",
            metavar="URL",
            help="Redis server: redis://[user:password@]host[:port][/db], rediss://... (TLS) or unix:///path.",
        ),
        CliOption(
            name="redis-namespace",
            store="redis",
            key="namespace",
            metavar="NAME",
            help="Key namespace in Redis: schedulers sharing one see the same schedules (default: default).",
        ),
    ]
