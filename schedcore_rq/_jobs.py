"""Job ids, per-schedule options and building RQ jobs from runs.

The hand-off of a batch is one Lua script call per chunk, all chunks in one pipeline:
for each run the script checks the hand-off marker and the job key, and only when
neither exists replays the writes RQ itself would make to enqueue the job (captured
from ``Queue.enqueue_job(job, pipeline=...)`` without executing them), sets the marker
and records the run as outstanding -- atomically. A repeat hand-over is a no-op and
never touches an existing job.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeGuard

import attrs

from schedcore._time import to_ms
from schedcore._validate import check_queue, task_reference
from schedcore.exceptions import ValidationError
from schedcore.records import PendingKind, Run
from schedcore_rq._outcomes import META_KEY, RunInfo

if TYPE_CHECKING:
    from schedcore.model import Schedule

__all__ = [
    "HANDOFF_LUA",
    "OPTION_NAMES",
    "RESERVED",
    "JobOptions",
    "as_bytes",
    "check_schedule",
    "job_id_for",
    "parse_options",
    "run_job_id",
]

#: RQ's own rule for job ids (``\Z``, not ``$``: ``$`` also matches before a final newline,
#: and a job id travels in the hand-off script's newline-separated entries).
JOB_ID_RE = re.compile(r"^[A-Za-z0-9_-]+\Z")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
#: ``_UNSAFE.sub("_", ...)`` for ASCII text as a byte table: a hand-off makes a job id per run,
#: and ``bytes.translate`` is about twice as fast as the regular expression.
_SAFE_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_ASCII_SANITISED = bytes(c if c in _SAFE_BYTES else ord("_") for c in range(256))
_READABLE_MAX = 96

#: The function every job runs on the worker.
RUN_TASK = "schedcore_rq._worker_side.run_task"
ON_SUCCESS = "schedcore_rq._worker_side.on_success"
ON_FAILURE = "schedcore_rq._worker_side.on_failure"
ON_STOPPED = "schedcore_rq._worker_side.on_stopped"

OPTION_NAMES = (
    "queue",
    "job_timeout",
    "result_ttl",
    "ttl",
    "failure_ttl",
    "at_front",
    "description",
    "meta",
    "job_id",
    "depends_on",
    "allow_dependency_failures",
    "on_success",
    "on_success_timeout",
    "on_failure",
    "on_failure_timeout",
)
#: The most dependencies one job may name (each is one HGET in the hand-off script).
MAX_DEPENDENCIES = 100
#: The value of a hand-off marker that reserves a job id for a run not handed over yet (see
#: :mod:`schedcore_rq.compat._reserve`): the job under that id is a placeholder the hand-off replaces.
RESERVED = "r"


def job_id_for(run_id: str, namespace: str = "default") -> str:
    """The RQ job id of a run: deterministic, readable, within ``[A-Za-z0-9_-]``.

    ``"nightly@1735700400000.1"`` becomes ``"sc_nightly_1735700400000_1_<12 hex>"``; the hash
    covers the namespace and the exact run id, so two runs whose ids only differ in
    characters that sanitising merges (``a.b`` / ``a_b``) still get different job ids.
    """
    if run_id.isascii():
        readable = run_id.encode("ascii").translate(_ASCII_SANITISED).decode("ascii")
    else:
        readable = _UNSAFE.sub("_", run_id)
    if len(readable) > _READABLE_MAX:
        readable = readable[:_READABLE_MAX]
    digest = hashlib.sha256(f"{namespace}\x00{run_id}".encode()).hexdigest()[:12]
    return f"sc_{readable}_{digest}"


@attrs.frozen(kw_only=True)
class JobOptions:
    """Per-schedule RQ options, validated (from ``Schedule.executor_options``)."""

    queue: str | None = None
    job_timeout: int | None = None
    result_ttl: int | None = None
    ttl: int | None = None
    failure_ttl: int | None = None
    at_front: bool = False
    description: str | None = None
    meta: dict[str, Any] = attrs.field(factory=dict)
    job_id: str | None = None  #: the RQ job id of the first attempt of a one-shot's occurrence
    #: RQ job ids this run's job waits for (deferred until they finished, as RQ's ``depends_on``)
    depends_on: tuple[str, ...] = ()
    allow_dependency_failures: bool = False  #: a failed dependency counts as done
    on_success: str | None = None  #: ``"module:function"`` run on the worker after a success
    on_success_timeout: int | None = None
    on_failure: str | None = None  #: ``"module:function"`` run on the worker after a failure
    on_failure_timeout: int | None = None

    @property
    def templated(self) -> bool:
        """Whether runs with these options may use a job template: not with dependencies or
        callbacks (rare, so each such run is built from RQ, and one with dependencies is
        enqueued or deferred by the hand-off script; see :data:`HANDOFF_LUA`)."""
        return not (
            self.depends_on
            or self.on_success
            or self.on_failure
            or self.on_success_timeout is not None
            or self.on_failure_timeout is not None
        )

    @property
    def callbacks(self) -> dict[str, str]:
        """The caller's callbacks, as the worker side reads them from the job's meta."""
        found = {"on_success": self.on_success, "on_failure": self.on_failure}
        return {name: reference for name, reference in found.items() if reference is not None}


def _seconds(name: str, value: Any, *, allow_infinite: bool, allow_zero: bool = False) -> int:
    field = f"executor_options.{name}"
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValidationError(field, value, "expected a number of seconds")
    if allow_infinite and value == -1:
        return -1
    if value < 0 or (value == 0 and not allow_zero):
        allowed = "a positive number of seconds"
        if allow_zero:
            allowed = "zero or a positive number of seconds"
        if allow_infinite:
            allowed += " (or -1 for no limit)"
        raise ValidationError(field, value, f"must be {allowed}")
    return max(math.ceil(value), 1) if value > 0 else 0


def parse_options(options: Mapping[str, Any]) -> JobOptions:
    """Validate ``executor_options``; ValidationError names the offending option."""
    if not isinstance(options, Mapping):
        raise ValidationError("executor_options", options, "expected a dict")
    for name in options:
        if name not in OPTION_NAMES:
            raise ValidationError(
                f"executor_options.{name}", options[name], f"unknown RQ option (known: {', '.join(OPTION_NAMES)})"
            )
    values: dict[str, Any] = {}
    if options.get("queue") is not None:
        values["queue"] = check_queue(options["queue"], "executor_options.queue")
    if options.get("job_timeout") is not None:
        values["job_timeout"] = _seconds("job_timeout", options["job_timeout"], allow_infinite=True)
    if options.get("result_ttl") is not None:
        values["result_ttl"] = _seconds("result_ttl", options["result_ttl"], allow_infinite=True, allow_zero=True)
    if options.get("ttl") is not None:
        values["ttl"] = _seconds("ttl", options["ttl"], allow_infinite=False)
    if options.get("failure_ttl") is not None:
        values["failure_ttl"] = _seconds("failure_ttl", options["failure_ttl"], allow_infinite=True)
    if "at_front" in options:
        if not isinstance(options["at_front"], bool):
            raise ValidationError("executor_options.at_front", options["at_front"], "must be true or false")
        values["at_front"] = options["at_front"]
    if options.get("description") is not None:
        description = options["description"]
        if not isinstance(description, str) or len(description) > 1000:
            raise ValidationError("executor_options.description", description, "must be a string of at most 1000")
        values["description"] = description
    if options.get("meta") is not None:
        meta = options["meta"]
        if not isinstance(meta, Mapping) or not all(isinstance(k, str) for k in meta):
            raise ValidationError("executor_options.meta", meta, "expected a dict with string keys")
        if META_KEY in meta:
            raise ValidationError("executor_options.meta", meta, f"the key {META_KEY!r} is reserved for schedcore")
        values["meta"] = dict(meta)
    if options.get("job_id") is not None:
        values["job_id"] = _job_id("executor_options.job_id", options["job_id"])
    if options.get("depends_on") is not None:
        values["depends_on"] = _dependencies(options["depends_on"])
    if "allow_dependency_failures" in options:
        allow = options["allow_dependency_failures"]
        if not isinstance(allow, bool):
            raise ValidationError("executor_options.allow_dependency_failures", allow, "must be true or false")
        values["allow_dependency_failures"] = allow
    for name in ("on_success", "on_failure"):
        if options.get(name) is not None:
            if not isinstance(options[name], str):
                raise ValidationError(f"executor_options.{name}", options[name], "expected a 'module:function' string")
            values[name] = task_reference(options[name], f"executor_options.{name}")
        if options.get(f"{name}_timeout") is not None:
            values[f"{name}_timeout"] = _seconds(f"{name}_timeout", options[f"{name}_timeout"], allow_infinite=False)
    return JobOptions(**values)


def valid_job_id(value: Any) -> TypeGuard[str]:
    """Whether ``value`` is a job id both RQ (>= 2.8) and schedcore accept: 1-200 of ``[A-Za-z0-9_-]``."""
    return isinstance(value, str) and len(value) <= 200 and JOB_ID_RE.match(value) is not None


def _job_id(field: str, value: Any) -> str:
    if not valid_job_id(value):
        raise ValidationError(field, value, "must be 1-200 characters of A-Z a-z 0-9 _ -")
    return value


def _dependencies(value: Any) -> tuple[str, ...]:
    """``depends_on``: one RQ job id or a list of them (duplicates dropped, order kept)."""
    field = "executor_options.depends_on"
    ids = [value] if isinstance(value, str) else value
    if not isinstance(ids, (list, tuple)) or not ids or len(ids) > MAX_DEPENDENCIES:
        raise ValidationError(field, value, f"expected a job id or a list of 1-{MAX_DEPENDENCIES} job ids")
    return tuple(dict.fromkeys(_job_id(field, job_id) for job_id in ids))


def run_job_id(run: Run, options: JobOptions, namespace: str) -> str:
    """The RQ job id of ``run``: the ``job_id`` option for the first attempt of a regular
    occurrence (a one-shot's only one), else :func:`job_id_for` -- retries, manual runs and
    backfills get ids of their own, so one job id never names two runs."""
    if options.job_id is not None and run.attempt == 1 and run.kind is PendingKind.FIRE:
        return options.job_id
    return job_id_for(run.id, namespace)


def check_schedule(schedule: Schedule, serializer: Any) -> None:
    """What the RQ executor refuses in ``schedule``: its ``executor_options`` (:func:`parse_options`)
    and, unless ``serializer`` is None, arguments the RQ ``serializer`` cannot write.

    Touches no connection, so the plugin runs it for ``schedcore add``/``sync`` too.
    """
    parse_options(schedule.executor_options)
    if serializer is None:
        return
    try:
        serializer.dumps((RUN_TASK, None, (schedule.task, *schedule.args), schedule.kwargs))
    except Exception as exc:
        raise ValidationError("args", schedule.args, f"the RQ serializer refuses the arguments ({exc})") from None


def run_info(run: Run) -> RunInfo:
    """The run info kept with the job (meta) and in the ``runs`` hash."""
    return RunInfo(run_id=run.id, schedule_id=run.schedule_id, nominal_ms=to_ms(run.nominal), attempt=run.attempt)


# KEYS: 1 outstanding zset, 2 runs hash, 3 outcomes list.
# ARGV: a header, then one entry per run. Whatever is the same for every run of a call is
# sent once in the header, and a run's short fields travel joined in one argument: redis-py
# packs each argument separately, and that packing is most of the Python cost of a hand-off.
# Header: 1 now ms, 2 marker TTL ms, 3 marker key prefix, 4 template TTL ms, 5 RQ's job key
#   prefix (``Job.redis_job_namespace_prefix``: a job's key is it .. job id), 6 the timestamp
#   (the jobs of one call are created and enqueued together), 7 number of data blobs D, then
#   the D distinct ``data`` values of the call's templated runs, then the number of job
#   templates, then per template: its key, its number of arguments n, then n arguments (n = 0:
#   read them from the key, where an earlier call stored them; a template sent inline is
#   stored). A template's arguments (see JobTemplate.lua_args): number of commands, then per
#   command: number of arguments, then per argument: kind, a, b -- kind 'l' literal a,
#   'i' a .. job id .. b, 't' the timestamp, 'm' the meta, 'd' the description, 'x' the data.
# Per run, one argument: "<job id>\n<template number>\n<data number>\n<run info JSON>\n
#   <failure payload>\n<meta length>\n<meta><description>" -- the job id is [A-Za-z0-9_-], the
#   numbers are decimal and both JSON texts are compact ASCII, so none holds a newline; the
#   meta (binary: the serializer's) is cut out by its length in bytes and the description is
#   the rest. Template number 0 (no template; meta and description empty): the run's own
#   commands follow as further arguments -- with data number 0, number of commands, then per
#   command: number of arguments, arguments...; with data number 1 (a job with dependencies),
#   the number of dependencies n, their n job keys, '1' or '0' (a failed dependency counts as
#   done), then two such command lists: the enqueue, replayed when every dependency finished
#   (or its job is gone), else the deferral. A failure payload ('' = none) is pushed to the
#   outcomes list instead of recording the run as outstanding (such a run has 0 commands).
# Returns a string of one character per run: '1' handed over now, '0' handed over before
# (nothing written); a WRONGTYPE error (nothing written) when one of KEYS has the wrong type;
# or the integer -1 when a template to read from its key is gone (nothing
# written: send it inline). A string, not a table of integers: redis-py parses each element
# of a table reply in Python.
HANDOFF_LUA = """
-- A wrong-typed key would fail a write half-way through (a job written, its run info not):
-- checked before anything is written (the executor sets such a key aside and retries).
for n, kind in ipairs({'zset', 'hash', 'list'}) do
  local found = redis.call('TYPE', KEYS[n])['ok']
  if found ~= 'none' and found ~= kind then
    return redis.error_reply('WRONGTYPE schedcore: ' .. KEYS[n] .. ' is a ' .. found .. ', not a ' .. kind)
  end
end
local now, ttl, prefix, template_ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local job_prefix, stamp = ARGV[5], ARGV[6]
local data_at = 7  -- the data blob number d is ARGV[data_at + d]
local i = 8 + tonumber(ARGV[7])
local templates = {}
local ntemplates = tonumber(ARGV[i])
i = i + 1
for t = 1, ntemplates do
  local key, n = ARGV[i], tonumber(ARGV[i + 1])
  local args
  if n == 0 then
    args = redis.call('LRANGE', key, 0, -1)
    if #args == 0 then return -1 end
  else
    args = {unpack(ARGV, i + 2, i + 1 + n)}
    redis.call('DEL', key)
    redis.call('RPUSH', key, unpack(args))
  end
  redis.call('PEXPIRE', key, template_ttl)
  i = i + 2 + n
  -- per command: its arguments with the literals in place, and its slots (filled per run)
  local commands, at = {}, 2
  for c = 1, tonumber(args[1]) do
    local base, slots = {}, {}
    for a = 1, tonumber(args[at]) do
      local kind = args[at + 1 + 3 * (a - 1)]
      if kind == 'l' then base[a] = args[at + 2 + 3 * (a - 1)]
      else slots[#slots + 1] = {a, kind, args[at + 2 + 3 * (a - 1)], args[at + 3 + 3 * (a - 1)]} end
    end
    commands[c] = {base, slots}
    at = at + 1 + 3 * tonumber(args[at])
  end
  templates[t] = commands
end
local result = {}
local last = #ARGV
while i <= last do
  local line = ARGV[i]
  local job_id, template, d, info, failure, meta_len, rest =
    string.match(line, '^([^\\n]*)\\n(%d+)\\n(%d+)\\n([^\\n]*)\\n([^\\n]*)\\n(%d+)\\n()')
  if not job_id then return redis.error_reply('schedcore: malformed hand-off entry') end
  template = tonumber(template)
  i = i + 1
  local marker = prefix .. job_id
  -- a marker 'r' reserves the id: the job there is a placeholder, replaced by this run's job
  local mark = redis.call('GET', marker)
  local fresh = mark == 'r' or (not mark and redis.call('EXISTS', job_prefix .. job_id) == 0)
  if fresh and mark == 'r' then redis.call('DEL', job_prefix .. job_id) end
  if template == 0 then
    -- variant 0: one list of commands; variant 1 (a job with dependencies): the dependency
    -- job keys, then the commands that enqueue it and the commands that defer it -- decided
    -- here, atomically, as RQ decides in a WATCHed transaction: a worker finishing a
    -- dependency moves its dependents in a transaction WATCHing the dependents set we add to
    local met, lists = true, 1
    if d == '1' then
      local ndeps = tonumber(ARGV[i])
      local allow_failed = ARGV[i + ndeps + 1] == '1'
      if fresh then
        for k = i + 1, i + ndeps do
          -- a dependency whose job is gone counts as done (RQ skips jobs it cannot fetch)
          local status = redis.call('HGET', ARGV[k], 'status')
          if status and status ~= 'finished' and not (allow_failed and status == 'failed') then met = false end
        end
      end
      i, lists = i + ndeps + 2, 2
    end
    for list = 1, lists do
      local ncmd = tonumber(ARGV[i])
      local chosen = fresh and (lists == 1 or (list == 1) == met)
      i = i + 1
      for _ = 1, ncmd do
        local nargs = tonumber(ARGV[i])
        if chosen then redis.call(unpack(ARGV, i + 1, i + nargs)) end
        i = i + 1 + nargs
      end
    end
  elseif fresh then
    local meta_end = rest + tonumber(meta_len) - 1
    local meta, description = string.sub(line, rest, meta_end), string.sub(line, meta_end + 1)
    local data = ARGV[data_at + tonumber(d)]
    for _, command in ipairs(templates[template]) do
      local base = command[1]
      for _, slot in ipairs(command[2]) do
        local kind = slot[2]
        if kind == 'i' then base[slot[1]] = slot[3] .. job_id .. slot[4]
        elseif kind == 't' then base[slot[1]] = stamp
        elseif kind == 'm' then base[slot[1]] = meta
        elseif kind == 'x' then base[slot[1]] = data
        else base[slot[1]] = description end
      end
      redis.call(unpack(base, 1, #base))
    end
  end
  if fresh then
    redis.call('SET', marker, '1', 'PX', ttl)
    if failure ~= '' then
      redis.call('LPUSH', KEYS[3], failure)
    else
      redis.call('ZADD', KEYS[1], now, job_id)
      redis.call('HSET', KEYS[2], job_id, info)
    end
    result[#result + 1] = '1'
  else
    result[#result + 1] = '0'
  end
end
return table.concat(result)
"""

#: (task, arguments, options) combinations whose job template and data an executor keeps (cleared when full).
TEMPLATE_CACHE_SIZE = 20_000
_TIMESTAMP_FIELDS = ("created_at", "enqueued_at")


_DATA_FIELD = "data"  # the job's serialized function and arguments
_KIND_CODES = {"time": "t", "meta": "m", "description": "d", "data": "x"}


@attrs.frozen
class JobTemplate:
    """The enqueue writes RQ made for one run, with the per-run values marked as slots.

    Runs that differ only in their run (job id, description, meta and the timestamps) and in
    their arguments (the job's ``data``) make the same writes otherwise, so building the RQ
    job once and filling the slots for every later run gives the exact commands
    ``Queue.enqueue_job`` would capture, at a fraction of the cost. Schedules that share a
    queue and options share one template; the hand-off script keeps it in Redis under
    :attr:`digest`, so a call sends only the slot values. :meth:`capture` refuses (returns
    None) whenever it cannot prove that: a per-run value it does not recognise makes the
    run take the slow path.
    """

    #: per command: its arguments, where a slot is ``(kind, parts)`` in ``slots`` by position
    commands: tuple[tuple[Any, ...], ...]
    slots: tuple[tuple[int, int, str, tuple[str, ...]], ...]  # (command, argument, kind, split parts)
    #: the template as the hand-off script reads it (see :data:`HANDOFF_LUA`), as bytes
    lua_args: tuple[bytes, ...] = ()
    #: names the template's copy in Redis: a hash of :attr:`lua_args`
    digest: str = ""

    @classmethod
    def capture(
        cls, commands: list[tuple[Any, ...]], job_id: str, description: str, meta: bytes, run_id: str
    ) -> JobTemplate | None:
        """The template of ``commands`` (captured for ``job_id``), or None when it is not safe."""
        slots: list[tuple[int, int, str, tuple[str, ...]]] = []
        text_markers, byte_markers = (job_id, run_id), (job_id.encode(), run_id.encode())
        generic = [list(command) for command in commands]
        for c, command in enumerate(commands):
            is_hset = str(command[0]).upper() == "HSET"
            for a, arg in enumerate(command):
                if a == 0:
                    continue
                field = str(command[a - 1]) if is_hset and a >= 3 and a % 2 == 1 else None
                if field in _TIMESTAMP_FIELDS:
                    slots.append((c, a, "time", ()))
                elif field == _DATA_FIELD:
                    slots.append((c, a, "data", ()))
                elif isinstance(arg, bytes) and arg == meta:
                    slots.append((c, a, "meta", ()))
                elif isinstance(arg, str) and arg == description:
                    slots.append((c, a, "description", ()))
                elif (
                    isinstance(arg, str) and arg.count(job_id) == 1 and not any(run_id in p for p in arg.split(job_id))
                ):
                    slots.append((c, a, "id", tuple(arg.split(job_id))))
                elif (isinstance(arg, str) and any(m in arg for m in text_markers)) or (
                    isinstance(arg, bytes) and any(m in arg for m in byte_markers)
                ):
                    return None  # a per-run value we would not replace
                else:
                    continue
                generic[c][a] = None  # a slot: nothing of this run stays in the template
        kinds = {kind for _, _, kind, _ in slots}
        if not {"id", "meta", "description"} <= kinds:
            return None  # RQ wrote the job differently than we expect: always ask RQ
        frozen, fixed = tuple(tuple(command) for command in generic), tuple(slots)
        lua_args = cls._lua_args(frozen, fixed)
        digest = hashlib.sha256(b"\x00".join(b"%d:%s" % (len(a), a) for a in lua_args)).hexdigest()[:32]
        return cls(frozen, fixed, lua_args, digest)

    def data_of(self, commands: list[tuple[Any, ...]]) -> bytes:
        """The value of the ``data`` slot in ``commands`` (captured for this template), or b""."""
        for c, a, kind, _ in self.slots:
            if kind == "data":
                value = commands[c][a]
                return value if isinstance(value, bytes) else str(value).encode()
        return b""

    @staticmethod
    def _lua_args(
        commands: tuple[tuple[Any, ...], ...], slots: tuple[tuple[int, int, str, tuple[str, ...]], ...]
    ) -> tuple[bytes, ...]:
        by_position = {(c, a): (kind, parts) for c, a, kind, parts in slots}
        out: list[Any] = [len(commands)]
        for c, command in enumerate(commands):
            out.append(len(command))
            for a, arg in enumerate(command):
                kind, parts = by_position.get((c, a), ("literal", ()))
                if kind == "literal":
                    out += ["l", arg, ""]
                elif kind == "id":
                    out += ["i", parts[0], parts[1]]
                else:
                    out += [_KIND_CODES[kind], "", ""]
        return tuple(as_bytes(arg) for arg in out)

    def render(self, job_id: str, description: str, meta: bytes, timestamp: str, data: bytes) -> list[tuple[Any, ...]]:
        """The commands for another run."""
        out = [list(command) for command in self.commands]
        for c, a, kind, parts in self.slots:
            if kind == "id":
                out[c][a] = job_id.join(parts)
            elif kind == "time":
                out[c][a] = timestamp
            elif kind == "meta":
                out[c][a] = meta
            elif kind == "data":
                out[c][a] = data
            else:
                out[c][a] = description
        return [tuple(command) for command in out]


def as_bytes(value: Any) -> bytes:
    """An argument as Redis receives it, or a string reply as bytes (redis-py's encoding of
    str, numbers and str enums; a connection with ``decode_responses`` replies with str)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()  # a str enum (RQ's JobStatus) encodes to its value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value).encode()
    raise TypeError(f"unexpected argument {value!r} in an RQ command")
