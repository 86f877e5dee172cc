"""The built-in ``sqlite`` store of the command line (registered by :mod:`schedcore._builtin`).

Options: ``path`` (default :func:`schedcore.sqlite.default_path`: ``$SCHEDCORE_SQLITE_PATH``,
else ``$XDG_DATA_HOME/schedcore/schedcore.db``, else ``~/.local/share/schedcore/schedcore.db``),
``history_limit``, ``busy_timeout`` (seconds), ``synchronous`` (``full``, the default, or
``normal``: see :class:`schedcore.sqlite.SQLiteStore`). On the command line: ``-S path=FILE``,
``--sqlite-path FILE``, ``SCHEDCORE_SQLITE_PATH`` or ``[store_options] path = "FILE"`` in
the settings file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schedcore.exceptions import ValidationError
from schedcore.protocols import Store
from schedcore.settings import CliOption

__all__ = ["OPTION", "create_store"]

_KNOWN = frozenset({"path", "history_limit", "busy_timeout", "synchronous"})

#: ``--sqlite-path`` (env ``SCHEDCORE_SQLITE_PATH``, settings ``sqlite_path``): the store's ``path``.
OPTION = CliOption(
    name="sqlite-path",
    store="sqlite",
    key="path",
    envvar="SCHEDCORE_SQLITE_PATH",
    metavar="FILE",
    help="The SQLite store's file (default: $XDG_DATA_HOME/schedcore/schedcore.db or "
    "~/.local/share/schedcore/schedcore.db).",
)


def _number(options: Mapping[str, Any], key: str, kind: type[int] | type[float], default: Any) -> Any:
    value = options.get(key, default)
    if isinstance(value, kind) and not isinstance(value, bool):
        return value
    try:
        return kind(str(value))  # 0 or "" is refused by SQLiteStore, never taken for the default
    except ValueError:
        raise ValidationError(f"store.{key}", value, "expected a number") from None


def create_store(options: Mapping[str, Any]) -> Store:
    """A :class:`~schedcore.sqlite.SQLiteStore` from plugin options (opens the file at once)."""
    from schedcore.sqlite import SQLiteStore, default_path

    unknown = sorted(set(options) - _KNOWN)
    if unknown:
        raise ValidationError(
            f"store.{unknown[0]}", options[unknown[0]], f"unknown option (known: {', '.join(sorted(_KNOWN))})"
        )
    path = options.get("path")
    if path is not None and not str(path).strip():
        raise ValidationError("store.path", path, "empty; give a file path, or leave the option out for the default")
    synchronous = str(options.get("synchronous", "full")).lower()
    if synchronous not in ("full", "normal"):
        raise ValidationError("store.synchronous", options["synchronous"], "expected 'full' or 'normal'")
    return SQLiteStore(
        str(path) if path is not None else default_path(),
        history_limit=_number(options, "history_limit", int, 50),
        busy_timeout=_number(options, "busy_timeout", float, 5.0),
        synchronous=synchronous,
    )
