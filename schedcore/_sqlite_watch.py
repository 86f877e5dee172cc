"""The SQLite store's ``watch``: a thread noticing other processes' writes to the file.

SQLite has no notifications across processes. ``PRAGMA data_version`` on a connection
changes whenever another connection commits a change to the file, and costs no I/O to
read, so a thread polls it every ``interval`` (50 ms by default) on its own read-only
connection. When it changed, the thread reads the earliest index entry and tells the
watchers when it is earlier than the earliest one it saw before: that is the only news a
sleeping scheduler needs (it sleeps until the earliest entry it knew of), so schedulers
are not woken for every commit of the others. Another process's put therefore reaches a
sleeping scheduler at most ``interval`` plus one small query after it was committed.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from schedcore import _sqlite_schema as schema
from schedcore._threads import StoppableThread
from schedcore._time import from_ms

__all__ = ["Poller"]

log = logging.getLogger("schedcore.sqlite")


class Poller(StoppableThread):
    """Polls ``PRAGMA data_version`` of ``path`` every ``interval`` on a daemon thread and calls
    ``notify([due])`` with a new earliest index entry. :meth:`stop` ends it (idempotent)."""

    def __init__(
        self, path: str, busy_timeout: float, interval: timedelta, notify: Callable[[Sequence[datetime]], None]
    ) -> None:
        super().__init__("schedcore-sqlite-watch")
        self._path = path
        self._busy_timeout = busy_timeout
        self._period = interval.total_seconds()
        self._notify = notify

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        version: int | None = None
        earliest: int | None = None
        failing = False
        while not self._stopped.is_set():
            try:
                if conn is None:
                    conn = schema.connect(self._path, busy_timeout=self._busy_timeout, read_only=True)
                    version, earliest = None, self._earliest(conn)
                now = conn.execute("PRAGMA data_version").fetchone()[0]
                if version is not None and now != version:
                    found = self._earliest(conn)
                    if found is not None and (earliest is None or found < earliest):
                        self._notify([from_ms(found)])
                    earliest = found
                version = now
                if failing:
                    log.warning("sqlite %s: watch works again", self._path)
                    failing = False
            except sqlite3.Error as exc:
                if not failing:  # said once; the scheduler still wakes at its next due instant
                    log.warning("sqlite %s: watch cannot read the file (%s); retrying", self._path, exc)
                    failing = True
                if conn is not None:
                    with contextlib.suppress(sqlite3.Error):
                        conn.close()
                    conn = None
            except Exception:
                log.exception("sqlite %s: watch callback failed", self._path)
            self._stopped.wait(self._period)
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    @staticmethod
    def _earliest(conn: sqlite3.Connection) -> int | None:
        row = conn.execute("SELECT MIN(due) FROM entries").fetchone()
        value = row[0] if row else None
        return value if isinstance(value, int) and not isinstance(value, bool) else None
