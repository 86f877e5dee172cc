"""The Lua scripts: every multi-key change of the store is one of these, atomic on the server.

Conventions: instants are integer milliseconds, always formatted with ``%.0f`` (Lua 5.1
prints large numbers in exponent form otherwise); ``prefix`` is the namespace prefix;
per-schedule keys are derived from it (they share the namespace's hash tag, so every
key a script touches lives in one cluster slot). Whenever an entry enters the index a
script publishes their due times (comma-separated, the 64 earliest) on the namespace's wake
channel, once per call.
"""

from __future__ import annotations

__all__ = ["ADD", "CLAIM", "COMMIT", "ENQUEUE", "RECORD_OUTCOME", "RELEASE", "REMOVE", "SET_PAUSED"]

# Shared helpers, prepended to every script.
#   claims hash value: "token|due|held|owner"; held is 0 for a fire entry superseded while
#   claimed (replace with another timing, pause): that claim may still commit its runs, but
#   its next fire time is ignored and its entry is dropped instead of returning to the index.
_COMMON = r"""
local function fmt(n) return string.format('%.0f', n) end
local function sid_of(m)
  local sid = string.match(m, '^([^|]+)|')
  if sid == nil then return m, true end
  return sid, false
end
local function parse_claim(c)
  local token, due, held, owner = string.match(c, '^([^|]*)|([^|]*)|([^|]*)|(.*)$')
  return token, due, held, owner
end
-- dues of entries put in the index by this call, published once at its end (the 64 earliest)
local woke, nwoke = {}, 0
local function note(due)
  local d = tonumber(due)
  if not woke[d] then woke[d] = true; nwoke = nwoke + 1 end
end
local function publish(channel)
  if nwoke == 0 then return end
  local dues = {}
  for d in pairs(woke) do dues[#dues + 1] = d end
  table.sort(dues)
  local parts = {}
  for i = 1, math.min(#dues, 64) do parts[i] = fmt(dues[i]) end
  redis.call('PUBLISH', channel, table.concat(parts, ','))
end
-- take the fire entry of sid out of the index; a claim holding it no longer holds it
local function drop_fire(idx, claims, prefix, sid)
  redis.call('HDEL', prefix .. 's:' .. sid, 'f')
  redis.call('ZREM', idx, sid)
  local c = redis.call('HGET', claims, sid)
  if c then
    local token, due, held, owner = parse_claim(c)
    redis.call('HSET', claims, sid, token .. '|' .. due .. '|0|' .. owner)
  end
end
-- put a non-fire entry in the index unless its key is indexed or claimed already
local function put_new(idx, lease, prefix, sid, m, due)
  if redis.call('ZSCORE', idx, m) or redis.call('ZSCORE', lease, m) then return 0 end
  redis.call('ZADD', idx, due, m)
  redis.call('SADD', prefix .. 'x:' .. sid, m)
  note(due)
  return 1
end
-- end a claim without committing: back to the index unless it is a superseded fire entry
local function unclaim(idx, lease, claims, m, c)
  redis.call('ZREM', lease, m)
  redis.call('HDEL', claims, m)
  local token, due, held = parse_claim(c)
  if held == '1' then
    redis.call('ZADD', idx, due, m)
    note(due)
  end
end
-- a parked entry enters the index once nothing of its schedule runs any more
local function maybe_unpark(idx, lease, prefix, sid)
  local skey = prefix .. 's:' .. sid
  if redis.call('SCARD', prefix .. 'r:' .. sid) > 0 then return end
  local p = redis.call('HGET', skey, 'p')
  if not p then return end
  redis.call('HDEL', skey, 'p')
  local kind, nominal, due, attempt = string.match(p, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)$')
  put_new(idx, lease, prefix, sid, sid .. '|' .. kind .. '|' .. nominal .. '|' .. attempt, due)
end
"""

# KEYS: idx, lease, claims, token
# ARGV: now, limit, expiry, owner, prefix, channel, nskip, [sid, raw definition] * nskip
# Returns {items, bad}: items flat, 8 per claim: member, due, definition, f, n, parked(0/1),
# running count, token; bad flat, 2 per entry skipped as unreadable: schedule id, reason.
CLAIM = (
    _COMMON
    + r"""
local idx, lease, claims = KEYS[1], KEYS[2], KEYS[3]
local now, limit, expires = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local owner, prefix, channel = ARGV[4], ARGV[5], ARGV[6]
local skip = {}
for i = 8, 7 + 2 * tonumber(ARGV[7]), 2 do skip[ARGV[i]] = ARGV[i + 1] end

-- 1. leases expired at or before now: their entries are due again, for anyone
local expired = redis.call('ZRANGEBYSCORE', lease, '-inf', now)
for _, m in ipairs(expired) do
  local c = redis.call('HGET', claims, m)
  if c then unclaim(idx, lease, claims, m, c) else redis.call('ZREM', lease, m) end
end

-- 2. up to limit due entries, earliest first, skipping unreadable ones (left in place)
local taken, bad = {}, {}
local offset = 0
while #taken < limit do
  local page = redis.call('ZRANGEBYSCORE', idx, '-inf', now, 'WITHSCORES', 'LIMIT', offset, limit - #taken)
  if #page == 0 then break end
  offset = offset + #page / 2
  for i = 1, #page, 2 do
    local m, due = page[i], page[i + 1]
    local sid, fire = sid_of(m)
    local h = redis.pcall('HMGET', prefix .. 's:' .. sid, 'd', 'f', 'n', 'p')
    if h.err then
      bad[#bad + 1] = sid; bad[#bad + 1] = tostring(h.err)
    elseif not h[1] then
      bad[#bad + 1] = sid; bad[#bad + 1] = 'index entry ' .. m .. ' has no stored definition'
    elseif skip[sid] == h[1] then
      -- known unreadable (reported before)
    elseif fire and not h[2] then
      bad[#bad + 1] = sid; bad[#bad + 1] = 'fire entry without its data (field f)'
    else
      local running = redis.pcall('SCARD', prefix .. 'r:' .. sid)
      if type(running) ~= 'number' then running = 0 end
      taken[#taken + 1] = {m, due, h[1], h[2] or '', h[3] or '0', h[4] and '1' or '0', running}
    end
  end
end

-- 3. move them under lease with fresh fencing tokens
local out = {}
if #taken > 0 then
  local first = redis.call('INCRBY', KEYS[4], #taken) - #taken
  for i, t in ipairs(taken) do
    local tok = fmt(first + i)
    redis.call('ZREM', idx, t[1])
    redis.call('ZADD', lease, expires, t[1])
    redis.call('HSET', claims, t[1], tok .. '|' .. t[2] .. '|1|' .. owner)
    for j = 1, 7 do out[#out + 1] = t[j] end
    out[#out + 1] = tok
  end
end
publish(channel)
return {out, bad}
"""
)

# KEYS: idx, lease, claims
# ARGV: prefix, channel, history limit, history ttl (0: none), then per item:
#   member, sid, token, next f ('' none), next due, park ('' none), runs started,
#   nrec, records (oldest first)..., nrun, run ids...
# Returns one 1/0 per item.
COMMIT = (
    _COMMON
    + r"""
local idx, lease, claims = KEYS[1], KEYS[2], KEYS[3]
local prefix, channel = ARGV[1], ARGV[2]
local hlimit, httl = tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
local i = 5
while i <= #ARGV do
  local m, sid, token = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local next_f, next_due, park = ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local started = tonumber(ARGV[i + 6])
  local nrec = tonumber(ARGV[i + 7])
  local recs_at = i + 8
  local nrun = tonumber(ARGV[recs_at + nrec])
  local runs_at = recs_at + nrec + 1
  i = runs_at + nrun
  local skey = prefix .. 's:' .. sid
  local c = redis.call('HGET', claims, m)
  local ctoken, cdue, held
  if c then ctoken, cdue, held = parse_claim(c) end
  if c and ctoken == token and redis.call('EXISTS', skey) == 1 then
    redis.call('ZREM', lease, m)
    redis.call('HDEL', claims, m)
    if nrec > 0 then
      local hkey = prefix .. 'h:' .. sid
      for k = recs_at, recs_at + nrec - 1 do redis.call('LPUSH', hkey, ARGV[k]) end
      redis.call('LTRIM', hkey, 0, hlimit - 1)
      if httl > 0 then redis.call('EXPIRE', hkey, httl) end
    end
    if nrun > 0 then
      local rkey = prefix .. 'r:' .. sid
      for k = runs_at, runs_at + nrun - 1 do redis.call('SADD', rkey, ARGV[k]) end
    end
    if started > 0 then redis.call('HINCRBY', skey, 'n', started) end
    if m == sid then
      if held == '1' then  -- still the schedule's fire entry: it moves on (or ends)
        if next_f ~= '' then
          redis.call('HSET', skey, 'f', next_f)
          redis.call('ZADD', idx, next_due, sid)
          note(next_due)
        else
          redis.call('HDEL', skey, 'f')
        end
      end
    else
      redis.call('SREM', prefix .. 'x:' .. sid, m)
    end
    if park ~= '' then
      redis.call('HSET', skey, 'p', park)
      maybe_unpark(idx, lease, prefix, sid)
    end
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
publish(channel)
return out
"""
)

# KEYS: idx, lease, claims
# ARGV: channel, then (member, token) pairs. Claims whose lease is held go back to the index.
RELEASE = (
    _COMMON
    + r"""
local idx, lease, claims = KEYS[1], KEYS[2], KEYS[3]
for i = 2, #ARGV, 2 do
  local m, token = ARGV[i], ARGV[i + 1]
  local c = redis.call('HGET', claims, m)
  if c and parse_claim(c) == token then unclaim(idx, lease, claims, m, c) end
end
publish(ARGV[1])
return 1
"""
)

# KEYS: idx, lease
# ARGV: prefix, channel, sid, run id, patch JSON, retry member ('' none), retry due,
#       history ttl (0: none)
# Returns 1, or 0 (nothing changed) when the run is not running.
RECORD_OUTCOME = (
    _COMMON
    + r"""
local idx, lease = KEYS[1], KEYS[2]
local prefix, channel, sid, run_id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local rkey = prefix .. 'r:' .. sid
if redis.call('EXISTS', prefix .. 's:' .. sid) == 0 then return 0 end
if redis.call('SREM', rkey, run_id) == 0 then return 0 end
-- the newest dispatched history record of the run
local hkey = prefix .. 'h:' .. sid
local recs = redis.call('LRANGE', hkey, 0, -1)
local needle = '"run_id":"' .. run_id .. '"'
for k, rec in ipairs(recs) do
  if string.find(rec, needle, 1, true) then
    local ok, obj = pcall(cjson.decode, rec)
    if ok and type(obj) == 'table' and obj.run_id == run_id and obj.status == 'dispatched' then
      for key, val in pairs(cjson.decode(ARGV[5])) do obj[key] = val end
      redis.call('LSET', hkey, k - 1, cjson.encode(obj))
      if tonumber(ARGV[8]) > 0 then redis.call('EXPIRE', hkey, ARGV[8]) end
      break
    end
  end
end
if ARGV[6] ~= '' then put_new(idx, lease, prefix, sid, ARGV[6], ARGV[7]) end
maybe_unpark(idx, lease, prefix, sid)
publish(channel)
return 1
"""
)

# KEYS: idx, lease, claims, ids
# ARGV: prefix, channel, sid, expected definition ('' = none stored), new definition,
#       fire mode (keep|drop|set), f, due
# Returns 1 when written, 0 when the stored definition changed meanwhile (the caller retries).
ADD = (
    _COMMON
    + r"""
local idx, lease, claims = KEYS[1], KEYS[2], KEYS[3]
local prefix, channel, sid = ARGV[1], ARGV[2], ARGV[3]
local skey = prefix .. 's:' .. sid
local cur = redis.pcall('HGET', skey, 'd')
if type(cur) == 'table' then return redis.error_reply(tostring(cur.err)) end
if (cur or '') ~= ARGV[4] then return 0 end
if ARGV[4] == '' then
  -- a new schedule: nothing foreign may survive under its keys
  redis.call('DEL', skey, prefix .. 'r:' .. sid, prefix .. 'h:' .. sid)
end
redis.call('HSET', skey, 'd', ARGV[5])
redis.call('ZADD', KEYS[4], 0, sid)
local mode = ARGV[6]
if mode ~= 'keep' then drop_fire(idx, claims, prefix, sid) end
if mode == 'set' then
  redis.call('HSET', skey, 'f', ARGV[7])
  redis.call('ZADD', idx, ARGV[8], sid)
  note(ARGV[8])
end
publish(channel)
return 1
"""
)

# KEYS: idx, lease, claims
# ARGV: prefix, channel, sid, expected definition, new definition, f ('' none), due
# Returns 1 when written, 0 when the definition changed meanwhile, -1 when there is no schedule.
SET_PAUSED = (
    _COMMON
    + r"""
local idx, lease, claims = KEYS[1], KEYS[2], KEYS[3]
local prefix, channel, sid = ARGV[1], ARGV[2], ARGV[3]
local skey = prefix .. 's:' .. sid
local cur = redis.call('HGET', skey, 'd')
if not cur then return -1 end
if cur ~= ARGV[4] then return 0 end
redis.call('HSET', skey, 'd', ARGV[5])
drop_fire(idx, claims, prefix, sid)
if ARGV[6] ~= '' then
  redis.call('HSET', skey, 'f', ARGV[6])
  redis.call('ZADD', idx, ARGV[7], sid)
  note(ARGV[7])
end
publish(channel)
return 1
"""
)

# KEYS: idx, lease
# ARGV: prefix, channel, sid, then (member, due) pairs. Returns how many were added, -1: no schedule.
ENQUEUE = (
    _COMMON
    + r"""
local idx, lease = KEYS[1], KEYS[2]
local prefix, channel, sid = ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', prefix .. 's:' .. sid) == 0 then return -1 end
local added = 0
for i = 4, #ARGV, 2 do added = added + put_new(idx, lease, prefix, sid, ARGV[i], ARGV[i + 1]) end
publish(channel)
return added
"""
)

# KEYS: idx, lease, claims, ids
# ARGV: prefix, sid. Returns 1 when a schedule was removed, 0 when there was none.
REMOVE = (
    _COMMON
    + r"""
local idx, lease, claims = KEYS[1], KEYS[2], KEYS[3]
local prefix, sid = ARGV[1], ARGV[2]
local skey, xkey = prefix .. 's:' .. sid, prefix .. 'x:' .. sid
local existed = redis.call('EXISTS', skey)
local members = redis.pcall('SMEMBERS', xkey)
if members.err then members = {} end
members[#members + 1] = sid
for _, m in ipairs(members) do
  redis.call('ZREM', idx, m)
  redis.call('ZREM', lease, m)
  redis.call('HDEL', claims, m)
end
redis.call('DEL', skey, xkey, prefix .. 'r:' .. sid, prefix .. 'h:' .. sid)
redis.call('ZREM', KEYS[4], sid)
return existed
"""
)
