"""The mapping from rq-scheduler jobs to schedcore schedules, in one place.

:class:`schedcore_rq.compat.Scheduler` builds its schedules here, and the migration of the
jobs rq-scheduler stored reuses the same functions, so that a job scheduled through the
compatible API and a migrated one become the very same schedule:

================================  ==========================================================
rq-scheduler                      schedcore
================================  ==========================================================
job id                            schedule id, and for a one-shot the ``job_id`` executor
                                  option (its run's RQ job id); ``[A-Za-z0-9_-]`` only,
                                  other ids are refused (:func:`check_job_id`)
``enqueue_at``/``enqueue_in``     ``At(when)``; ``misfire_grace`` of :data:`ONE_SHOT_GRACE`,
                                  so that a late one-shot is enqueued however late
``schedule(interval=n)``          ``Interval(n, start=scheduled_time)``
``schedule(interval=None)``       ``At(scheduled_time)``, as ``enqueue_at``
``cron(s, use_local_timezone)``   ``Cron(s, tz="UTC")`` or the local IANA zone
``repeat=N``                      ``max_runs=N`` (N runs in all)
function, ``"module.func"``       ``task="module:qualname"`` (:func:`task_for`)
``args``/``kwargs``               JSON; pickle (signed) only with the pickle key configured
``queue_name`` (else scheduler's) ``queue``
``timeout``                       ``executor_options.job_timeout``
``result_ttl`` / ``ttl``          ``executor_options.result_ttl`` / ``ttl``; periodic jobs
                                  default to ``result_ttl=-1`` as in rq-scheduler
``description`` / ``meta``        ``executor_options.description`` / ``meta``
``at_front``                      ``executor_options.at_front``
``depends_on`` (job, id,          ``executor_options.depends_on`` (job ids) and
``Dependency`` or a list)         ``allow_dependency_failures`` (``Dependency.allow_failure``)
``on_success`` / ``on_failure``   ``executor_options.on_success`` / ``on_failure``
(``Callback``, function, string)  (``"module:qualname"``) and ``..._timeout`` (a Callback's)
================================  ==========================================================
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from schedcore._validate import check_json, resolve_task
from schedcore.exceptions import ValidationError
from schedcore.model import Schedule, Serializer
from schedcore.protocols import Trigger
from schedcore.signing import pickle_key
from schedcore.triggers import At, Cron, Interval
from schedcore_rq._jobs import valid_job_id

__all__ = [
    "COMPAT_META",
    "ONE_SHOT_GRACE",
    "as_utc",
    "callback_options",
    "check_job_id",
    "dependency_options",
    "local_zone",
    "one_shot_schedule",
    "periodic_schedule",
    "task_for",
]

#: ``Schedule.meta`` key marking a schedule made from an rq-scheduler call (its kind).
COMPAT_META = "rq_scheduler"
#: rq-scheduler enqueues a due one-shot however late its scheduler gets to it.
ONE_SHOT_GRACE = timedelta(days=3650)


def check_job_id(value: Any) -> str:
    """A job id both RQ (>= 2.8: ``[A-Za-z0-9_-]``) and schedcore accept; ValueError otherwise.

    Refused rather than rewritten: the caller keeps the id it passed (``Job.fetch(id)``,
    ``id in scheduler``), so a silently changed id would break exactly those calls.
    """
    if not valid_job_id(value):
        raise ValidationError(
            "job_id", value, "must be 1-200 characters of A-Z a-z 0-9 _ - (what RQ >= 2.8 accepts as a job id)"
        )
    return value


def as_utc(value: datetime) -> datetime:
    """A naive datetime means UTC, as in rq-scheduler; an aware one is converted."""
    if not isinstance(value, datetime):
        raise ValidationError("scheduled_time", value, "expected a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def task_for(func: Callable[..., Any] | str) -> str:
    """``"module:qualname"`` for anything importable by name: a function, a builtin, a static
    or class method, or an RQ-style ``"module.func"`` / ``"module.Class.method"`` string.

    Lambdas, nested functions and methods bound to an instance raise ValidationError at
    once: a worker could never import them.
    """
    if isinstance(func, str):
        return _from_dotted(func)
    if not callable(func):
        raise ValidationError("func", func, "expected a function or a 'module.function' string")
    owner = getattr(func, "__self__", None)
    if inspect.ismethod(func) and not inspect.isclass(owner):
        raise ValidationError("func", func, "a method bound to an object cannot be scheduled by name")
    module = getattr(func, "__module__", None) or (getattr(owner, "__name__", None) if owner is not None else None)
    if module is None and inspect.isbuiltin(func):
        module = "builtins"
    qualname = getattr(func, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        raise ValidationError("func", func, "cannot tell where this callable is defined")
    if "<lambda>" in qualname or "<locals>" in qualname:
        raise ValidationError("func", func, "lambdas and nested functions cannot be scheduled; use a top-level one")
    reference = f"{module}:{qualname}"
    try:
        found = resolve_task(reference)
    except Exception:
        found = None
    if found is None or (found is not func and found != func):
        raise ValidationError("func", func, f"{reference!r} does not name this callable")
    return reference


def _from_dotted(name: str) -> str:
    """``"a.b.func"`` -> ``"a.b:func"``, ``"a.Class.method"`` -> ``"a:Class.method"`` (the
    longest importable module); ``"a:func"`` is taken as is."""
    if ":" in name:
        return name
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        reference = f"{'.'.join(parts[:cut])}:{'.'.join(parts[cut:])}"
        try:
            resolve_task(reference)
        except Exception:
            continue
        return reference
    if len(parts) == 1:
        return f"builtins:{name}"
    raise ValidationError("func", name, "cannot be imported here as 'module.function'")


def local_zone() -> str:
    """The IANA name of this machine's zone (``TZ``, else ``/etc/localtime``), else UTC."""
    env = os.environ.get("TZ", "").lstrip(":")
    if env and "/" in env:
        return env
    try:
        target = os.path.realpath("/etc/localtime")
    except OSError:
        return "UTC"
    marker = "zoneinfo/"
    return target.split(marker, 1)[1] if marker in target else "UTC"


def _arguments(args: Any, kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any], Serializer]:
    args = tuple(args or ())
    kwargs = dict(kwargs or {})
    try:
        check_json(list(args), "args")
        check_json(kwargs, "kwargs")
    except ValidationError as exc:
        if pickle_key() is not None:
            return args, kwargs, Serializer.PICKLE
        raise ValidationError(
            exc.field,
            exc.value,
            "is not JSON-safe: schedcore stores arguments as JSON (rq-scheduler pickled them); "
            "pass JSON values, or configure the pickle signing key (SCHEDCORE_PICKLE_KEY) to store them pickled",
        ) from None
    return args, kwargs, Serializer.JSON


def dependency_options(depends_on: Any) -> dict[str, Any]:
    """RQ's ``depends_on`` -- a job, a job id, an ``rq.job.Dependency`` or a list of these --
    as executor options: ``depends_on`` (job ids), and from a Dependency
    ``allow_dependency_failures`` and ``at_front`` (its ``enqueue_at_front``)."""
    if depends_on is None:
        return {}
    items = list(depends_on) if isinstance(depends_on, (list, tuple)) else [depends_on]
    ids: list[str] = []
    options: dict[str, Any] = {}
    for item in items:
        if hasattr(item, "dependencies") and hasattr(item, "allow_failure"):  # rq.job.Dependency
            found = list(item.dependencies)
            if item.allow_failure:
                options["allow_dependency_failures"] = True
            if getattr(item, "enqueue_at_front", False):
                options["at_front"] = True
        else:
            found = [item]
        for dependency in found:
            job_id = dependency if isinstance(dependency, str) else getattr(dependency, "id", None)
            if not isinstance(job_id, str):
                raise ValidationError("depends_on", dependency, "expected a job, a job id or an rq Dependency")
            ids.append(check_job_id(job_id))
    if not ids:
        raise ValidationError("depends_on", depends_on, "names no job")
    options["depends_on"] = list(dict.fromkeys(ids))
    return options


def callback_options(name: str, callback: Any) -> dict[str, Any]:
    """RQ's ``on_success``/``on_failure`` -- an ``rq.Callback``, a function or a
    ``"module.function"`` string -- as executor options: ``name`` (``"module:qualname"``,
    importable by name like a task) and, for a Callback, ``<name>_timeout``."""
    if callback is None:
        return {}
    func = getattr(callback, "func", callback)  # an rq Callback holds the function or its name
    try:
        reference = task_for(func)
    except ValidationError as exc:
        raise ValidationError(name, callback, exc.reason) from None
    options: dict[str, Any] = {name: reference}
    timeout = getattr(callback, "timeout", None) if func is not callback else None
    if timeout is not None:
        options[f"{name}_timeout"] = timeout
    return options


def _options(
    *,
    job_id: str | None,
    timeout: Any,
    result_ttl: Any,
    ttl: Any,
    description: str | None,
    meta: Mapping[str, Any] | None,
    at_front: bool | None,
    depends_on: Any = None,
    on_success: Any = None,
    on_failure: Any = None,
) -> dict[str, Any]:
    options: dict[str, Any] = {
        **dependency_options(depends_on),
        **callback_options("on_success", on_success),
        **callback_options("on_failure", on_failure),
    }
    for name, value in (
        ("job_id", job_id),
        ("job_timeout", timeout),
        ("result_ttl", result_ttl),
        ("ttl", ttl),
        ("description", description),
        ("meta", dict(meta) if meta else None),
    ):
        if value is not None:
            options[name] = value.total_seconds() if isinstance(value, timedelta) else value
    if at_front:
        options["at_front"] = True
    return options


def _schedule(
    job_id: str,
    trigger: Trigger,
    func: Callable[..., Any] | str,
    args: Any,
    kwargs: Any,
    *,
    kind: str,
    queue: str,
    options: dict[str, Any],
    **fields: Any,
) -> Schedule:
    args, kwargs, serializer = _arguments(args, kwargs)
    return Schedule(
        id=job_id,
        task=task_for(func),
        trigger=trigger,
        args=args,
        kwargs=kwargs,
        serializer=serializer,
        queue=queue,
        meta={COMPAT_META: kind},
        executor_options=options,
        **fields,
    )


def one_shot_schedule(
    job_id: str,
    when: datetime,
    func: Callable[..., Any] | str,
    args: Any = (),
    kwargs: Any = None,
    *,
    queue: str,
    timeout: Any = None,
    result_ttl: Any = None,
    ttl: Any = None,
    description: str | None = None,
    meta: Mapping[str, Any] | None = None,
    at_front: bool | None = None,
    depends_on: Any = None,
    on_success: Any = None,
    on_failure: Any = None,
) -> Schedule:
    """The schedule of an ``enqueue_at``/``enqueue_in`` job (or ``schedule`` without interval)."""
    job_id = check_job_id(job_id)
    options = _options(
        job_id=job_id, timeout=timeout, result_ttl=result_ttl, ttl=ttl, description=description, meta=meta,
        at_front=at_front, depends_on=depends_on, on_success=on_success, on_failure=on_failure,
    )  # fmt: skip
    return _schedule(
        job_id, At(as_utc(when)), func, args, kwargs, kind="at", queue=queue, options=options,
        misfire_grace=ONE_SHOT_GRACE,
    )  # fmt: skip


def periodic_schedule(
    job_id: str,
    trigger: Trigger,
    func: Callable[..., Any] | str,
    args: Any = (),
    kwargs: Any = None,
    *,
    queue: str,
    repeat: int | None = None,
    timeout: Any = None,
    result_ttl: Any = -1,
    ttl: Any = None,
    description: str | None = None,
    meta: Mapping[str, Any] | None = None,
    at_front: bool | None = None,
    depends_on: Any = None,
    on_success: Any = None,
    on_failure: Any = None,
) -> Schedule:
    """The schedule of a ``schedule(interval=...)`` or ``cron`` job: ``repeat=N`` is N runs in all."""
    job_id = check_job_id(job_id)
    if repeat is not None and (isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1):
        raise ValidationError("repeat", repeat, "must be a positive number of runs (or None: no limit)")
    options = _options(
        job_id=None, timeout=timeout, result_ttl=-1 if result_ttl is None else result_ttl, ttl=ttl,
        description=description, meta=meta, at_front=at_front, depends_on=depends_on, on_success=on_success,
        on_failure=on_failure,
    )  # fmt: skip
    kind = "cron" if isinstance(trigger, Cron) else "interval"
    return _schedule(job_id, trigger, func, args, kwargs, kind=kind, queue=queue, options=options, max_runs=repeat)


def interval_trigger(scheduled_time: datetime, interval: Any) -> Interval:
    """rq-scheduler's ``schedule(scheduled_time, interval=n)``: first at ``scheduled_time``, then every n s."""
    return Interval(interval, start=as_utc(scheduled_time))


def cron_trigger(cron_string: str, use_local_timezone: bool = False) -> Cron:
    """rq-scheduler's ``cron``: in UTC unless ``use_local_timezone``."""
    return Cron(cron_string, tz=local_zone() if use_local_timezone else "UTC")
