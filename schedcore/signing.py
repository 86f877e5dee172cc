"""Signed pickled arguments: nothing stored is unpickled without a valid HMAC.

``serializer="pickle"`` stores ``args``/``kwargs`` as a pickle, and unpickling runs code
chosen by whoever wrote the bytes. So a pickled payload is sealed with an HMAC-SHA256,
made with a key the operator sets, over the schedule id and the pickle; reading checks the
HMAC (in constant time) *before* unpickling and refuses anything else. Without a key,
pickled schedules can be neither created nor read.

The key comes from :func:`configure_pickle_key` (in code) or, when that was not called,
from the ``SCHEDCORE_PICKLE_KEY`` environment variable (read at each use, so every
process of a deployment -- scheduler, CLI -- only needs the variable). Whoever holds the
key can make any process that reads the store run code: keep it as secret as a password,
and prefer JSON arguments (the default).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import pickle
from typing import Any

from schedcore.exceptions import ValidationError

__all__ = ["ENV_VAR", "configure_pickle_key", "open_payload", "pickle_key", "seal_payload"]

#: The environment variable holding the key when :func:`configure_pickle_key` was not called.
ENV_VAR = "SCHEDCORE_PICKLE_KEY"
MIN_KEY_BYTES = 16
_PREFIX = "v1."  # a sealed payload is "v1.<hex HMAC>.<base64 pickle>"
_UNSET = object()
_configured: Any = _UNSET  # bytes, None (explicitly off), or _UNSET (use the environment)


def configure_pickle_key(key: bytes | str | None) -> None:
    """Set the key that signs and verifies pickled arguments for this process.

    ``None`` turns pickled arguments off even if ``SCHEDCORE_PICKLE_KEY`` is set. A key
    shorter than 16 bytes is refused (ValidationError).
    """
    global _configured
    _configured = None if key is None else _check_key(key, "pickle_key")


def _reset() -> None:
    """Forget :func:`configure_pickle_key` and use the environment again (for tests)."""
    global _configured
    _configured = _UNSET


def _check_key(key: bytes | str, field: str) -> bytes:
    raw = key.encode() if isinstance(key, str) else key
    if not isinstance(raw, bytes) or len(raw) < MIN_KEY_BYTES:
        # Never echo the key itself in the error.
        raise ValidationError(field, "<hidden>", f"a pickle key must be at least {MIN_KEY_BYTES} bytes")
    return raw


def pickle_key() -> bytes | None:
    """The configured key, or ``None`` when pickled arguments are off."""
    if _configured is not _UNSET:
        return _configured  # type: ignore[no-any-return]
    env = os.environ.get(ENV_VAR)
    return _check_key(env, ENV_VAR) if env else None


def require_key(field: str) -> bytes:
    """The key; ValidationError naming ``field`` when none is set."""
    key = pickle_key()
    if key is None:
        raise ValidationError(
            field,
            "pickle",
            f"pickled arguments need a signing key (set {ENV_VAR} or call "
            "schedcore.signing.configure_pickle_key); use JSON arguments otherwise",
        )
    return key


def _mac(key: bytes, schedule_id: str, data: bytes) -> str:
    # The id is part of the message, so a sealed payload cannot be moved to another schedule.
    message = b"schedcore-pickle-v1\0" + schedule_id.encode() + b"\0" + data
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def seal_payload(schedule_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """``(args, kwargs)`` pickled and signed for ``schedule_id``: ``v1.<hex HMAC>.<base64>``."""
    key = require_key("serializer")
    data = pickle.dumps((args, kwargs))
    return f"{_PREFIX}{_mac(key, schedule_id, data)}.{base64.b64encode(data).decode('ascii')}"


def open_payload(schedule_id: str, payload: Any) -> tuple[Any, Any]:
    """Verify a sealed payload for ``schedule_id``, then unpickle it; ValidationError otherwise.

    Nothing is unpickled unless the HMAC matches: unsigned, foreign-key and other-schedule
    payloads are refused without being decoded.
    """
    key = require_key("payload")
    if not isinstance(payload, str) or not payload.startswith(_PREFIX):
        raise ValidationError("payload", "...", "unsigned pickled payload refused (not made with a pickle key)")
    mac, dot, encoded = payload[len(_PREFIX) :].partition(".")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError("payload", "...", "pickled payload is not base64") from None
    if not dot or not hmac.compare_digest(mac.encode(), _mac(key, schedule_id, data).encode()):
        raise ValidationError(
            "payload", "...", f"pickled payload refused: its signature does not match this key and id {schedule_id!r}"
        )
    try:
        return pickle.loads(data)  # type: ignore[no-any-return]  # verified: made by the key holder
    except Exception as exc:
        raise ValidationError("payload", "...", f"cannot be unpickled ({type(exc).__name__})") from None
