"""The quarantine of unreadable data in :class:`~schedcore_redis.RedisStore`: a schedule whose
definition or index member cannot be read is logged once (naming it) and set aside -- left in
place, skipped by claims and looked past by ``next_due`` -- until it is fixed or removed."""

from __future__ import annotations

from collections.abc import Sequence

from schedcore.exceptions import CorruptScheduleData
from schedcore_redis._codec import member_sid
from schedcore_redis._core import _StoreCore, log


class _Unreadable(_StoreCore):
    """Remembers, reports once and forgets the schedules that cannot be read."""

    def _report(self, exc: CorruptScheduleData) -> None:
        """Log unreadable data once per schedule and reason (it is skipped, not fatal)."""
        key = (exc.schedule_id, exc.reason)
        with self._lock:
            if key in self._reported:
                return
            if len(self._reported) > 10_000:
                self._reported.clear()
            self._reported.add(key)
        log.error("%s; skipping it (fix it or remove the schedule)", exc)

    def _forget_unreadable(self, sid: str) -> None:
        with self._lock:
            self._unreadable.pop(sid, None)
            self._bad_members = {m for m in self._bad_members if member_sid(m) != sid}

    def _forget_unreadable_many(self, sids: Sequence[str]) -> None:
        """:meth:`_forget_unreadable` for a batch: one pass over the bad members, none when there are none."""
        with self._lock:
            if not self._unreadable and not self._bad_members:
                return
            for sid in sids:
                self._unreadable.pop(sid, None)
            if self._bad_members:
                gone = set(sids)
                self._bad_members = {m for m in self._bad_members if member_sid(m) not in gone}
