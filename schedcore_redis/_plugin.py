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
