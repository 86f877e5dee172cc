"""Tiny task functions that tests and executors import by reference.

``"schedcore.testing.tasks:noop"`` and friends: top-level, importable, side-effect free
except for :func:`record`, which appends its call to :data:`CALLS`.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["CALLS", "echo", "fail", "noop", "record", "reset"]

#: ``(args, kwargs)`` of every :func:`record` call, in call order.
CALLS: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
_lock = threading.Lock()


def noop(*args: Any, **kwargs: Any) -> None:
    """Do nothing."""


def echo(value: Any = None) -> Any:
    """Return ``value``."""
    return value


def fail(message: str = "boom", *args: Any, **kwargs: Any) -> None:
    """Raise ``RuntimeError(message)``."""
    raise RuntimeError(message)


def record(*args: Any, **kwargs: Any) -> None:
    """Append ``(args, kwargs)`` to :data:`CALLS` (thread-safe)."""
    with _lock:
        CALLS.append((args, kwargs))


def reset() -> None:
    """Empty :data:`CALLS`."""
    with _lock:
        CALLS.clear()
