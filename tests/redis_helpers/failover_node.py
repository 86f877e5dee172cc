"""A real scheduler process for the failover crash test (the default heartbeat, a long lease).

    python failover_node.py URL NAMESPACE MODE LEASE_SECONDS

Each hand-over is printed as a JSON line ``{"runs": [run ids], "at": unix time}``. MODE
``hang``: the hand-over then blocks forever, so the scheduler holds its claims while only
its heartbeat thread runs (the test kills it with SIGKILL). MODE ``serve``: the runs succeed
at once; SIGTERM stops it cleanly.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Sequence
from datetime import timedelta

from schedcore import Scheduler
from schedcore.records import Run
from schedcore.testing.executors import CallbackExecutor
from schedcore_redis import RedisStore


class PrintingExecutor(CallbackExecutor):
    def __init__(self, hang: bool) -> None:
        super().__init__()
        self.hang = hang

    def submit(self, runs: Sequence[Run]) -> None:
        print(json.dumps({"runs": [r.id for r in runs], "at": time.time()}), flush=True)
        if self.hang:
            threading.Event().wait()  # a hand-over that never ends: the loop is stuck here
        super().submit(runs)


def main() -> None:
    url, namespace, mode, lease_s = sys.argv[1:5]
    store = RedisStore.from_url(url, namespace=namespace)
    scheduler = Scheduler(
        store, PrintingExecutor(hang=mode == "hang"), lease=timedelta(seconds=float(lease_s)), owner=f"{mode}-node"
    )
    scheduler.run()
    store.close()


if __name__ == "__main__":
    main()
