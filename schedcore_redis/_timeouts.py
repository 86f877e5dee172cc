"""The redis-py connection settings of the two kinds of schedcore processes.

A long-running scheduler (``service_options``) waits up to 30 s for a reply -- a slow
moment of the server is not an outage -- keeps its idle connections checked
(``health_check_interval``, TCP keepalive) so that a dead peer is found before the next
claim rather than by it, and retries a blip three times. A one-shot command
(``command_options``: ``schedcore list``, ``add``, ...) gives up after a few seconds, so
that a server that never answers (a hung listener, ``rediss://`` at a plain port) is a
one-line error well within 10 s instead of a 2-minute hang.
"""

from __future__ import annotations

from typing import Any

from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.retry import Retry

__all__ = ["COMMAND_TIMEOUT", "command_options", "service_options"]

#: Seconds a one-shot command waits for a connection or a reply, per wait (no retries: the operator reruns the command).
COMMAND_TIMEOUT = 3.0


def service_options(url: str) -> dict[str, Any]:
    """Client options of a long-running scheduler or executor on ``url`` (a fresh dict: Retry is per client)."""
    options: dict[str, Any] = {
        "socket_connect_timeout": 5.0,
        "socket_timeout": 30.0,
        "health_check_interval": 30,
        # a few quick retries for blips; longer outages are the engine's back-off
        "retry": Retry(ExponentialWithJitterBackoff(base=0.025, cap=0.25), 3),
    }
    if not url.lower().startswith("unix:"):
        options["socket_keepalive"] = True  # TCP only: redis-py refuses it for unix sockets
    return options


def command_options() -> dict[str, Any]:
    """Client options of a one-shot command: no retries, ``COMMAND_TIMEOUT`` seconds per wait."""
    return {
        "socket_connect_timeout": COMMAND_TIMEOUT,
        "socket_timeout": COMMAND_TIMEOUT,
        "retry": Retry(NoBackoff(), 0),
    }
