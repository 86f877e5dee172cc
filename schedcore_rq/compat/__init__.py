"""rq-scheduler's public API on schedcore: ``from schedcore_rq.compat import Scheduler``.

See :class:`Scheduler` and docs/migrating.md for what each call does and where it
deliberately differs from rq-scheduler 0.14.
"""

from __future__ import annotations

from schedcore_rq.compat._scheduler import Scheduler

__all__ = ["Scheduler"]
