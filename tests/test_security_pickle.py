"""Issue 11, item 1: nothing stored is unpickled unless it carries a valid HMAC.

The attacker writes a definition straight into Redis (or hands a dict to ``from_dict``)
whose pickled payload would create a marker file when unpickled; the marker must never
appear, and the record is reported and skipped while the others keep working.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from redis_helpers import fresh_namespace, redis_server_url  # noqa: F401

pytest.importorskip("redis", reason="redis-py is not installed")

from schedcore import CorruptScheduleData, MemoryStore, Scheduler, ValidationError, signing
from schedcore.model import Conflict, Schedule
from schedcore.testing.factories import at, fire_entry, make_schedule
from schedcore_redis import RedisStore

_LEASE = timedelta(seconds=30)


class _Boom:
    """Unpickling this creates ``path`` (a stand-in for ``os.system('...')``)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def _evil_pickle(marker: Path) -> bytes:
    return pickle.dumps(((_Boom(marker),), {}))


def _unsigned(marker: Path) -> str:
    """The pre-signing payload format: base64 of a pickle."""
    return base64.b64encode(_evil_pickle(marker)).decode()


def _signed_with(key: bytes, sid: str, data: bytes) -> str:
    mac = hmac.new(key, b"schedcore-pickle-v1\0" + sid.encode() + b"\0" + data, hashlib.sha256).hexdigest()
    return f"v1.{mac}.{base64.b64encode(data).decode()}"


def _definition(payload: str) -> str:
    """A Redis ``sched`` hash value carrying ``payload`` (fire entry due at 1 s)."""
    body = {"k": "schedcore.demo:hello", "t": {"y": "interval", "every": 60.0}, "z": "pickle", "b": payload}
    return f"1000;;\n1{json.dumps(body)}"


@pytest.fixture
def no_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(signing.ENV_VAR, raising=False)
    signing._reset()
    yield
    signing._reset()


def _as_dict(payload: str, sid: str = "p") -> dict[str, Any]:
    return {
        "schema": 1,
        "id": sid,
        "task": "m:f",
        "trigger": {"type": "interval", "every": 60},
        "serializer": "pickle",
        "payload": payload,
    }


# -- the model ------------------------------------------------------------------------------


@pytest.mark.parametrize("keyed", [False, True])
def test_an_unsigned_pickle_is_never_unpickled(
    tmp_path: Path, keyed: bool, no_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if keyed:
        monkeypatch.setenv(signing.ENV_VAR, "k" * 32)
    marker = tmp_path / "pwned"
    with pytest.raises(ValidationError) as info:
        Schedule.from_dict(_as_dict(_unsigned(marker)))
    assert info.value.field in ("payload", "serializer")
    assert not marker.exists()


def test_a_payload_signed_with_another_key_or_for_another_id_is_refused(tmp_path: Path, pickle_key: bytes) -> None:
    marker = tmp_path / "pwned"
    data = _evil_pickle(marker)
    for payload in (_signed_with(b"another-key-0123456789", "p", data), _signed_with(pickle_key, "other", data)):
        with pytest.raises(ValidationError, match="signature does not match"):
            Schedule.from_dict(_as_dict(payload))
    # tampering with a correctly signed payload is refused too
    good = _signed_with(pickle_key, "p", data)
    with pytest.raises(ValidationError):
        Schedule.from_dict(_as_dict(good[:-8] + base64.b64encode(b"\x80\x04N.").decode()))
    assert not marker.exists()


def test_a_correctly_signed_payload_round_trips(pickle_key: bytes) -> None:
    schedule = make_schedule("p", args=({1, 2},), kwargs={"when": at(5)}, serializer="pickle")
    data = json.loads(json.dumps(schedule.to_dict()))
    assert data["payload"].startswith("v1.")
    assert Schedule.from_dict(data) == schedule
    moved = {**data, "id": "q"}  # the same signed payload under another id
    with pytest.raises(ValidationError, match="signature does not match"):
        Schedule.from_dict(moved)


def test_without_a_key_pickled_schedules_cannot_be_created(no_key: None) -> None:
    with pytest.raises(ValidationError, match="SCHEDCORE_PICKLE_KEY") as info:
        make_schedule("p", serializer="pickle")
    assert info.value.field == "serializer"
    sched = Scheduler(store=MemoryStore())
    with pytest.raises(ValidationError):
        sched.add(Schedule(id="p", task="m:f", trigger={"type": "interval", "every": 60}, serializer="pickle"))


def test_a_key_set_in_code_wins_and_short_keys_are_refused(no_key: None, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="at least 16 bytes") as info:
        signing.configure_pickle_key("short")
    assert "short" not in str(info.value)  # the key is never echoed
    signing.configure_pickle_key(b"code-key-0123456789")
    schedule = make_schedule("p", serializer="pickle", args=(1,))
    payload = schedule.to_dict()["payload"]
    monkeypatch.setenv(signing.ENV_VAR, "env-key-0123456789")  # ignored: the code's key wins
    assert Schedule.from_dict(schedule.to_dict()) == schedule
    signing.configure_pickle_key(None)  # explicitly off, whatever the environment says
    with pytest.raises(ValidationError):
        Schedule.from_dict({**schedule.to_dict(), "payload": payload})


# -- the Redis store on a real redis-server -------------------------------------------------


@pytest.fixture
def rstore(redis_server_url: str) -> Iterator[RedisStore]:  # noqa: F811
    store = RedisStore.from_url(redis_server_url, namespace=fresh_namespace())
    yield store
    store.close()


def _plant(store: RedisStore, sid: str, value: str) -> None:
    """Write a schedule the way an attacker with Redis write access would: raw keys."""
    pipe = store._client.pipeline()
    pipe.hset(store.keys.schedules, sid, value)
    pipe.zadd(store.keys.ids, {sid: 0})
    pipe.zadd(store.keys.index, {sid: 1000})
    pipe.execute()


@pytest.mark.redis
@pytest.mark.parametrize("keyed", [False, True])
def test_a_crafted_pickle_in_redis_is_reported_and_skipped(
    rstore: RedisStore,
    tmp_path: Path,
    keyed: bool,
    no_key: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if keyed:
        monkeypatch.setenv(signing.ENV_VAR, "k" * 32)
    marker = tmp_path / "pwned"
    for sid in ("a", "c"):
        rstore.add(make_schedule(sid), fire_entry(0), Conflict.ERROR)
    _plant(rstore, "b", _definition(_unsigned(marker)))
    with caplog.at_level(logging.ERROR, logger="schedcore.redis"):
        assert [s.schedule.id for s in rstore.list_schedules()] == ["a", "c"]
        claims = rstore.claim_due(at(10), limit=10, lease=_LEASE, owner="t")
    assert sorted(c.schedule_id for c in claims) == ["a", "c"]
    assert "'b'" in caplog.text
    with pytest.raises(CorruptScheduleData):
        rstore.get("b")
    assert not marker.exists()


@pytest.mark.redis
def test_a_signed_definition_copied_to_another_id_is_refused(
    rstore: RedisStore, pickle_key: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    rstore.add(make_schedule("a", serializer="pickle", args=({1},)), fire_entry(0), Conflict.ERROR)
    value = rstore._client.hget(rstore.keys.schedules, "a")
    rstore._client.hset(rstore.keys.schedules, "b", value)
    due = rstore._client.zscore(rstore.keys.index, "a")
    rstore._client.zadd(rstore.keys.index, {"b": due + 1})
    # claims decode "a" first, so "b" would be a copy of the cached schedule if the id were not checked
    with caplog.at_level(logging.ERROR, logger="schedcore.redis"):
        claims = rstore.claim_due(at(10), limit=10, lease=_LEASE, owner="t")
    assert [c.schedule_id for c in claims] == ["a"]
    assert claims[0].schedule.args == ({1},)
    assert "'b'" in caplog.text and "signature does not match" in caplog.text


# -- `schedcore list` in a real process ------------------------------------------------------


@pytest.mark.redis
def test_schedcore_list_does_not_run_a_crafted_pickle(
    rstore: RedisStore,
    redis_server_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    marker = tmp_path / "pwned"
    rstore.add(make_schedule("good"), fire_entry(0), Conflict.ERROR)
    _plant(rstore, "evil", _definition(_unsigned(marker)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDCORE_")}
    env["SCHEDCORE_PICKLE_KEY"] = "k" * 32  # even with a key set, an unsigned payload is refused
    result = subprocess.run(
        [sys.executable, "-m", "schedcore.cli", "list", "--store", "redis",
         "--redis-url", redis_server_url, "--redis-namespace", rstore.namespace],
        capture_output=True, text=True, timeout=60, check=False, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert not marker.exists()
    assert "good" in result.stdout
    assert "'evil'" in result.stderr  # reported by name
    assert "Traceback" not in result.stderr
