"""Tiny task functions that tests and executors import by reference.

``"schedcore.testing.tasks:noop"`` and friends: top-level, importable, side-effect free
except for :func:`record`, which appends its call to :data:`CALLS`, and the file tasks
(:func:`record_to_file`, :func:`sleep_then_record`, :func:`record_args_to_file`), which
append lines to a file -- atomically, so that executions can be counted even when the
tasks run in other processes (RQ workers) on the same machine.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

__all__ = [
    "CALLS",
    "append_line",
    "echo",
    "fail",
    "fail_deep",
    "noop",
    "record",
    "record_args_to_file",
    "record_to_file",
    "reset",
    "sleep_then_record",
]

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


def fail_deep(depth: int, message: str = "boom") -> None:
    """Raise ``RuntimeError(message)`` from :func:`fail`, ``depth`` calls down (a long traceback)."""
    if depth <= 0:
        fail(message)
    _fail_deeper(depth - 1, message)


def _fail_deeper(depth: int, message: str) -> None:
    # Alternates with fail_deep: Python folds a run of one repeated frame into a single line.
    fail_deep(depth, message)


def record(*args: Any, **kwargs: Any) -> None:
    """Append ``(args, kwargs)`` to :data:`CALLS` (thread-safe)."""
    with _lock:
        CALLS.append((args, kwargs))


def reset() -> None:
    """Empty :data:`CALLS`."""
    with _lock:
        CALLS.clear()


def append_line(path: str, line: str) -> None:
    """Append ``line`` plus a newline to ``path`` in one ``O_APPEND`` write.

    Lines written this way by concurrent processes never interleave (keep them short:
    well under 4 KiB), so counting the lines counts the calls.
    """
    data = (line + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, data)
    finally:
        os.close(fd)
    if written != len(data):  # pragma: no cover - regular files take the whole write
        raise OSError(f"short write to {path}: {written} of {len(data)} bytes")


def record_to_file(path: str, token: str) -> None:
    """Append ``token`` as one line to the file ``path`` (see :func:`append_line`)."""
    append_line(path, token)


def sleep_then_record(path: str, token: str, seconds: float) -> None:
    """Append ``"start <token>"``, sleep ``seconds``, then append ``"end <token>"`` to ``path``."""
    append_line(path, f"start {token}")
    time.sleep(seconds)
    append_line(path, f"end {token}")


def record_args_to_file(path: str, *args: Any, **kwargs: Any) -> None:
    """Append ``{"args": [...], "kwargs": {...}}`` (the call's arguments after ``path``) as one JSON line."""
    append_line(path, json.dumps({"args": list(args), "kwargs": kwargs}, sort_keys=True, ensure_ascii=True))
