"""Whether a store is being opened for one short command or for a long-running scheduler.

``schedcore list`` against a server that never answers should fail within seconds;
``schedcore run`` should ride out a slow moment. The command line opens the stores of its
one-shot commands inside :func:`one_shot`, and store plugins that talk to a network
(``schedcore_redis``) pick short timeouts when :func:`is_one_shot` says so.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

__all__ = ["is_one_shot", "one_shot"]

_ONE_SHOT: ContextVar[bool] = ContextVar("schedcore_one_shot", default=False)


@contextlib.contextmanager
def one_shot() -> Iterator[None]:
    """Stores created inside this block serve one short command: they should fail fast."""
    token = _ONE_SHOT.set(True)
    try:
        yield
    finally:
        _ONE_SHOT.reset(token)


def is_one_shot() -> bool:
    """True inside :func:`one_shot`."""
    return _ONE_SHOT.get()
