"""A scheduler stand-in for the SQLite multi-process tests: claim -> commit on one file.

    python worker.py PATH MODE NOW_SECONDS LEASE_SECONDS BATCH OCCURRENCES [BEAT_TTL_SECONDS]

MODE ``drain`` claims and commits until nothing is due (each fire entry moves on by 60 s
until OCCURRENCES are done) and prints ``{"claimed": n, "committed": n}``. MODE ``hang``
beats (when BEAT_TTL_SECONDS is given), claims one batch, prints the claimed
``[schedule id, token]`` pairs and sleeps: the test kills it with SIGKILL, the crash
between claim and commit.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import timedelta

from schedcore.records import Commit, PendingKind
from schedcore.sqlite import SQLiteStore
from schedcore.testing.factories import T0, at, commit_for, fire_entry


def main() -> None:
    path, mode, now_s, lease_s, batch_s, occurrences_s = sys.argv[1:7]
    store = SQLiteStore(path, history_limit=1000)
    now, lease, batch, occurrences = (
        at(float(now_s)),
        timedelta(seconds=float(lease_s)),
        int(batch_s),
        int(occurrences_s),
    )
    owner = f"worker-{os.getpid()}"
    if mode == "hang":
        if len(sys.argv) > 7:
            store.heartbeat(owner, {}, now=now, ttl=timedelta(seconds=float(sys.argv[7])))
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
