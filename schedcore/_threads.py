"""The skeleton of schedcore's background threads: a daemon thread that runs until stopped.

The heartbeat thread (:mod:`schedcore._beater`) and the SQLite store's watch
(:mod:`schedcore._sqlite_watch`) both wake every so often until asked to stop; they differ
only in what one wake does.
"""

from __future__ import annotations

import threading

__all__ = ["StoppableThread"]


class StoppableThread:
    """Runs :meth:`_run` on a daemon thread from :meth:`start` until :meth:`stop`.

    ``_run`` waits on ``self._stopped`` (``self._stopped.wait(period)``) between wakes, so
    that :meth:`stop` ends it at once instead of after a period.
    """

    def __init__(self, name: str) -> None:
        self._stopped = threading.Event()
        # Daemon: a thread left running must never keep the process alive at exit.
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start the thread (once)."""
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end and wait for it (up to 5 s). Idempotent, and callable from the
        thread itself (which then ends after its current wake)."""
        self._stopped.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)

    def _run(self) -> None:
        raise NotImplementedError
