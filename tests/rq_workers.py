"""RQ worker classes for the supervisor tests (imported by ``rq worker --worker-class``). No tests here."""

from __future__ import annotations

import time
from typing import Any

from rq.worker import SimpleWorker


class SlowStartWorker(SimpleWorker):
    """Registers in Redis, says so (key ``ready:<name>``), then takes 3 s before RQ installs
    its signal handlers: a SIGTERM in that window ends the process with the default action,
    without unregistering -- the window every worker has, made wide enough to hit every time."""

    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        super().bootstrap(*args, **kwargs)
        self.connection.set(f"ready:{self.name}", 1)
        time.sleep(3)
