"""The SQLite store's file: opening it safely, its schema, versions and migrations, errors.

One job: turn a path into a connection on a schedcore database of the current schema --
creating the file readable by its owner only, refusing a file that is not SQLite, a SQLite
file without schedcore's tables and a file written by a newer schedcore, and migrating an
older schema in place (in one transaction: a failed migration leaves the file as it was).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from schedcore.exceptions import StoreError, StoreUnavailable

__all__ = [
    "APPLICATION_ID",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "connect",
    "open_database",
    "transaction",
]

log = logging.getLogger("schedcore.sqlite")

#: The schema this version of schedcore writes. A file with a lower version is migrated
#: in place when opened (see :data:`MIGRATIONS`); a higher one is refused.
SCHEMA_VERSION = 1

#: ``PRAGMA application_id`` of a schedcore file ("SchC"), so ``file(1)`` and tools can tell it.
APPLICATION_ID = 0x53636843

_HEADER = b"SQLite format 3\x00"

#: The schema of version 1. Instants are integers (ms since the epoch, UTC).
_DDL_V1 = """
CREATE TABLE schedcore_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE schedules (
    id TEXT PRIMARY KEY,
    definition TEXT NOT NULL,            -- Schedule.to_dict(compact=True) as JSON
    runs_started INTEGER NOT NULL DEFAULT 0,
    fire_token INTEGER,                  -- token of the claim holding the current fire entry
    parked TEXT                          -- the parked entry (Pending.to_dict JSON), if any
);
CREATE TABLE entries (                   -- the time index
    schedule_id TEXT NOT NULL,
    key TEXT NOT NULL,                   -- Pending.key: 'fire', or '<kind>:<run id>'
    kind TEXT NOT NULL,
    nominal INTEGER NOT NULL,
    due INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    PRIMARY KEY (schedule_id, key)
);
CREATE INDEX entries_due ON entries (due);
CREATE TABLE claims (                    -- entries taken out of the index under a lease
    schedule_id TEXT NOT NULL,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    nominal INTEGER NOT NULL,
    due INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    token INTEGER NOT NULL,
    owner TEXT NOT NULL,
    expires INTEGER NOT NULL,
    PRIMARY KEY (schedule_id, key)
);
CREATE INDEX claims_expires ON claims (expires);
CREATE INDEX claims_owner ON claims (owner);
CREATE TABLE running (schedule_id TEXT NOT NULL, run_id TEXT NOT NULL, UNIQUE (schedule_id, run_id));
CREATE TABLE history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- newest first is seq descending
    schedule_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    status TEXT NOT NULL,
    record TEXT NOT NULL                 -- RunRecord.to_dict JSON
);
CREATE INDEX history_schedule ON history (schedule_id, seq);
CREATE INDEX history_run ON history (schedule_id, run_id);
CREATE TABLE beats (owner TEXT PRIMARY KEY, beat_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, info TEXT);
CREATE TABLE quarantine (                -- unreadable records set aside by `schedcore doctor --repair`
    id INTEGER PRIMARY KEY,
    moved_at INTEGER NOT NULL,
    source TEXT NOT NULL,                -- the table it came from
    schedule_id TEXT,
    reason TEXT NOT NULL,
    data TEXT NOT NULL                   -- the row, as JSON
);
"""

#: Migrations: ``MIGRATIONS[n]`` takes a file from schema ``n`` to ``n + 1`` (SQL statements
#: run inside the opening transaction, so a migration is all or nothing). A schema change
#: bumps :data:`SCHEMA_VERSION` and adds its step here; steps are never edited once released.
MIGRATIONS: dict[int, tuple[str, ...]] = {}

_TABLES = frozenset({"schedcore_meta", "schedules", "entries", "claims", "running", "history", "beats", "quarantine"})

T = TypeVar("T")

#: How long a write keeps retrying while other processes hold the file's write lock.
BUSY_DEADLINE = 30.0


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    text = str(exc)
    return "locked" in text or "busy" in text


def translate(exc: sqlite3.Error, path: str, doing: str) -> StoreError:
    """The schedcore error for a sqlite3 error met while ``doing`` something with ``path``."""
    text = str(exc)
    if _is_busy(exc):
        return StoreUnavailable(f"sqlite {path}: {doing}: the file stayed locked by another process ({text})")
    if isinstance(exc, sqlite3.DatabaseError) and ("not a database" in text or "malformed" in text):
        return StoreError(
            f"sqlite {path}: {doing}: the file is damaged ({text}); restore it from a backup "
            "(see docs/operations.md) or move it away to start afresh"
        )
    if isinstance(exc, sqlite3.OperationalError) and ("unable to open" in text or "disk" in text or "I/O" in text):
        return StoreUnavailable(f"sqlite {path}: {doing}: {text}")
    return StoreError(f"sqlite {path}: {doing}: {type(exc).__name__}: {text}")


def transaction(conn: sqlite3.Connection, path: str, doing: str, work: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``work`` in one ``BEGIN IMMEDIATE`` transaction, retried while the file is busy.

    ``BEGIN IMMEDIATE`` takes the write lock first, so two processes never both read, then
    both try to write (which SQLite can only resolve by failing one). The busy timeout of
    the connection waits for the lock; past it, the whole transaction is tried again with a
    short random pause, up to :data:`BUSY_DEADLINE`. ``work`` must only touch the database
    (it may run more than once).
    """
    deadline = time.monotonic() + BUSY_DEADLINE
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn)
                conn.execute("COMMIT")
                return result
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            if not _is_busy(exc) or time.monotonic() > deadline:
                raise translate(exc, path, doing) from None
            time.sleep(random.uniform(0.001, 0.01))


@contextlib.contextmanager
def reading(conn: sqlite3.Connection, path: str, doing: str) -> Iterator[sqlite3.Connection]:
    """A read transaction: one consistent snapshot of the file (WAL readers never block)."""
    try:
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("COMMIT")
    except sqlite3.Error as exc:
        raise translate(exc, path, doing) from None


def _create_private(path: Path) -> None:
    """Create the directory (0700) and an empty file (0600) unless they exist.

    SQLite creates its ``-wal`` and ``-shm`` files with the permissions of the database
    file, so those are owner-only as well.
    """
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def _check_header(path: Path) -> None:
    try:
        with path.open("rb") as f:
            head = f.read(len(_HEADER))
    except OSError as exc:
        raise StoreUnavailable(f"sqlite {path}: cannot read the file ({exc})") from None
    if head and head != _HEADER[: len(head)]:
        raise StoreError(f"sqlite {path}: not a SQLite database (a foreign or damaged file); refusing to touch it")
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "sqlite %s: the file is readable or writable by other users (mode %o); "
            "whoever can write it can change what runs: chmod 600 it",
            path,
            stat.S_IMODE(mode),
            extra={"event": "sqlite_permissions", "path": str(path)},
        )


def connect(path: str, *, busy_timeout: float, read_only: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), usable from any thread
    (the store serialises its use with a lock)."""
    target = f"file:{Path(path).as_posix()}?mode=ro" if read_only else path
    conn = sqlite3.connect(target, timeout=busy_timeout, isolation_level=None, check_same_thread=False, uri=read_only)
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    return conn


#: The oldest SQLite library the store works with: RETURNING (3.35) and the JSON functions
#: (built in since 3.38; earlier only when compiled with JSON1, which Python's builds are).
MIN_SQLITE = (3, 35, 0)


def _check_library(conn: sqlite3.Connection, path: str) -> None:
    if sqlite3.sqlite_version_info < MIN_SQLITE:
        raise StoreError(
            f"sqlite {path}: this Python links SQLite {sqlite3.sqlite_version}; "
            f"schedcore needs {'.'.join(map(str, MIN_SQLITE))} or newer"
        )
    try:
        conn.execute("SELECT json_valid('{}')").fetchone()
    except sqlite3.OperationalError:
        raise StoreError(
            f"sqlite {path}: this Python's SQLite {sqlite3.sqlite_version} lacks the JSON functions schedcore needs"
        ) from None


#: ``PRAGMA synchronous`` levels a store may ask for (see :class:`schedcore.sqlite.SQLiteStore`).
SYNCHRONOUS = ("full", "normal")


def open_database(path: str, *, busy_timeout: float, synchronous: str = "full") -> sqlite3.Connection:
    """Open (creating if needed) the schedcore database at ``path``; StoreError when the file
    is foreign, damaged or newer than this schedcore, StoreUnavailable when it cannot be opened.
    ``synchronous``: one of :data:`SYNCHRONOUS`."""
    if synchronous not in SYNCHRONOUS:
        raise ValueError(f"synchronous must be one of {SYNCHRONOUS}, not {synchronous!r}")
    file = Path(path)
    _create_private(file)
    _check_header(file)
    try:
        conn = connect(path, busy_timeout=busy_timeout)
    except sqlite3.Error as exc:
        raise translate(exc, path, "open") from None
    try:
        _check_library(conn, path)
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"sqlite {path}: cannot use WAL mode (got {mode!r}); is it on a network file system?")
        # FULL in WAL mode fsyncs the log at each commit: nothing committed is lost to a power
        # cut. The store commits a whole batch at once, so that is one fsync per batch (about
        # 5% of dispatch throughput here, see docs/benchmarks.md). NORMAL skips it: durable
        # against a crash of the process only -- a documented option, never the default.
        conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        transaction(conn, path, "open", _prepare)
    except sqlite3.Error as exc:
        conn.close()
        raise translate(exc, path, "open") from None
    except BaseException:
        conn.close()
        raise
    return conn


def _prepare(conn: sqlite3.Connection) -> None:
    """Create the schema in an empty file, check the version of an existing one, migrate."""
    path = conn.execute("PRAGMA database_list").fetchone()[2]
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    tables.discard("sqlite_sequence")
    if not tables:
        for statement in _statements(_DDL_V1):
            conn.execute(statement)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("INSERT INTO schedcore_meta VALUES ('schema_version', ?), ('last_token', '0')", (str(1),))
        _migrate(conn, path, 1)
        return
    if "schedcore_meta" not in tables:
        raise StoreError(
            f"sqlite {path}: a SQLite database without schedcore's tables (found {', '.join(sorted(tables)[:5])}); "
            "refusing to use a foreign file -- choose another path"
        )
    row = conn.execute("SELECT value FROM schedcore_meta WHERE key = 'schema_version'").fetchone()
    try:
        version = int(row[0])
    except (TypeError, ValueError):
        raise StoreError(f"sqlite {path}: the schema version is missing or unreadable ({row!r})") from None
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"sqlite {path}: written by a newer schedcore (schema {version}; this version reads up to "
            f"{SCHEMA_VERSION}); upgrade schedcore to use this file"
        )
    _migrate(conn, path, version)
    missing = _TABLES - _current_tables(conn)
    if missing:
        raise StoreError(
            f"sqlite {path}: damaged schema: table(s) {', '.join(sorted(missing))} missing; "
            "restore the file from a backup"
        )


def _current_tables(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _migrate(conn: sqlite3.Connection, path: str, version: int) -> None:
    start = version
    while version < SCHEMA_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise StoreError(
                f"sqlite {path}: no migration from schema {version} (this version writes {SCHEMA_VERSION})"
            )
        for statement in step:
            conn.execute(statement)
        version += 1
    if version != start:
        conn.execute("UPDATE schedcore_meta SET value = ? WHERE key = 'schema_version'", (str(version),))
        log.warning(
            "sqlite %s: migrated the schema from version %d to %d",
            path,
            start,
            version,
            extra={"event": "sqlite_migrated", "from": start, "to": version},
        )


def _statements(script: str) -> list[str]:
    """The statements of a DDL script (no statement of ours holds a ';' in a string)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
