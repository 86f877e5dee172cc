"""A scheduler stand-in for the multi-process tests: loops claim -> commit on one RedisStore.

    python worker.py URL NAMESPACE MODE NOW_SECONDS LEASE_SECONDS BATCH OCCURRENCES

MODE ``drain`` claims and commits until nothing is due (each fire entry moves on by 60 s
until OCCURRENCES are done) and prints ``{"claimed": n, "committed": n}``. MODE ``hang``
claims one batch, prints the claimed ``[schedule id, token]`` pairs and sleeps (the test
kills it with SIGKILL: the crash between claim and commit).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: tests/ for store_worker

from store_worker import run

from schedcore_redis import RedisStore


def main() -> None:
    url, namespace, mode = sys.argv[1:4]
    store = RedisStore.from_url(url, namespace=namespace, history_limit=1000, check=False)
    run(store, mode, sys.argv[4:8])


if __name__ == "__main__":
    main()
