"""What every schedcore client of Redis shares: the Redis store, the RQ executor and
third-party plugins on the same server.

* :func:`check_namespace` -- the namespace rule (1 to 100 characters of
  ``[A-Za-z0-9._-]``): the store and the RQ executor share a namespace (``{schedcore:<ns>}``),
  so they share its rule;
* :func:`non_empty_url` and :func:`redact_url` -- a URL option as given, and a URL fit for a
  message (its password replaced by ``***``);
* :func:`service_options` / :func:`command_options` (and :data:`COMMAND_TIMEOUT`) -- the
  redis-py client settings of a long-running process and of a one-shot command;
* :func:`send_now` -- send commands now, read their replies later (the ``*_nowait`` round trips);
* :func:`translate` / :func:`translated` -- redis-py errors as schedcore's, and
  :func:`is_permanent` -- whether retrying can cure one.

Importing this module does not import redis-py (the plugins that use it are loaded on every
install); the names that need it load it on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from schedcore.exceptions import ValidationError
from schedcore_redis._keys import check_namespace

if TYPE_CHECKING:
    from schedcore_redis._errors import is_permanent, translate, translated
    from schedcore_redis._roundtrip import send_now
    from schedcore_redis._timeouts import COMMAND_TIMEOUT, command_options, service_options

__all__ = [
    "COMMAND_TIMEOUT",
    "check_namespace",
    "command_options",
    "is_permanent",
    "non_empty_url",
    "redact_url",
    "send_now",
    "service_options",
    "translate",
    "translated",
]

# name -> the private module defining it (imported on first use: they import redis-py)
_LAZY = {
    "COMMAND_TIMEOUT": "_timeouts",
    "command_options": "_timeouts",
    "service_options": "_timeouts",
    "send_now": "_roundtrip",
    "is_permanent": "_errors",
    "translate": "_errors",
    "translated": "_errors",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"schedcore_redis.{module}"), name)


def non_empty_url(value: Any, field: str) -> str:
    """A URL option as given; an empty one is refused rather than read as the default server."""
    url = str(value) if value is not None else ""
    if not url.strip():
        raise ValidationError(
            field, value, "empty; give a redis://, rediss:// or unix:// URL, or leave the option out for the default"
        )
    return url


def redact_url(url: object) -> str:
    """``url`` with its password replaced by ``***`` (for messages and logs)."""
    if not isinstance(url, str):
        return repr(url)
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[-1]}"))
    except ValueError:
        return url.split("@")[-1] if "@" in url else url
