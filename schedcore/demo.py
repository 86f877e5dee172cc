"""Tiny tasks for trying schedcore out (``examples/hello.toml`` schedules them)."""

from __future__ import annotations

import logging
import os
import sys
import threading
from datetime import datetime, timezone

__all__ = ["fail", "hello"]

log = logging.getLogger("schedcore.demo")


def hello(name: str = "world") -> str:
    """Print (and log) one greeting line with the time; returns the greeting."""
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    text = f"hello, {name}!"
    # one write per line, so that lines from concurrent runs never interleave
    sys.stdout.write(f"{now} {text} (pid {os.getpid()}, {threading.current_thread().name})\n")
    sys.stdout.flush()
    log.debug("said hello", extra={"greeting": text})  # the line above already says it
    return text


def fail(message: str = "this task always fails") -> None:
    """Raise RuntimeError -- to watch retries with backoff."""
    raise RuntimeError(message)
