"""The Lua scripts: every multi-key change of the store is one of these, atomic on the server.

Conventions: instants are integer milliseconds, always formatted with ``%.0f`` (Lua 5.1
prints large numbers in exponent form otherwise); ``prefix`` is the namespace prefix;
per-schedule keys are derived from it (they share the namespace's hash tag, so every
key a script touches lives in one cluster slot). Whenever an entry enters the index a
script publishes their due times (comma-separated, the 64 earliest) on the namespace's wake
channel, once per call.
"""

from __future__ import annotations

__all__ = [
    "ADD",
    "ADD_MANY",
    "CLAIM",
    "COMMIT",
    "ENQUEUE",
    "HEARTBEAT",
    "RECORD_OUTCOME",
    "RELEASE",
    "REMOVE",
    "SET_PAUSED",
    "UNINDEX",
]

# Every script gets the same KEYS: idx, lease, claims, sched, ids, token.
#
# ``sched`` maps a schedule id to "<f>;<n>;<p>\n<definition JSON>": f = fire entry
# "nominal,due,attempt" ('' none), n = runs started ('' = 0), p = parked entry
# "kind|nominal|due|attempt" ('' none).
#
# ``claims`` maps a claimed member to "token|due|held|owner"; held is 0 for a fire entry
# superseded while claimed (replace with another timing, pause): that claim may still
# commit its runs, but its next fire time is ignored and its entry is dropped instead of
# returning to the index.
_COMMON = r"""
local idx, lease, claims, sched, ids = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local function fmt(n) return string.format('%.0f', n) end
local function sid_of(m)
  local sid = string.match(m, '^([^|]+)|')
  if sid == nil then return m, true end
  return sid, false
end
-- the state of a schedule: nil when there is none, false when it cannot be read
local function load(sid)
  local v = redis.call('HGET', sched, sid)
  if not v then return nil end
  local f, n, p, d = string.match(v, '^([^;\n]*);([^;\n]*);([^;\n]*)\n(.*)$')
  if f == nil then return false end
  return {f = f, n = n, p = p, d = d}
end
local function save(sid, s)
  redis.call('HSET', sched, sid, s.f .. ';' .. s.n .. ';' .. s.p .. '\n' .. s.d)
end
local function split(text)
  local out, pos = {}, 1
  while true do
    local e = string.find(text, '\n', pos, true)
    if not e then
      out[#out + 1] = string.sub(text, pos)
      return out
    end
    out[#out + 1] = string.sub(text, pos, e - 1)
    pos = e + 1
  end
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
-- take the fire entry out of the index; a claim holding it no longer holds it (caller saves s)
local function drop_fire(sid, s)
  s.f = ''
  redis.call('ZREM', idx, sid)
  local c = redis.call('HGET', claims, sid)
  if c then
    local token, due, held, owner = parse_claim(c)
    redis.call('HSET', claims, sid, token .. '|' .. due .. '|0|' .. owner)
  end
end
local function set_fire(sid, s, f, due)
  s.f = f
  redis.call('ZADD', idx, due, sid)
  note(due)
end
-- put a non-fire entry in the index unless its key is indexed or claimed already
local function put_new(prefix, sid, m, due)
  if redis.call('ZSCORE', idx, m) or redis.call('ZSCORE', lease, m) then return 0 end
  redis.call('ZADD', idx, due, m)
  redis.call('SADD', prefix .. 'x:' .. sid, m)
  note(due)
  return 1
end
-- end a claim without committing: back to the index unless it is a superseded fire entry
local function unclaim(m, c)
  redis.call('ZREM', lease, m)
  redis.call('HDEL', claims, m)
  local token, due, held = parse_claim(c)
  if held == '1' then
    redis.call('ZADD', idx, due, m)
    note(due)
  end
end
-- the parked entry enters the index once nothing of the schedule runs any more (caller saves s)
local function maybe_unpark(prefix, sid, s)
  if s.p == '' or redis.call('SCARD', prefix .. 'r:' .. sid) > 0 then return end
  local kind, nominal, due, attempt = string.match(s.p, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)$')
  s.p = ''
  if kind then put_new(prefix, sid, sid .. '|' .. kind .. '|' .. nominal .. '|' .. attempt, due) end
end
"""

# ARGV: now, limit, expiry, owner, prefix, channel, nskip, [sid, definition] * nskip
# Returns {items, bad}: one string per claim, "member\ndue\nf\nn\nparked(0/1)\nrunning\ntoken\n"
# followed by the definition; bad flat, 3 per entry skipped as unreadable: schedule id, reason, member.
CLAIM = (
    _COMMON
    + r"""
local now, limit, expires = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local owner, prefix, channel = ARGV[4], ARGV[5], ARGV[6]
local skip = {}
for i = 8, 7 + 2 * tonumber(ARGV[7]), 2 do skip[ARGV[i]] = ARGV[i + 1] end

-- 1. leases expired at or before now: their entries are due again, for anyone
for _, m in ipairs(redis.call('ZRANGEBYSCORE', lease, '-inf', now)) do
  local c = redis.call('HGET', claims, m)
  if c then unclaim(m, c) else redis.call('ZREM', lease, m) end
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
    local s = load(sid)
    local why = nil
    if not fire and not string.match(m, '^[^|]+|[rmbu]|%d+|%d+$') then
      why = 'index entry ' .. m .. ' is not in the schedcore layout'
    elseif s == nil then
      why = 'index entry ' .. m .. ' has no stored schedule'
    elseif s == false then
      why = 'stored state is not in the schedcore layout'
    elseif fire and s.f == '' then
      why = 'fire entry without its data'
    end
    if why then
      bad[#bad + 1] = sid; bad[#bad + 1] = why; bad[#bad + 1] = m
    elseif skip[sid] == s.d then
      -- known unreadable definition (reported before): left in place
    else
      local running = redis.pcall('SCARD', prefix .. 'r:' .. sid)
      if type(running) ~= 'number' then running = 0 end
      taken[#taken + 1] = {m, due, s.f, s.n, s.p ~= '' and '1' or '0', running, s.d}
    end
  end
end

-- 3. move them under lease with fresh fencing tokens
local out = {}
if #taken > 0 then
  local first = redis.call('INCRBY', KEYS[6], #taken) - #taken
  for i, t in ipairs(taken) do
    local tok = fmt(first + i)
    redis.call('ZREM', idx, t[1])
    redis.call('ZADD', lease, expires, t[1])
    redis.call('HSET', claims, t[1], tok .. '|' .. t[2] .. '|1|' .. owner)
    out[#out + 1] = table.concat({t[1], t[2], t[3], t[4], t[5], t[6], tok, t[7]}, '\n')
  end
end
publish(channel)
return {out, bad}
"""
)

# ARGV: prefix, channel, history limit, history ttl (0: none), peek n (0: none), then one string
#   per item, its fields separated by newlines: member, sid, token, next f ('' none), next due,
#   park ('' none), runs started, nrec, records (oldest first)..., nrun, run ids...
# Returns {one 1/0 per item, the first n index entries with scores, the first lease with score}
# (both empty without a peek).
COMMIT = (
    _COMMON
    + r"""
local prefix, channel = ARGV[1], ARGV[2]
local hlimit, httl = tonumber(ARGV[3]), tonumber(ARGV[4])
local peek = tonumber(ARGV[5])
local out = {}
for a = 6, #ARGV do
  local f = split(ARGV[a])
  local m, sid, token = f[1], f[2], f[3]
  local next_f, next_due, park = f[4], f[5], f[6]
  local started = tonumber(f[7])
  local nrec = tonumber(f[8])
  local recs_at = 9
  local nrun = tonumber(f[recs_at + nrec])
  local runs_at = recs_at + nrec + 1
  local c = redis.call('HGET', claims, m)
  local ctoken, cdue, held
  if c then ctoken, cdue, held = parse_claim(c) end
  local s = nil
  if c and ctoken == token then s = load(sid) end
  if s then
    redis.call('ZREM', lease, m)
    redis.call('HDEL', claims, m)
    if nrec > 0 then
      local hkey = prefix .. 'h:' .. sid
      for k = recs_at, recs_at + nrec - 1 do redis.call('LPUSH', hkey, f[k]) end
      redis.call('LTRIM', hkey, 0, hlimit - 1)
      if httl > 0 then redis.call('EXPIRE', hkey, httl) end
    end
    if nrun > 0 then
      local rkey = prefix .. 'r:' .. sid
      for k = runs_at, runs_at + nrun - 1 do redis.call('SADD', rkey, f[k]) end
    end
    if started > 0 then s.n = fmt((tonumber(s.n) or 0) + started) end
    if m == sid then
      if held == '1' then  -- still the schedule's fire entry: it moves on (or ends)
        if next_f ~= '' then set_fire(sid, s, next_f, next_due) else s.f = '' end
      end
    else
      redis.call('SREM', prefix .. 'x:' .. sid, m)
    end
    if park ~= '' then
      s.p = park
      maybe_unpark(prefix, sid, s)
    end
    save(sid, s)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
publish(channel)
if peek == 0 then return {out, {}, {}} end
-- what next_due would read right after this commit (the caller skips unreadable entries)
return {out, redis.call('ZRANGE', idx, 0, peek - 1, 'WITHSCORES'), redis.call('ZRANGE', lease, 0, 0, 'WITHSCORES')}
"""
)

# ARGV: channel, then (member, token) pairs. Claims whose lease is held go back to the index.
RELEASE = (
    _COMMON
    + r"""
for i = 2, #ARGV, 2 do
  local m, token = ARGV[i], ARGV[i + 1]
  local c = redis.call('HGET', claims, m)
  if c and parse_claim(c) == token then unclaim(m, c) end
end
publish(ARGV[1])
return 1
"""
)

# ARGV: prefix, channel, sid, run id, patch JSON, retry member ('' none), retry due, history ttl (0: none)
# Returns 1, or 0 (nothing changed) when the run is not running.
RECORD_OUTCOME = (
    _COMMON
    + r"""
local prefix, channel, sid, run_id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local s = load(sid)
if not s then return 0 end
if redis.call('SREM', prefix .. 'r:' .. sid, run_id) == 0 then return 0 end
-- the newest dispatched history record of the run
local hkey = prefix .. 'h:' .. sid
local needle = '"i":"' .. run_id .. '"'
for k, rec in ipairs(redis.call('LRANGE', hkey, 0, -1)) do
  if string.find(rec, needle, 1, true) then
    local ok, obj = pcall(cjson.decode, rec)
    if ok and type(obj) == 'table' and obj.i == run_id and obj.s == 'dispatched' then
      for key, val in pairs(cjson.decode(ARGV[5])) do obj[key] = val end
      redis.call('LSET', hkey, k - 1, cjson.encode(obj))
      if tonumber(ARGV[8]) > 0 then redis.call('EXPIRE', hkey, ARGV[8]) end
      break
    end
  end
end
if ARGV[6] ~= '' then put_new(prefix, sid, ARGV[6], ARGV[7]) end
if s.p ~= '' then
  maybe_unpark(prefix, sid, s)
  if s.p == '' then save(sid, s) end
end
publish(channel)
return 1
"""
)

# The writes of ADD and ADD_MANY, shared so that both leave the same layout. Each item is
# {sid, stored value (compared with the expected one already), definition, fire mode
# (keep|drop|set), f, due}; each gets what one add does -- a new (or unreadable) schedule
# loses anything stale under its keys, a mode other than keep drops the fire entry (as
# drop_fire does: out of the index, a claim holding it no longer holds it), set makes f
# the fire entry, and the state is saved -- with the commands of all items batched:
# their ids differ, so the order between items does not matter.
_ADD_WRITE = r"""
local function slices(head, args, each)
  for i = 1, #args, 4000 do  -- unpack is bounded (LUAI_MAXCSTACK): whole pairs per call
    local call, k = {unpack(head)}, #head
    for j = i, math.min(i + 3999, #args) do
      k = k + 1
      call[k] = args[j]
    end
    each(redis.call(unpack(call, 1, k)))
  end
end
local function bulk(head, args) slices(head, args, function() end) end
local function hmget(key, fields)
  local out, n = {}, 0
  slices({'HMGET', key}, fields, function(got)
    for k = 1, #got do out[n + k] = got[k] end
    n = n + #got
  end)
  return out
end
local function write_adds(prefix, items)
  -- (counters, not #t: the length operator searches the table every time)
  local stale, listed, unfired, fired, saved = {}, {}, {}, {}, {}
  local nstale, nlisted, nunfired, nfired, nsaved = 0, 0, 0, 0, 0
  local noted = nil
  for _, it in ipairs(items) do
    local sid, mode, f = it[1], it[4], it[5]
    local s = nil
    if it[2] ~= '' then s = load(sid) end
    if not s then
      stale[nstale + 1] = prefix .. 'r:' .. sid
      stale[nstale + 2] = prefix .. 'h:' .. sid
      nstale = nstale + 2
      s = {f = '', n = '', p = ''}
    end
    listed[nlisted + 1] = 0
    listed[nlisted + 2] = sid
    nlisted = nlisted + 2
    if mode ~= 'keep' then
      s.f = ''
      nunfired = nunfired + 1
      unfired[nunfired] = sid
    end
    if mode == 'set' then
      s.f = f
      fired[nfired + 1] = it[6]
      fired[nfired + 2] = sid
      nfired = nfired + 2
      if it[6] ~= noted then  -- a batch mostly shares its due times
        noted = it[6]
        note(noted)
      end
    end
    saved[nsaved + 1] = sid
    saved[nsaved + 2] = s.f .. ';' .. s.n .. ';' .. s.p .. '\n' .. it[3]  -- as save() writes it
    nsaved = nsaved + 2
  end
  bulk({'DEL'}, stale)
  bulk({'ZADD', ids}, listed)
  bulk({'ZREM', idx}, unfired)
  local unheld, nunheld = {}, 0
  local held = hmget(claims, unfired)
  for i = 1, nunfired do
    if held[i] then
      local token, due, _, owner = parse_claim(held[i])
      unheld[nunheld + 1] = unfired[i]
      unheld[nunheld + 2] = token .. '|' .. due .. '|0|' .. owner
      nunheld = nunheld + 2
    end
  end
  bulk({'HSET', claims}, unheld)
  bulk({'ZADD', idx}, fired)
  bulk({'HSET', sched}, saved)
end
"""

# ARGV: prefix, channel, sid, expected stored value ('' = none), new definition,
#       fire mode (keep|drop|set), f, due
# Returns {1} when written, {0, stored value} when the stored value is not the expected
# one (the caller decides again with it and retries): a new schedule takes one round trip.
ADD = (
    _COMMON
    + _ADD_WRITE
    + r"""
local prefix, channel, sid = ARGV[1], ARGV[2], ARGV[3]
local cur = redis.call('HGET', sched, sid) or ''
if cur ~= ARGV[4] then return {0, cur} end
write_adds(prefix, {{sid, cur, ARGV[5], ARGV[6], ARGV[7], ARGV[8]}})
publish(channel)
return {1}
"""
)

# ADD for a batch. ARGV: prefix, channel, exclusive (1: conflict "error"), items, then the
# texts the items refer to by ARGV number. items: one line per schedule (ids are distinct),
# "sid<TAB>definition#<TAB>fire mode<TAB>f<TAB>due<TAB>expected stored value#<LF>" (# 0: '').
# Each item whose stored value is the expected one is written as ADD writes it; returns the
# others flat as (item number from 1, stored value) pairs -- {} when all were written. With
# exclusive, when any sid is stored, writes nothing and returns {0, that item's number}.
ADD_MANY = (
    _COMMON
    + _ADD_WRITE
    + r"""
local prefix, channel, exclusive = ARGV[1], ARGV[2], ARGV[3] == '1'
local items, sids, n = {}, {}, 0
for sid, d, mode, f, due, e in string.gmatch(ARGV[4], '([^\t]+)\t(%d+)\t(%a+)\t([^\t]*)\t(%d+)\t(%d+)\n') do
  n = n + 1
  items[n] = {sid, e == '0' and '' or ARGV[tonumber(e)], ARGV[tonumber(d)], mode, f, due}
  sids[n] = sid
end
local curs = hmget(sched, sids)
local ready, out, nready, nout = {}, {}, 0, 0
for i = 1, n do
  local it, cur = items[i], curs[i] or ''
  if exclusive and cur ~= '' then return {0, i} end
  if cur == it[2] then
    nready = nready + 1
    ready[nready] = it
  else
    out[nout + 1] = i
    out[nout + 2] = cur
    nout = nout + 2
  end
end
write_adds(prefix, ready)
publish(channel)
return out
"""
)

# ARGV: prefix, channel, sid, expected stored value, new definition, f ('' none), due
# Returns 1 when written, 0 when the value changed meanwhile, -1 when there is no schedule.
SET_PAUSED = (
    _COMMON
    + r"""
local prefix, channel, sid = ARGV[1], ARGV[2], ARGV[3]
local cur = redis.call('HGET', sched, sid)
if not cur then return -1 end
if cur ~= ARGV[4] then return 0 end
local s = load(sid)
if not s then return redis.error_reply('unreadable state of schedule ' .. sid) end
s.d = ARGV[5]
drop_fire(sid, s)
if ARGV[6] ~= '' then set_fire(sid, s, ARGV[6], ARGV[7]) end
save(sid, s)
publish(channel)
return 1
"""
)

# ARGV: prefix, channel, sid, then (member, due) pairs. Returns how many were added, -1: no schedule.
ENQUEUE = (
    _COMMON
    + r"""
local prefix, channel, sid = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HEXISTS', sched, sid) == 0 then return -1 end
local added = 0
for i = 4, #ARGV, 2 do added = added + put_new(prefix, sid, ARGV[i], ARGV[i + 1]) end
publish(channel)
return added
"""
)

# Take every entry of a schedule out of the index, the leases and the claims (also when its
# x: key is foreign data): shared by REMOVE and the doctor's repair of an unreadable schedule.
UNINDEX = r"""
local function unindex(prefix, sid)
  local members = redis.pcall('SMEMBERS', prefix .. 'x:' .. sid)
  if members.err then members = {} end
  members[#members + 1] = sid
  for _, m in ipairs(members) do
    redis.call('ZREM', idx, m)
    redis.call('ZREM', lease, m)
    redis.call('HDEL', claims, m)
  end
end
"""

# ARGV: prefix, sid. Returns 1 when a schedule was removed, 0 when there was none.
REMOVE = (
    _COMMON
    + UNINDEX
    + r"""
local prefix, sid = ARGV[1], ARGV[2]
local xkey = prefix .. 'x:' .. sid
local existed = redis.call('HDEL', sched, sid)
unindex(prefix, sid)
redis.call('DEL', xkey, prefix .. 'r:' .. sid, prefix .. 'h:' .. sid)
redis.call('ZREM', ids, sid)
return existed
"""
)


# A scheduler's heartbeat (its own KEYS: beats hash, beat-expiry zset). ARGV: owner, beat JSON,
# now ms, expiry ms. Beats expired at or before now are dropped first (at most 1000 a call),
# so owner ids of restarted schedulers do not pile up.
HEARTBEAT = r"""
local beats, expiry = KEYS[1], KEYS[2]
local dead = redis.call('ZRANGEBYSCORE', expiry, '-inf', ARGV[3], 'LIMIT', 0, 1000)
for i = 1, #dead do
  redis.call('HDEL', beats, dead[i])
  redis.call('ZREM', expiry, dead[i])
end
redis.call('HSET', beats, ARGV[1], ARGV[2])
redis.call('ZADD', expiry, ARGV[4], ARGV[1])
return #dead
"""
