"""RQ serializers by name: ``"json"`` (recommended), ``"pickle"`` (RQ's default) or a dotted path.

RQ's default serializer is pickle: a worker unpickles every job it takes, so anyone who
can write an RQ job into Redis can run code on the workers. With
``rq.serializers.JSONSerializer`` job data is plain JSON. The executor and the workers
must agree, so the one place that turns a setting into the ``rq worker --serializer``
argument is here.
"""

from __future__ import annotations

from typing import Any

from schedcore.exceptions import ValidationError

__all__ = ["JSON_PATH", "serializer_path"]

JSON_PATH = "rq.serializers.JSONSerializer"
_ALIASES: dict[str, str | None] = {"json": JSON_PATH, "pickle": None, "": None}


def serializer_path(value: Any) -> str | None:
    """The dotted path ``rq worker --serializer`` takes for ``value`` (None: RQ's pickle default).

    ``value`` is ``None``, ``"json"``, ``"pickle"``, a dotted path, or a serializer class
    defined at module level; anything else (an instance, a local class) cannot be named on
    a worker's command line and is refused with ValidationError.
    """
    if value is None:
        return None
    if isinstance(value, str):
        key = value.strip().lower()
        return _ALIASES.get(key, value)
    module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
    if isinstance(value, type) and isinstance(module, str) and isinstance(qualname, str) and "<" not in qualname:
        from rq.serializers import DefaultSerializer

        return None if value is DefaultSerializer else f"{module}.{qualname}"
    raise ValidationError(
        "serializer", value, "give workers a serializer by name: 'json', 'pickle' or a dotted path to a class"
    )
