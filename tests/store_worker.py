"""The claim -> commit loop the multi-process store tests run in each worker process.

Shared by ``tests/redis_helpers/worker.py`` and ``tests/sqlite_helpers/worker.py``, which
only open their store and read their own arguments.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from datetime import timedelta

from schedcore.protocols import Store
from schedcore.records import Commit, PendingKind
from schedcore.testing.factories import T0, at, commit_for, fire_entry


def run(store: Store, mode: str, args: Sequence[str], beat_ttl: str | None = None) -> None:
    """``args``: NOW_SECONDS LEASE_SECONDS BATCH OCCURRENCES. MODE ``drain`` claims and commits
    until nothing is due (each fire entry moves on by 60 s until OCCURRENCES are done) and
    prints ``{"claimed": n, "committed": n}``; MODE ``hang`` beats (with ``beat_ttl``),
    claims one batch, prints the claimed ``[schedule id, token]`` pairs and sleeps."""
    now_s, lease_s, batch_s, occurrences_s = args
    now, lease, batch, occurrences = (
        at(float(now_s)),
        timedelta(seconds=float(lease_s)),
        int(batch_s),
        int(occurrences_s),
    )
    owner = f"worker-{os.getpid()}"
    if mode == "hang":
        if beat_ttl is not None:
            store.heartbeat(owner, {}, now=now, ttl=timedelta(seconds=float(beat_ttl)))
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
