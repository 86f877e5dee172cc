"""Keys of the wrong type: what the scripts report, and where a plain read finds one.

A per-schedule key (history, running runs, extras) of another type sets that schedule
aside: the scripts skip its item before writing anything for it and answer
``"key\\nfound\\nexpected"``, which :func:`schedule_damage` turns into the
:class:`~schedcore.exceptions.CorruptScheduleData` that is logged. A namespace-wide key of
another type is structural damage: the scripts stop before their first write (see
:mod:`schedcore_redis._errors`), and :func:`diagnosed` names the key when a plain read
(no script) meets it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis
import redis.exceptions as rex
from redis.cluster import RedisCluster

from schedcore.exceptions import CorruptScheduleData, CorruptStore
from schedcore_redis._codec import text
from schedcore_redis._errors import translated

__all__ = ["diagnosed", "is_damage", "schedule_damage"]


def is_damage(reply: Any) -> bool:
    """True for a script's per-item damage answer (a string; the others are integers)."""
    return isinstance(reply, bytes | str)


def schedule_damage(schedule_id: str, reply: Any, what: str) -> CorruptScheduleData:
    """The error for a script's ``"key\\nfound\\nexpected"`` answer about ``schedule_id``;
    ``what`` says what was not written."""
    key, found, expected = [*text(reply).split("\n"), "?", "?"][:3]
    return CorruptScheduleData(schedule_id, f"key {key} holds a {found}, not a {expected}; {what}")


@contextmanager
def diagnosed(client: redis.Redis | RedisCluster, doing: str, expected: Sequence[tuple[str, str]]) -> Iterator[None]:
    """:func:`translated`, but a WRONGTYPE reply becomes CorruptStore naming the damaged key
    among ``expected`` ((key, type) pairs: the namespace-wide keys the read touches), found
    with one pipeline of TYPE -- only after the error, so a healthy read costs nothing more."""
    try:
        with translated(doing):
            yield
    except CorruptStore:
        raise
    except Exception as exc:
        cause = exc.__cause__
        if not isinstance(cause, rex.ResponseError) or "WRONGTYPE" not in str(cause):
            raise
        pipe = client.pipeline(transaction=False)
        for key, _ in expected:
            pipe.type(key)
        with translated(doing):
            found = [text(t) for t in pipe.execute()]
        for (key, want), got in zip(expected, found, strict=True):
            if got not in (want, "none"):
                raise CorruptStore(key, got, want) from None
        raise
