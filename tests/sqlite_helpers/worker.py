"""A scheduler stand-in for the SQLite multi-process tests: claim -> commit on one file.

    python worker.py PATH MODE NOW_SECONDS LEASE_SECONDS BATCH OCCURRENCES [BEAT_TTL_SECONDS]

MODE ``drain`` claims and commits until nothing is due (each fire entry moves on by 60 s
until OCCURRENCES are done) and prints ``{"claimed": n, "committed": n}``. MODE ``hang``
beats (when BEAT_TTL_SECONDS is given), claims one batch, prints the claimed
``[schedule id, token]`` pairs and sleeps: the test kills it with SIGKILL, the crash
between claim and commit.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: tests/ for store_worker

from store_worker import run

from schedcore.sqlite import SQLiteStore


def main() -> None:
    path, mode = sys.argv[1:3]
    store = SQLiteStore(path, history_limit=1000)
    run(store, mode, sys.argv[3:7], sys.argv[7] if len(sys.argv) > 7 else None)


if __name__ == "__main__":
    main()
