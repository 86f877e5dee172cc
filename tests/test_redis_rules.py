"""Rules the Redis store, its Lua scripts and the RQ executor share: each written once in
Python, and the Lua's copies (kept there for atomicity) checked against it."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import attrs
import pytest
import redis
import redis.exceptions as rex

from schedcore.exceptions import ExecutorError, ExecutorUnavailable, ValidationError
from schedcore.records import OutcomeStatus, Pending, PendingKind, RunStatus
from schedcore.testing.factories import T0, dispatched_record, entry, outcome_for
from schedcore_redis import _scripts
from schedcore_redis._codec import KIND_CHAR, encode_parked, encode_record, member, outcome_patch
from schedcore_redis._keys import Keys
from schedcore_redis._store import RedisStore
from schedcore_redis.connection import check_namespace, is_permanent
from schedcore_rq import RQExecutor

LUA = "\n".join(value for name, value in vars(_scripts).items() if isinstance(value, str) and name.isupper())


def test_the_scripts_are_found() -> None:
    assert "redis.call" in LUA and len(LUA) > 10_000


def test_the_per_schedule_keys_of_the_lua_are_those_of_keys() -> None:
    keys = Keys("ns")
    python = {keys.history("s"), keys.running("s"), keys.extras("s")}
    lua = {f"{keys.prefix}{suffix}s" for suffix in re.findall(r"prefix \.\. '([a-z]+:)'", LUA)}
    assert lua == python
    # the type each one must have, as the damage check of the scripts says
    lua_types = dict(re.findall(r"(\w) = '(\w+)'", re.search(r"local KIND = \{([^}]*)\}", LUA).group(1)))  # type: ignore[union-attr]
    assert lua_types == {"h": "list", "r": "set", "x": "set"}


def test_the_namespace_wide_key_types_agree_with_the_store() -> None:
    checked = dict(re.findall(r"(idx|lease|sched|ids|claims), '(\w+)'", LUA))
    keys = Keys("ns")
    by_name = {getattr(keys, name).removeprefix(keys.prefix): kind for name, kind in RedisStore._TYPES.items()}
    assert checked and all(by_name[key] == kind for key, kind in checked.items())


@pytest.mark.parametrize("kind", [k for k in PendingKind if k is not PendingKind.FIRE])
def test_the_lua_builds_a_parked_entrys_member_as_the_codec_does(kind: PendingKind) -> None:
    parked = Pending(kind=kind, nominal=T0, due=T0 + timedelta(seconds=3), attempt=2)
    # maybe_unpark: kind, nominal, due, attempt = match(s.p, ...); member = sid|kind|nominal|attempt
    assert "string.match(s.p, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)$')" in LUA
    assert "sid .. '|' .. kind .. '|' .. nominal .. '|' .. attempt" in LUA
    k, nominal, _due, attempt = encode_parked(parked).split("|")
    assert f"s1|{k}|{nominal}|{attempt}" == member("s1", parked)
    assert k == KIND_CHAR[kind]


def test_the_lua_finds_a_dispatched_record_by_the_codecs_field_names() -> None:
    fire = entry(PendingKind.FIRE, 0)
    record = dispatched_record("s1", fire)
    text = encode_record(record)
    # RECORD_OUTCOME: needle '"i":"' .. run_id .. '"', then obj.i == run_id and obj.s == 'dispatched'
    assert """local needle = '"i":"' .. run_id .. '"'""" in LUA
    assert "obj.i == run_id and obj.s == 'dispatched'" in LUA
    assert f'"i":"{record.run_id}"' in text and f'"s":"{RunStatus.DISPATCHED.value}"' in text
    # the patch the Lua merges into the record uses the record's own field names
    patch = json.loads(outcome_patch(outcome_for("s1", fire, OutcomeStatus.FAILED, error="boom", traceback="tb"), None))
    done = attrs.evolve(record, status=RunStatus.FAILED, finished_at=T0, error="e", traceback="t")
    finished = json.loads(encode_record(done))
    assert set(patch) - {"r"} <= set(finished) and patch["s"] == RunStatus.FAILED.value


# -- one namespace rule --------------------------------------------------------------------


@pytest.mark.parametrize("namespace", ["a" * 101, "", "a:b", "{x}", 7])
def test_store_and_executor_refuse_the_same_namespaces_with_the_same_words(namespace: Any) -> None:
    with pytest.raises(ValidationError) as by_rule:
        check_namespace(namespace)
    with pytest.raises(ValidationError) as by_executor:
        RQExecutor(redis.Redis(unix_socket_path="/nonexistent"), namespace=namespace)
    with pytest.raises(ValidationError) as by_keys:
        Keys(namespace)
    assert str(by_rule.value) == str(by_executor.value) == str(by_keys.value)


def test_the_longest_namespace_is_accepted_by_both() -> None:
    longest = "n" * 100
    assert Keys(longest).prefix == f"{{schedcore:{longest}}}:"
    assert RQExecutor(redis.Redis(unix_socket_path="/nonexistent"), namespace=longest).namespace == longest


# -- one translation of Redis errors in the RQ executor -------------------------------------


@pytest.mark.parametrize(
    ("error", "permanent"),
    [
        (rex.NoPermissionError("NOPERM this user has no permissions to access one of the keys"), True),
        (rex.AuthenticationError("WRONGPASS invalid username-password pair"), True),
        (rex.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"), True),
        (rex.ConnectionError("Connection refused"), False),
        (rex.TimeoutError("Timeout reading from socket"), False),
        (rex.BusyLoadingError("LOADING Redis is loading the dataset in memory"), False),
        (OSError("broken pipe"), False),
    ],
)
def test_the_rq_executor_retries_transient_errors_and_names_permanent_ones(
    error: BaseException, permanent: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert is_permanent(error) is permanent
    executor = RQExecutor(redis.Redis(unix_socket_path="/nonexistent"), namespace="rules")

    def fail(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(executor._connection, "zcard", fail)
    with pytest.raises(ExecutorError) as info:
        executor.outstanding()
    assert isinstance(info.value, ExecutorUnavailable) is not permanent  # transient: the engine retries
    assert type(error).__name__ in str(info.value)
    if permanent:
        assert "retrying will not help" in str(info.value) and "{schedcore:rules}:rq:" in str(info.value)
