"""RedisStore: the :class:`~schedcore.protocols.Store` on Redis, shared by any number of schedulers.

Layout in :mod:`schedcore_redis._keys`; every change touching more than one key is one
Lua script (:mod:`schedcore_redis._scripts`), so claims, commits and outcomes are atomic
and fenced on the server. Readings where the protocol leaves room follow
:class:`schedcore.memory.MemoryStore`, the reference implementation.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import operator
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import attrs
import redis
import redis.exceptions as rex
from redis.cluster import RedisCluster
from redis.commands.core import Script

from schedcore._time import from_ms, require_aware, to_ms
from schedcore._validate import check_id
from schedcore.doctor import CheckReport
from schedcore.exceptions import (
    CorruptScheduleData,
    SchedcoreError,
    ScheduleExists,
    ScheduleNotFound,
    StoreError,
    ValidationError,
)
from schedcore.model import Conflict, Schedule, Serializer
from schedcore.protocols import SchedulerBeat, StoreStats
from schedcore.records import (
    AddResult,
    Claim,
    Commit,
    Outcome,
    Pending,
    RunRecord,
    StoredSchedule,
)
from schedcore.storekit import (
    DEAD_BEATS_KEPT,
    check_add_items,
    check_claim,
    check_commit,
    check_conflict,
    check_extra_entry,
    check_fire_entry,
    check_heartbeat,
    check_limit,
    log_taken_back,
)
from schedcore.triggers import At, Cron, Interval
from schedcore_redis import _scripts
from schedcore_redis._codec import (
    decode_fire,
    decode_parked,
    decode_record,
    decode_schedule,
    encode_fire,
    encode_parked,
    encode_record,
    encode_schedule,
    member,
    member_sid,
    outcome_patch,
    parse_member,
    split_state,
    text,
    with_id,
)
from schedcore_redis._damage import diagnosed, is_damage, schedule_damage
from schedcore_redis._errors import translate, translated
from schedcore_redis._keys import Keys, check_namespace
from schedcore_redis._roundtrip import send_now
from schedcore_redis._timeouts import COMMAND_TIMEOUT, command_options, service_options

__all__ = ["RedisStore"]

log = logging.getLogger("schedcore.redis")

_URL_SCHEMES = ("redis", "rediss", "unix")
_CLUSTER_SCHEMES = ("redis", "rediss")
_PROBE = "return redis.call('PEXPIRE', KEYS[1], 1)"  # see check_server
_CAS_ATTEMPTS = 50  # optimistic retries of add/set_paused under concurrent writers


class RedisStore:
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

    def __init__(
        self,
        client: redis.Redis | RedisCluster,
        *,
        namespace: str = "default",
        history_limit: int = 50,
        history_ttl: float | timedelta | None = None,
    ) -> None:
        if not isinstance(client, redis.Redis | RedisCluster):
            raise ValidationError("client", client, "expected a redis.Redis or redis.cluster.RedisCluster client")
        if isinstance(history_limit, bool) or not isinstance(history_limit, int) or history_limit < 1:
            raise ValidationError("history_limit", history_limit, "must be an integer >= 1")
        self.namespace = check_namespace(namespace)
        self.keys = Keys(namespace)
        self.history_limit = history_limit
        self.history_ttl = _ttl_seconds(history_ttl)
        self._client = client
        self._owns_client = False
        self._lock = threading.Lock()
        # Unreadable data, skipped by claim_due (left in place) and looked past by next_due:
        self._unreadable: dict[str, str] = {}  # schedule id -> its definition that failed to decode
        self._bad_members: set[str] = set()  # index members the claim script refused
        self._reported: set[tuple[str, str]] = set()  # (schedule id, reason) logged already
        self._shapes: dict[str, Schedule] = {}  # definition text -> a schedule decoded from it (see _decode)
        self._watchers: list[Callable[[], None]] = []
        self._closed = False
        self._claim = self._script(_scripts.CLAIM)
        self._commit = self._script(_scripts.COMMIT)
        self._release = self._script(_scripts.RELEASE)
        self._outcome = self._script(_scripts.RECORD_OUTCOME)
        self._add = self._script(_scripts.ADD)
        self._add_many = self._script(_scripts.ADD_MANY)
        self._set_paused = self._script(_scripts.SET_PAUSED)
        self._enqueue = self._script(_scripts.ENQUEUE)
        self._remove = self._script(_scripts.REMOVE)
        self._heartbeat = self._script(_scripts.HEARTBEAT)

    _TYPES = {"index": "zset", "leases": "zset", "claims": "hash", "schedules": "hash", "ids": "zset"}

    def _shared(self, *names: str) -> list[tuple[str, str]]:
        """(key, type) of the named namespace-wide keys (attributes of :class:`Keys`)."""
        return [(getattr(self.keys, name), self._TYPES[name]) for name in names]

    def _script(self, source: str) -> Script:
        return self._client.register_script(source)  # EVALSHA, falling back to EVAL on NOSCRIPT

    # -- construction ----------------------------------------------------------------

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        namespace: str = "default",
        history_limit: int = 50,
        history_ttl: float | timedelta | None = None,
        check: bool = True,
        cluster: bool = False,
        **client_options: Any,
    ) -> RedisStore:
        """A store on the server at ``url``: ``redis://[user:password@]host[:port][/db]``,
        ``rediss://...`` (TLS) or ``unix:///path/to/socket[?db=N]``.

        With ``cluster=True`` the URL names any one node of a Redis Cluster
        (``redis://[user:password@]host:port`` or ``rediss://...``; no ``unix://``, no
        database other than 0) and the store uses a :class:`redis.cluster.RedisCluster`,
        which discovers the other nodes; ``client_options`` then go to
        :meth:`redis.cluster.RedisCluster.from_url`.

        An unparsable URL or invalid namespace raises ValidationError; with ``check`` (the
        default) the server is contacted at once (:meth:`check_server`), so that an
        unreachable server or a refused AUTH is a one-line StoreUnavailable here rather
        than an error later. ``client_options`` go to :meth:`redis.Redis.from_url`.
        """
        shown = _redact(url)
        check_namespace(namespace)
        if not isinstance(url, str) or not url.strip():
            raise ValidationError("url", url, "expected a redis://, rediss:// or unix:// URL")
        try:
            parts = urlsplit(url)
            scheme = parts.scheme.lower()
            if cluster and scheme not in _CLUSTER_SCHEMES:
                raise ValueError("a cluster takes a redis:// or rediss:// URL")
            if scheme not in _URL_SCHEMES:
                raise ValueError("expected a redis://, rediss:// or unix:// URL")
            if scheme != "unix" and not parts.hostname:
                raise ValueError("no host given")
            if scheme == "unix" and not parts.path:
                raise ValueError("no socket path given")
            _ = parts.port  # raises ValueError for a bad port
            db = parts.path.strip("/") if scheme != "unix" else ""
            for key, value in parse_qsl(parts.query):
                if key == "db":
                    db = value
            if db and not db.isdigit():
                raise ValueError(f"database {db!r} is not a number")
            if cluster and db and int(db) != 0:
                raise ValueError("a cluster has only database 0")
            options = service_options(url)
            options.update(client_options)
            if check and not cluster and _slow(options):
                # First contact with the short timeouts of a command: a server that
                # never answers (or rediss:// at a plain port) fails in seconds, not minutes.
                _probe(url, {**options, **command_options()}, shown)
            client: redis.Redis | RedisCluster = (
                RedisCluster.from_url(url, **options) if cluster else redis.Redis.from_url(url, **options)
            )
        except ValidationError:
            raise
        except (ValueError, TypeError) as exc:
            raise ValidationError("url", shown, str(exc) or "cannot be parsed") from None
        store = cls(client, namespace=namespace, history_limit=history_limit, history_ttl=history_ttl)
        store._owns_client = True
        store._url = shown
        if check:
            try:
                store.check_server()
            except BaseException:
                store.close()
                raise
        return store

    _url: str | None = None

    def check_server(self) -> None:
        """Contact the server; warn when its configuration can silently lose schedules.

        Raises StoreUnavailable (one line, naming the server) when it cannot be reached or
        refuses AUTH, and StoreError when an ACL user may not run scripts on the
        namespace's keys (one no-op script call checks it). Logs a warning when
        ``maxmemory-policy`` is not ``noeviction`` (keys may be evicted) or when neither
        RDB snapshots nor AOF are enabled (a restart loses everything). Servers that
        refuse CONFIG (managed services, ACLs) are not checked.
        """
        where = self._url or repr(self._client)
        try:
            self._client.ping()
        except (rex.RedisError, OSError) as exc:
            raise _unreachable(exc, where) from None
        try:
            # A write by script on a key of the namespace (a no-op: the key never exists):
            # an ACL user without scripts or without the namespace's keys is one clear
            # line now, not a scheduler that starts and then fails every tick.
            self._client.eval(_PROBE, 1, self.keys.prefix + "probe")
        except rex.NoPermissionError as exc:
            raise StoreError(
                f"redis at {where}: the user lacks a permission schedcore needs ({exc}); "
                "see the ACL section of docs/operations.md"
            ) from None
        except (rex.RedisError, OSError) as exc:
            raise translate(exc, f"checking {where}") from None
        for warning in self.warnings():
            log.warning("%s", warning)

    def warnings(self) -> list[str]:
        """What in the server's configuration can silently lose schedules, one sentence each:
        a ``maxmemory-policy`` other than ``noeviction`` (keys may be evicted) and persistence
        off (neither RDB snapshots nor AOF: a restart loses everything). Empty when the server
        refuses CONFIG (managed services, ACLs) or cannot be reached: nothing can be said then.
        """
        where = self._url or repr(self._client)
        try:
            policy = self._config("maxmemory-policy")
            save = self._config("save")
            appendonly = self._config("appendonly")
        except (rex.RedisError, OSError):
            return []  # CONFIG refused or unknown: nothing to check
        found = []
        if policy is not None and policy != "noeviction":
            found.append(
                f"redis at {where} has maxmemory-policy={policy}: schedules may be evicted under memory "
                "pressure; use maxmemory-policy noeviction"
            )
        if save is not None and appendonly is not None and not save.strip() and appendonly == "no":
            found.append(
                f"redis at {where} has persistence off (no RDB snapshots, appendonly no): "
                "a restart loses every schedule"
            )
        return found

    def _node_client(self) -> redis.Redis:
        """The client itself, or on a cluster the client of the node serving the namespace."""
        if isinstance(self._client, RedisCluster):
            node = self._client.get_node_from_key(self.keys.prefix)  # type: ignore[no-untyped-call]
            return self._client.get_redis_connection(node)
        return self._client

    def _config(self, name: str) -> str | None:
        reply = self._node_client().config_get(name)
        for key, value in dict(reply).items():
            if text(key) == name:
                return text(value)
        return None

    # -- definitions -------------------------------------------------------------------

    #: Schedules per ``add_many`` script call (except with ``conflict="error"``: one call, all or
    #: nothing): big enough to make the round trip cheap, small enough not to hold up the server.
    add_chunk_size: int = 1000

    def add(self, schedule: Schedule, first: Pending | None, conflict: Conflict) -> AddResult:
        """See :meth:`schedcore.protocols.Store.add`. One Lua call, retried if a writer raced us."""
        if not isinstance(schedule, Schedule):
            raise ValidationError("schedule", schedule, "expected a Schedule")
        check_fire_entry(first, "first")
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
            return AddResult.ADDED, "set" if first is not None and not schedule.paused else "drop"
        if conflict is Conflict.ERROR:
            raise ScheduleExists(schedule.id)
        if conflict is Conflict.KEEP:
            return AddResult.KEPT, None
        sid = schedule.id
        try:
            raw_old = split_state(sid, stored_value)[3]
            if raw_old == raw_new:
                return AddResult.UNCHANGED, None  # the same text decodes to the same schedule
            old: Schedule | None = self._decode(sid, raw_old)  # copies of one definition: decoded once
        except CorruptScheduleData:
            old = None  # unreadable: replacing it repairs the schedule
        if old is not None and old == schedule:
            return AddResult.UNCHANGED, None
        if schedule.paused:
            return AddResult.REPLACED, "drop"
        if old is None or old.paused or not old.same_timing(schedule):
            return AddResult.REPLACED, "set" if first is not None else "drop"
        return AddResult.REPLACED, "keep"

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
        if not isinstance(paused, bool):
            raise ValidationError("paused", paused, "must be true or false")
        check_fire_entry(next_fire, "next_fire")
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

    # -- the time index ----------------------------------------------------------------

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
                schedule = self._decode(sid, raw)
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
        if not commits or type(self).commit is not RedisStore.commit:  # a subclass's own commit comes first
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
        if not isinstance(outcome, Outcome):
            raise ValidationError("outcome", outcome, "expected an Outcome")
        if retry is not None:
            check_extra_entry(retry, "retry")
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

    # -- operations ----------------------------------------------------------------------

    @property
    def _beat_keys(self) -> list[str]:
        # ``beats``: owner -> {"beat": ms, "expires": ms, "info": {...}}; ``beatx``: owner -> expiry ms
        return [self.keys.prefix + "beats", self.keys.prefix + "beatx"]

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

    def close(self) -> None:
        """Stop the watchers and, when the store made its own client (``from_url``), close it."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            watchers, self._watchers = self._watchers, []
        for stop in watchers:
            stop()
        if self._owns_client:
            with contextlib.suppress(rex.RedisError, OSError):
                if isinstance(self._client, RedisCluster):  # its close() leaves the nodes' pools open
                    self._client.disconnect_connection_pools()  # type: ignore[no-untyped-call]
                self._client.close()

    def __repr__(self) -> str:
        return f"<RedisStore namespace={self.namespace!r} {self._url or self._client!r}>"

    # -- internals ---------------------------------------------------------------------

    def _decode(self, sid: str, raw: str) -> Schedule:
        """:func:`decode_schedule` for claims, validating each definition text once.

        A stored definition leaves the id out, so schedules that differ only by id (a
        thousand copies of one cron job) share one text: the schedule decoded from it is
        kept, and the others are copies of it with their own id -- decoding and validating
        a definition costs ~100x more than the copy, and a batch claims many schedules once.
        """
        shape = self._shapes.get(raw)
        if shape is None or '"id"' in raw:  # a definition naming an id is checked against it every time
            schedule = decode_schedule(sid, raw)
            if len(self._shapes) >= 4096:
                self._shapes.clear()
            self._shapes[raw] = schedule
            return schedule
        if shape.id == sid:
            return shape
        if shape.serializer is Serializer.PICKLE or getattr(shape.trigger, "seed", None) == shape.id:
            # A signed pickle is bound to its id: copied text under another id must fail to verify.
            # A cron whose H fields hash this id may owe its seed to it (a text without one).
            return decode_schedule(sid, raw)
        try:
            check_id(sid, "id")
        except ValidationError as exc:
            raise CorruptScheduleData(sid, f"{type(exc).__name__}: {exc}") from None
        return with_id(shape, sid)

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


class _Watcher:
    """One ``watch`` subscription: a daemon thread reading the wake channel."""

    def __init__(self, store: RedisStore, callback: Callable[[datetime], None]) -> None:
        self._store = store
        self._callback = callback
        self._stopped = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"schedcore-redis-watch-{store.namespace}", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(timeout=5.0)  # subscribed (or failed once and retrying in the background)

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)

    def _call(self, due: datetime) -> None:
        try:
            self._callback(due)
        except Exception:
            log.exception("store watch callback %r failed", self._callback)

    def _run(self) -> None:
        channel = self._store.keys.channel
        backoff = 0.05
        failed = False
        while not self._stopped.is_set():
            pubsub = self._store._client.pubsub()  # type: ignore[no-untyped-call]
            try:
                pubsub.subscribe(channel)
                while (confirm := pubsub.get_message(timeout=1.0)) is None or confirm.get("type") != "subscribe":
                    if self._stopped.is_set():
                        return
                self._ready.set()
                if failed:
                    log.warning("redis watch on %s reconnected", channel)
                    failed, backoff = False, 0.05
                    due = self._store.next_due()  # notifications may have been missed meanwhile
                    if due is not None:
                        self._call(due)
                while not self._stopped.is_set():
                    message = pubsub.get_message(timeout=0.25)
                    if message is not None and message.get("type") == "message":
                        try:
                            dues = [from_ms(int(part)) for part in text(message["data"]).split(",")]
                        except (ValueError, OverflowError):
                            continue  # not ours
                        for due in dues:
                            self._call(due)
            except (rex.RedisError, OSError, StoreError) as exc:
                self._ready.set()
                if not failed:
                    log.warning("redis watch on %s lost its connection (%s); reconnecting", channel, exc)
                failed = True
                self._stopped.wait(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                with contextlib.suppress(rex.RedisError, OSError):
                    pubsub.close()


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


def _slow(options: Mapping[str, Any]) -> bool:
    """Whether the client may wait longer for a reply than a one-shot command would."""
    timeout = options.get("socket_timeout")
    return timeout is None or float(timeout) > COMMAND_TIMEOUT


def _probe(url: str, options: Mapping[str, Any], shown: str) -> None:
    """PING ``url`` once with ``options``; StoreUnavailable (one line, naming the server) if that fails."""
    client = redis.Redis.from_url(url, **{k: v for k, v in options.items() if k != "health_check_interval"})
    try:
        client.ping()
    except (rex.RedisError, OSError) as exc:
        raise _unreachable(exc, shown) from None
    finally:
        client.close()


def _unreachable(exc: BaseException, where: str) -> SchedcoreError:
    """The one-line error of a failed first contact with ``where`` (a redacted URL)."""
    err = translate(exc, f"connecting to {where}")
    message = str(err)
    if where.lower().startswith("rediss:") and isinstance(exc, rex.TimeoutError | rex.ConnectionError):
        # The usual cause: a plain (non-TLS) port, which never completes the TLS handshake.
        message += " (rediss:// needs the server's TLS port, e.g. redis-server --tls-port)"
    return type(err)(message)


def _redact(url: object) -> str:
    """``url`` with its password replaced by ``***`` (for messages)."""
    if not isinstance(url, str):
        return repr(url)
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[-1]}"))
    except ValueError:
        return url.split("@")[-1] if "@" in url else url


def _ttl_seconds(value: float | timedelta | None) -> int:
    if value is None:
        return 0
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ValidationError("history_ttl", value, "expected seconds, a timedelta or None")
    if not math.isfinite(seconds) or seconds < 1:
        raise ValidationError("history_ttl", value, "must be at least one second")
    return math.ceil(seconds)
