"""The consistency checker of a SQLite store file (``SQLiteStore.check``, ``schedcore doctor``).

What can go wrong in the file: SQLite's own structures (``PRAGMA quick_check``), rows of
schedules that no longer exist, rows nobody can decode (a hand edit, another program),
claims of dead schedulers and a schedule left without its fire entry. Everything is read
with the store's own decoders (nothing is unpickled or evaluated). With ``repair`` the
whole check runs in one write transaction, so it never races a scheduler: unreadable rows
move to the ``quarantine`` table (never just deleted), orphans are deleted, stale claims
released and missing fire entries re-created as an add would.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import TYPE_CHECKING, Any

from schedcore import _sqlite_schema as schema
from schedcore._time import from_ms, iso, require_aware, to_ms
from schedcore.doctor import CheckReport, Finding, expected_fire
from schedcore.exceptions import CorruptScheduleData
from schedcore.model import Schedule
from schedcore.sqlite import _decode_parked, _decode_record, _entry

if TYPE_CHECKING:
    from schedcore.sqlite import SQLiteStore

__all__ = ["run_check"]

_ENTRY_COLUMNS = "schedule_id, key, kind, nominal, due, attempt"


def run_check(store: SQLiteStore, conn: sqlite3.Connection, *, repair: bool, now: datetime) -> CheckReport:
    """Check the file behind ``store`` (its connection ``conn``, lock held by the caller)."""
    at = require_aware(now, "now")
    checker = _Checker(store, repair=repair, now_ms=to_ms(at))
    if repair:
        counts = schema.transaction(conn, store.path, "doctor", checker.run)
    else:
        with schema.reading(conn, store.path, "doctor"):
            try:
                counts = checker.run(conn)
            except sqlite3.Error as exc:
                raise schema.translate(exc, store.path, "doctor") from None
    return CheckReport(
        store=f"sqlite store {store.path}",
        checked_at=at,
        repair=repair,
        findings=tuple(checker.found),
        counts=counts,
    )


class _Checker:
    def __init__(self, store: SQLiteStore, *, repair: bool, now_ms: int) -> None:
        self.store = store
        self.repair = repair
        self.now_ms = now_ms
        self.found: list[Finding] = []

    def add(self, kind: str, detail: str, *, key: str = "", sid: str | None = None, action: str = "") -> None:
        self.found.append(
            Finding(kind=kind, detail=detail, key=key, schedule_id=sid, repaired=self.repair, action=action)
        )

    def run(self, conn: sqlite3.Connection) -> dict[str, int]:
        problems = [r[0] for r in conn.execute("PRAGMA quick_check(20)")]
        if problems != ["ok"]:
            for text in problems:
                self.found.append(
                    Finding(
                        kind="damaged_file",
                        detail=str(text),
                        key=self.store.path,
                        action="restore the file from a backup (docs/operations.md)",
                    )
                )
        schedules = self._schedules(conn)
        self._orphans(conn)
        self._entries(conn, "entries")
        self._entries(conn, "claims")
        self._history(conn)
        self._beats(conn)
        self._stale_claims(conn)
        self._missing_fires(conn, schedules)
        kept = conn.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0]
        if kept:
            self.found.append(
                Finding(
                    kind="quarantine",
                    detail=f"{kept} record(s) set aside by earlier repairs",
                    key="quarantine",
                    severity="info",
                    action="read them with: sqlite3 FILE 'SELECT * FROM quarantine'; delete them when done",
                )
            )
        return {
            "schedules": len(schedules),
            "entries": conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0],
            "claims": conn.execute("SELECT COUNT(*) FROM claims").fetchone()[0],
            "history": conn.execute("SELECT COUNT(*) FROM history").fetchone()[0],
        }

    def _aside(self, conn: sqlite3.Connection, source: str, sid: str | None, reason: str, row: Any) -> str:
        """Keep an unreadable row in the quarantine table; returns where it went."""
        data = json.dumps(list(row), default=repr)
        cur = conn.execute(
            "INSERT INTO quarantine (moved_at, source, schedule_id, reason, data) VALUES (?, ?, ?, ?, ?)",
            (self.now_ms, source, sid, reason, data),
        )
        return f"moved to quarantine row {cur.lastrowid}"

    def _schedules(self, conn: sqlite3.Connection) -> dict[str, tuple[Schedule, int]]:
        """The readable schedules (with runs started); the others are reported (and set aside)."""
        readable: dict[str, tuple[Schedule, int]] = {}
        for row in conn.execute("SELECT id, definition, runs_started, fire_token, parked FROM schedules").fetchall():
            sid, definition, started, _, parked = row
            try:
                schedule = self.store._decode(str(sid), definition)
            except CorruptScheduleData as exc:
                action = ""
                if self.repair:
                    action = self._aside(conn, "schedules", str(sid), exc.reason, row)
                    for table in ("schedules", "entries", "claims", "running", "history"):
                        column = "id" if table == "schedules" else "schedule_id"
                        conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (sid,))
                    action += "; the schedule is removed (add it again)"
                self.add("unreadable", f"definition: {exc.reason}", key="schedules", sid=str(sid), action=action)
                continue
            if isinstance(started, bool) or not isinstance(started, int) or started < 0:
                action = ""
                if self.repair:
                    action = self._aside(conn, "schedules.runs_started", sid, "unreadable count", [started])
                    conn.execute("UPDATE schedules SET runs_started = 0 WHERE id = ?", (sid,))
                    action += "; counted from 0 again"
                self.add("unreadable", f"runs started {started!r}", key="schedules", sid=sid, action=action)
                started = 0
            if parked is not None:
                try:
                    _decode_parked(parked)
                except (ValueError, TypeError, KeyError) as exc:
                    action = ""
                    if self.repair:
                        action = self._aside(conn, "schedules.parked", sid, str(exc), [parked])
                        conn.execute("UPDATE schedules SET parked = NULL WHERE id = ?", (sid,))
                    self.add("unreadable", f"parked entry ({exc})", key="schedules", sid=sid, action=action)
            readable[sid] = (schedule, started)
        return readable

    def _orphans(self, conn: sqlite3.Connection) -> None:
        for table in ("entries", "claims", "running", "history"):
            rows = conn.execute(
                f"SELECT DISTINCT schedule_id FROM {table} WHERE schedule_id NOT IN (SELECT id FROM schedules)"
            ).fetchall()
            for (sid,) in rows:
                if self.repair:
                    conn.execute(f"DELETE FROM {table} WHERE schedule_id = ?", (sid,))
                detail = f"rows in {table} of a schedule that has no definition"
                self.add("orphan_entry", detail, key=table, sid=str(sid), action="deleted" if self.repair else "")

    def _entries(self, conn: sqlite3.Connection, table: str) -> None:
        extra = ", token, owner, expires" if table == "claims" else ""
        for row in conn.execute(f"SELECT rowid, {_ENTRY_COLUMNS}{extra} FROM {table}").fetchall():
            rowid, sid, key, kind, nominal, due, attempt = row[:7]
            try:
                entry = _entry(kind, nominal, due, attempt)
                if entry.key(str(sid)) != key:
                    raise ValueError(f"key {key!r} does not match the entry")
                if extra and not all(isinstance(v, int) and not isinstance(v, bool) for v in (row[7], row[9])):
                    raise ValueError("token or lease expiry is not an integer")
            except (ValueError, TypeError) as exc:
                action = ""
                if self.repair:
                    action = self._aside(conn, table, str(sid), str(exc), row[1:])
                    conn.execute(f"DELETE FROM {table} WHERE rowid = ?", (rowid,))
                self.add("unreadable", f"{table} row {key!r}: {exc}", key=table, sid=str(sid), action=action)

    def _history(self, conn: sqlite3.Connection) -> None:
        for seq, sid, raw in conn.execute("SELECT seq, schedule_id, record FROM history").fetchall():
            try:
                _decode_record(raw)
            except Exception as exc:
                action = ""
                if self.repair:
                    action = self._aside(conn, "history", str(sid), type(exc).__name__, [seq, sid, raw])
                    conn.execute("DELETE FROM history WHERE seq = ?", (seq,))
                detail = f"history record {seq}: {type(exc).__name__}"
                self.add("unreadable", detail, key="history", sid=str(sid), action=action)

    def _beats(self, conn: sqlite3.Connection) -> None:
        for row in conn.execute("SELECT owner, beat_at, expires_at, info FROM beats").fetchall():
            owner, beat_at, expires_at, info = row
            try:
                if not all(isinstance(v, int) and not isinstance(v, bool) for v in (beat_at, expires_at)):
                    raise TypeError("instants are not integers")
                from_ms(beat_at)
                if info is not None and not isinstance(json.loads(info), dict):
                    raise TypeError("info is not an object")
            except (TypeError, ValueError, OverflowError) as exc:
                action = ""
                if self.repair:
                    action = self._aside(conn, "beats", None, str(exc), row)
                    conn.execute("DELETE FROM beats WHERE owner = ?", (owner,))
                self.add("unreadable", f"heartbeat of {owner!r}: {exc}", key="beats", action=action)

    def _stale_claims(self, conn: sqlite3.Connection) -> None:
        live = {r[0] for r in conn.execute("SELECT owner FROM beats WHERE expires_at > ?", (self.now_ms,)).fetchall()}
        rows = conn.execute(
            f"SELECT {_ENTRY_COLUMNS}, token, owner, expires FROM claims WHERE expires <= ?", (self.now_ms,)
        ).fetchall()
        notes: list[datetime] = []
        for sid, key, kind, nominal, due, attempt, token, owner, expires in rows:
            if owner in live:
                continue
            if self.repair:
                self.store._unclaim(conn, sid, key, (kind, nominal, due, attempt), token=token, notes=notes)
            detail = f"claim of {key} by {owner!r} (not alive) expired at {iso(from_ms(expires))}"
            self.add("stale_claim", detail, key=key, sid=sid, action="released" if self.repair else "")

    def _missing_fires(self, conn: sqlite3.Connection, schedules: dict[str, tuple[Schedule, int]]) -> None:
        at = from_ms(self.now_ms)
        with_fire = {
            r[0]
            for table in ("entries", "claims")
            for r in conn.execute(f"SELECT schedule_id FROM {table} WHERE key = 'fire'").fetchall()
        }
        parked = {r[0] for r in conn.execute("SELECT id FROM schedules WHERE parked IS NOT NULL").fetchall()}
        notes: list[datetime] = []
        for sid, (schedule, started) in schedules.items():
            if schedule.paused or sid in with_fire or sid in parked:
                continue
            fire = expected_fire(schedule, at, started)
            if fire is None:
                continue
            if self.repair:
                self.store._index_put(conn, sid, fire, notes)
            detail = f"no fire entry (next occurrence {iso(fire.nominal)})"
            self.add("missing_fire", detail, key="fire", sid=sid, action="re-created" if self.repair else "")
