"""The reconciliation half of :class:`~schedcore_rq.RQExecutor`: the outcome loop that reports
what the workers wrote, the reconciler that finds jobs that died or vanished without a
word, and setting aside (quarantine) what cannot be read."""

from __future__ import annotations

import time
import zlib
from typing import Any

import redis

from schedcore.records import OutcomeStatus
from schedcore_redis.connection import is_permanent
from schedcore_rq._core import _DRIVER_ERRORS, _chunks, _ExecutorCore, _is_wrong_type, _text, _translated, log
from schedcore_rq._jobs import as_bytes
from schedcore_rq._outcomes import BadRecord, RunInfo, load_object, now_ms, outcome_from_payload, payload, stamp_ms
from schedcore_rq._quarantine import QUARANTINE_LIMIT, outcome_field, record, shown

_RECONCILE_CHUNK = 50  # outstanding jobs looked at per round trip of a reconciler pass


_RECONCILE_PAUSE_MAX = 0.05  # seconds: the longest pause between two chunks of a pass


_LOST_MARKERS = ("AbandonedJobError", "Work-horse terminated unexpectedly")


_STUCK_AFTER = 120.0  # seconds after which a payload in the processing list is considered abandoned


_SWEEP_BATCH = 500


_EXC_TEXT_LIMIT = 1 << 20  # bytes of a decompressed traceback read (a hostile blob may be a zlib bomb)


def _inflate(raw: bytes) -> str:
    """zlib-compressed text, bounded; the raw text itself when it is not compressed."""
    try:
        data = zlib.decompressobj().decompress(raw, _EXC_TEXT_LIMIT)
    except zlib.error:
        data = raw[:_EXC_TEXT_LIMIT]
    return data.decode("utf-8", "replace")


def _exc_text(connection: Any, job_id: str) -> str | None:
    """The traceback text RQ recorded for a failed job: the latest result's ``exc_string``
    (RQ 1.12 and later: a stream entry, base64 of zlib) or the job's ``exc_info`` (zlib);
    None when there is none or it cannot be decoded. Only those fields are read and decoded."""
    import base64
    import binascii

    from rq.job import Job

    try:
        from rq.results import Result

        entries = connection.xrevrange(Result.get_key(job_id), "+", "-", count=1)  # type: ignore[no-untyped-call]
    except ImportError:  # an RQ without results
        entries = []
    except redis.exceptions.ResponseError:  # not a stream: damaged, fall back to the job hash
        entries = []
    try:
        if entries:
            fields = entries[0][1]
            raw = fields.get(b"exc_string") or fields.get("exc_string")
            if raw:
                return _inflate(base64.b64decode(raw))
        raw = connection.hget(Job.key_for(job_id), "exc_info")
        return _inflate(as_bytes(raw)) if raw else None
    except (binascii.Error, ValueError, TypeError, AttributeError, IndexError):
        return None


class _Reconciler(_ExecutorCore):
    """Brings the outcomes of the handed-over jobs back, and notices the ones that never report."""

    def process_outcomes(self) -> int:
        """Report every outcome waiting in Redis now (without blocking); returns how many.

        The background thread does this continuously; call it directly in tests and for
        one-shot (``--burst``) use.
        """
        if self._report is None:
            raise RuntimeError("start(report) first")
        count = 0
        with _translated("cannot read RQ outcomes", self.keys.prefix), self._lock:
            count += self._retry_failed()
            while True:
                item = self._connection.lmove(self.keys.outcomes, self.keys.processing, "RIGHT", "LEFT")
                if item is None:
                    break
                count += self._handle(item)
        return count

    def reconcile(self) -> int:
        """One pass over outstanding jobs whose outcome never came; returns how many it found.

        Finished/failed/stopped/canceled jobs are reported from their RQ status; a job that
        vanished is LOST; a started job whose worker stopped beating is LOST once it has been
        silent for three heartbeat intervals across passes.
        """
        with _translated("cannot reconcile RQ jobs", self.keys.prefix), self._reconcile_lock:
            return self._reconcile()

    def outstanding(self) -> int:
        """How many handed-over jobs have no outcome yet."""
        with _translated("", self.keys.prefix):
            return int(self._connection.zcard(self.keys.outstanding))

    def _blocking_client(self) -> redis.Redis:
        """A client holding one connection of the executor's pool (the connection itself when
        it cannot make one, e.g. a test double)."""
        try:
            client: redis.Redis = self._connection.client()  # type: ignore[no-untyped-call]
            return client
        except Exception:
            return self._connection

    def _note_blocked_id(self, blocking: redis.Redis) -> None:
        """Learn the blocking connection's client id (again after a reconnect may have changed it)."""
        if blocking is self._connection or self._unblock_refused:
            return
        try:
            self._blocked_id = int(blocking.client_id())
        except _DRIVER_ERRORS as exc:  # no CLIENT ID here: shutdown waits out the poll instead
            self._blocked_id = None
            self._unblock_refused = True
            log.debug("CLIENT ID refused (%s: %s); shutdown waits for the outcome poll", type(exc).__name__, exc)

    def _outcome_loop(self, blocking: list[redis.Redis]) -> None:
        backoff = 0.0
        next_reconcile = 0.0
        recovered = False
        permanent = ""  # the permanent error last logged (once)
        known_id = False  # the blocking connection's id is known (cleared after errors and idle reads)
        while not self._stop.is_set():
            try:
                if not recovered:
                    self._recover_processing()
                    recovered = True
                if time.monotonic() >= next_reconcile:
                    with self._reconcile_lock:
                        self._reconcile()
                    self._sweep_processing()
                    next_reconcile = time.monotonic() + self._reconcile_interval
                with self._lock:
                    self._retry_failed()
                timeout = max(min(self._poll, next_reconcile - time.monotonic()), 0.01)
                if not blocking:
                    blocking.append(self._blocking_client())
                if not known_id:
                    self._note_blocked_id(blocking[0])
                    known_id = True
                if self._stop.is_set():
                    break  # shutdown began meanwhile: do not block now
                item = blocking[0].blmove(
                    self.keys.outcomes,
                    self.keys.processing,
                    timeout,  # type: ignore[arg-type]  # Redis takes fractional seconds
                    "RIGHT",
                    "LEFT",
                )
                if item is not None:
                    with self._lock:
                        self._handle(item)
                else:
                    known_id = False  # idle: cheap to ask again (redis-py may have reconnected)
                backoff = 0.0
                permanent = ""
            except Exception as exc:
                known_id = False
                backoff = min(max(backoff * 2, 0.5), 30.0)
                if _is_wrong_type(exc) and self._try_repair_keys():
                    continue  # the damaged key is set aside: go on at once
                if is_permanent(exc):
                    # Waiting will not fix it (an ACL without our keys or commands): say so once,
                    # loudly, and keep trying slowly -- an operator may fix the ACL at runtime.
                    backoff = 30.0
                    if str(exc) != permanent:
                        permanent = str(exc)
                        log.error(
                            "RQ outcome loop: %s: %s -- the Redis user lacks a permission schedcore needs "
                            "(keys %s* and RQ's keys, scripts); no outcome is reported until it is fixed",
                            type(exc).__name__,
                            exc,
                            self.keys.prefix,
                        )
                    self._stop.wait(backoff)
                    continue
                log.warning("RQ outcome loop: %s: %s; retrying in %.1fs", type(exc).__name__, exc, backoff)
                self._stop.wait(backoff)

    def _recover_processing(self) -> None:
        """Report payloads a previous executor took but may not have reported (at-least-once)."""
        # Read under the lock: a payload this executor is reporting (process_outcomes on another
        # thread) is then either still in the outcome list or already removed, never reported twice.
        with self._lock:
            items = self._connection.lrange(self.keys.processing, 0, -1)
            for item in reversed(items):
                self._handle(item)

    def _sweep_processing(self) -> None:
        """Report again payloads stuck in the processing list (their executor died mid-report).

        Only payloads of runs that finished over :data:`_STUCK_AFTER` seconds ago are
        taken, so that a live executor's in-flight report is rarely repeated (a repeat is
        harmless anyway).
        """
        with self._lock:  # (see _recover_processing)
            items = self._connection.lrange(self.keys.processing, -_SWEEP_BATCH, -1)
            cutoff = now_ms() - int(_STUCK_AFTER * 1000)
            stuck = []
            for item in reversed(items):  # oldest first
                try:
                    finished = int(load_object(item)["finished"])
                except (ValueError, KeyError, TypeError, OverflowError):  # BadRecord is a ValueError
                    finished = 0  # malformed: _handle sets it aside
                if finished < cutoff and item not in self._retry:
                    stuck.append(item)
            if stuck:
                log.info("reporting %d RQ outcomes left in the processing list", len(stuck))
            for item in stuck:
                self._handle(item)

    def _handle(self, item: bytes | str) -> int:
        """Report one payload from the processing list, then remove it. Returns 1 if reported."""
        try:
            job_id, outcome = outcome_from_payload(item)
        except BadRecord as exc:
            field = outcome_field(item)
            entry = record("outcome", field, str(exc), item)
            keys = [self.keys.quarantine, self.keys.processing]
            if self._set_aside_outcome(keys=keys, args=[field, entry, QUARANTINE_LIMIT, item]):
                log.error(
                    "RQ outcome payload %s set aside in %s (%s): %s",
                    shown(item),
                    self.keys.quarantine,
                    field,
                    exc,
                )
            return 0
        with self._mine_lock:
            self._mine.discard(job_id)
        assert self._report is not None
        try:
            self._report(outcome)
        except Exception:
            log.exception("reporting the outcome of run %s failed; will retry", outcome.run_id)
            if item not in self._retry:
                self._retry.append(item)
            return 0
        pipe = self._connection.pipeline(transaction=True)
        pipe.lrem(self.keys.processing, 1, item)  # type: ignore[arg-type]
        pipe.hdel(self.keys.runs, job_id)
        pipe.execute()
        self._suspects.pop(job_id, None)
        return 1

    def _retry_failed(self) -> int:
        items, self._retry = self._retry, []
        return sum(self._handle(item) for item in items)

    def _reconcile(self) -> int:
        from rq.job import Job

        with self._mine_lock:
            mine_before = set(self._mine)
        ids: list[str] = []
        offset = 0
        while True:
            page = self._connection.zrange(self.keys.outstanding, offset, offset + 999)
            ids.extend(_text(i) or "" for i in page)
            if len(page) < 1000:
                break
            offset += 1000
        found = 0
        now = time.monotonic()
        silent_for = 3 * self._heartbeat
        seen = set(ids)
        with self._mine_lock:
            self._mine -= mine_before - seen  # reported elsewhere (only ids known before the scan)
        for job_id in list(self._suspects):
            if job_id not in seen:
                del self._suspects[job_id]
        pause = 0.0
        for chunk in _chunks(ids, _RECONCILE_CHUNK):
            # A backlog of queued jobs (workers slower than the schedules) makes a pass long;
            # it shares the GIL and Redis with the scheduler's loop, so it is paced: between
            # chunks, about as long a pause as the last one took, or the loop's fires are late.
            if pause:
                self._stop.wait(pause)
            if self._stop.is_set():
                break  # shutting down: the next executor's pass covers the rest
            chunk_started = time.monotonic()
            pipe = self._connection.pipeline(transaction=False)
            for job_id in chunk:
                # started_at too: a run reported from here (its worker's callback never ran)
                # still says when it really started.
                pipe.hmget(Job.key_for(job_id), ["status", "started_at"])
                pipe.exists(self.keys.alive(job_id))
            pipe.hmget(self.keys.runs, list(chunk))
            replies = pipe.execute()
            infos = replies[-1]
            finishes: list[tuple[str, str, str, str]] = []  # job id, payload, must-miss key 1, key 2
            orphans: list[str] = []
            for index, job_id in enumerate(chunk):
                status, started = replies[2 * index]
                status = _text(status)
                alive = bool(replies[2 * index + 1])
                raw_info = infos[index]
                if raw_info is None:
                    orphans.append(job_id)
                    continue
                decided = self._decide(job_id, status, alive, now, silent_for)
                if decided is None:
                    continue  # queued or running: most of them, so their run info is not parsed
                try:
                    info = RunInfo.from_json(raw_info)
                except BadRecord as exc:
                    self._set_aside(job_id, raw_info, str(exc))
                    continue
                outcome_status, error, guard_job, guard_alive, trace = decided
                body = payload(job_id, info, outcome_status, error=error, traceback=trace, started_ms=stamp_ms(started))
                finishes.append((job_id, body, guard_job, guard_alive))
            if orphans:
                # Re-checked atomically: a job another executor reported since our read is settled.
                gone = self._orphans(keys=[self.keys.outstanding, self.keys.runs], args=orphans)
                orphans = [_text(job_id) or "" for job_id in gone]
            if orphans:  # one line per chunk: a flushed database would otherwise log a line per job
                log.error(
                    "%d outstanding RQ jobs have lost their run info (%s%s); forgetting them",
                    len(orphans),
                    ", ".join(orphans[:3]),
                    ", ..." if len(orphans) > 3 else "",
                )
            for job_id, body, guard_job, guard_alive in finishes:
                keys = [self.keys.outstanding, self.keys.outcomes]
                if self._finish(keys=keys, args=[job_id, body, guard_job, guard_alive]) == 1:
                    log.info("RQ job %s: outcome found by the reconciler", job_id)
                    self._suspects.pop(job_id, None)
                    found += 1
            pause = min(time.monotonic() - chunk_started, _RECONCILE_PAUSE_MAX)
        return found

    def _set_aside(self, job_id: str, raw_info: bytes | str, reason: str) -> None:
        """Move a job's undecodable run info to the quarantine and forget the job (once)."""
        keys = [self.keys.quarantine, self.keys.outstanding, self.keys.runs]
        entry = record("run-info", job_id, reason, raw_info)
        if self._set_aside_run(keys=keys, args=[f"run-info:{job_id}", entry, QUARANTINE_LIMIT, job_id]):
            self._suspects.pop(job_id, None)
            log.error(
                "RQ job %s: its run info %s cannot be decoded (%s); set aside in %s, its outcome is not reported",
                job_id,
                shown(raw_info),
                reason,
                self.keys.quarantine,
            )

    def _decide(
        self, job_id: str, status: str | None, alive: bool, now: float, silent_for: float
    ) -> tuple[OutcomeStatus, str | None, str, str, str | None] | None:
        """(status, error, guard keys that must be missing, traceback) of a job, or None: no outcome yet."""
        from rq.job import Job

        if status != "started" or alive:
            self._suspects.pop(job_id, None)
        if status is None:
            return (
                OutcomeStatus.LOST,
                "the RQ job vanished (deleted or expired) before it finished",
                Job.key_for(job_id),
                "",
                None,
            )
        if status == "finished":
            return OutcomeStatus.SUCCEEDED, None, "", "", None
        if status == "failed":
            error, trace = self._failure_text(job_id)
            if any(marker in error for marker in _LOST_MARKERS):
                return OutcomeStatus.LOST, f"worker died mid-job ({error})", "", "", trace
            return OutcomeStatus.FAILED, error, "", "", trace
        if status in ("stopped", "canceled"):
            return OutcomeStatus.STOPPED, f"RQ job {status}", "", "", None
        if status == "started" and not alive:
            first = self._suspects.setdefault(job_id, now)
            if now - first >= silent_for:
                return (
                    OutcomeStatus.LOST,
                    f"worker died mid-job (no heartbeat for {silent_for:.0f}s)",
                    "",
                    self.keys.alive(job_id),
                    None,
                )
        return None

    def _failure_text(self, job_id: str) -> tuple[str, str | None]:
        """``"Type: message"`` from the job's last recorded failure, and the traceback RQ
        recorded with it (None when it recorded only a line, e.g. for a killed work-horse).

        Read from the raw job hash and result stream, never through ``Job.fetch``: restoring
        an RQ job loads its ``meta`` (and a result its return value) with the job's
        serializer -- pickle by default -- and nothing read from Redis is unpickled here.
        """
        text = _exc_text(self._connection, job_id)
        if text is None:
            return "job failed (its error could not be read)", None
        lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
        if not lines:
            return "job failed", None
        trace = text if len(lines) > 1 else None  # the payload trims it
        if any(marker in text for marker in _LOST_MARKERS):
            return lines[0], trace
        return lines[-1][:2000], trace
