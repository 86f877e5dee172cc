"""The consistency checker of a Redis namespace (``RedisStore.check``, ``schedcore doctor``).

It reads the namespace with SCAN-family commands (MATCH on the namespace's hash-tag prefix,
never KEYS: this is an operator's tool, not a hot path), decodes every record with the
store's own decoders (nothing is unpickled or evaluated) and reports each problem as a
:class:`~schedcore.doctor.Finding`. With ``repair`` each fix is one call of :data:`REPAIR`,
which first checks on the server that what was read is still there unchanged -- so a repair
never races a concurrent claim, commit or add into a duplicate or a loss; a record that
changed meanwhile is left alone ("changed while checking", run again). Unreadable records
are never just deleted: they move to the quarantine hash ``{schedcore:<ns>}:quarantine``
(wrong-typed keys are renamed to ``{schedcore:<ns>}:quarantine:<key>@<ms>``), where the
operator can read them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import redis.exceptions as rex

from schedcore._time import require_aware, to_ms
from schedcore.doctor import CheckReport, Finding, expected_fire
from schedcore.exceptions import CorruptScheduleData
from schedcore.model import SCHEMA_VERSION, Schedule
from schedcore.records import Pending
from schedcore_redis._codec import (
    decode_fire,
    decode_parked,
    decode_record,
    decode_schedule,
    encode_fire,
    member_sid,
    split_state,
    text,
)
from schedcore_redis._errors import translated
from schedcore_redis._scripts import _COMMON, UNINDEX

if TYPE_CHECKING:
    from schedcore_redis._store import RedisStore

__all__ = ["REPAIR", "run_check"]

# KEYS: the store's six (idx, lease, claims, sched, ids, token), quarantine, beats, beatx.
# ARGV: op, prefix, channel, now ms, then the op's own. Returns {1, where it went ('' none)}
# when done, {0, ''} when what the checker read has changed meanwhile (nothing written).
REPAIR = (
    _COMMON
    + UNINDEX
    + r"""
local quarantine, beats, beatx = KEYS[7], KEYS[8], KEYS[9]
local op, prefix, channel, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local a, b, c, d, e = ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
-- keep value under a quarantine field no earlier repair used; returns the field
local function aside(name, value)
  local try, n = name, 1
  while redis.call('HSETNX', quarantine, try, value) == 0 do
    n = n + 1
    try = name .. '#' .. n
  end
  return try
end
local function redis_type(key)
  local t = redis.call('TYPE', key)
  if type(t) == 'table' then return t.ok end
  return t
end
local where = ''
if op == 'orphan' then  -- a: an index entry / claim of a schedule without definition
  local sid = sid_of(a)
  if redis.call('HEXISTS', sched, sid) == 1 then return {0, ''} end
  redis.call('ZREM', idx, a)
  redis.call('ZREM', lease, a)
  redis.call('HDEL', claims, a)
  redis.pcall('SREM', prefix .. 'x:' .. sid, a)
elseif op == 'orphan_id' then  -- a: a listed id without definition
  if redis.call('HEXISTS', sched, a) == 1 then return {0, ''} end
  redis.call('ZREM', ids, a)
elseif op == 'unlisted' then  -- a: a definition missing from ids
  if redis.call('HEXISTS', sched, a) == 0 then return {0, ''} end
  redis.call('ZADD', ids, 0, a)
elseif op == 'state' then
  -- a: sid, b: stored value read, c: new value, d: fire mode keep|set|drop, e: due;
  -- ARGV[10], ARGV[11]: quarantine field and value ('' none)
  if redis.call('HGET', sched, a) ~= b then return {0, ''} end
  if d ~= 'keep' then
    if redis.call('HEXISTS', claims, a) == 1 then return {0, ''} end  -- in flight: its commit decides
    redis.call('ZREM', lease, a)
    if d == 'set' then
      redis.call('ZADD', idx, e, a)
      note(e)
    else
      redis.call('ZREM', idx, a)
    end
  end
  redis.call('HSET', sched, a, c)
  if ARGV[10] ~= '' then where = aside(ARGV[10], ARGV[11]) end
elseif op == 'release' then  -- a: member, b: its claim as read; lease expired (or none)
  local claim = redis.call('HGET', claims, a)
  if claim ~= b then return {0, ''} end
  local expiry = redis.call('ZSCORE', lease, a)
  if expiry and tonumber(expiry) > now then return {0, ''} end
  unclaim(a, claim)
elseif op == 'lease' then  -- a: member, b: its claim as read, c: lease expiry to give it
  if redis.call('HGET', claims, a) ~= b or redis.call('ZSCORE', lease, a) then return {0, ''} end
  redis.call('ZADD', lease, c, a)
elseif op == 'drop_claim' then  -- a: member, b: its unreadable claim, c: quarantine field
  if redis.call('HGET', claims, a) ~= b then return {0, ''} end
  redis.call('HDEL', claims, a)
  redis.call('ZREM', lease, a)
  where = aside(c, b)
elseif op == 'drop_member' then  -- a: 'idx' or 'lease', b: member, c: quarantine field
  local key = a == 'idx' and idx or lease
  local score = redis.call('ZSCORE', key, b)
  if not score then return {0, ''} end
  if key == lease and redis.call('HEXISTS', claims, b) == 1 then return {0, ''} end
  redis.call('ZREM', key, b)
  redis.pcall('SREM', prefix .. 'x:' .. sid_of(b), b)
  where = aside(c, a .. ' ' .. b .. ' ' .. score)
elseif op == 'drop_schedule' then  -- a: sid, b: its unreadable stored value, c: quarantine field
  if redis.call('HGET', sched, a) ~= b then return {0, ''} end
  unindex(prefix, a)
  redis.call('HDEL', sched, a)
  redis.call('ZREM', ids, a)
  redis.call('DEL', prefix .. 'x:' .. a)
  where = aside(c, b)
elseif op == 'drop_record' then  -- a: list key, b: the unreadable item, c: quarantine field
  local removed = redis.pcall('LREM', a, 1, b)
  if type(removed) ~= 'number' or removed == 0 then return {0, ''} end
  where = aside(c, b)
elseif op == 'drop_beat' then  -- a: owner, b: its unreadable beat, c: quarantine field
  if redis.call('HGET', beats, a) ~= b then return {0, ''} end
  redis.call('HDEL', beats, a)
  redis.call('ZREM', beatx, a)
  where = aside(c, b)
elseif op == 'move_key' then  -- a: key, b: the type read, c: new name (made unique)
  if redis_type(a) ~= b then return {0, ''} end
  local name, n = c, 1
  while redis.call('EXISTS', name) == 1 do
    n = n + 1
    name = c .. '#' .. n
  end
  redis.call('RENAME', a, name)
  where = name
else
  return redis.error_reply('unknown repair ' .. op)
end
publish(channel)
return {1, where}
"""
)

# The namespace-wide keys: name (after the prefix) -> Redis type.
_FIXED = {
    "idx": "zset",
    "lease": "zset",
    "claims": "hash",
    "sched": "hash",
    "ids": "zset",
    "token": "string",
    "beats": "hash",
    "beatx": "zset",
    "quarantine": "hash",
}
# Per-schedule keys: prefix (after the namespace prefix) -> Redis type.
_PER_SCHEDULE = {"r:": "set", "x:": "set", "h:": "list"}
# Keys of others in the namespace, not checked here: the RQ executor's, and what repairs renamed.
_FOREIGN = ("rq:", "quarantine:")

# A readable schedule as read: its stored value, its definition and [f, n, p, definition text].
_State = tuple[bytes, Schedule, list[str]]

_CLAIM_RE = re.compile(r"^(\d+)\|(\d+)\|([01])\|(.*)$", re.S)
_EXTRA_RE = re.compile(r"^[^|]+\|[rmbu]\|\d+\|\d+$")

_ADVICE = {
    "idx": "every schedule's entries are lost to the schedulers",
    "lease": "claims in flight cannot expire",
    "claims": "no claim can be made or committed",
    "sched": "no schedule can be read",
    "ids": "schedules cannot be listed",
    "token": "no claim can get a fencing token",
    "beats": "heartbeats cannot be written",
    "beatx": "heartbeats cannot be written",
    "quarantine": "repairs cannot move records aside",
}


def _glob_escape(value: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", value)


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _Check:
    """One run of the checker over one namespace."""

    def __init__(self, store: RedisStore, now: datetime, repair: bool, lease: timedelta) -> None:
        self.store = store
        self.keys = store.keys
        self.client = store._node_client()  # the node serving the namespace's slot (one on a cluster)
        self.now = now
        self.now_ms = to_ms(now)
        self.repair = repair
        self.lease = lease
        self.findings: list[Finding] = []
        self.counts: dict[str, int] = {}
        self.prefix = self.keys.prefix
        self.quarantine = self.prefix + "quarantine"
        self.broken: set[str] = set()  # namespace-wide keys of the wrong type (left unread)
        self._script = self.client.register_script(REPAIR)

    # -- reporting and repairing ---------------------------------------------------------

    def found(
        self,
        kind: str,
        detail: str,
        *,
        key: str = "",
        sid: str | None = None,
        fix: tuple[Any, ...] | None = None,
        done: str = "",
        todo: str = "",
        severity: Any = "error",
    ) -> None:
        """Report a finding; with repair on and a ``fix`` (the REPAIR op and its arguments),
        apply it. ``done`` says what the fix did ({where} is where a record went), ``todo``
        what the operator has to do when it is not (or cannot be) applied."""
        repaired, action = False, todo
        if self.repair and fix is not None:
            repaired, action = self._apply(fix, done, todo)
        self.findings.append(
            Finding(
                kind=kind,
                detail=detail,
                key=key,
                schedule_id=sid,
                severity=severity,
                repaired=repaired,
                action=action,
            )
        )

    def move_aside(
        self, detail: str, *, key: str, sid: str | None, fix: tuple[Any, ...], kind: str = "unreadable"
    ) -> None:
        """Report a record the repair moves to the quarantine."""
        done, todo = "moved to {where}", "run with --repair to move it aside"
        self.found(kind, detail, key=key, sid=sid, fix=fix, done=done, todo=todo)

    def orphan(self, detail: str, *, key: str, raw: bytes) -> None:
        """Report an entry or claim of a schedule without definition (the repair removes it)."""
        sid = member_sid(text(raw))
        self.found(
            "orphan_entry",
            detail,
            key=key,
            sid=sid,
            fix=("orphan", raw),
            done="removed",
            todo="run with --repair to remove it",
        )

    def _apply(self, fix: tuple[Any, ...], done: str, todo: str) -> tuple[bool, str]:
        keys = [*self.keys.scripts, self.quarantine, self.prefix + "beats", self.prefix + "beatx"]
        args = [fix[0], self.prefix, self.keys.channel, self.now_ms, *fix[1:]]
        try:
            reply = self._script(keys=keys, args=args)
        except rex.ResponseError as exc:  # say, a key of the wrong type in its way; others raise
            return False, f"repair failed ({' '.join(str(exc).split())[:200]}); {todo}"
        if int(reply[0]) != 1:
            return False, "changed while checking, left alone (run doctor again)"
        where = text(reply[1])
        if where and self.quarantine != where and not where.startswith(self.quarantine + ":"):
            where = f"HGET {self.quarantine} {where}"  # a field of the quarantine hash
        return True, done.format(where=where)

    def quarantine_name(self, what: str, name: str) -> str:
        """A quarantine field (or key suffix): what it was, its name, and when it was moved."""
        return f"{what}|{name}|{self.now_ms}"

    # -- the checks ----------------------------------------------------------------------

    def run(self) -> CheckReport:
        with translated("doctor"):
            per_schedule = self.check_keys()
            live = self.live_owners()
            index = self.read_zset("idx")
            leases = self.read_zset("lease")
            claims = self.read_hash("claims")
            ids = set(self.read_zset("ids"))
            stored = self.read_hash("sched")  # read last: an add meanwhile cannot look like an orphan
            states = self.check_definitions(stored)
            self.check_ids(ids, stored, states)
            self.check_index(index, stored, states)
            self.check_claims(claims, leases, stored, live)
            self.check_fires(states, index, claims)
            self.check_history(per_schedule.get("h:", []))
            self.check_beats()
            self.check_quarantine()
        self.counts.update(schedules=len(stored), entries=len(index), claims=len(claims))
        return CheckReport(
            store=f"redis namespace {self.store.namespace!r}",
            checked_at=self.now,
            repair=self.repair,
            findings=tuple(self.findings),
            counts=self.counts,
        )

    def check_keys(self) -> dict[str, list[str]]:
        """The type of every key of the namespace; returns the per-schedule keys by kind."""
        per_schedule: dict[str, list[str]] = {kind: [] for kind in _PER_SCHEDULE}
        seen = 0
        names = self.client.scan_iter(match=_glob_escape(self.prefix) + "*", count=1000)
        for chunk in _chunks(names, 500):
            pipe = self.client.pipeline(transaction=False)
            for name in chunk:
                pipe.type(name)
            for raw, kind in zip(chunk, pipe.execute(), strict=True):
                seen += 1
                self.check_key_type(text(raw), text(kind), per_schedule)
        self.counts["keys"] = seen
        if "token" not in self.broken:
            token = self.client.get(self.keys.token)
            if token is not None and not text(token).isdigit():
                self.found(
                    "unreadable",
                    f"the fencing-token counter holds {text(token)[:40]!r}, not a number",
                    key=self.keys.token,
                    todo="SET it to a number above every token in the claims hash (claims fail meanwhile)",
                )
        return per_schedule

    def check_key_type(self, key: str, kind: str, per_schedule: dict[str, list[str]]) -> None:
        rest = key[len(self.prefix) :]
        if kind == "none" or rest.startswith(_FOREIGN):
            return  # gone meanwhile, or not the store's
        expected = _FIXED.get(rest)
        if expected is not None:
            if kind != expected:
                self.broken.add(rest)
                self.found(
                    "wrong_type",
                    f"a {kind} where the store keeps a {expected}: {_ADVICE[rest]}",
                    key=key,
                    todo=(
                        "stop the schedulers, look at it (TYPE/DUMP), RENAME it aside, then run "
                        "'schedcore doctor --repair' again"
                        + (" (it re-creates the fire entries)" if rest in ("idx", "lease", "claims") else "")
                    ),
                )
            return
        for head, wanted in _PER_SCHEDULE.items():
            if rest.startswith(head) and len(rest) > len(head):
                sid = rest[len(head) :]
                if kind == wanted:
                    per_schedule[head].append(key)
                    return
                qkey = f"{self.quarantine}:{rest}@{self.now_ms}"
                self.found(
                    "wrong_type",
                    f"a {kind} where the store keeps a {wanted}",
                    key=key,
                    sid=sid,
                    fix=("move_key", key, kind, qkey),
                    done="renamed to {where}",
                    todo="run with --repair to rename it aside",
                )
                return
        self.found("unknown_key", f"a {kind} the store does not use", key=key, severity="info")

    def live_owners(self) -> set[str] | None:
        """The owners with a live heartbeat; None when they cannot be read (then no claim is
        released: a live owner might still commit it)."""
        if {"beats", "beatx"} & self.broken:
            return None
        return {beat.owner for beat in self.store.schedulers(self.now)}

    def read_zset(self, name: str) -> dict[bytes, float]:
        if name in self.broken:
            return {}
        return {member: float(score) for member, score in self.client.zscan_iter(self.prefix + name, count=1000)}

    def read_hash(self, name: str) -> dict[bytes, bytes]:
        if name in self.broken:
            return {}
        return dict(self.client.hscan_iter(self.prefix + name, count=1000))

    def check_definitions(self, stored: dict[bytes, bytes]) -> dict[str, _State]:
        """Decode every definition; returns the readable ones: sid -> (stored value, schedule,
        [f, n, p, definition])."""
        out: dict[str, _State] = {}
        for raw_sid, value in stored.items():
            sid = text(raw_sid)
            try:
                parts = list(split_state(sid, value))
                schedule = decode_schedule(sid, parts[3])
            except CorruptScheduleData as exc:
                version = text(value).partition("\n")[2].partition("{")[0]
                if version.isdigit() and int(version) > SCHEMA_VERSION:
                    # written by a newer schedcore during a rolling upgrade: never moved aside
                    self.found(
                        "unreadable",
                        f"definition of schema {version}, newer than this version reads ({SCHEMA_VERSION})",
                        key=self.keys.schedules,
                        sid=sid,
                        severity="warning",
                        todo="left alone: finish the upgrade, then run doctor with the new version",
                    )
                    continue
                self.found(
                    "unreadable",
                    f"definition: {exc.reason}"[:300],
                    key=self.keys.schedules,
                    sid=sid,
                    fix=("drop_schedule", raw_sid, value, self.quarantine_name("sched", sid)),
                    done="moved with its entries to {where}",
                    todo="fix it, or run with --repair to move it aside",
                )
                continue
            bad: list[str] = []
            for field, decode in (("f", decode_fire), ("p", decode_parked), ("n", int)):
                value_text = parts["fnp".index(field)]
                if value_text:
                    try:
                        decode(value_text)
                    except (ValueError, KeyError, TypeError, OverflowError):
                        bad.append(field)
            if bad:
                self.unreadable_state(sid, value, schedule, parts, bad)
                continue
            out[sid] = (value, schedule, parts)
        return out

    def unreadable_state(self, sid: str, value: bytes, schedule: Schedule, parts: list[str], bad: list[str]) -> None:
        """A readable definition with an unreadable fire entry, parked entry or run count:
        those parts are moved aside, the fire entry re-created from the trigger."""
        f, n, p, definition = parts
        names = {"f": "fire entry", "p": "parked entry", "n": "run count"}
        fire: Any = decode_fire(f) if f and "f" not in bad else None
        mode, due = "keep", "0"
        if "f" in bad:
            fire = expected_fire(schedule, self.now, int(n) if n and "n" not in bad else 0)
            mode, due = _fire_mode(fire)
        new = ";".join(
            (
                encode_fire(fire) if fire is not None else "",
                "" if "n" in bad else n,
                "" if "p" in bad else p,
            )
        )
        detail = ", ".join(f"{names[b]} {parts['fnp'.index(b)][:40]!r}" for b in bad)
        self.found(
            "unreadable",
            f"unreadable {detail}",
            key=self.keys.schedules,
            sid=sid,
            fix=("state", sid, value, f"{new}\n{definition}", mode, due, self.quarantine_name("state", sid), value),
            done="moved to {where}" + ("; fire entry re-created from the trigger" if "f" in bad else ""),
            todo="run with --repair to move it aside",
        )

    def check_ids(self, ids: set[bytes], stored: dict[bytes, bytes], states: dict[str, _State]) -> None:
        """Listed ids against the readable definitions (an unreadable one is reported already)."""
        if {"ids", "sched"} & self.broken:
            return
        listed = {raw for raw in stored if text(raw) in states}
        for kind, detail, raws, done, todo in (
            ("orphan_id", "listed, but no definition is stored", ids - set(stored), "removed from the list", "remove"),
            ("unlisted", "stored, but missing from the list of ids", listed - ids, "listed again", "list"),
        ):
            for raw in sorted(raws):
                fix = (kind, raw)
                todo_text = f"run with --repair to {todo} it"
                self.found(kind, detail, key=self.keys.ids, sid=text(raw), fix=fix, done=done, todo=todo_text)

    def check_index(self, index: dict[bytes, float], stored: dict[bytes, bytes], states: dict[str, _State]) -> None:
        if {"idx", "sched"} & self.broken:
            return
        for raw, due in index.items():
            m = text(raw)
            sid = member_sid(m)
            if m != sid and not _EXTRA_RE.match(m):
                self.move_aside(
                    f"index entry {m[:80]!r} is not in the schedcore layout",
                    key=self.keys.index,
                    sid=sid,
                    fix=("drop_member", "idx", raw, self.quarantine_name("idx", m)),
                )
            elif sid.encode() not in stored:
                self.orphan(
                    f"index entry {m[:80]!r} (due {due:.0f} ms) of a schedule that has no definition",
                    key=self.keys.index,
                    raw=raw,
                )
            elif m == sid and sid in states and not states[sid][2][0]:
                self.fire_without_data(sid, states[sid])

    def fire_without_data(self, sid: str, state: _State) -> None:
        value, schedule, (_, n, p, definition) = state
        fire = expected_fire(schedule, self.now, int(n or "0"))
        new = f"{encode_fire(fire) if fire else ''};{n};{p}\n{definition}"
        mode, due = _fire_mode(fire)
        self.found(
            "fire_without_data",
            "the schedule's fire entry is in the index, but the schedule holds no fire time",
            key=self.keys.index,
            sid=sid,
            fix=("state", sid, value, new, mode, due, "", ""),
            done="fire entry re-created from the trigger" if fire else "entry removed (nothing left to fire)",
            todo="run with --repair to re-create it from the trigger",
        )

    def check_claims(
        self,
        claims: dict[bytes, bytes],
        leases: dict[bytes, float],
        stored: dict[bytes, bytes],
        live: set[str] | None,
    ) -> None:
        if {"claims", "lease", "sched"} & self.broken:
            return
        for raw, value in claims.items():
            m = text(raw)
            sid = member_sid(m)
            parsed = _CLAIM_RE.match(text(value))
            if parsed is None:
                self.move_aside(
                    f"claim of {m[:80]!r} is not 'token|due|held|owner': {text(value)[:60]!r}",
                    key=self.keys.claims,
                    sid=sid,
                    fix=("drop_claim", raw, value, self.quarantine_name("claim", m)),
                )
                continue
            if sid.encode() not in stored:
                self.orphan(f"claim of {m[:80]!r} of a schedule that has no definition", key=self.keys.claims, raw=raw)
                continue
            owner = parsed.group(4)
            alive = live is not None and owner in live
            expiry = leases.get(raw)
            if expiry is None:
                if live is None:
                    continue  # who is alive is unknown: reported with the heartbeat keys
                fix = ("release", raw, value) if not alive else ("lease", raw, value, self.now_ms + _ms(self.lease))
                self.found(
                    "claim_without_lease",
                    f"claim of {m[:80]!r} by {owner[:60]!r} ({'alive' if alive else 'not alive'}) has no lease",
                    key=self.keys.leases,
                    sid=sid,
                    fix=fix,
                    done="released to the index" if not alive else "given a lease (it expires if never committed)",
                    todo="run with --repair to release it",
                )
            elif expiry <= self.now_ms and live is not None and not alive:
                self.found(
                    "stale_claim",
                    f"claim of {m[:80]!r} by {owner[:60]!r} (not alive) expired at {expiry:.0f} ms",
                    key=self.keys.leases,
                    sid=sid,
                    fix=("release", raw, value),
                    done="released to the index",
                    todo="run with --repair to release it (or start a scheduler: it takes it back)",
                )
        for raw, expiry in leases.items():
            if raw in claims:
                continue
            m = text(raw)
            self.move_aside(
                f"lease of {m[:80]!r} (expiry {expiry:.0f} ms) without its claim",
                key=self.keys.leases,
                sid=member_sid(m),
                fix=("drop_member", "lease", raw, self.quarantine_name("lease", m)),
                kind="lease_without_claim",
            )

    def check_fires(
        self,
        states: dict[str, _State],
        index: dict[bytes, float],
        claims: dict[bytes, bytes],
    ) -> None:
        """Running schedules with a next occurrence but no fire entry in the index or in flight."""
        if {"idx", "claims", "sched"} & self.broken:
            return
        candidates = []
        for sid, (value, schedule, (f, n, p, definition)) in states.items():
            raw = sid.encode()
            if schedule.paused or p or raw in index or raw in claims:
                continue
            fire = expected_fire(schedule, self.now, int(n or "0"))
            if fire is None and not f:
                continue  # finished: nothing to fire
            candidates.append((sid, value, fire, n, p, definition))
        if not candidates:
            return
        # Read again in one MULTI: a claim committed between the reads above is not a finding.
        pipe = self.client.pipeline(transaction=True)
        for sid, *_ in candidates:
            pipe.hget(self.keys.schedules, sid)
            pipe.zscore(self.keys.index, sid)
            pipe.hexists(self.keys.claims, sid)
        again = pipe.execute()
        for i, (sid, value, fire, n, p, definition) in enumerate(candidates):
            if again[3 * i] != value or again[3 * i + 1] is not None or again[3 * i + 2]:
                continue
            new = f"{encode_fire(fire) if fire else ''};{n};{p}\n{definition}"
            mode, due = _fire_mode(fire)
            self.found(
                "missing_fire",
                f"no fire entry (next occurrence {fire.nominal.isoformat()})"
                if fire
                else "a fire time is stored but no entry is in the index (nothing left to fire)",
                key=self.keys.index,
                sid=sid,
                fix=("state", sid, value, new, mode, due, "", ""),
                done="fire entry re-created from the trigger" if fire else "stale fire time cleared",
                todo="run with --repair to re-create it from the trigger",
            )

    def check_history(self, keys: list[str]) -> None:
        records = 0
        for chunk in _chunks(keys, 200):
            pipe = self.client.pipeline(transaction=False)
            for key in chunk:
                pipe.lrange(key, 0, -1)
            for key, lines in zip(chunk, pipe.execute(raise_on_error=False), strict=True):
                if isinstance(lines, Exception):
                    continue  # changed type meanwhile: the next run reports it
                sid = key[len(self.prefix) + 2 :]
                for line in lines:
                    records += 1
                    try:
                        decode_record(line)
                    except Exception as exc:  # whatever the foreign bytes make the decoder raise
                        self.move_aside(
                            f"history record ({type(exc).__name__}): {text(line)[:60]!r}",
                            key=key,
                            sid=sid,
                            fix=("drop_record", key, line, self.quarantine_name("h", sid)),
                        )
        self.counts["records"] = records

    def check_beats(self) -> None:
        if "beats" in self.broken:
            return
        for raw_owner, value in self.client.hscan_iter(self.prefix + "beats", count=1000):
            owner = text(raw_owner)
            try:
                data = json.loads(text(value))
                int(data["beat"]), int(data["expires"])
                if not isinstance(data.get("info") or {}, dict):
                    raise TypeError("info is not an object")
            except (ValueError, KeyError, TypeError) as exc:
                self.move_aside(
                    f"heartbeat of {owner[:60]!r} ({type(exc).__name__}): {text(value)[:60]!r}",
                    key=self.prefix + "beats",
                    sid=None,
                    fix=("drop_beat", raw_owner, value, self.quarantine_name("beat", owner)),
                )

    def check_quarantine(self) -> None:
        if "quarantine" in self.broken:
            return
        held = int(self.client.hlen(self.quarantine))
        if held:
            self.found(
                "quarantine",
                f"{held} record(s) moved aside by repairs",
                key=self.quarantine,
                severity="info",
                todo=f"read them with HGETALL {self.quarantine}; DEL it when done",
            )


def _fire_mode(fire: Pending | None) -> tuple[str, str]:
    """The REPAIR ``state`` op's fire mode and due for a re-created fire entry (None: none left)."""
    return ("set", str(to_ms(fire.due))) if fire is not None else ("drop", "0")


def _ms(delta: timedelta) -> int:
    return max(1, -(-delta // timedelta(milliseconds=1)))


def run_check(store: RedisStore, *, now: datetime, repair: bool, lease: timedelta) -> CheckReport:
    """Check (and with ``repair`` repair) the namespace of ``store``; see :meth:`RedisStore.check`."""
    return _Check(store, require_aware(now, "now"), repair, lease).run()
