"""The time index of :class:`~schedcore_redis.RedisStore`: claims, commits, releases, outcomes,
``next_due`` and ``watch`` -- each batch one script call (one round trip), fenced on the server."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import redis.exceptions as rex

from schedcore._time import from_ms, to_ms
from schedcore.exceptions import CorruptScheduleData, ValidationError
from schedcore.records import Claim, Commit, Outcome, Pending
from schedcore.storekit import check_claim, check_commit, check_outcome, log_taken_back
from schedcore_redis._codec import (
    decode_fire,
    decode_schedule,
    encode_fire,
    encode_parked,
    encode_record,
    member,
    member_sid,
    outcome_patch,
    parse_member,
    text,
)
from schedcore_redis._core import log
from schedcore_redis._damage import diagnosed, is_damage, schedule_damage
from schedcore_redis._errors import translated
from schedcore_redis._roundtrip import send_now
from schedcore_redis._unreadable import _Unreadable
from schedcore_redis._watch import _Watcher


def _earliest(
    head: list[tuple[str, float]], leases: list[float], window: int, unreadable: set[str], bad_members: set[str]
) -> tuple[bool, datetime | None]:
    """The next due instant from the first ``window`` index entries and the first lease.

    (False, None) when every entry read belongs to an unreadable schedule and the index
    may hold more: the caller has to read further.
    """
    readable = [score for m, score in head if m not in bad_members and member_sid(m) not in unreadable][:1]
    if not readable and len(head) >= window:
        return False, None
    candidates = readable + leases
    return True, (from_ms(int(min(candidates))) if candidates else None)


class _TimeIndex(_Unreadable):
    """Claims what is due and commits what was dispatched (see :mod:`schedcore_redis._scripts`)."""

    def claim_due(self, now: datetime, *, limit: int, lease: timedelta, owner: str) -> list[Claim]:
        """See :meth:`schedcore.protocols.Store.claim_due`: one Lua call for the whole batch.

        Expired leases go back to the index first; entries of unreadable schedules are
        logged once and left in place.
        """
        args, expires_ms, marked = self._claim_args(now, limit, lease, owner)
        with translated("claim_due"):
            reply = self._claim(keys=self._claim_keys, args=args)
        return self._claimed(reply, owner, expires_ms, marked)

    def claim_due_nowait(self, now: datetime, *, limit: int, lease: timedelta, owner: str) -> Callable[[], list[Claim]]:
        """See ``claim_due_nowait`` in :class:`schedcore.protocols.Store`: the claim's Lua call
        is sent now and its reply read (and decoded) by the returned function, so the engine
        builds and sends the hand-off of the batch before meanwhile, and the server runs
        both back to back. (A cluster client claims at once.)"""
        args, expires_ms, marked = self._claim_args(now, limit, lease, owner)
        with translated("claim_due"):
            keys = self._claim_keys
            read = send_now(self._client, [("EVALSHA", self._claim.sha, len(keys), *keys, *args)])
        if read is None:
            claims = self.claim_due(now, limit=limit, lease=lease, owner=owner)
            return lambda: claims

        def claimed() -> list[Claim]:
            with translated("claim_due"):
                [reply] = read()
            if isinstance(reply, rex.NoScriptError):  # the server lost the script: nothing ran
                return self.claim_due(now, limit=limit, lease=lease, owner=owner)
            if isinstance(reply, Exception):
                with translated("claim_due"):
                    raise reply
            return self._claimed(reply, owner, expires_ms, marked)

        return claimed

    def _claim_args(self, now: datetime, limit: int, lease: timedelta, owner: str) -> tuple[list[Any], int, bool]:
        """The CLAIM script's arguments, the lease expiry (ms) and whether any schedule is
        marked unreadable (see :meth:`_claimed`)."""
        now_ms, expires_ms = check_claim(now, limit, lease, owner)
        with self._lock:
            skip = list(self._unreadable.items())
            marked = bool(skip) or bool(self._bad_members)
        args: list[Any] = [now_ms, limit, expires_ms, owner, self.keys.prefix, self.keys.channel, len(skip)]
        for sid, raw in skip:
            args += [sid, raw]
        return args, expires_ms, marked

    @property
    def _claim_keys(self) -> list[str]:
        # the heartbeats too: claims of an owner whose beat expired are taken back
        return self.keys.scripts + self._beat_keys

    def _claimed(self, reply: Sequence[Any], owner: str, expires_ms: int, marked: bool) -> list[Claim]:
        """Decode the CLAIM script's reply. ``marked``: some schedule was marked unreadable when
        the claim was made, so a readable claim may have to clear its mark (under the lock)."""
        items, bad, lapsed, relet = reply
        for n in range(0, len(lapsed), 2):
            log_taken_back(log, text(lapsed[n]), int(lapsed[n + 1]))
        if int(relet):
            log.error(
                "%d claims had no lease (the key %s was lost or replaced): leased again from now, not lost",
                int(relet),
                self.keys.leases,
                extra={"event": "claims_relet", "claims": int(relet)},
            )
        claims: list[Claim] = []
        refused: list[tuple[str, str]] = []
        lease_expires = from_ms(expires_ms)
        for item in items:
            m, due, fire, started, parked, running, token, raw = text(item).split("\n", 7)
            sid = member_sid(m)
            try:
                schedule = decode_schedule(sid, raw)
                try:
                    entry = decode_fire(fire) if m == sid else parse_member(m, due)
                except (ValueError, KeyError) as exc:
                    raise CorruptScheduleData(sid, f"unreadable index entry {m!r} ({exc})") from None
            except CorruptScheduleData as exc:
                with self._lock:
                    self._unreadable[sid] = raw
                self._report(exc)
                refused.append((m, token))
                continue
            if marked:
                with self._lock:
                    self._unreadable.pop(sid, None)
                    self._bad_members.discard(m)
            claims.append(
                Claim(
                    schedule=schedule,
                    entry=entry,
                    token=int(token),
                    owner=owner,
                    lease_expires=lease_expires,
                    runs_started=int(started or "0"),
                    running=int(running),
                    parked=parked == "1",
                )
            )
        for n in range(0, len(bad), 3):
            sid, reason, bad_member = text(bad[n]), text(bad[n + 1]), text(bad[n + 2])
            with self._lock:
                if len(self._bad_members) < 100_000:
                    self._bad_members.add(bad_member)
            self._report(CorruptScheduleData(sid, reason))
        if refused:  # undecodable: give them back untouched (skipped from now on)
            with translated("claim_due"):
                self._release(keys=self.keys.scripts, args=[self.keys.channel, *(v for pair in refused for v in pair)])
        return claims

    def commit(self, commits: Sequence[Commit]) -> list[bool]:
        """See :meth:`schedcore.protocols.Store.commit`: the whole batch in one Lua call, each
        item fenced by its token (a lost lease writes nothing for that item)."""
        return self._commit_batch(commits, peek=False)[0]

    def commit_and_next_due(self, commits: Sequence[Commit]) -> tuple[list[bool], datetime | None]:
        """See :meth:`schedcore.protocols.Store.commit_and_next_due`: the same Lua call reads the
        heads of the index and of the leases after committing (one round trip for both)."""
        if not commits or type(self).commit is not _TimeIndex.commit:  # a subclass's own commit comes first
            return self.commit(commits), self.next_due()
        done, peeked = self._commit_batch(commits, peek=True)
        return done, (peeked[0] if peeked is not None else self.next_due())

    def _commit_batch(
        self, commits: Sequence[Commit], *, peek: bool
    ) -> tuple[list[bool], tuple[datetime | None] | None]:
        """Commit; with ``peek``, also the next due instant (None inside: nothing due; None
        outside: the peeked head held only unreadable entries, ask :meth:`next_due`)."""
        if not commits:
            return [], None
        with self._lock:
            unreadable = set(self._unreadable)
            bad_members = set(self._bad_members)
        window = len(unreadable) + len(bad_members) + 1 if peek else 0
        args = self._commit_args(commits, window)
        with translated("commit"):
            done, head, leases = self._commit(keys=self.keys.scripts, args=args)
        results = [not is_damage(v) and int(v) == 1 for v in done]
        for item, v in zip(commits, done, strict=True):
            if is_damage(v):  # nothing of it was written; its claim stays until the lease ends
                sid = item.claim.schedule_id
                self._report(schedule_damage(sid, v, f"commit of {item.claim.entry.kind.value} not written"))
        if not peek:
            return results, None
        pairs = [(text(head[i]), float(head[i + 1])) for i in range(0, len(head), 2)]
        known, due = _earliest(
            pairs, [float(leases[i + 1]) for i in range(0, len(leases), 2)], window, unreadable, bad_members
        )
        return results, ((due,) if known else None)

    def _commit_args(self, commits: Sequence[Commit], window: int) -> list[Any]:
        """The COMMIT script's arguments (see :data:`_scripts.COMMIT`); ``window``: entries to peek at."""
        args: list[Any] = [self.keys.prefix, self.keys.channel, self.history_limit, self.history_ttl, window]
        for item in commits:
            check_commit(item)
            claim = item.claim
            sid = claim.schedule_id
            records = (*item.dispatched, *item.skipped)
            if len(records) > 1:
                records = tuple(sorted(records, key=lambda r: (r.nominal, r.attempt)))
            nxt = item.next_fire
            fields = [
                member(sid, claim.entry),
                sid,
                str(claim.token),
                encode_fire(nxt) if nxt is not None else "",
                str(to_ms(nxt.due)) if nxt is not None else "0",
                encode_parked(item.park) if item.park is not None else "",
                str(item.runs_started),
                str(len(records)),
                *(encode_record(r) for r in records),  # JSON: never a raw newline
                str(len(item.dispatched)),
                *(r.run_id for r in item.dispatched),
            ]
            args.append("\n".join(fields))
        return args

    def release(self, claims: Sequence[Claim]) -> None:
        """See :meth:`schedcore.protocols.Store.release`."""
        if not claims:
            return
        args: list[Any] = [self.keys.channel]
        for claim in claims:
            args += [member(claim.schedule_id, claim.entry), claim.token]
        with translated("release"):
            self._release(keys=self.keys.scripts, args=args)

    def record_outcome(self, outcome: Outcome, retry: Pending | None) -> bool:
        """See :meth:`schedcore.protocols.Store.record_outcome`: one Lua call, at most once per run id."""
        check_outcome(outcome, retry)
        sid = outcome.schedule_id
        args: list[Any] = [
            self.keys.prefix,
            self.keys.channel,
            sid,
            outcome.run_id,
            outcome_patch(outcome, retry),
            member(sid, retry) if retry is not None else "",
            to_ms(retry.due) if retry is not None else 0,
            self.history_ttl,
        ]
        with translated("record_outcome"):
            done = self._outcome(keys=self.keys.scripts, args=args)
        if is_damage(done):
            raise schedule_damage(sid, done, f"outcome of {outcome.run_id} not recorded")
        return int(done) == 1

    def next_due(self) -> datetime | None:
        """See :meth:`schedcore.protocols.Store.next_due` (index head and earliest lease; skips
        entries of schedules known to be unreadable)."""
        with self._lock:
            unreadable = set(self._unreadable)
            bad_members = set(self._bad_members)
        window = len(unreadable) + len(bad_members) + 1
        while True:
            pipe = self._client.pipeline(transaction=False)
            pipe.zrange(self.keys.index, 0, window - 1, withscores=True)
            pipe.zrange(self.keys.leases, 0, 0, withscores=True)
            with diagnosed(self._client, "next_due", self._shared("index", "leases")):
                head, leases = pipe.execute()
            pairs = [(text(m), float(score)) for m, score in head]
            known, due = _earliest(pairs, [float(score) for _, score in leases], window, unreadable, bad_members)
            if known:
                return due
            window *= 4  # the head is all unreadable entries: look further

    def watch(self, callback: Callable[[datetime], None]) -> Callable[[], None]:
        """See :meth:`schedcore.protocols.Store.watch`: a pub/sub subscription on the namespace's
        wake channel, read by a background thread with its own connection (reconnecting after
        errors; after a reconnect the callback is called with :meth:`next_due`)."""
        if not callable(callback):
            raise ValidationError("callback", callback, "must be callable")
        watcher = _Watcher(self, callback)
        watcher.start()
        with self._lock:
            self._watchers.append(watcher.stop)
        return watcher.stop
