"""Setting aside records of the RQ executor that cannot be decoded.

Anyone who can write to Redis can put anything in the executor's keys. A record that does
not decode -- a run-info entry in ``runs``, an outcome payload in ``outcomes``/``processing``
-- must neither stop the outcome loop nor vanish without a trace: it is moved, in one
atomic step, into the ``{schedcore:<ns>}:rq:quarantine`` hash, and one log line names it.
An operator reads the hash (``HGETALL``) to see what was set aside and why, and deletes the
fields once dealt with. Each field is ``<kind>:<job id or digest>``; its value a JSON object
``{"kind", "id", "reason", "at" (ms), "raw"}`` -- ``raw`` the record's bytes as text
(invalid UTF-8 backslash-escaped, cut at :data:`RAW_LIMIT` characters). The hash holds at
most :data:`QUARANTINE_LIMIT` fields: beyond that records are still set aside and logged,
not kept, so a flood of garbage cannot grow it without bound.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from schedcore_rq._outcomes import now_ms

__all__ = [
    "ORPHANS_LUA",
    "QUARANTINE_LIMIT",
    "SET_ASIDE_KEYS_LUA",
    "SET_ASIDE_OUTCOME_LUA",
    "SET_ASIDE_RUN_LUA",
    "outcome_field",
    "record",
]

QUARANTINE_LIMIT = 10_000
RAW_LIMIT = 65_536

# Shared by both scripts: keep the record unless the hash is full or not a hash (a
# wrong-typed quarantine key must not make the script fail after it has moved the record).
_KEEP = """
local qtype = redis.call('TYPE', KEYS[1])['ok']
if (qtype == 'hash' or qtype == 'none') and redis.call('HLEN', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
"""

#: KEYS: quarantine, outstanding, runs. ARGV: field, record, limit, job id.
#: Sets a job's run info aside only while the job is still outstanding -- claim-once, like
#: FINISH_LUA: a worker's callback or another executor that settled it first wins. Returns 1
#: when set aside, 0 when the job was no longer outstanding.
SET_ASIDE_RUN_LUA = (
    """
if redis.call('ZREM', KEYS[2], ARGV[4]) == 0 then return 0 end
redis.call('HDEL', KEYS[3], ARGV[4])
"""
    + _KEEP
    + "return 1\n"
)

#: KEYS: quarantine, processing. ARGV: field, record, limit, payload. Moves one copy of an
#: undecodable outcome payload from the processing list to the quarantine. Returns how many
#: copies were removed (0: someone else took it already).
SET_ASIDE_OUTCOME_LUA = (
    """
if redis.call('LREM', KEYS[2], 1, ARGV[4]) == 0 then return 0 end
"""
    + _KEEP
    + "return 1\n"
)

#: KEYS: outstanding, runs. ARGV: job ids read from ``outstanding`` whose run info was
#: missing. Forgets those that are *still* outstanding without run info, and returns them.
#: The reconciler reads the outstanding set and the run info in two steps; between them,
#: another executor may report a job (its outcome leaves ``outstanding`` first, then its run
#: info is deleted). Such a job is settled, not orphaned: re-checking both here, atomically,
#: leaves only the jobs that really lost their run info.
ORPHANS_LUA = """
local gone = {}
for _, job_id in ipairs(ARGV) do
  if redis.call('ZSCORE', KEYS[1], job_id) and redis.call('HEXISTS', KEYS[2], job_id) == 0 then
    redis.call('ZREM', KEYS[1], job_id)
    gone[#gone + 1] = job_id
  end
end
return gone
"""


#: KEYS: the executor's keys; ARGV: 1 a suffix, then per key the type it must have. Renames
#: each key of another type to ``<key>:damaged:<suffix>`` -- set aside for an operator --
#: so that a fresh one of the right type is made on the next write; returns the renamed keys.
#: (Damage like this loses what the key held; the outcome loop would otherwise fail on it
#: forever with WRONGTYPE.)
SET_ASIDE_KEYS_LUA = """
local moved = {}
for n, key in ipairs(KEYS) do
  local kind = redis.call('TYPE', key)['ok']
  if kind ~= 'none' and kind ~= ARGV[n + 1] then
    redis.call('RENAME', key, key .. ':damaged:' .. ARGV[1])
    moved[#moved + 1] = key
  end
end
return moved
"""


def _text(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "backslashreplace") if isinstance(raw, bytes) else raw
    return text if len(text) <= RAW_LIMIT else text[:RAW_LIMIT] + "..."


def outcome_field(raw: bytes | str) -> str:
    """The quarantine field of an outcome payload: its content's digest (its job id may be unreadable)."""
    data = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")
    return "outcome:" + hashlib.sha256(data).hexdigest()[:24]


def record(kind: str, ident: str, reason: str, raw: bytes | str) -> str:
    """The JSON value of a quarantine field (see the module's docstring)."""
    entry: dict[str, Any] = {"kind": kind, "id": ident, "reason": reason, "at": now_ms(), "raw": _text(raw)}
    return json.dumps(entry, separators=(",", ":"))


def shown(raw: bytes | str, limit: int = 80) -> str:
    """A short, printable excerpt of a hostile record for a log line."""
    text = repr(raw[:limit])
    return text + ("..." if len(raw) > limit else "")
