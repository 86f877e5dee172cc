"""What runs inside an RQ worker: the task wrapper and the callbacks that report outcomes.

Each job handed over by :class:`~schedcore_rq.RQExecutor` calls :func:`run_task` with the
task reference as first argument. It checks the task against the worker's allow-list
(``SCHEDCORE_ALLOWED_TASKS``, when set: a refused task is a failed run and is never
imported), imports the task (an import failure becomes a failed run carrying the
ImportError), keeps a short-lived liveness key fresh while the task runs (so that a
worker killed with SIGKILL is noticed within seconds, not minutes), and calls it.
RQ then runs :func:`on_success`, :func:`on_failure` or :func:`on_stopped`, which push the
outcome for the executor through the claim-once script (see :mod:`schedcore_rq._outcomes`).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from schedcore._validate import resolve_task
from schedcore.allowlist import ENV_VAR, TaskAllowList
from schedcore.records import OutcomeStatus
from schedcore.tracebacks import format_traceback
from schedcore_rq._outcomes import FINISH_LUA, META_KEY, Keys, RunInfo, error_text, ms_of, now_ms, payload

__all__ = ["on_failure", "on_stopped", "on_success", "run_task"]

log = logging.getLogger("schedcore.rq.worker")

#: Marks of a worker that died under a job, as RQ words them.
_LOST_MARKERS = ("AbandonedJobError", "Work-horse terminated unexpectedly")


class _Heartbeat:
    """Refreshes ``alive:<job id>`` every ``interval`` seconds with a TTL of three intervals."""

    def __init__(self, connection: Any, key: str, interval: float) -> None:
        self._connection = connection
        self._key = key
        self._interval = interval
        self._ttl_ms = max(int(interval * 3000), 1000)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="schedcore-rq-heartbeat", daemon=True)

    def start(self) -> None:
        self._beat()
        self._thread.start()

    def _beat(self) -> None:
        try:
            self._connection.set(self._key, b"1", px=self._ttl_ms)
        except Exception:  # a missed beat is harmless; three in a row mark the job as lost
            log.warning("could not refresh liveness key %s", self._key, exc_info=True)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._beat()

    def stop(self) -> None:
        # The key is left to expire by itself: deleting it would open a window in which the
        # job is still "started" in RQ but looks dead to the reconciler.
        self._stop.set()
        self._thread.join(timeout=self._interval + 1.0)


def _schedcore_meta(job: Any) -> dict[str, Any] | None:
    meta = getattr(job, "meta", None) or {}
    entry = meta.get(META_KEY)
    return entry if isinstance(entry, dict) else None


def _resolve(reference: str) -> Any:
    try:
        return resolve_task(reference)
    except ImportError:
        raise
    except Exception as exc:
        raise ImportError(f"cannot import task {reference!r}: {type(exc).__name__}: {exc}") from exc


_allowlists: dict[str | None, TaskAllowList] = {}  # by the variable's text: parsed once per worker


def _check_allowed(task: str) -> None:
    """PermissionError unless the worker's allow-list (``SCHEDCORE_ALLOWED_TASKS``) allows ``task``.

    The scheduler already refuses such runs at hand-off; this guards the worker against
    jobs that did not come through a scheduler with the same list.
    """
    text = os.environ.get(ENV_VAR)
    allowed = _allowlists.get(text)
    if allowed is None:
        allowed = _allowlists[text] = TaskAllowList.parse(text)
    if not allowed.allows(task):
        raise PermissionError(allowed.refusal(task))


def run_task(task: str, /, *args: Any, **kwargs: Any) -> Any:
    """Import ``task`` (``"module:function"``) and call it with ``args``/``kwargs``.

    This is the function every schedcore job runs on an RQ worker. A task outside the
    worker's ``SCHEDCORE_ALLOWED_TASKS`` raises PermissionError without being imported, one
    that cannot be imported raises ImportError: RQ records either as a failure and the
    executor reports a failed run.
    """
    heartbeat: _Heartbeat | None = None
    try:
        from rq import get_current_job

        job = get_current_job()
    except Exception:  # not running under RQ (tests, direct calls)
        job = None
    entry = _schedcore_meta(job) if job is not None else None
    if job is not None and entry is not None and entry.get("hb"):
        heartbeat = _Heartbeat(job.connection, Keys(str(entry["ns"])).alive(job.id), float(entry["hb"]))
        heartbeat.start()
    try:
        _check_allowed(task)
        func = _resolve(task)
        return func(*args, **kwargs)
    finally:
        if heartbeat is not None:
            heartbeat.stop()


def _report(job: Any, connection: Any, status: OutcomeStatus, error: str | None, trace: str | None = None) -> None:
    entry = _schedcore_meta(job)
    if entry is None:
        log.warning("job %s carries no schedcore metadata; outcome not reported", getattr(job, "id", "?"))
        return
    keys = Keys(str(entry["ns"]))
    info = RunInfo.from_dict(entry)
    body = payload(
        job.id,
        info,
        status,
        error=error,
        traceback=trace,
        started_ms=ms_of(getattr(job, "started_at", None)),
        finished_ms=now_ms(),
    )
    # Raises on a Redis error: RQ then records the callback failure on the job and the
    # executor's reconciler reports the run from the job's status instead.
    connection.eval(FINISH_LUA, 2, keys.outstanding, keys.outcomes, job.id, body, "", "")


def _callback(job: Any, name: str) -> Any:
    """The caller's ``on_success``/``on_failure`` callback of ``job`` (the ``executor_options``
    of its schedule), checked against the worker's allow-list like a task; None without one."""
    entry = _schedcore_meta(job)
    reference = entry.get(name) if entry is not None else None
    if reference is None:
        return None
    if not isinstance(reference, str):
        raise TypeError(f"job {getattr(job, 'id', '?')}: its {name} callback is not a 'module:function' string")
    _check_allowed(reference)
    return _resolve(reference)


def on_success(job: Any, connection: Any, result: Any, *args: Any, **kwargs: Any) -> None:
    """RQ success callback: run the caller's ``on_success`` callback, if any, then report SUCCEEDED.

    The caller's callback runs first: when it raises, RQ fails the job (as it would with that
    callback alone) and :func:`on_failure` reports the run FAILED with the callback's error.
    """
    callback = _callback(job, "on_success")
    if callback is not None:
        callback(job, connection, result, *args, **kwargs)
    _report(job, connection, OutcomeStatus.SUCCEEDED, None)


def on_failure(job: Any, connection: Any, exc_type: Any, exc_value: Any, traceback: Any, *args: Any) -> None:
    """RQ failure callback: report FAILED with ``"Type: message"`` and the task's traceback
    (trimmed, see :mod:`schedcore.tracebacks`), LOST when the worker died; then run the
    caller's ``on_failure`` callback, if any (the run is reported whatever it does)."""
    error = error_text(exc_type, exc_value)
    lost = any(marker in error for marker in _LOST_MARKERS)
    if lost:  # raised by RQ's cleanup in another process: no frame of the task to show
        _report(job, connection, OutcomeStatus.LOST, f"worker died mid-job ({error})")
    else:
        trace = format_traceback(exc_value, traceback) if isinstance(exc_value, BaseException) else None
        _report(job, connection, OutcomeStatus.FAILED, error, trace)
    callback = _callback(job, "on_failure")
    if callback is not None:
        callback(job, connection, exc_type, exc_value, traceback, *args)


def on_stopped(job: Any, connection: Any, *args: Any) -> None:
    """RQ stopped callback (``rq.command.send_stop_job_command``): report STOPPED."""
    _report(job, connection, OutcomeStatus.STOPPED, "stopped by an operator")
