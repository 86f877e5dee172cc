"""RedisStore: the :class:`~schedcore.protocols.Store` on Redis, shared by any number of schedulers.

Layout in :mod:`schedcore_redis._keys`; every change touching more than one key is one
Lua script (:mod:`schedcore_redis._scripts`), so claims, commits and outcomes are atomic
and fenced on the server. Readings where the protocol leaves room follow
:class:`schedcore.memory.MemoryStore`, the reference implementation.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs
import redis.exceptions as rex

from schedcore._time import from_ms, require_aware, to_ms
from schedcore.doctor import CheckReport
from schedcore.exceptions import CorruptScheduleData, ScheduleExists, ScheduleNotFound, StoreError, ValidationError
from schedcore.model import Conflict, Schedule
from schedcore.protocols import SchedulerBeat, StoreStats
from schedcore.records import AddResult, Pending, RunRecord, StoredSchedule
from schedcore.storekit import (
    DEAD_BEATS_KEPT,
    check_add,
    check_add_items,
    check_conflict,
    check_extra_entry,
    check_heartbeat,
    check_limit,
    check_set_paused,
    fire_on_add,
    fire_on_replace,
)
from schedcore.triggers import At, Cron, Interval
from schedcore_redis._codec import (
    decode_fire,
    decode_parked,
    decode_record,
    decode_schedule,
    encode_fire,
    encode_schedule,
    member,
    split_state,
    text,
)
from schedcore_redis._connect import _Connection
from schedcore_redis._damage import diagnosed, is_damage, schedule_damage
from schedcore_redis._errors import translated
from schedcore_redis._index import _TimeIndex

__all__ = ["RedisStore"]

_CAS_ATTEMPTS = 50  # optimistic retries of add/set_paused under concurrent writers


class RedisStore(_TimeIndex, _Connection):
    """A :class:`~schedcore.protocols.Store` on Redis: safe for many schedulers in many processes.

    ``client`` is a :class:`redis.Redis` or a :class:`redis.cluster.RedisCluster` (its
    ``decode_responses`` setting does not matter); every key lives under
    ``{schedcore:<namespace>}:``, one Redis Cluster hash slot, so each script and pipeline
    of a namespace goes to the one node that serves its slot. The run
    history keeps the newest ``history_limit`` records per schedule; with ``history_ttl``
    (seconds or a timedelta) a schedule's history expires that long after its last change.

    Redis errors are raised as :class:`~schedcore.exceptions.StoreUnavailable` (cannot
    reach the server now: retry later) or :class:`~schedcore.exceptions.StoreError`;
    data that cannot be decoded for one schedule is logged and skipped
    (:class:`~schedcore.exceptions.CorruptScheduleData` from :meth:`get`).
    """

    #: Schedules per ``add_many`` script call (except with ``conflict="error"``: one call, all or
    #: nothing): big enough to make the round trip cheap, small enough not to hold up the server.
    add_chunk_size: int = 1000

    def add(self, schedule: Schedule, first: Pending | None, conflict: Conflict) -> AddResult:
        """See :meth:`schedcore.protocols.Store.add`. One Lua call, retried if a writer raced us."""
        check_add(schedule, first)
        conflict = check_conflict(conflict)
        sid = schedule.id
        raw_new = encode_schedule(schedule)
        self._forget_unreadable(sid)
        stored_value = ""  # first guess: a new schedule (one round trip)
        for _ in range(_CAS_ATTEMPTS):
            result, mode = self._add_decision(schedule, raw_new, first, stored_value, conflict)
            if mode is None:
                return result
            args: list[Any] = [self.keys.prefix, self.keys.channel, sid, stored_value, raw_new, mode]
            args += [encode_fire(first), to_ms(first.due)] if first is not None and mode == "set" else ["", 0]
            with translated("add"):
                reply = self._add(keys=self.keys.scripts, args=args)
            if int(reply[0]) == 1:
                return result
            stored_value = text(reply[1])
        raise StoreError(f"redis: add of {sid!r} kept racing with other writers; try again")

    def add_many(self, items: Sequence[tuple[Schedule, Pending | None]], conflict: Conflict) -> list[AddResult]:
        """See :meth:`schedcore.protocols.Store.add_many`: :meth:`add`'s compare-and-set, batched.

        One Lua call per :attr:`add_chunk_size` schedules guesses that every schedule is new;
        the script writes those whose stored value is the guessed one and returns the stored
        value of the others, for which Python decides as :meth:`add` does and calls again
        (retried like ``add`` while other writers race). With ``conflict="error"`` the whole
        batch is one call, so that a taken id writes nothing; keep such batches moderate (the
        server runs nothing else meanwhile).
        """
        conflict = check_conflict(conflict)
        batch = check_add_items(items)
        if not batch:
            return []
        raws = _encode_definitions([schedule for schedule, _ in batch])
        fires = _encode_fires([first for _, first in batch])
        self._forget_unreadable_many([schedule.id for schedule, _ in batch])
        exclusive = conflict is Conflict.ERROR
        chunk = len(batch) if exclusive else max(1, self.add_chunk_size)
        results: list[AddResult] = [AddResult.ADDED] * len(batch)
        todo = [(i, "") for i in range(len(batch))]  # (item, stored value expected); first guess: new
        for _ in range(_CAS_ATTEMPTS):
            again: list[tuple[int, str]] = []
            for start in range(0, len(todo), chunk):
                sent: list[int] = []
                # ARGV: 4 fixed ones, the items as lines (one string: far cheaper to send than six
                # arguments each), then each distinct definition and expected stored value once
                args: list[Any] = [self.keys.prefix, self.keys.channel, "1" if exclusive else "0", ""]
                numbers: dict[str, int] = {}  # definition -> its ARGV number
                lines: list[str] = []
                for i, stored_value in todo[start : start + chunk]:
                    schedule, first = batch[i]
                    result, mode = self._add_decision(schedule, raws[i], first, stored_value, conflict)
                    results[i] = result
                    if mode is None:
                        continue
                    raw = raws[i]
                    number = numbers.get(raw)
                    if number is None:
                        args.append(raw)
                        number = numbers[raw] = len(args)
                    expected = 0
                    if stored_value:
                        args.append(stored_value)
                        expected = len(args)
                    fire, due = fires[i] if mode == "set" else ("", 0)
                    lines.append(f"{schedule.id}\t{number}\t{mode}\t{fire}\t{due}\t{expected}\n")
                    sent.append(i)
                if not sent:
                    continue
                args[3] = "".join(lines)
                with translated("add_many"):
                    reply = self._add_many(keys=self.keys.scripts, args=args)
                if reply and int(reply[0]) == 0:  # exclusive: that item's id is taken, nothing written
                    raise ScheduleExists(batch[sent[int(reply[1]) - 1]][0].id)
                again += [(sent[int(reply[k]) - 1], text(reply[k + 1])) for k in range(0, len(reply), 2)]
            if not again:
                return results
            todo = again
        raise StoreError(f"redis: add_many of {len(todo)} schedules kept racing with other writers; try again")

    def _add_decision(
        self, schedule: Schedule, raw_new: str, first: Pending | None, stored_value: str, conflict: Conflict
    ) -> tuple[AddResult, str | None]:
        """What an add does given the stored value ('' none): its result and the script's fire
        mode (keep|drop|set), or None for a result that writes nothing. Raises ScheduleExists."""
        if not stored_value:
            return AddResult.ADDED, fire_on_add(schedule, first).value
        if conflict is Conflict.ERROR:
            raise ScheduleExists(schedule.id)
        if conflict is Conflict.KEEP:
            return AddResult.KEPT, None
        sid = schedule.id
        try:
            raw_old = split_state(sid, stored_value)[3]
            if raw_old == raw_new:
                return AddResult.UNCHANGED, None  # the same text decodes to the same schedule
            old: Schedule | None = decode_schedule(sid, raw_old)  # copies of one definition: decoded once
        except CorruptScheduleData:
            old = None  # unreadable: replacing it repairs the schedule
        mode = fire_on_replace(old, schedule, first)  # the script applies it; the CAS makes it atomic
        return (AddResult.UNCHANGED, None) if mode is None else (AddResult.REPLACED, mode.value)

    def remove(self, schedule_id: str) -> bool:
        """See :meth:`schedcore.protocols.Store.remove`: one Lua call deletes everything of the schedule."""
        self._forget_unreadable(schedule_id)
        with translated("remove"):
            return bool(self._remove(keys=self.keys.scripts, args=[self.keys.prefix, schedule_id]))

    def get(self, schedule_id: str) -> StoredSchedule | None:
        """See :meth:`schedcore.protocols.Store.get`; raises CorruptScheduleData for unreadable data."""
        with diagnosed(self._client, "get", self._shared("schedules")):
            found = self._read_many([schedule_id])
        value = found[0]
        if isinstance(value, CorruptScheduleData):
            raise value
        return value

    def list_schedules(self, *, after: str | None = None, limit: int = 100) -> list[StoredSchedule]:
        """See :meth:`schedcore.protocols.Store.list_schedules` (ZRANGEBYLEX pages; unreadable ones skipped)."""
        check_limit(limit)
        out: list[StoredSchedule] = []
        cursor = after
        while len(out) < limit:
            want = limit - len(out)
            low = "-" if cursor is None else f"({cursor}"
            with diagnosed(self._client, "list_schedules", self._shared("ids", "schedules")):
                ids = [text(i) for i in self._client.zrangebylex(self.keys.ids, low, "+", start=0, num=want)]
                found = self._read_many(ids)
            for value in found:
                if isinstance(value, CorruptScheduleData):
                    self._report(value)
                elif value is not None:
                    out.append(value)
            if len(ids) < want:
                break
            cursor = ids[-1]
        return out

    def iter_by_due(self, until: datetime | None = None, *, page_size: int = 100) -> Iterator[StoredSchedule]:
        """Schedules whose next fire entry waits in the time index, earliest due first (ties
        by id), due at or before ``until`` (None: all); read lazily, one round trip per page.

        Not part of the Store protocol: a Redis-specific read for callers that need
        time-ordered pages without a scan of every schedule (``schedcore_rq.compat``'s
        ``get_jobs``). An entry being handed over at this moment (claimed, so out of the
        index) is not listed; unreadable schedules are reported and skipped.
        """
        check_limit(page_size)
        high = "+inf" if until is None else str(to_ms(require_aware(until, "until")))
        low, seen_at_low = "-inf", 0  # the cursor: the last score read, and how many members had it
        while True:
            with diagnosed(self._client, "iter_by_due", self._shared("index", "schedules")):
                page: list[tuple[Any, float]] = self._client.zrangebyscore(  # type: ignore[assignment]
                    self.keys.index, low, high, start=seen_at_low, num=page_size, withscores=True
                )
                members = [(text(member), float(score)) for member, score in page]
                found = self._read_many([m for m, _ in members if "|" not in m])  # "|": retries and other entries
            for value in found:
                if isinstance(value, CorruptScheduleData):
                    self._report(value)
                elif value is not None and value.next_fire is not None:
                    yield value
            if len(page) < page_size:
                return
            last = members[-1][1]
            seen_at_low = (seen_at_low if str(int(last)) == low else 0) + sum(1 for _, s in members if s == last)
            low = str(int(last))

    def _read_many(self, ids: Sequence[str]) -> list[StoredSchedule | CorruptScheduleData | None]:
        if not ids:
            return []
        pipe = self._client.pipeline(transaction=False)
        pipe.hmget(self.keys.schedules, list(ids))
        for sid in ids:
            pipe.smembers(self.keys.running(sid))
        values, *runnings = pipe.execute(raise_on_error=False)
        if isinstance(values, Exception):
            raise values
        out: list[StoredSchedule | CorruptScheduleData | None] = []
        for sid, value, running in zip(ids, values, runnings, strict=True):
            if isinstance(running, rex.ConnectionError | rex.TimeoutError):
                raise running
            if value is None:
                out.append(None)
            elif isinstance(running, Exception):
                out.append(CorruptScheduleData(sid, f"foreign data under {self.keys.running(sid)}: {running}"))
            else:
                out.append(self._stored(sid, value, running))
        return out

    def _stored(self, sid: str, value: Any, running: Any) -> StoredSchedule | CorruptScheduleData:
        try:
            fire, started, parked, definition = split_state(sid, value)
            schedule = decode_schedule(sid, definition)
            try:
                next_fire = decode_fire(fire) if fire else None
                parked_entry = decode_parked(parked) if parked else None
                runs_started = int(started or "0")
            except (ValueError, KeyError) as exc:
                raise CorruptScheduleData(sid, f"unreadable state ({type(exc).__name__}: {exc})") from None
        except CorruptScheduleData as exc:
            return exc
        return StoredSchedule(
            schedule=schedule,
            next_fire=next_fire,
            runs_started=runs_started,
            running=tuple(sorted(text(r) for r in running)),
            parked=parked_entry,
        )

    def set_paused(self, schedule_id: str, paused: bool, next_fire: Pending | None) -> StoredSchedule:
        """See :meth:`schedcore.protocols.Store.set_paused` (compare-and-set of the definition in Lua)."""
        check_set_paused(paused, next_fire)
        for _ in range(_CAS_ATTEMPTS):
            stored = self.get(schedule_id)
            if stored is None:
                raise ScheduleNotFound(schedule_id)
            if stored.schedule.paused == paused:
                return stored  # pausing a paused schedule (resuming a running one) changes nothing
            with translated("set_paused"):
                raw_old = self._client.hget(self.keys.schedules, schedule_id)
            if raw_old is None:
                continue
            new = stored.schedule.evolve(paused=paused)
            fire = next_fire if not paused else None
            args: list[Any] = [self.keys.prefix, self.keys.channel, schedule_id, text(raw_old), encode_schedule(new)]
            args += [encode_fire(fire), to_ms(fire.due)] if fire is not None else ["", 0]
            with translated("set_paused"):
                written = int(self._set_paused(keys=self.keys.scripts, args=args))
            if written == -1:
                raise ScheduleNotFound(schedule_id)
            if written == 1:
                after = self.get(schedule_id)
                if after is None:
                    raise ScheduleNotFound(schedule_id)
                return after
        raise StoreError(f"redis: set_paused of {schedule_id!r} kept racing with other writers; try again")

    def enqueue(self, schedule_id: str, entries: Sequence[Pending]) -> int:
        """See :meth:`schedcore.protocols.Store.enqueue`."""
        args: list[Any] = [self.keys.prefix, self.keys.channel, schedule_id]
        for entry in entries:
            check_extra_entry(entry, "entries")
            args += [member(schedule_id, entry), to_ms(entry.due)]
        with translated("enqueue"):
            reply = self._enqueue(keys=self.keys.scripts, args=args)
        if is_damage(reply):
            raise schedule_damage(schedule_id, reply, "nothing enqueued")
        added = int(reply)
        if added < 0:
            raise ScheduleNotFound(schedule_id)
        return added

    def history(self, schedule_id: str, limit: int = 50) -> list[RunRecord]:
        """See :meth:`schedcore.protocols.Store.history`; undecodable lines are logged and skipped."""
        check_limit(limit)
        with translated("history"):
            try:
                lines = self._client.lrange(self.keys.history(schedule_id), 0, limit - 1)
            except rex.ResponseError as exc:
                self._report(CorruptScheduleData(schedule_id, f"history is foreign data ({exc})"))
                return []
        out: list[RunRecord] = []
        for line in lines:
            try:
                out.append(decode_record(line))
            except Exception as exc:
                self._report(CorruptScheduleData(schedule_id, f"history record unreadable ({type(exc).__name__})"))
        return out

    def heartbeat(self, owner: str, info: Mapping[str, Any], *, now: datetime, ttl: timedelta) -> None:
        """See :meth:`schedcore.protocols.Store.heartbeat`: one Lua call (drops expired beats too)."""
        check_heartbeat(owner, info, ttl)
        now_ms = to_ms(require_aware(now, "now"))
        expires_ms = now_ms + max(1, -(-ttl // timedelta(milliseconds=1)))
        try:
            beat = json.dumps({"beat": now_ms, "expires": expires_ms, "info": dict(info)}, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise ValidationError("info", info, f"must be JSON-serializable ({exc})") from None
        with translated("heartbeat"):
            cutoff = now_ms - DEAD_BEATS_KEPT // timedelta(milliseconds=1)  # (see the CLAIM script)
            self._heartbeat(keys=self._beat_keys, args=[owner, beat, now_ms, expires_ms, cutoff])

    def schedulers(self, now: datetime) -> list[SchedulerBeat]:
        """See :meth:`schedcore.protocols.Store.schedulers` (one HGETALL; unreadable beats skipped)."""
        now_ms = to_ms(require_aware(now, "now"))
        with diagnosed(self._client, "schedulers", [(self._beat_keys[0], "hash")]):
            raw = self._client.hgetall(self._beat_keys[0])
        out: list[SchedulerBeat] = []
        for owner, value in raw.items():
            try:
                data = json.loads(text(value))
                beat, expires, info = int(data["beat"]), int(data["expires"]), data.get("info") or {}
            except (ValueError, KeyError, TypeError):
                continue  # not ours
            if expires > now_ms and isinstance(info, dict):
                out.append(
                    SchedulerBeat(owner=text(owner), beat_at=from_ms(beat), expires_at=from_ms(expires), info=info)
                )
        return sorted(out, key=lambda b: b.owner)

    def stats(self, now: datetime) -> StoreStats:
        """See :meth:`schedcore.protocols.Store.stats`: one MULTI/EXEC of counts (no scans)."""
        now_ms = to_ms(require_aware(now, "now"))
        pipe = self._client.pipeline(transaction=True)
        pipe.zcard(self.keys.ids)
        pipe.zcount(self.keys.index, "-inf", now_ms)
        pipe.zrange(self.keys.index, 0, 0, withscores=True)
        pipe.zcount(self.keys.leases, f"({now_ms}", "+inf")
        pipe.zcount(self.keys.leases, "-inf", now_ms)
        with diagnosed(self._client, "stats", self._shared("ids", "index", "leases")):
            schedules, due, head, in_flight, expired = pipe.execute()
        oldest = from_ms(int(head[0][1])) if head and due and int(head[0][1]) <= now_ms else None
        return StoreStats(
            schedules=int(schedules), due=int(due), oldest_due=oldest, in_flight=int(in_flight), expired=int(expired)
        )

    def check(self, *, repair: bool = False, now: datetime, lease: timedelta = timedelta(seconds=30)) -> CheckReport:
        """Check the namespace's consistency (``schedcore doctor``); with ``repair``, fix what
        can be fixed safely while schedulers run (see :mod:`schedcore_redis._doctor`). ``lease``
        is what a claim found without a lease gets when its owner is alive."""
        from schedcore_redis._doctor import run_check  # an operator's tool: loaded when used

        return run_check(self, now=now, repair=repair, lease=lease)


_PLAIN_TRIGGERS = (At, Cron, Interval)  # triggers whose equality is exact (see _shape)


def _is_container(field: attrs.Attribute[Any]) -> bool:
    default: Any = field.default
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        default = default.factory()
    return isinstance(default, dict | list | tuple)


# The fields but the id of a Schedule (all of them decide its stored text): containers and the rest.
_CONTAINERS = operator.attrgetter(*(f.name for f in attrs.fields(Schedule) if f.name != "id" and _is_container(f)))
_VALUES = operator.attrgetter(*(f.name for f in attrs.fields(Schedule) if f.name != "id" and not _is_container(f)))


def _shape(schedule: Schedule) -> tuple[Any, ...] | None:
    """A key equal for two schedules exactly when their stored texts are equal, or None.

    Encoding costs most of an add's Python time, and bulk adds are mostly copies of one
    definition under many ids. The key is exact where values compare exactly: built-in
    triggers (instants are UTC), enums and strings; ``retry.factor``, the one field that may
    be an int or a float (``2`` and ``2.0`` compare equal but encode apart), adds its type.
    Schedules with other triggers or non-empty args, kwargs, meta or executor options get
    None: each is encoded on its own.
    """
    if type(schedule.trigger) not in _PLAIN_TRIGGERS or any(_CONTAINERS(schedule)):
        return None
    return (type(schedule.retry.factor), *_VALUES(schedule))


def _encode_definitions(schedules: Sequence[Schedule]) -> list[str]:
    """:func:`encode_schedule` of each, encoding each distinct definition once (see :func:`_shape`)."""
    texts: dict[tuple[Any, ...], str] = {}
    out: list[str] = []
    last: tuple[Any, ...] | None = None
    raw = ""
    for schedule in schedules:
        key = _shape(schedule)
        if key is None or key != last:  # (a bulk add mostly repeats one shape: compared, not hashed)
            found = texts.get(key) if key is not None else None
            raw = found if found is not None else encode_schedule(schedule)
            if key is not None:
                texts[key] = raw
            last = key
        out.append(raw)
    return out


def _encode_fires(entries: Sequence[Pending | None]) -> list[tuple[str, int]]:
    """``(encode_fire(entry), due ms)`` of each (("", 0) for None), once per entry object
    (a batch of one trigger shares its first fire entry)."""
    done: dict[int, tuple[str, int]] = {}
    out: list[tuple[str, int]] = []
    for entry in entries:
        if entry is None:
            out.append(("", 0))
            continue
        encoded = done.get(id(entry))  # the batch holds every entry: ids are not reused meanwhile
        if encoded is None:
            encoded = done[id(entry)] = (encode_fire(entry), to_ms(entry.due))
        out.append(encoded)
    return out
