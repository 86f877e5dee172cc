"""SQLiteStore: a durable :class:`~schedcore.protocols.Store` in one file, on the standard library.

The embedded default of the command line: nothing to install, nothing lost on restart, and
several processes of one machine may share the file (WAL mode, ``BEGIN IMMEDIATE`` write
transactions, a busy timeout and retries). Each method is one transaction, so claims,
commits and outcomes are atomic and fenced exactly as in the other stores; readings where
the protocol leaves room follow :class:`schedcore.memory.MemoryStore`.

The file layout and its versions live in :mod:`schedcore._sqlite_schema`; ``watch`` is a
thread polling ``PRAGMA data_version`` (:mod:`schedcore._sqlite_watch`).
"""

from __future__ import annotations

import json
import json.encoder
import logging
import os
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from schedcore import _sqlite_schema as schema
from schedcore._sqlite_watch import Poller
from schedcore._time import from_ms, iso, require_aware, to_ms
from schedcore._validate import check_id
from schedcore.doctor import CheckReport
from schedcore.exceptions import CorruptScheduleData, ScheduleExists, ScheduleNotFound, ValidationError
from schedcore.model import Conflict, Schedule, Serializer
from schedcore.protocols import SchedulerBeat, StoreStats
from schedcore.records import (
    AddResult,
    Claim,
    Commit,
    Outcome,
    Pending,
    RunRecord,
    StoredSchedule,
)
from schedcore.storekit import (
    DEAD_BEATS_KEPT,
    FireMode,
    StoreBase,
    check_add,
    check_add_items,
    check_claim,
    check_commit,
    check_conflict,
    check_extra_entry,
    check_heartbeat,
    check_limit,
    check_outcomes,
    check_set_paused,
    fire_on_add,
    fire_on_replace,
    log_taken_back,
    notify,
    with_id,
)

# The store-neutral copy helper of the Redis codec (that module imports no redis).

__all__ = ["DEFAULT_WATCH_INTERVAL", "SQLiteStore", "default_path"]

log = logging.getLogger("schedcore.sqlite")

_FIRE = "fire"  # Pending.key of every fire entry
#: How often ``watch`` looks for writes of other processes (the bound on their wake-up delay).
DEFAULT_WATCH_INTERVAL = timedelta(milliseconds=50)
#: The environment variable naming the default file (see :func:`default_path`).
PATH_ENV = "SCHEDCORE_SQLITE_PATH"


def default_path() -> Path:
    """The file the command line uses when no path is given: ``$SCHEDCORE_SQLITE_PATH``, else
    ``$XDG_DATA_HOME/schedcore/schedcore.db``, else ``~/.local/share/schedcore/schedcore.db``."""
    explicit = os.environ.get(PATH_ENV)
    if explicit:
        return Path(explicit).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME")
    base = Path(data_home) if data_home and Path(data_home).is_absolute() else Path.home() / ".local" / "share"
    return base / "schedcore" / "schedcore.db"


def _encode_schedule(schedule: Schedule) -> str:
    """The definition as stored: compact JSON without the id (the row's key holds it), so
    schedules that differ only by id share one text, decoded and validated once."""
    data = schedule.to_dict(compact=True)
    if schedule.serializer is not Serializer.PICKLE:  # a signed payload names its id: keep it
        del data["id"]
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


#: The first two fields of each row of a batch's JSON array parameter (keys: ``IN (_PAIRS)``).
_PAIRS = "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?1)"
# Recording outcomes: each statement takes the whole batch as one JSON parameter, an array
# of ``[schedule id, run id, status, finished_at, error, retry_at, traceback]`` (error and
# traceback as JSON texts: free text, which may hold a NUL that SQL text would cut short).
#: Which of the batch's runs are running (their row is the evidence that no outcome was recorded yet).
_RUNNING_AMONG = (
    f"SELECT json_group_array(json_array(schedule_id, run_id)) FROM running WHERE (schedule_id, run_id) IN ({_PAIRS})"
)
_END_RUNS = f"DELETE FROM running WHERE (schedule_id, run_id) IN ({_PAIRS})"
#: The newest dispatched record of each run of the batch (``seq``), with its item (``v``).
_TARGETS = (
    "SELECT MAX(h.seq) AS seq, j.value AS v FROM json_each(?1) j CROSS JOIN history h"
    " ON h.schedule_id = json_extract(j.value, '$[0]') AND h.run_id = json_extract(j.value, '$[1]')"
    " AND h.status = 'dispatched' GROUP BY j.key"
)
#: A record json_set can read: a JSON object. CASE, not AND: json_type raises on text that is
#: not JSON (it would fail the whole batch), and CASE never evaluates it then.
_READABLE = "CASE WHEN json_valid(h.record) THEN json_type(h.record) = 'object' ELSE 0 END"
_UNREADABLE_RECORDS = (
    "SELECT json_group_array(json_array(json_extract(t.v, '$[0]'), t.seq))"
    f" FROM ({_TARGETS}) t JOIN history h ON h.seq = t.seq WHERE NOT {_READABLE}"
)
#: Each run's record takes its outcome as ``storekit.finished_record`` and RunRecord.to_dict
#: would write it (the six fields an outcome changes); the status column follows.
_FINISH_RECORDS = (
    "UPDATE history AS h SET status = json_extract(t.v, '$[2]'),"
    " record = json_set(h.record, '$.status', json_extract(t.v, '$[2]'), '$.finished_at', json_extract(t.v, '$[3]'),"
    " '$.error', json(json_extract(t.v, '$[4]')), '$.retry_at', json_extract(t.v, '$[5]'),"
    " '$.traceback', json(json_extract(t.v, '$[6]')), '$.started_at', json_extract(t.v, '$[7]'))"
    f" FROM ({_TARGETS}) AS t WHERE h.seq = t.seq AND {_READABLE}"
)
#: Which of the schedules (a JSON array of ids) hold a parked entry.
_PARKED_AMONG = "SELECT id FROM schedules WHERE parked IS NOT NULL AND id IN (SELECT value FROM json_each(?))"


#: A column read as an integer, or NULL when a row holds something else there (JSON cannot
#: hold a BLOB: one hostile value must not fail the batch).
_INTEGER = "CASE WHEN typeof({0}) = 'integer' THEN {0} END"
#: Claims still held among ``[[schedule id, key], ...]`` (a JSON array: one parameter for a
#: whole batch), with the fire token of their schedule, as one JSON array (one row for the
#: batch). CROSS JOIN keeps the batch the outer loop: one primary-key lookup per pair.
_HELD_CLAIMS = (
    f"SELECT json_group_array(json_array(c.schedule_id, c.key, {_INTEGER.format('c.token')},"
    f" {_INTEGER.format('s.fire_token')})) FROM json_each(?) j CROSS JOIN claims c"
    " ON c.schedule_id = json_extract(j.value, '$[0]') AND c.key = json_extract(j.value, '$[1]')"
    " LEFT JOIN schedules s ON s.id = c.schedule_id"
)
_JSON_CHUNK = 2000  # pairs per query (bounds the text SQLite parses at once)
# Claiming a batch: the picked entries leave the index for the claims table.
_DELETE_ENTRIES = f"DELETE FROM entries WHERE (schedule_id, key) IN ({_PAIRS})"
#: Rows ``[schedule id, key, kind, nominal, due, attempt, token]``; ``?2`` owner, ``?3`` lease end.
_INSERT_CLAIMS = (
    "INSERT OR REPLACE INTO claims SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),"
    " json_extract(value, '$[2]'), json_extract(value, '$[3]'), json_extract(value, '$[4]'),"
    " json_extract(value, '$[5]'), json_extract(value, '$[6]'), ?2, ?3 FROM json_each(?1)"
)
#: Rows ``[token, schedule id]``.
_HOLD_FIRES = (
    "UPDATE schedules SET fire_token = json_extract(t.value, '$[0]')"
    " FROM json_each(?) AS t WHERE schedules.id = json_extract(t.value, '$[1]')"
)
# Committing a batch: each statement takes its rows as one JSON array parameter.
#: Rows ``[schedule id, run id, status, record]``, the record a JSON object (stored as its text).
_INSERT_HISTORY = (
    "INSERT INTO history (schedule_id, run_id, status, record) SELECT json_extract(value, '$[0]'),"
    " json_extract(value, '$[1]'), json_extract(value, '$[2]'), json(json_extract(value, '$[3]'))"
    " FROM json_each(?) ORDER BY key"
)
_INSERT_RUNNING = f"INSERT OR IGNORE INTO running (schedule_id, run_id) {_PAIRS}"
_DELETE_CLAIMS = f"DELETE FROM claims WHERE (schedule_id, key) IN ({_PAIRS})"
#: ``[schedule id, runs started, gives up the fire entry]`` per item.
_SETTLE_SCHEDULES = (
    "UPDATE schedules SET runs_started = runs_started + json_extract(t.value, '$[1]'),"
    " fire_token = CASE WHEN json_extract(t.value, '$[2]') THEN NULL ELSE fire_token END"
    " FROM json_each(?) AS t WHERE schedules.id = json_extract(t.value, '$[0]')"
)
_PUT_ENTRIES = (
    "INSERT OR REPLACE INTO entries SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),"
    " json_extract(value, '$[2]'), json_extract(value, '$[3]'), json_extract(value, '$[4]'),"
    " json_extract(value, '$[5]') FROM json_each(?)"
)
#: Keep the newest ``?2`` history records of each schedule of the JSON array ``?1``.
_CAP_HISTORY = (
    "DELETE FROM history WHERE seq IN (SELECT h.seq FROM json_each(?1) j"
    " CROSS JOIN history h ON h.schedule_id = j.value WHERE h.seq <="
    " (SELECT x.seq FROM history x WHERE x.schedule_id = j.value ORDER BY x.seq DESC LIMIT 1 OFFSET ?2))"
)
#: One encoder for every record (``json.dumps`` with options builds a new one per call).
_RECORD_ENCODER = json.JSONEncoder(separators=(",", ":"))


def _json(rows: Any) -> str:
    """Rows of a batch as the one JSON parameter of a statement."""
    return json.dumps(rows, separators=(",", ":"))


def _history_order(item: Commit) -> list[RunRecord]:
    """The records a commit appends, oldest occurrence first (newest ends up on top)."""
    return sorted((*item.dispatched, *item.skipped), key=lambda r: (r.nominal, r.attempt))


def _entry_row(sid: str, entry: Pending) -> tuple[str, str, str, int, int, int]:
    return (sid, entry.key(sid), entry.kind.value, to_ms(entry.nominal), to_ms(entry.due), entry.attempt)


def _entry(kind: Any, nominal: Any, due: Any, attempt: Any) -> Pending:
    """An entry read back; ValueError/TypeError for a row someone else wrote."""
    for value in (nominal, due, attempt):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"not an integer: {value!r}")
    return Pending(kind=kind, nominal=from_ms(nominal), due=from_ms(due), attempt=attempt)


def _encode_record(record: RunRecord) -> str:
    """``RunRecord.to_dict`` as compact JSON, the same text, built directly (the history
    insert of every dispatched run pays for it). RunRecord's own codec takes over when
    the record has fields this one does not know (a field added later travels unchanged)."""
    if not _FAST_RECORDS or type(record.attempt) is not int:
        return _RECORD_ENCODER.encode(record.to_dict())
    return _RECORD_TEMPLATE % (
        _json_str(record.run_id),
        record.kind.value,
        iso(record.nominal),
        iso(record.due),
        record.attempt,
        record.status.value,
        _json_instant(record.dispatched_at),
        _json_instant(record.finished_at),
        _json_str(record.error),
        _json_instant(record.retry_at),
        _json_str(record.note),
        _json_str(record.traceback),
    )


def _json_str(value: str | None) -> str:
    return "null" if value is None else _quote(value)


def _json_instant(value: datetime | None) -> str:
    return '"' + iso(value) + '"' if value else "null"


#: The fields ``_encode_record`` writes, in ``RunRecord.to_dict``'s order.
_RECORD_FIELDS = (
    "run_id",
    "kind",
    "nominal",
    "due",
    "attempt",
    "status",
    "dispatched_at",
    "finished_at",
    "error",
    "retry_at",
    "note",
    "traceback",
)
_FAST_RECORDS = tuple(f.name for f in attrs.fields(RunRecord)) == _RECORD_FIELDS
_RECORD_TEMPLATE = (
    '{"run_id":%s,"kind":"%s","nominal":"%s","due":"%s","attempt":%d,"status":"%s",'
    '"dispatched_at":%s,"finished_at":%s,"error":%s,"retry_at":%s,"note":%s,"traceback":%s}'
)
_quote: Callable[[str], str] = json.encoder.encode_basestring_ascii  # what json.dumps quotes strings with


def _decode_record(raw: Any) -> RunRecord:
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise TypeError(f"a JSON {type(data).__name__}, not an object")
    return RunRecord.from_dict(data)


def _decode_parked(raw: Any) -> Pending:
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise TypeError(f"a JSON {type(data).__name__}, not an object")
    return _entry(data.get("kind"), data.get("nominal"), data.get("due"), data.get("attempt"))


class SQLiteStore(StoreBase):
    """A :class:`~schedcore.protocols.Store` in one SQLite file, shared safely by the processes
    of one machine (never over a network file system: see ``docs/sqlite.md``).

    ``path`` is created if missing (its directory too), readable by its owner only.
    ``history_limit`` caps the run history kept per schedule; ``busy_timeout`` (seconds) is
    how long one statement waits for another process's write lock before the transaction is
    retried; ``watch_interval`` how often :meth:`watch` looks for other processes' writes.
    ``synchronous`` is how hard a commit is pushed to the disk: ``"full"`` (the default:
    SQLite fsyncs the log at every commit, so nothing committed is lost even to a power cut
    -- one fsync per batch of claims, commits or outcomes) or ``"normal"`` (no fsync per
    commit: a commit survives a crash of the process, not a power cut or a kernel crash,
    which may roll the file back to its last checkpoint; faster where fsync is slow). It
    applies to this store's connection only.

    A file that is not SQLite, a SQLite file without schedcore's tables, a damaged file and a
    file from a newer schedcore raise :class:`~schedcore.exceptions.StoreError` with the
    reason; an older schema is migrated in place. Data that cannot be decoded for one
    schedule is logged and skipped (:class:`~schedcore.exceptions.CorruptScheduleData` from
    :meth:`get`); nothing stored is ever unpickled without its signature
    (:mod:`schedcore.signing`) or evaluated.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        history_limit: int = 50,
        busy_timeout: float = 5.0,
        watch_interval: float | timedelta = DEFAULT_WATCH_INTERVAL,
        synchronous: str = "full",
    ) -> None:
        if isinstance(history_limit, bool) or not isinstance(history_limit, int) or history_limit < 1:
            raise ValidationError("history_limit", history_limit, "must be an integer >= 1")
        if isinstance(busy_timeout, bool) or not isinstance(busy_timeout, int | float) or busy_timeout <= 0:
            raise ValidationError("busy_timeout", busy_timeout, "must be a positive number of seconds")
        interval = watch_interval if isinstance(watch_interval, timedelta) else None
        if interval is None:
            if isinstance(watch_interval, bool) or not isinstance(watch_interval, int | float):
                raise ValidationError("watch_interval", watch_interval, "must be a positive number of seconds")
            interval = timedelta(seconds=watch_interval)
        if interval <= timedelta(0):
            raise ValidationError("watch_interval", watch_interval, "must be positive")
        if synchronous not in schema.SYNCHRONOUS:
            raise ValidationError("synchronous", synchronous, "expected 'full' or 'normal'")
        if not isinstance(path, str | os.PathLike) or not os.fspath(path):
            raise ValidationError("path", path, "expected a file path")
        self.path = str(Path(os.fspath(path)).expanduser())
        self.history_limit = history_limit
        self.busy_timeout = float(busy_timeout)
        self.watch_interval = interval
        self.synchronous = synchronous
        self._conn = schema.open_database(self.path, busy_timeout=self.busy_timeout, synchronous=synchronous)
        self._lock = threading.RLock()  # one connection, used by one thread at a time
        self._closed = False
        self._definitions: dict[str, Schedule] = {}  # definition text -> schedule (decoded once)
        self._unreadable: dict[str, Any] = {}  # schedule id -> its stored definition that failed
        self._bad_entries: set[tuple[str, str]] = set()  # (schedule id, key) of unreadable index rows
        self._reported: set[tuple[str, str]] = set()
        self._watchers: dict[int, Callable[[datetime], None]] = {}
        self._watch_seq = 0
        self._poller: Poller | None = None

    # -- plumbing ------------------------------------------------------------------------

    def _write(self, doing: str, work: Callable[[sqlite3.Connection], Any], *, lease_only: bool = False) -> Any:
        """``work`` in one write transaction. ``lease_only``: it changes only what a power cut
        may undo harmlessly -- claims and heartbeats, which a restart treats as lapsed anyway
        -- so it commits without the fsync of ``synchronous="full"`` (the log is written in
        order: the next durable commit syncs it too)."""
        with self._lock:
            self._check_open()
            if not lease_only or self.synchronous != "full":
                return schema.transaction(self._conn, self.path, doing, work)
            self._set_synchronous(doing, "normal")
            try:
                return schema.transaction(self._conn, self.path, doing, work)
            finally:
                self._set_synchronous(doing, "full")

    def _set_synchronous(self, doing: str, level: str) -> None:
        try:
            self._conn.execute(f"PRAGMA synchronous = {level.upper()}")  # no I/O: a setting of the connection
        except sqlite3.Error as exc:
            raise schema.translate(exc, self.path, doing) from None

    def _read(self, doing: str, work: Callable[[sqlite3.Connection], Any]) -> Any:
        with self._lock:
            self._check_open()
            with schema.reading(self._conn, self.path, doing) as conn:
                try:
                    return work(conn)
                except sqlite3.Error as exc:
                    raise schema.translate(exc, self.path, doing) from None

    def _check_open(self) -> None:
        if self._closed:
            from schedcore.exceptions import StoreError

            raise StoreError(f"sqlite {self.path}: the store is closed")

    def _decode(self, sid: str, raw: Any) -> Schedule:
        """The schedule stored as ``raw`` (cached by text); CorruptScheduleData when unreadable."""
        if not isinstance(raw, str):
            raise CorruptScheduleData(sid, f"definition is a {type(raw).__name__}, not JSON text")
        found = self._definitions.get(raw)
        if found is not None:
            if found.id == sid:
                return found
            if found.serializer is not Serializer.PICKLE:  # (a signed pickle is bound to its id)
                try:
                    check_id(sid, "id")
                except ValidationError as exc:
                    raise CorruptScheduleData(sid, f"{type(exc).__name__}: {exc}") from None
                return with_id(found, sid)  # the same definition under another id: no validation again
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise TypeError(f"definition is a JSON {type(data).__name__}, not an object")
            data.setdefault("id", sid)
            schedule = Schedule.from_dict(data)
        except Exception as exc:  # ValidationError, a refused pickle, foreign shapes...
            raise CorruptScheduleData(sid, f"{type(exc).__name__}: {exc}") from None
        if schedule.id != sid:
            raise CorruptScheduleData(sid, f"definition carries another id {schedule.id!r}")
        if len(self._definitions) >= 16384:
            self._definitions.clear()
        self._definitions[raw] = schedule
        return schedule

    def _report(self, exc: CorruptScheduleData) -> None:
        """Log unreadable data once per schedule and reason (it is skipped, never fatal)."""
        key = (exc.schedule_id, exc.reason)
        if key in self._reported:
            return
        if len(self._reported) > 10_000:
            self._reported.clear()
        self._reported.add(key)
        log.error(
            "%s; skipping it (fix it, remove the schedule or run 'schedcore doctor --repair')",
            exc,
            extra={"event": "unreadable_schedule", "schedule_id": exc.schedule_id},
        )

    # -- definitions -----------------------------------------------------------------------

    def add(self, schedule: Schedule, first: Pending | None, conflict: Conflict) -> AddResult:
        check_add(schedule, first)
        return self.add_many([(schedule, first)], conflict)[0]

    def add_many(self, items: Sequence[tuple[Schedule, Pending | None]], conflict: Conflict) -> list[AddResult]:
        conflict = check_conflict(conflict)
        batch = check_add_items(items)
        if not batch:
            return []
        encoded = [(schedule, first, _encode_schedule(schedule)) for schedule, first in batch]
        notes: list[datetime] = []

        def work(conn: sqlite3.Connection) -> list[AddResult]:
            notes.clear()
            if conflict is Conflict.ERROR:  # one taken id: nothing of the batch is written
                for schedule, _, _ in encoded:
                    if conn.execute("SELECT 1 FROM schedules WHERE id = ?", (schedule.id,)).fetchone():
                        raise ScheduleExists(schedule.id)
            return [self._add_one(conn, s, first, raw=raw, conflict=conflict, notes=notes) for s, first, raw in encoded]

        results: list[AddResult] = self._write("add", work)
        self._forget(s.id for s, _ in batch)
        self._notify(notes)
        return results

    def _add_one(
        self,
        conn: sqlite3.Connection,
        schedule: Schedule,
        first: Pending | None,
        *,
        raw: str,
        conflict: Conflict,
        notes: list[datetime],
    ) -> AddResult:
        sid = schedule.id
        row = conn.execute("SELECT definition FROM schedules WHERE id = ?", (sid,)).fetchone()
        if row is None:
            conn.execute("INSERT INTO schedules (id, definition) VALUES (?, ?)", (sid, raw))
            if first is not None and fire_on_add(schedule, first) is FireMode.SET:
                self._index_put(conn, sid, first, notes)
            return AddResult.ADDED
        if conflict is Conflict.KEEP:
            return AddResult.KEPT
        if row[0] == raw:
            return AddResult.UNCHANGED
        try:
            old: Schedule | None = self._decode(sid, row[0])
        except CorruptScheduleData:
            old = None  # unreadable: replacing it repairs the schedule
        mode = fire_on_replace(old, schedule, first)
        if mode is None:
            return AddResult.UNCHANGED
        conn.execute("UPDATE schedules SET definition = ? WHERE id = ?", (raw, sid))
        if mode is not FireMode.KEEP:
            self._drop_fire(conn, sid)
        if first is not None and mode is FireMode.SET:
            self._index_put(conn, sid, first, notes)
        return AddResult.REPLACED

    def remove(self, schedule_id: str) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            gone = conn.execute("DELETE FROM schedules WHERE id = ?", (schedule_id,)).rowcount > 0
            for table in ("entries", "claims", "running", "history"):
                conn.execute(f"DELETE FROM {table} WHERE schedule_id = ?", (schedule_id,))
            return gone

        removed: bool = self._write("remove", work)
        self._forget([schedule_id])
        return removed

    def get(self, schedule_id: str) -> StoredSchedule | None:
        """See :meth:`schedcore.protocols.Store.get`; raises CorruptScheduleData for unreadable data."""
        found = self._read("get", lambda conn: self._stored_many(conn, [schedule_id]))
        value = found[0] if found else None
        if isinstance(value, CorruptScheduleData):
            raise value
        return value

    def list_schedules(self, *, after: str | None = None, limit: int = 100) -> list[StoredSchedule]:
        """See :meth:`schedcore.protocols.Store.list_schedules` (unreadable ones logged and skipped)."""
        check_limit(limit)
        out: list[StoredSchedule] = []
        cursor = after
        while len(out) < limit:
            want = limit - len(out)

            def page(conn: sqlite3.Connection, start: str | None = cursor, want: int = want) -> list[Any]:
                ids = [
                    r[0]
                    for r in conn.execute(
                        "SELECT id FROM schedules WHERE ? IS NULL OR id > ? ORDER BY id LIMIT ?", (start, start, want)
                    )
                ]
                return [ids, self._stored_many(conn, ids)]

            ids, found = self._read("list_schedules", page)
            for value in found:
                if isinstance(value, CorruptScheduleData):
                    self._report(value)
                elif value is not None:
                    out.append(value)
            if len(ids) < want:
                break
            cursor = ids[-1]
        return out

    def _stored_many(
        self, conn: sqlite3.Connection, ids: Sequence[str]
    ) -> list[StoredSchedule | CorruptScheduleData | None]:
        out: list[StoredSchedule | CorruptScheduleData | None] = []
        for sid in ids:
            row = conn.execute(
                "SELECT definition, runs_started, fire_token, parked FROM schedules WHERE id = ?", (sid,)
            ).fetchone()
            if row is None:
                out.append(None)
                continue
            try:
                out.append(self._stored(conn, sid, row))
            except CorruptScheduleData as exc:
                out.append(exc)
        return out

    def _stored(self, conn: sqlite3.Connection, sid: str, row: Sequence[Any]) -> StoredSchedule:
        definition, started, fire_token, parked = row
        schedule = self._decode(sid, definition)
        try:
            if isinstance(started, bool) or not isinstance(started, int):
                raise TypeError(f"runs_started is {started!r}")
            fire = conn.execute(
                "SELECT kind, nominal, due, attempt FROM entries WHERE schedule_id = ? AND key = ?", (sid, _FIRE)
            ).fetchone()
            if fire is None and fire_token is not None:  # the fire entry is held by a claim
                fire = conn.execute(
                    "SELECT kind, nominal, due, attempt FROM claims WHERE schedule_id = ? AND key = ? AND token = ?",
                    (sid, _FIRE, fire_token),
                ).fetchone()
            next_fire = _entry(*fire) if fire is not None else None
            parked_entry = _decode_parked(parked) if parked is not None else None
        except (ValueError, TypeError, KeyError) as exc:
            raise CorruptScheduleData(sid, f"unreadable state ({type(exc).__name__}: {exc})") from None
        running = tuple(
            str(r[0]) for r in conn.execute("SELECT run_id FROM running WHERE schedule_id = ? ORDER BY rowid", (sid,))
        )
        return StoredSchedule(
            schedule=schedule, next_fire=next_fire, runs_started=started, running=running, parked=parked_entry
        )

    def set_paused(self, schedule_id: str, paused: bool, next_fire: Pending | None) -> StoredSchedule:
        check_set_paused(paused, next_fire)
        notes: list[datetime] = []

        def work(conn: sqlite3.Connection) -> StoredSchedule:
            notes.clear()
            row = conn.execute("SELECT definition FROM schedules WHERE id = ?", (schedule_id,)).fetchone()
            if row is None:
                raise ScheduleNotFound(schedule_id)
            schedule = self._decode(schedule_id, row[0])
            if schedule.paused != paused:  # pausing a paused one (resuming a running one) is a no-op
                new = schedule.evolve(paused=paused)
                conn.execute("UPDATE schedules SET definition = ? WHERE id = ?", (_encode_schedule(new), schedule_id))
                self._drop_fire(conn, schedule_id)  # retries, manual entries and the parked entry stay
                if not paused and next_fire is not None:
                    self._index_put(conn, schedule_id, next_fire, notes)
            found = self._stored_many(conn, [schedule_id])[0]
            if isinstance(found, CorruptScheduleData):
                raise found
            assert found is not None
            return found

        stored: StoredSchedule = self._write("set_paused", work)
        self._notify(notes)
        return stored

    def enqueue(self, schedule_id: str, entries: Sequence[Pending]) -> int:
        for entry in entries:
            check_extra_entry(entry, "entries")
        notes: list[datetime] = []

        def work(conn: sqlite3.Connection) -> int:
            notes.clear()
            if not conn.execute("SELECT 1 FROM schedules WHERE id = ?", (schedule_id,)).fetchone():
                raise ScheduleNotFound(schedule_id)
            return sum(self._index_put_new(conn, schedule_id, entry, notes) for entry in entries)

        added: int = self._write("enqueue", work)
        self._notify(notes)
        return added

    def history(self, schedule_id: str, limit: int = 50) -> list[RunRecord]:
        """See :meth:`schedcore.protocols.Store.history`; unreadable records are logged and skipped."""
        check_limit(limit)
        rows = self._read(
            "history",
            lambda conn: conn.execute(
                "SELECT seq, record FROM history WHERE schedule_id = ? ORDER BY seq DESC LIMIT ?",
                (schedule_id, limit),
            ).fetchall(),
        )
        out: list[RunRecord] = []
        for seq, raw in rows:
            try:
                out.append(_decode_record(raw))
            except Exception as exc:
                self._report(
                    CorruptScheduleData(schedule_id, f"history record {seq} unreadable ({type(exc).__name__})")
                )
        return out

    # -- the time index ----------------------------------------------------------------------

    def claim_due(self, now: datetime, *, limit: int, lease: timedelta, owner: str) -> list[Claim]:
        """See :meth:`schedcore.protocols.Store.claim_due`: one transaction for the whole batch.

        Claims of owners whose heartbeat expired and expired leases go back to the index
        first; entries of unreadable schedules are logged once and left in place.
        """
        now_ms, expires_ms = check_claim(now, limit, lease, owner)
        notes: list[datetime] = []
        taken_back: dict[str, int] = {}
        unreadable: list[CorruptScheduleData] = []

        def work(conn: sqlite3.Connection) -> list[Claim]:
            notes.clear()
            taken_back.clear()
            unreadable.clear()
            self._take_back_lapsed(conn, now_ms, owner, notes, taken_back)
            for sid, key, kind, nominal, due, attempt, token in conn.execute(
                "SELECT schedule_id, key, kind, nominal, due, attempt, token FROM claims WHERE expires <= ?",
                (now_ms,),
            ).fetchall():
                self._unclaim(conn, sid, key, (kind, nominal, due, attempt), token=token, notes=notes)
            return self._claim_rows(
                conn, now_ms, expires_ms=expires_ms, limit=limit, owner=owner, unreadable=unreadable
            )

        claims: list[Claim] = self._write("claim_due", work, lease_only=True)
        for exc in unreadable:
            self._report(exc)
        for lapsed, n in taken_back.items():
            log_taken_back(log, lapsed, n)
        self._notify(notes)
        return claims

    def _claim_rows(
        self,
        conn: sqlite3.Connection,
        now_ms: int,
        *,
        expires_ms: int,
        limit: int,
        owner: str,
        unreadable: list[CorruptScheduleData],
    ) -> list[Claim]:
        rows = conn.execute(
            "SELECT e.schedule_id, e.key, e.kind, e.nominal, e.due, e.attempt, s.definition, s.runs_started,"
            " s.parked IS NOT NULL, (SELECT COUNT(*) FROM running r WHERE r.schedule_id = e.schedule_id)"
            " FROM entries e JOIN schedules s ON s.id = e.schedule_id WHERE e.due <= ? ORDER BY e.due, e.rowid",
            (now_ms,),
        )
        picked: list[tuple[Schedule, str, Pending, int, int, bool]] = []
        for sid, key, kind, nominal, due, attempt, definition, started, parked, running in rows:
            if len(picked) >= limit:
                break
            if (sid, key) in self._bad_entries or self._unreadable.get(sid) == definition:
                continue  # reported already; left in place until repaired or removed
            try:
                schedule = self._decode(sid, definition)
                try:
                    entry = _entry(kind, nominal, due, attempt)
                    if entry.key(sid) != key or isinstance(started, bool) or not isinstance(started, int):
                        raise ValueError(f"row {key!r} does not match its entry")
                except (ValueError, TypeError) as exc:
                    self._bad_entries.add((sid, key))
                    raise CorruptScheduleData(sid, f"unreadable index entry {key!r} ({exc})") from None
            except CorruptScheduleData as exc:
                if (sid, key) not in self._bad_entries:
                    self._unreadable[sid] = definition
                unreadable.append(exc)
                continue
            picked.append((schedule, key, entry, started, running, bool(parked)))
        rows.close()
        if not picked:
            return []
        last = int(conn.execute("SELECT value FROM schedcore_meta WHERE key = 'last_token'").fetchone()[0])
        conn.execute("UPDATE schedcore_meta SET value = ? WHERE key = 'last_token'", (str(last + len(picked)),))
        claims: list[Claim] = []
        lease_expires = from_ms(expires_ms)
        tokens = range(last + 1, last + 1 + len(picked))
        conn.execute(_DELETE_ENTRIES, (_json([(p[0].id, p[1]) for p in picked]),))
        claimed = [(*_entry_row(p[0].id, p[2]), token) for p, token in zip(picked, tokens, strict=True)]
        conn.execute(_INSERT_CLAIMS, (_json(claimed), owner, expires_ms))
        fires = [(token, p[0].id) for p, token in zip(picked, tokens, strict=True) if p[1] == _FIRE]
        if fires:  # these claims now hold their schedules' fire entries
            conn.execute(_HOLD_FIRES, (_json(fires),))
        for (schedule, _, entry, started, running, parked), token in zip(picked, tokens, strict=True):
            claims.append(
                Claim(
                    schedule=schedule,
                    entry=entry,
                    token=token,
                    owner=owner,
                    lease_expires=lease_expires,
                    runs_started=started,
                    running=running,
                    parked=parked,
                )
            )
        return claims

    def commit(self, commits: Sequence[Commit]) -> list[bool]:
        """See :meth:`schedcore.protocols.Store.commit`: the batch in one transaction, each
        item fenced by its token (a lost lease writes nothing for that item)."""
        return self._commit(commits, peek=False)[0]

    def commit_and_next_due(self, commits: Sequence[Commit]) -> tuple[list[bool], datetime | None]:
        """:meth:`commit`, then :meth:`next_due` in the same transaction."""
        return self._commit(commits, peek=True)

    def _commit(self, commits: Sequence[Commit], *, peek: bool) -> tuple[list[bool], datetime | None]:
        for item in commits:
            check_commit(item)
        notes: list[datetime] = []

        def work(conn: sqlite3.Connection) -> tuple[list[bool], datetime | None]:
            notes.clear()
            results = self._commit_batch(conn, commits, notes)
            touched = dict.fromkeys(item.claim.schedule_id for item, ok in zip(commits, results, strict=True) if ok)
            conn.execute(_CAP_HISTORY, (_json(list(touched)), self.history_limit))
            return results, (self._next_due(conn) if peek else None)

        out: tuple[list[bool], datetime | None] = self._write("commit", work)
        self._notify(notes)
        return out

    def _commit_batch(self, conn: sqlite3.Connection, commits: Sequence[Commit], notes: list[datetime]) -> list[bool]:
        """Each item of ``commits`` as :meth:`_commit_one` would apply it in order, in a few
        statements for the whole batch: the claims held are read in one query, and the items
        of schedules that appear once (all of them, usually) are written with ``executemany``.
        Items sharing a schedule see each other's writes, so those go one by one, in order."""
        keys = [(item.claim.schedule_id, item.claim.entry.key(item.claim.schedule_id)) for item in commits]
        held: dict[tuple[str, str], tuple[Any, Any]] = {}
        for start in range(0, len(keys), _JSON_CHUNK):
            found = conn.execute(_HELD_CLAIMS, (_json(keys[start : start + _JSON_CHUNK]),)).fetchone()[0]
            for sid, key, token, fire_token in json.loads(found):
                held[(sid, key)] = (token, fire_token)
        per_schedule = Counter(sid for sid, _ in keys)
        results: list[bool] = []
        together: list[tuple[Commit, str, str, bool]] = []  # item, schedule id, key, holds the fire entry
        for item, (sid, key) in zip(commits, keys, strict=True):
            if per_schedule[sid] > 1:
                results.append(self._commit_one(conn, item, notes))
                continue
            token, fire_token = held.get((sid, key), (None, None))
            ok = token is not None and token == item.claim.token
            results.append(ok)  # False: lease lost or schedule removed, nothing written
            if ok:
                together.append((item, sid, key, key == _FIRE and fire_token == token))
        if not together:
            return results
        # One statement each for the batch, its rows as one JSON parameter (see record_outcomes).
        # The records are JSON already: spliced in as objects, not quoted again as strings.
        records = ",".join(
            f'[{_quote(sid)},{_quote(r.run_id)},"{r.status.value}",{_encode_record(r)}]'
            for item, sid, _, _ in together
            for r in _history_order(item)
        )
        conn.execute(_INSERT_HISTORY, (f"[{records}]",))
        running = [(sid, r.run_id) for item, sid, _, _ in together for r in item.dispatched]
        conn.execute(_INSERT_RUNNING, (_json(running),))
        conn.execute(_DELETE_CLAIMS, (_json([(sid, key) for _, sid, key, _ in together]),))
        # a claim holding its schedule's fire entry gives it up: next_fire replaces it
        conn.execute(_SETTLE_SCHEDULES, (_json([(sid, item.runs_started, fire) for item, sid, _, fire in together]),))
        nexts = [(sid, item.next_fire) for item, sid, _, fire in together if fire and item.next_fire is not None]
        if nexts:
            conn.execute(_PUT_ENTRIES, (_json([_entry_row(*n) for n in nexts]),))
        notes.extend(entry.due for _, entry in nexts)
        for item, sid, _, _ in together:
            if item.park is not None:
                self._park(conn, sid, item.park, notes)
        return results

    def _commit_one(self, conn: sqlite3.Connection, item: Commit, notes: list[datetime]) -> bool:
        claim = item.claim
        sid = claim.schedule_id
        key = claim.entry.key(sid)
        held = conn.execute("SELECT token FROM claims WHERE schedule_id = ? AND key = ?", (sid, key)).fetchone()
        if held is None or held[0] != claim.token:
            return False  # lease lost or schedule removed: write nothing
        conn.executemany(
            "INSERT INTO history (schedule_id, run_id, status, record) VALUES (?, ?, ?, ?)",
            [(sid, r.run_id, r.status.value, _encode_record(r)) for r in _history_order(item)],
        )
        conn.executemany(
            "INSERT OR IGNORE INTO running (schedule_id, run_id) VALUES (?, ?)",
            [(sid, r.run_id) for r in item.dispatched],
        )
        conn.execute("DELETE FROM claims WHERE schedule_id = ? AND key = ?", (sid, key))
        row = conn.execute(
            "UPDATE schedules SET runs_started = runs_started + ? WHERE id = ? RETURNING fire_token",
            (item.runs_started, sid),
        ).fetchone()
        if key == _FIRE and row is not None and row[0] == claim.token:
            conn.execute("UPDATE schedules SET fire_token = NULL WHERE id = ?", (sid,))
            if item.next_fire is not None:  # None: the schedule is finished
                self._index_put(conn, sid, item.next_fire, notes)
        if item.park is not None:
            self._park(conn, sid, item.park, notes)
        return True

    def _park(self, conn: sqlite3.Connection, sid: str, park: Pending, notes: list[datetime]) -> None:
        text = json.dumps(park.to_dict(), separators=(",", ":"))
        conn.execute("UPDATE schedules SET parked = ? WHERE id = ?", (text, sid))  # replaces a parked entry
        self._maybe_unpark(conn, sid, notes)  # nothing running any more: do not strand it

    def release(self, claims: Sequence[Claim]) -> None:
        notes: list[datetime] = []

        def work(conn: sqlite3.Connection) -> None:
            notes.clear()
            for claim in claims:
                sid = claim.schedule_id
                key = claim.entry.key(sid)
                held = conn.execute(
                    "SELECT kind, nominal, due, attempt, token FROM claims WHERE schedule_id = ? AND key = ?",
                    (sid, key),
                ).fetchone()
                if held is None or held[4] != claim.token:
                    continue  # lease lost or schedule removed: nothing to give back
                self._unclaim(conn, sid, key, held[:4], token=claim.token, notes=notes)

        self._write("release", work, lease_only=True)
        self._notify(notes)

    def record_outcome(self, outcome: Outcome, retry: Pending | None) -> bool:
        return self.record_outcomes([(outcome, retry)])[0]

    def record_outcomes(self, items: Sequence[tuple[Outcome, Pending | None]]) -> list[bool]:
        """:meth:`record_outcome` for each ``(outcome, retry)`` pair in order, in one transaction.

        The run's history record is finished inside SQLite (``json_set`` of the six fields
        an outcome changes), not decoded and encoded again in Python; a record that is not a
        JSON object is reported and left as it is (the run still ends).
        """
        batch = check_outcomes(items)
        if not batch:
            return []
        finishes = [
            (
                o.schedule_id,
                o.run_id,
                o.status.value,
                iso(o.finished_at),
                _json_str(o.error),  # as JSON text, which json() reads back: a NUL never meets SQL text
                iso(retry.due) if retry is not None else None,
                _json_str(o.traceback),
                iso(o.started_at) if o.started_at else None,
            )
            for o, retry in batch
        ]
        notes: list[datetime] = []
        unreadable: list[CorruptScheduleData] = []

        def work(conn: sqlite3.Connection) -> list[bool]:
            notes.clear()
            unreadable.clear()
            pairs = _json([f[:2] for f in finishes])
            running = {(sid, rid) for sid, rid in json.loads(conn.execute(_RUNNING_AMONG, (pairs,)).fetchone()[0])}
            results: list[bool] = []
            for sid, rid, *_ in finishes:
                results.append((sid, rid) in running)
                running.discard((sid, rid))  # a repeat later in the batch: at most once per run id
            ended = [f for f, ok in zip(finishes, results, strict=True) if ok]
            if not ended:
                return results
            # One statement each for the whole batch: every SQLite call lets the executor's
            # threads take the GIL, so a statement per item is slow beyond its own cost.
            text = _json(ended)
            conn.execute(_END_RUNS, (text,))
            for sid, seq in json.loads(conn.execute(_UNREADABLE_RECORDS, (text,)).fetchone()[0]):
                unreadable.append(CorruptScheduleData(sid, f"history record {seq} unreadable (not a JSON object)"))
            conn.execute(_FINISH_RECORDS, (text,))
            for (outcome, retry), ok in zip(batch, results, strict=True):
                if ok and retry is not None:
                    self._index_put_new(conn, outcome.schedule_id, retry, notes)
            # Then parked entries, once nothing of their schedule runs (usually none is parked:
            # one query for the batch). Same end state as after each item: an un-parked entry
            # and a retry never share a key.
            ids = _json(list(dict.fromkeys(f[0] for f in ended)))
            for (sid,) in conn.execute(_PARKED_AMONG, (ids,)).fetchall():
                self._maybe_unpark(conn, sid, notes)
            return results

        done: list[bool] = self._write("record_outcome", work)
        for exc in unreadable:
            self._report(exc)
        self._notify(notes)
        return done

    def next_due(self) -> datetime | None:
        result: datetime | None = self._read("next_due", self._next_due)
        return result

    def _next_due(self, conn: sqlite3.Connection) -> datetime | None:
        candidates: list[int] = []
        skip = bool(self._unreadable or self._bad_entries)
        query = (
            "SELECT e.due, e.schedule_id, e.key, s.definition FROM entries e JOIN schedules s ON s.id = e.schedule_id"
        )
        if not skip:
            row = conn.execute(query + " ORDER BY e.due LIMIT 1").fetchone()
            if row is not None:
                candidates.append(row[0])
        else:  # look past entries reported unreadable (they would wake the engine for nothing)
            for due, sid, key, definition in conn.execute(query + " ORDER BY e.due"):
                if (sid, key) not in self._bad_entries and self._unreadable.get(sid) != definition:
                    candidates.append(due)
                    break
        row = conn.execute("SELECT MIN(expires) FROM claims").fetchone()
        if row is not None and row[0] is not None:
            candidates.append(row[0])
        ints = [c for c in candidates if isinstance(c, int) and not isinstance(c, bool)]
        return from_ms(min(ints)) if ints else None

    def watch(self, callback: Callable[[datetime], None]) -> Callable[[], None]:
        """See :meth:`schedcore.protocols.Store.watch`. Puts made through this store object are
        told at once; puts of other processes (and other store objects) within
        ``watch_interval`` (50 ms by default), by a thread polling ``PRAGMA data_version``:
        it tells the new earliest index entry whenever one earlier than the last it saw appears."""
        if not callable(callback):
            raise ValidationError("callback", callback, "must be callable")
        with self._lock:
            self._check_open()
            self._watch_seq += 1
            watch_id = self._watch_seq
            self._watchers[watch_id] = callback
            if self._poller is None:
                self._poller = Poller(self.path, self.busy_timeout, self.watch_interval, self._notify)
                self._poller.start()

        def stop() -> None:
            poller = None
            with self._lock:
                self._watchers.pop(watch_id, None)
                if not self._watchers and self._poller is not None:
                    poller, self._poller = self._poller, None
            if poller is not None:
                poller.stop()

        return stop

    # -- operations ------------------------------------------------------------------------

    def heartbeat(self, owner: str, info: Mapping[str, Any], *, now: datetime, ttl: timedelta) -> None:
        check_heartbeat(owner, info, ttl)
        at = to_ms(require_aware(now, "now"))
        try:
            text = json.dumps(dict(info), separators=(",", ":"), default=str)
        except (TypeError, ValueError) as exc:
            raise ValidationError("info", info, f"must be JSON-safe ({exc})") from None
        expires = to_ms(from_ms(at) + ttl)
        cutoff = to_ms(from_ms(at) - DEAD_BEATS_KEPT)

        def work(conn: sqlite3.Connection) -> None:
            # long-dead owners are dropped on the way, so restarts (new owner ids) do not pile up
            conn.execute("DELETE FROM beats WHERE expires_at <= ?", (cutoff,))
            conn.execute("INSERT OR REPLACE INTO beats VALUES (?, ?, ?, ?)", (owner, at, expires, text))

        self._write("heartbeat", work, lease_only=True)

    def schedulers(self, now: datetime) -> list[SchedulerBeat]:
        at = to_ms(require_aware(now, "now"))
        rows = self._read(
            "schedulers",
            lambda conn: conn.execute(
                "SELECT owner, beat_at, expires_at, info FROM beats WHERE expires_at > ? ORDER BY owner", (at,)
            ).fetchall(),
        )
        out: list[SchedulerBeat] = []
        for owner, beat_at, expires_at, info in rows:
            try:
                data = json.loads(info) if info is not None else {}
                if not isinstance(data, dict):
                    raise TypeError("info is not an object")
                out.append(
                    SchedulerBeat(owner=str(owner), beat_at=from_ms(beat_at), expires_at=from_ms(expires_at), info=data)
                )
            except (TypeError, ValueError, OverflowError) as exc:
                log.error("sqlite %s: heartbeat of %r unreadable (%s); skipping it", self.path, owner, exc)
        return out

    def stats(self, now: datetime) -> StoreStats:
        now_ms = to_ms(require_aware(now, "now"))

        def work(conn: sqlite3.Connection) -> StoreStats:
            schedules = conn.execute("SELECT COUNT(*) FROM schedules").fetchone()[0]
            due, oldest = conn.execute("SELECT COUNT(*), MIN(due) FROM entries WHERE due <= ?", (now_ms,)).fetchone()
            in_flight, expired = conn.execute(
                "SELECT COALESCE(SUM(expires > ?), 0), COALESCE(SUM(expires <= ?), 0) FROM claims", (now_ms, now_ms)
            ).fetchone()
            return StoreStats(
                schedules=schedules,
                due=due,
                oldest_due=from_ms(oldest) if isinstance(oldest, int) else None,
                in_flight=in_flight,
                expired=expired,
            )

        result: StoreStats = self._read("stats", work)
        return result

    def check(self, *, repair: bool = False, now: datetime) -> CheckReport:
        """Consistency check of the file (``schedcore doctor``): see :mod:`schedcore._sqlite_doctor`."""
        from schedcore._sqlite_doctor import run_check

        with self._lock:
            self._check_open()
            report = run_check(self, self._conn, repair=repair, now=now)
        if repair:
            self._unreadable.clear()
            self._bad_entries.clear()
        return report

    def close(self) -> None:
        """Stop the watch thread and close the connection. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            poller, self._poller = self._poller, None
            self._watchers.clear()
        if poller is not None:
            poller.stop()
        with self._lock:
            self._conn.close()

    def __repr__(self) -> str:
        return f"<SQLiteStore {self.path!r} history_limit={self.history_limit}>"

    # -- internals (inside a transaction) ------------------------------------------------

    def _forget(self, sids: Any) -> None:
        """A schedule written anew (or removed) is read again from scratch."""
        if not self._unreadable and not self._bad_entries:
            return
        gone = set(sids)
        with self._lock:
            for sid in gone:
                self._unreadable.pop(sid, None)
            self._bad_entries = {b for b in self._bad_entries if b[0] not in gone}

    def _index_put(self, conn: sqlite3.Connection, sid: str, entry: Pending, notes: list[datetime]) -> None:
        """Put ``entry`` in the index under its key (replacing an indexed one with that key)."""
        conn.execute("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?)", _entry_row(sid, entry))
        notes.append(entry.due)

    def _index_put_new(self, conn: sqlite3.Connection, sid: str, entry: Pending, notes: list[datetime]) -> bool:
        """Like _index_put, but ignore an entry whose key is indexed or claimed already."""
        key = entry.key(sid)
        for table in ("entries", "claims"):
            if conn.execute(f"SELECT 1 FROM {table} WHERE schedule_id = ? AND key = ?", (sid, key)).fetchone():
                return False
        self._index_put(conn, sid, entry, notes)
        return True

    @staticmethod
    def _drop_fire(conn: sqlite3.Connection, sid: str) -> None:
        """Take the fire entry out of the index; a claim holding it no longer holds *the* fire entry."""
        conn.execute("DELETE FROM entries WHERE schedule_id = ? AND key = ?", (sid, _FIRE))
        conn.execute("UPDATE schedules SET fire_token = NULL WHERE id = ?", (sid,))

    def _unclaim(
        self,
        conn: sqlite3.Connection,
        sid: str,
        key: str,
        row: Sequence[Any],
        *,
        token: int,
        notes: list[datetime],
    ) -> None:
        """End a claim without committing: its entry returns to the index unless superseded."""
        conn.execute("DELETE FROM claims WHERE schedule_id = ? AND key = ?", (sid, key))
        if key == _FIRE:
            current = conn.execute("SELECT fire_token FROM schedules WHERE id = ?", (sid,)).fetchone()
            if current is None or current[0] != token:
                return  # a superseded fire entry (replaced or paused meanwhile) is dropped
            conn.execute("UPDATE schedules SET fire_token = NULL WHERE id = ?", (sid,))
        conn.execute("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?)", (sid, key, *row))
        due = row[2]
        if isinstance(due, int) and not isinstance(due, bool):
            notes.append(from_ms(due))

    def _take_back_lapsed(
        self, conn: sqlite3.Connection, now_ms: int, owner: str, notes: list[datetime], taken: dict[str, int]
    ) -> None:
        """End the claims of every owner (but ``owner``) whose heartbeat expired at or before
        ``now``, before their leases end, and drop those beats (see Store.claim_due)."""
        lapsed = [
            r[0] for r in conn.execute("SELECT owner FROM beats WHERE expires_at <= ? AND owner != ?", (now_ms, owner))
        ]
        for dead in lapsed:
            rows = conn.execute(
                "SELECT schedule_id, key, kind, nominal, due, attempt, token FROM claims WHERE owner = ?", (dead,)
            ).fetchall()
            for sid, key, kind, nominal, due, attempt, token in rows:
                self._unclaim(conn, sid, key, (kind, nominal, due, attempt), token=token, notes=notes)
            taken[dead] = len(rows)
            conn.execute("DELETE FROM beats WHERE owner = ?", (dead,))

    def _maybe_unpark(self, conn: sqlite3.Connection, sid: str, notes: list[datetime]) -> None:
        row = conn.execute("SELECT parked FROM schedules WHERE id = ?", (sid,)).fetchone()
        if row is None or row[0] is None:
            return
        if conn.execute("SELECT 1 FROM running WHERE schedule_id = ? LIMIT 1", (sid,)).fetchone():
            return
        conn.execute("UPDATE schedules SET parked = NULL WHERE id = ?", (sid,))
        try:
            parked = _decode_parked(row[0])
        except (ValueError, TypeError, KeyError):
            log.error("sqlite %s: parked entry of %r unreadable; dropped", self.path, sid)
            return
        self._index_put_new(conn, sid, parked, notes)

    def _notify(self, notes: Sequence[datetime]) -> None:
        if not notes:
            return
        with self._lock:
            callbacks = list(self._watchers.values())
        notify(log, callbacks, notes)
