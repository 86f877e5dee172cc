"""Validators shared by the model and the adapters: ids, task references, JSON payloads."""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable
from typing import Any

from schedcore.exceptions import ValidationError

ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
TASK_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
QUEUE_RE = re.compile(r"^[A-Za-z0-9._:-]{1,200}$")
#: Deepest nesting of lists and dicts in args, kwargs, meta and executor options.
MAX_DEPTH = 100


def check_id(value: Any, field: str = "id") -> str:
    """A schedule id: 1 to 200 characters of ``[A-Za-z0-9._-]``."""
    if not isinstance(value, str) or not ID_RE.match(value):
        raise ValidationError(field, value, "must be 1-200 characters of A-Z a-z 0-9 . _ -")
    return value


def check_queue(value: Any, field: str = "queue") -> str:
    """A queue name: 1 to 200 characters of ``[A-Za-z0-9._:-]``."""
    if not isinstance(value, str) or not QUEUE_RE.match(value):
        raise ValidationError(field, value, "must be 1-200 characters of A-Z a-z 0-9 . _ : -")
    return value


def task_reference(value: Any, field: str = "task") -> str:
    """Turn a top-level function into ``"module:qualname"``; check a string reference's shape.

    Lambdas, nested functions and bound methods are refused: a worker in another
    process could never import them by name.
    """
    if isinstance(value, str):
        if not TASK_RE.match(value):
            raise ValidationError(field, value, "expected a reference of the form 'package.module:function'")
        return value
    if inspect.ismethod(value):
        raise ValidationError(field, value, "bound methods cannot be scheduled; use a top-level function")
    if not callable(value):
        raise ValidationError(field, value, "expected a 'module:function' string or a top-level function")
    module = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        raise ValidationError(field, value, "cannot tell where this callable is defined")
    if qualname == "<lambda>" or "<lambda>" in qualname:
        raise ValidationError(field, value, "lambdas cannot be scheduled; use a top-level function")
    if "<locals>" in qualname:
        raise ValidationError(field, value, "nested functions cannot be scheduled; use a top-level function")
    if "." in qualname and not inspect.isclass(value):
        raise ValidationError(field, value, "methods cannot be scheduled; use a top-level function")
    ref = f"{module}:{qualname}"
    if not TASK_RE.match(ref):
        raise ValidationError(field, value, f"its reference {ref!r} is not importable by name")
    return ref


def task_module_found(reference: str) -> bool:
    """Whether the module of ``"module:qualname"`` can be found here, without importing it.

    Asks the import system's finders, package by package, as an import would, but runs no
    module's code: checking a reference must never execute what it names.
    """
    import sys

    search: list[str] | None = None  # top-level names: the finders' own default (sys.path, builtins...)
    name = ""
    for part in reference.partition(":")[0].split("."):
        name = f"{name}.{part}" if name else part
        module = sys.modules.get(name)
        if module is not None:
            search = list(getattr(module, "__path__", None) or [])
            continue
        spec = None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if find is not None and (spec := find(name, search)) is not None:
                break
        if spec is None:
            return False
        search = list(spec.submodule_search_locations or [])
    return True


def resolve_task(reference: str) -> Callable[..., Any]:
    """Import ``"module:qualname"`` and return the callable (ImportError/AttributeError on failure)."""
    import importlib

    module_name, _, qualname = reference.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{reference} is not callable")
    return obj  # type: ignore[no-any-return]


def check_json(value: Any, field: str) -> Any:
    """Refuse values that JSON cannot carry faithfully (sets, datetimes, NaN, non-str keys...)."""
    if not value and type(value) in (list, tuple, dict):
        return value  # the common empty args, kwargs, meta and options: nothing to carry
    if _too_deep(value, MAX_DEPTH):
        # json.dumps and the checks below recurse: 60,000 levels was an "unexpected RecursionError"
        raise ValidationError(field, value, f"nested more than {MAX_DEPTH} levels deep")
    try:
        encoded = json.dumps(value, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            field, value, f"not JSON-serializable ({exc}); pass JSON values or use serializer='pickle'"
        ) from None
    if json.loads(encoded) != _listify(value):
        raise ValidationError(field, value, "does not survive a JSON round trip (non-string dict keys?)")
    return value


def _too_deep(value: Any, limit: int) -> bool:
    """Whether lists/tuples/dicts in ``value`` nest deeper than ``limit`` (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _listify(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_listify(v) for v in value]
    if isinstance(value, dict):
        return {k: _listify(v) for k, v in value.items()}
    return value
