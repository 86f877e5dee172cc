"""Translation of redis-py exceptions into schedcore's own, at the adapter boundary.

Every class of :mod:`redis.exceptions` is listed in :data:`MAPPING` (a test fails when
redis-py grows one that is not), so no driver type ever leaks past the store::

    ConnectionError, TimeoutError, BusyLoadingError,
    ReadOnlyError, MasterDownError, TryAgainError, ClusterDown... --> StoreUnavailable (retry later)
    AuthenticationError, AuthorizationError                    --> StoreUnavailable (with the reason)
    everything else (ResponseError, DataError, ...)            --> StoreError
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import redis.exceptions as rex

from schedcore.exceptions import CorruptStore, SchedcoreError, StoreError, StoreUnavailable

__all__ = ["MAPPING", "PERMANENT", "is_permanent", "translate", "translated"]

#: redis-py exception class -> schedcore exception class. Checked most-derived first.
MAPPING: dict[type[BaseException], type[StoreError]] = {
    rex.AskError: StoreUnavailable,
    rex.AuthenticationError: StoreUnavailable,
    rex.AuthenticationWrongNumberOfArgsError: StoreUnavailable,
    rex.AuthorizationError: StoreUnavailable,
    rex.BusyLoadingError: StoreUnavailable,
    rex.ChildDeadlockedError: StoreError,
    rex.ClusterCrossSlotError: StoreError,
    rex.ClusterDownError: StoreUnavailable,
    rex.ClusterError: StoreUnavailable,
    rex.ConnectionError: StoreUnavailable,
    rex.CrossSlotTransactionError: StoreError,
    rex.DataError: StoreError,
    rex.ExecAbortError: StoreError,
    rex.ExternalAuthProviderError: StoreUnavailable,
    rex.IncorrectPolicyType: StoreError,
    rex.InvalidPipelineStack: StoreError,
    rex.InvalidResponse: StoreUnavailable,
    rex.LockError: StoreError,
    rex.LockNotOwnedError: StoreError,
    rex.MasterDownError: StoreUnavailable,
    rex.MaxConnectionsError: StoreUnavailable,
    rex.ModuleError: StoreError,
    rex.MovedError: StoreUnavailable,
    rex.NoPermissionError: StoreError,
    rex.NoScriptError: StoreError,
    rex.NoSuchFieldsetError: StoreError,
    rex.OutOfMemoryError: StoreError,
    rex.PubSubError: StoreError,
    rex.ReadOnlyError: StoreUnavailable,
    rex.RedisClusterException: StoreError,
    rex.RedisError: StoreError,
    rex.ResponseError: StoreError,
    rex.SlotNotCoveredError: StoreUnavailable,
    rex.TimeoutError: StoreUnavailable,
    rex.TryAgainError: StoreUnavailable,
    rex.WatchError: StoreError,
}

_CAUGHT: tuple[type[BaseException], ...] = (*MAPPING, OSError)

#: Errors that retrying does not cure: the server refuses this user a command or a key, or
#: the credentials are wrong -- an operator has to act (the RQ executor stops retrying them
#: as if the server were only busy; a store's one-shot command reports them the same way).
PERMANENT: tuple[type[BaseException], ...] = (
    rex.NoPermissionError,
    rex.AuthenticationError,
    rex.AuthorizationError,
    rex.AuthenticationWrongNumberOfArgsError,
)

# The reply of a script that found a namespace-wide key of the wrong type (see _scripts).
_CORRUPT_REPLY = re.compile(r"CORRUPTSTORE (\S+) (\S+) (\S+)")

# Replies that mean "the server cannot serve now" although redis-py raises a plain ResponseError.
_TRANSIENT_REPLY = re.compile(r"^(BUSY|LOADING|MASTERDOWN|TRYAGAIN|CLUSTERDOWN|READONLY|NOREPLICAS)\b")


def translate(exc: BaseException, doing: str) -> SchedcoreError:
    """The schedcore exception for a redis-py exception raised while ``doing`` something."""
    if isinstance(exc, SchedcoreError):
        return exc
    corrupt = _CORRUPT_REPLY.search(str(exc)) if isinstance(exc, rex.ResponseError) else None
    if corrupt is not None:
        return CorruptStore(*corrupt.groups())
    kind: type[StoreError] = StoreError
    for cls in type(exc).__mro__:
        if cls in MAPPING:
            kind = MAPPING[cls]
            break
    text = " ".join(str(exc).split()) or type(exc).__name__
    if kind is StoreError and _TRANSIENT_REPLY.match(text):
        kind = StoreUnavailable
    if isinstance(exc, OSError):  # socket errors redis-py did not wrap
        kind = StoreUnavailable
    return kind(f"redis: {doing} failed: {type(exc).__name__}: {text}")


def is_permanent(exc: BaseException) -> bool:
    """True for a redis-py error that retrying does not cure: :data:`PERMANENT`, or a
    ``WRONGTYPE`` reply (a key of ours holding another type stays so until repaired)."""
    if isinstance(exc, PERMANENT):
        return True
    return isinstance(exc, rex.ResponseError) and str(exc).startswith("WRONGTYPE")


@contextmanager
def translated(doing: str) -> Iterator[None]:
    """Re-raise redis (and socket) errors inside the block as schedcore store errors."""
    try:
        yield
    except _CAUGHT as exc:
        raise translate(exc, doing) from exc
