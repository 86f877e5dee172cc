"""A scheduler stand-in for the multi-process tests: loops claim -> commit on one RedisStore.

    python worker.py URL NAMESPACE MODE NOW_SECONDS LEASE_SECONDS BATCH OCCURRENCES

MODE ``drain`` claims and commits until nothing is due (each fire entry moves on by 60 s
until OCCURRENCES are done) and prints ``{"claimed": n, "committed": n}``. MODE ``hang``
claims one batch, prints the claimed ``[schedule id, token]`` pairs and sleeps (the test
kills it with SIGKILL: the crash between claim and commit).
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import timedelta

from schedcore.records import Commit, PendingKind
from schedcore.testing.factories import T0, at, commit_for, fire_entry
from schedcore_redis import RedisStore


def main() -> None:
    url, namespace, mode, now_s, lease_s, batch_s, occurrences_s = sys.argv[1:8]
    store = RedisStore.from_url(url, namespace=namespace, history_limit=1000, check=False)
    now, lease, batch, occurrences = (
        at(float(now_s)),
        timedelta(seconds=float(lease_s)),
        int(batch_s),
        int(occurrences_s),
    )
    owner = f"worker-{os.getpid()}"
    if mode == "hang":
        claims = store.claim_due(now, limit=batch, lease=lease, owner=owner)
        print(json.dumps({"claimed": [[c.schedule_id, c.token] for c in claims]}), flush=True)
        time.sleep(600)
        return
    claimed = committed = 0
    while claims := store.claim_due(now, limit=batch, lease=lease, owner=owner):
        claimed += len(claims)
        commits: list[Commit] = []
        for c in claims:
            nominal = (c.entry.nominal - T0).total_seconds()
            more = c.entry.kind is PendingKind.FIRE and nominal + 60 < occurrences * 60
            commits.append(commit_for(c, next_fire=fire_entry(nominal + 60) if more else None))
        committed += sum(store.commit(commits))
    store.close()
    print(json.dumps({"claimed": claimed, "committed": committed}), flush=True)


if __name__ == "__main__":
    main()
