"""The ``redis`` store, registered through the ``schedcore`` entry-point group.

Options: ``url`` (default ``redis://localhost:6379/0``), ``namespace`` (default
``default``), ``history_limit``, ``history_ttl`` (seconds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from schedcore._dist import install_hint
from schedcore._oneshot import is_one_shot
from schedcore.exceptions import PluginError, ValidationError
from schedcore.hookspecs import hookimpl
from schedcore.plugins import StoreFactory, missing_modules, refuse_unknown_options
from schedcore.protocols import Store
from schedcore.settings import STORE_COMMANDS, CliOption

DEFAULT_URL = "redis://localhost:6379/0"
_KNOWN = frozenset({"url", "namespace", "history_limit", "history_ttl"})


def create_store(options: Mapping[str, Any]) -> Store:
    """Build a :class:`~schedcore_redis.RedisStore` from plugin options (checks the server at once)."""
    refuse_unknown_options("store", options, _KNOWN)
    try:
        from schedcore_redis._store import RedisStore
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise PluginError(f"the redis store needs redis-py: {install_hint('redis')} ({exc})") from None
    ttl = options.get("history_ttl")
    limit = options.get("history_limit", 50)
    try:
        # 0 or "" is refused by RedisStore, never silently taken for the default 50
        history_limit = limit if isinstance(limit, int) else int(str(limit))
        history_ttl = float(ttl) if ttl not in (None, "") else None
    except (TypeError, ValueError):
        raise ValidationError("store.history_limit/history_ttl", (limit, ttl), "expected numbers") from None
    from schedcore_redis._timeouts import command_options

    return RedisStore.from_url(
        non_empty_url(options.get("url", DEFAULT_URL), "store.url (--redis-url, -S url=)"),
        namespace=str(options.get("namespace") or "default"),
        history_limit=history_limit,
        history_ttl=history_ttl,
        **(command_options() if is_one_shot() else {}),
    )


def non_empty_url(value: Any, field: str) -> str:
    """A URL option as given; an empty one is refused rather than read as the default server."""
    url = str(value) if value is not None else ""
    if not url.strip():
        raise ValidationError(
            field, value, "empty; give a redis://, rediss:// or unix:// URL, or leave the option out for the default"
        )
    return url


@hookimpl
def schedcore_store_factories() -> Sequence[StoreFactory]:
    """The ``redis`` store."""
    return [
        StoreFactory(
            name="redis",
            create=create_store,
            description="Redis: shared by many schedulers (url, namespace)",
            missing=lambda: missing_modules(("redis",), "redis"),
        )
    ]


@hookimpl
def schedcore_cli_options(command: str) -> Sequence[CliOption]:
    """``--redis-url`` and ``--redis-namespace`` for ``--store redis``, on every command that opens a store."""
    if command not in STORE_COMMANDS:
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
