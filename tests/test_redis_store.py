"""RedisStore beyond the conformance suite: layout, bad input, corrupt data, errors, memory, outages."""
# ruff: noqa: E402  (imports after the skip when redis-py or fakeredis is not installed)

from __future__ import annotations

import inspect
import json
import logging
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis_helpers import (  # noqa: F401
    fresh_namespace,
    make_store,
    private_server,
    redis_server_url,
    store_fixture,
)

fakeredis = pytest.importorskip("fakeredis", reason="fakeredis is not installed")
import redis
import redis.exceptions as rex

from schedcore import Cron, Interval, RetryPolicy, Schedule
from schedcore._time import to_ms
from schedcore.exceptions import CorruptScheduleData, StoreError, StoreUnavailable, ValidationError
from schedcore.model import Conflict
from schedcore.plugins import Hooks, get_plugin_manager
from schedcore.records import Pending, PendingKind, RunStatus
from schedcore.testing.factories import at, commit_for, entry, fire_entry, make_schedule, outcome_for
from schedcore.testing.redis_server import RedisServer, require_redis_server
from schedcore_redis import RedisStore
from schedcore_redis._errors import MAPPING, translate

LEASE = timedelta(seconds=30)


store = store_fixture()


def claim(store: RedisStore, now: datetime, limit: int = 100, lease: timedelta = LEASE) -> list:  # type: ignore[type-arg]
    return store.claim_due(now, limit=limit, lease=lease, owner="test")


def raw(store: RedisStore) -> redis.Redis:
    return store._client


# -- layout ------------------------------------------------------------------------------


def test_every_key_carries_the_namespace_hash_tag(store: RedisStore) -> None:
    store.add(make_schedule("a"), fire_entry(0), Conflict.ERROR)
    store.enqueue("a", [entry("manual", 1)])
    [c, m] = claim(store, at(5))
    assert store.commit([commit_for(c, next_fire=fire_entry(60)), commit_for(m)]) == [True, True]
    prefix = f"{{schedcore:{store.namespace}}}:"
    keys = [k.decode() for k in raw(store).keys(f"*{store.namespace}*")]  # a test may use KEYS; the store never does
    assert keys and all(k.startswith(prefix) for k in keys)


def test_remove_leaves_nothing_but_the_token_counter(store: RedisStore) -> None:
    store.add(make_schedule("a"), fire_entry(0), Conflict.ERROR)
    store.enqueue("a", [entry("manual", 1), entry("backfill", 2)])
    [c, *_] = claim(store, at(5), limit=1)
    store.commit([commit_for(c, next_fire=fire_entry(60), park=entry("buffered", 3))])
    assert store.remove("a")
    keys = sorted(k.decode() for k in raw(store).keys(f"*{store.namespace}*"))
    assert keys == [f"{{schedcore:{store.namespace}}}:token"]


def test_the_store_never_uses_keys_or_scan() -> None:
    import schedcore_redis._scripts as scripts
    import schedcore_redis._store as store_module

    for module in (scripts, store_module):
        source = inspect.getsource(module)
        for banned in ("'KEYS'", '"KEYS"', "'SCAN'", "scan_iter", ".keys(", "hscan", "zscan", "sscan"):
            assert banned not in source, f"{module.__name__} uses {banned}"


def test_history_is_capped_and_can_expire(request: pytest.FixtureRequest) -> None:
    s = make_store("fakeredis", request, history_limit=3, history_ttl=timedelta(hours=1))
    s.add(make_schedule("a"), fire_entry(0), Conflict.ERROR)
    for n in range(5):
        [c] = claim(s, at(60 * n))
        assert s.commit([commit_for(c, next_fire=fire_entry(60 * (n + 1)))]) == [True]
    assert [r.nominal for r in s.history("a")] == [at(240), at(180), at(120)]
    assert 3500 < raw(s).ttl(s.keys.history("a")) <= 3600


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    # never a URL of a server that could exist: the tests touch no Redis they did not start
    ["http://localhost:1", "redis://localhost:notaport/0", "redis://localhost:1/notadb", "unix://", "", "nope"],
)
def test_unparsable_url_is_a_one_line_validation_error(url: str) -> None:
    with pytest.raises(ValidationError) as info:
        RedisStore.from_url(url)
    assert "\n" not in str(info.value) and "url" in str(info.value)


@pytest.mark.parametrize("namespace", ["", "a b", "{x}", "a:b", "x" * 101, None])
def test_invalid_namespace_is_refused(namespace: object) -> None:
    with pytest.raises(ValidationError) as info:
        RedisStore(fakeredis.FakeRedis(), namespace=namespace)  # type: ignore[arg-type]
    assert "namespace" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ValidationError):
        RedisStore.from_url("redis://localhost:1/0", namespace=namespace)  # type: ignore[arg-type]


def test_unreachable_server_is_a_one_line_store_unavailable(tmp_path: object) -> None:
    with pytest.raises(StoreUnavailable) as info:
        RedisStore.from_url(f"unix://{tmp_path}/no.sock")
    assert "\n" not in str(info.value) and "no.sock" in str(info.value)


@pytest.mark.redis
def test_refused_auth_is_a_one_line_error_without_the_password() -> None:
    server = RedisServer(require_redis_server(), password="right-secret")
    try:
        server.start()
        with pytest.raises(StoreUnavailable) as info:
            RedisStore.from_url(f"unix://:wrong-secret@{server.socket}")
        message = str(info.value)
        assert "\n" not in message and "wrong-secret" not in message and "Authentication" in message
        with pytest.raises(StoreUnavailable):
            RedisStore.from_url(f"unix://{server.socket}")  # no password at all
        good = RedisStore.from_url(server.url, namespace=fresh_namespace())
        assert good.list_schedules() == []
        good.close()
    finally:
        server.close()


def test_plugin_builds_the_store(redis_server_url: str) -> None:  # noqa: F811
    hooks = Hooks(get_plugin_manager())
    store = hooks.create_store("redis", {"url": redis_server_url, "namespace": fresh_namespace()})
    try:
        assert isinstance(store, RedisStore)
        assert store.list_schedules() == []
    finally:
        store.close()
    with pytest.raises(ValidationError):
        hooks.create_store("redis", {"url": redis_server_url, "nmespace": "x"})


# -- warnings at start-up -------------------------------------------------------------------


@pytest.mark.redis
def test_check_server_warns_about_eviction_and_missing_persistence(
    redis_server_url: str,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = RedisStore.from_url(redis_server_url, namespace=fresh_namespace(), check=False)
    client = raw(store)
    try:
        client.config_set("maxmemory-policy", "allkeys-lru")
        with caplog.at_level(logging.WARNING, logger="schedcore.redis"):
            store.check_server()
        text = caplog.text
        assert "maxmemory-policy=allkeys-lru" in text and "persistence off" in text
    finally:
        client.config_set("maxmemory-policy", "noeviction")
        store.close()


@pytest.mark.redis
def test_warnings_reports_eviction_and_missing_persistence_as_sentences(
    redis_server_url: str,  # noqa: F811
) -> None:
    from schedcore.storekit import store_warnings

    store = RedisStore.from_url(redis_server_url, namespace=fresh_namespace(), check=False)
    client = raw(store)
    try:
        client.config_set("maxmemory-policy", "allkeys-lru")
        found = store_warnings(store)
        assert any("maxmemory-policy=allkeys-lru" in w for w in found)
        assert any("persistence off" in w for w in found)
        client.config_set("maxmemory-policy", "noeviction")
        assert not any("maxmemory-policy" in w for w in store_warnings(store))
    finally:
        client.config_set("maxmemory-policy", "noeviction")
        store.close()


def test_check_server_is_quiet_when_config_is_refused(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisStore(fakeredis.FakeRedis(), namespace=fresh_namespace())

    def refuse(*args: object, **kwargs: object) -> None:
        raise rex.NoPermissionError("NOPERM this user has no permissions to run the 'config|get' command")

    monkeypatch.setattr(store._client, "config_get", refuse)
    with caplog.at_level(logging.WARNING):
        store.check_server()
    assert caplog.text == ""


# -- errors ---------------------------------------------------------------------------------


def test_every_redis_exception_is_mapped() -> None:
    for name in dir(rex):
        cls = getattr(rex, name)
        if isinstance(cls, type) and issubclass(cls, Exception) and cls.__module__ == rex.__name__:
            assert cls in MAPPING, f"redis.exceptions.{name} is not mapped in schedcore_redis._errors.MAPPING"


def test_translation() -> None:
    assert type(translate(rex.ConnectionError("gone"), "x")) is StoreUnavailable
    assert type(translate(rex.TimeoutError("slow"), "x")) is StoreUnavailable
    assert type(translate(rex.BusyLoadingError("loading"), "x")) is StoreUnavailable
    assert type(translate(rex.ResponseError("READONLY You can't write against a read only replica."), "x")) is (
        StoreUnavailable
    )
    assert type(translate(rex.ResponseError("BUSY Redis is busy running a script"), "x")) is StoreUnavailable
    assert type(translate(rex.ResponseError("WRONGTYPE Operation against a key"), "x")) is StoreError
    err = translate(rex.ConnectionError("Error 111\nconnecting"), "claim_due")
    assert str(err) == "redis: claim_due failed: ConnectionError: Error 111 connecting"


def test_a_dead_connection_raises_store_unavailable() -> None:
    server = fakeredis.FakeServer()
    store = RedisStore(fakeredis.FakeRedis(server=server), namespace=fresh_namespace())
    store.add(make_schedule("a"), fire_entry(0), Conflict.ERROR)
    server.connected = False
    for call in (
        lambda: claim(store, at(0)),
        store.next_due,
        lambda: store.get("a"),
        lambda: store.list_schedules(),
        lambda: store.add(make_schedule("b"), None, Conflict.ERROR),
        lambda: store.add_many([(make_schedule("b"), None)], Conflict.REPLACE),
        lambda: store.history("a"),
        lambda: store.remove("a"),
    ):
        with pytest.raises(StoreUnavailable):
            call()
    server.connected = True
    assert [c.schedule_id for c in claim(store, at(0))] == ["a"]


def test_claim_due_nowait_survives_a_script_flush_and_a_dead_connection(store: RedisStore) -> None:
    store.add(make_schedule("a"), fire_entry(0), Conflict.ERROR)
    raw(store).script_flush()
    claimed = store.claim_due_nowait(at(0), limit=10, lease=LEASE, owner="o")
    assert [c.schedule_id for c in claimed()] == ["a"]  # claimed again after NOSCRIPT
    server = fakeredis.FakeServer()
    dead = RedisStore(fakeredis.FakeRedis(server=server), namespace=fresh_namespace())
    dead.add(make_schedule("a"), fire_entry(0), Conflict.ERROR)
    server.connected = False
    with pytest.raises(StoreUnavailable):
        dead.claim_due_nowait(at(0), limit=10, lease=LEASE, owner="o")()
    server.connected = True
    assert [c.schedule_id for c in dead.claim_due_nowait(at(0), limit=10, lease=LEASE, owner="o")()] == ["a"]


# -- add_many ---------------------------------------------------------------------------


def _dump(store: RedisStore) -> dict[str, object]:
    """Every key of the store's namespace (prefix cut off) with its content."""
    out: dict[str, object] = {}
    client = raw(store)
    for key in client.keys(f"{store.keys.prefix}*"):  # a test may use KEYS; the store never does
        kind = client.type(key).decode()
        name = key.decode()[len(store.keys.prefix) :]
        if kind == "hash":
            out[name] = client.hgetall(key)
        elif kind == "zset":
            out[name] = client.zrange(key, 0, -1, withscores=True)
        elif kind == "set":
            out[name] = client.smembers(key)
        elif kind == "list":
            out[name] = client.lrange(key, 0, -1)
        else:
            out[name] = client.get(key)
    return out


def _variety() -> list[Schedule]:
    """Definitions that share (or nearly share) their stored text, and ones that do not."""
    every = Interval(60, start=at(0))
    return [
        make_schedule("c1", trigger=Cron("*/5 * * * *")),
        make_schedule("c2", trigger=Cron("*/5 * * * *")),
        make_schedule("c3", trigger=Cron("*/5 * * * *", tz="Europe/Paris")),
        make_schedule("f1", retry=RetryPolicy(max_attempts=3, factor=3)),
        make_schedule("f2", retry=RetryPolicy(max_attempts=3, factor=3.0)),
        make_schedule("i1", trigger=every),
        make_schedule("i2", trigger=Interval(60, start=at(1))),
        make_schedule("a1", args=(1,)),
        make_schedule("a2", args=(1.0,)),
        make_schedule("a3", args=(True,)),
        make_schedule("k1", kwargs={"x": 1}),
        make_schedule("m1", meta={"owner": "me"}),
        make_schedule("j1", jitter=5),
        make_schedule("p1", paused=True),
        make_schedule("s1", start_at=at(10), end_at=at(1000), max_runs=3),
        make_schedule("x1", serializer="pickle"),
        make_schedule("x2", args=({1, 2},), serializer="pickle"),
    ]


def test_add_many_encodes_each_definition_as_add_does(pickle_key: bytes) -> None:
    from schedcore_redis._codec import encode_schedule
    from schedcore_redis._store import _encode_definitions

    variety = _variety()
    for schedules in (variety, variety[::-1], [s for s in variety for _ in range(3)], variety + variety[::-1]):
        assert _encode_definitions(schedules) == [encode_schedule(s) for s in schedules]


def test_add_many_writes_exactly_what_a_loop_of_add_writes(store: RedisStore, pickle_key: bytes) -> None:
    twin = RedisStore(store._client, namespace=fresh_namespace())  # fed one add at a time
    store.add_chunk_size = 4
    existing = [
        make_schedule("c1", trigger=Cron("*/5 * * * *")),  # the same text: unchanged without decoding
        make_schedule("f2", retry=RetryPolicy(max_attempts=3, factor=3)),  # another text, an equal schedule
        make_schedule("i1"),
        make_schedule("p1"),
    ]
    for target in (store, twin):
        for schedule in existing:
            target.add(schedule, fire_entry(0), Conflict.ERROR)
        target.add(make_schedule("bad"), fire_entry(0), Conflict.ERROR)
        _corrupt(target, "bad", "0;;\n1{not json")  # replacing it repairs it
        [c] = [c for c in claim(target, at(0)) if c.schedule_id == "i1"]
        target.commit([commit_for(c, next_fire=fire_entry(60))])  # history, a running run, runs started
    batch = [(s, fire_entry(30) if not s.id.startswith("s") else None) for s in _variety()]
    batch.append((make_schedule("bad"), fire_entry(40)))
    expected = [twin.add(schedule, first, Conflict.REPLACE) for schedule, first in batch]
    assert store.add_many(batch, Conflict.REPLACE) == expected
    assert [r.value for r in expected[:5]] == ["unchanged", "added", "added", "added", "unchanged"]
    assert _dump(store) == _dump(twin)
    assert store.get("bad") is not None
    twin.close()


def test_add_many_decides_again_when_another_writer_races(store: RedisStore) -> None:
    store.add(make_schedule("a"), fire_entry(0), Conflict.ERROR)
    script = store._add_many
    calls: list[int] = []

    def racing(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 2:  # between the guess and the decision, someone changes "a"'s timing
            store.add(make_schedule("a", trigger=Interval(30, start=at(0))), fire_entry(30), Conflict.REPLACE)
        return script(*args, **kwargs)

    store._add_many = racing  # type: ignore[assignment]
    batch = [(make_schedule("a", trigger=Interval(30, start=at(0)), args=(1,)), fire_entry(99))]
    batch.append((make_schedule("b"), fire_entry(5)))
    from schedcore.records import AddResult

    assert store.add_many(batch, Conflict.REPLACE) == [AddResult.REPLACED, AddResult.ADDED]
    assert len(calls) == 3  # guess, decision refused by the race, decision again
    stored = store.get("a")
    assert stored is not None and stored.schedule == batch[0][0] and stored.next_fire == fire_entry(30)


def test_add_many_gives_up_on_writers_that_always_win(store: RedisStore) -> None:
    store.add(make_schedule("a"), fire_entry(0), Conflict.ERROR)
    script = store._add_many
    flip = iter(range(1, 1000))

    def racing(*args: object, **kwargs: object) -> object:
        store.add(make_schedule("a", args=(next(flip),)), fire_entry(0), Conflict.REPLACE)
        return script(*args, **kwargs)

    store._add_many = racing  # type: ignore[assignment]
    with pytest.raises(StoreError, match="kept racing"):
        store.add_many([(make_schedule("a", args=(0,)), fire_entry(0))], Conflict.REPLACE)


def test_add_many_publishes_one_wake_up_per_call(store: RedisStore) -> None:
    store.add_chunk_size = 10
    pubsub = raw(store).pubsub()
    pubsub.subscribe(store.keys.channel)
    while (message := pubsub.get_message(timeout=1.0)) is None or message["type"] != "subscribe":
        pass
    batch = [(make_schedule(f"s{i:02d}"), fire_entry(i)) for i in range(25)]
    assert len(store.add_many(batch, Conflict.REPLACE)) == 25
    seen = []
    while (message := pubsub.get_message(timeout=0.5)) is not None:
        if message["type"] == "message":
            seen.append([int(d) for d in message["data"].decode().split(",")])
    pubsub.close()
    assert [len(dues) for dues in seen] == [10, 10, 5]
    assert sorted(d for dues in seen for d in dues) == [to_ms(at(i)) for i in range(25)]


@pytest.mark.redis
def test_add_many_of_thousands_in_default_chunks(request: pytest.FixtureRequest) -> None:
    store = make_store("redis", request)
    from schedcore.records import AddResult

    n, first = 6000, 4500  # conflict "error" is one script call: 4500 crosses its command slices of 4000
    batch = [(make_schedule(f"job-{i:05d}", trigger=Cron("*/5 * * * *")), fire_entry(300)) for i in range(n)]
    assert store.add_many(batch[:first], Conflict.ERROR) == [AddResult.ADDED] * first
    results = store.add_many(batch, Conflict.REPLACE)
    assert results == [AddResult.UNCHANGED] * first + [AddResult.ADDED] * (n - first)
    changed = [(make_schedule(s.id, trigger=Interval(60, start=at(0))), fire_entry(60)) for s, _ in batch]
    assert store.add_many(changed, Conflict.REPLACE) == [AddResult.REPLACED] * n
    assert raw(store).hlen(store.keys.schedules) == n
    assert raw(store).zcount(store.keys.index, to_ms(at(60)), to_ms(at(60))) == n
    assert [s.schedule for s in store.list_schedules(limit=n)] == [s for s, _ in changed]
    store.add_chunk_size = 10_000  # one script call: reads and writes cross the slices of 4000
    mixed = [(make_schedule(f"mix-{i:05d}", args=(i,)), fire_entry(i)) for i in range(first)]
    assert store.add_many(mixed[::3], Conflict.REPLACE) == [AddResult.ADDED] * (first // 3)
    expected = [AddResult.UNCHANGED if i % 3 == 0 else AddResult.ADDED for i in range(first)]
    assert store.add_many(mixed, Conflict.REPLACE) == expected
    assert [s.next_fire for s in store.list_schedules(after="mix", limit=first)] == [f for _, f in mixed]
    store.close()


# -- corrupt and foreign data ---------------------------------------------------------------


def _corrupt(store: RedisStore, sid: str, value: str) -> None:
    raw(store).hset(store.keys.schedules, sid, value)


@pytest.mark.parametrize(
    "value",
    [
        "0;;\n1{not json",  # hand-edited JSON
        '0;;\n7{"task":"a.b:c","trigger":{"type":"interval","every":60}}',  # an unknown (newer) schema
        '0;;\n1{"task":"a.b:c","trigger":{"type":"warp"}}',  # a trigger this version does not know
        "something else entirely",  # not our layout
    ],
)
def test_an_unreadable_schedule_is_reported_and_skipped(
    store: RedisStore, value: str, caplog: pytest.LogCaptureFixture
) -> None:
    for sid in ("a", "b", "c"):
        store.add(make_schedule(sid), fire_entry(0), Conflict.ERROR)
    _corrupt(store, "b", value.replace("0;", f"{1735689600000};", 1))
    with caplog.at_level(logging.ERROR, logger="schedcore.redis"):
        first = claim(store, at(10), limit=2)
        second = claim(store, at(10), limit=2)
    assert sorted(c.schedule_id for c in first + second) == ["a", "c"]
    assert caplog.text.count("'b'") == 1  # reported once, not at every claim
    with pytest.raises(CorruptScheduleData):
        store.get("b")
    assert [s.schedule.id for s in store.list_schedules()] == ["a", "c"]
    # the others go on normally
    assert store.commit([commit_for(c, next_fire=fire_entry(60)) for c in first + second]) == [True, True]
    assert store.next_due() == at(60)
    # replacing the definition repairs it; it is claimed again
    store.add(make_schedule("b"), fire_entry(30), Conflict.REPLACE)
    assert [c.schedule_id for c in claim(store, at(30))] == ["b"]


def test_foreign_index_entries_are_skipped(store: RedisStore, caplog: pytest.LogCaptureFixture) -> None:
    store.add(make_schedule("a"), fire_entry(5), Conflict.ERROR)
    foreign = {"ghost": 0, "ghost|m|0|1": 1, "a|zz": 2, "a|q|1|1": 3, "a|m|x|1": 4}
    raw(store).zadd(store.keys.index, foreign)
    with caplog.at_level(logging.ERROR, logger="schedcore.redis"):
        [c] = claim(store, at(10))
        assert claim(store, at(10)) == []
    assert c.schedule_id == "a"
    assert "'ghost'" in caplog.text and "a|zz" in caplog.text
    assert store.commit([commit_for(c, next_fire=fire_entry(60))]) == [True]
    assert store.next_due() == at(60)  # looks past the foreign entries
    assert raw(store).zcard(store.keys.index) == len(foreign) + 1  # left in place, not deleted
    [c] = claim(store, at(60))
    assert store.commit_and_next_due([commit_for(c, next_fire=fire_entry(90))]) == ([True], at(90))  # so does the peek


def test_commit_and_next_due_looks_past_unreadable_schedules(store: RedisStore) -> None:
    for sid, due in (("a", 0), ("b", 5), ("c", 6), ("d", 7)):
        store.add(make_schedule(sid), fire_entry(due), Conflict.ERROR)
    for sid in ("b", "c"):
        _corrupt(store, sid, "0;;\n1{not json".replace("0;", "5000;", 1))
    claims = claim(store, at(10))
    assert sorted(c.schedule_id for c in claims) == ["a", "d"]  # b and c: reported, left in the index
    [ca] = [c for c in claims if c.schedule_id == "a"]
    [cd] = [c for c in claims if c.schedule_id == "d"]
    # the peeked head holds b (unreadable) and the store reads further: d's lease comes next
    done, due = store.commit_and_next_due([commit_for(ca, next_fire=fire_entry(100))])
    assert done == [True] and due == cd.lease_expires
    assert store.commit_and_next_due([commit_for(cd, next_fire=fire_entry(80))]) == ([True], at(80))


def test_foreign_history_lines_are_skipped(store: RedisStore) -> None:
    store.add(make_schedule("a"), fire_entry(0), Conflict.ERROR)
    [c] = claim(store, at(0))
    store.commit([commit_for(c)])
    raw(store).lpush(store.keys.history("a"), "{broken")
    assert [r.status for r in store.history("a")] == [RunStatus.DISPATCHED]


def test_record_outcome_keeps_the_record_readable(store: RedisStore) -> None:
    store.add(make_schedule("a"), fire_entry(0), Conflict.ERROR)
    [c] = claim(store, at(0))
    store.commit([commit_for(c)])
    error = 'ValueError: "quoted" / slashed \\ and ünïcode'
    assert store.record_outcome(outcome_for("a", c.entry, "failed", error=error), entry("retry", 0, 30, attempt=2))
    [record] = store.history("a")
    assert (record.status, record.error, record.retry_at) == (RunStatus.FAILED, error, at(30))


def test_a_stored_traceback_is_read_defensively(store: RedisStore) -> None:
    """Records written before tracebacks existed, or by someone else: a missing, wrong-typed
    or oversized ``tb`` never costs the record (nor the others) -- it reads as None or trimmed."""
    from schedcore.tracebacks import MAX_CHARS, MAX_LINES, trim_traceback

    store.add(make_schedule("a"), fire_entry(0), Conflict.ERROR)
    key = store.keys.history("a")
    base = {"k": "m", "n": to_ms(at(0)), "a": 1, "s": "failed", "e": "E: x"}
    huge = "Traceback (most recent call last):\n" + "  frame\n" * 200_000 + "E: x"
    shapes: list[tuple[object, str | None]] = [
        (None, None),  # before this change: no "tb" at all
        (42, None),
        (["a", "b"], None),
        ({"tb": "nested"}, None),
        (True, None),
        ("T\nE: x", "T\nE: x"),
        (huge, trim_traceback(huge)),
    ]
    for i, (tb, _) in enumerate(shapes):
        record = {**base, "i": f"a@{i}.1"}
        if tb is not None:
            record["tb"] = tb
        raw(store).rpush(key, json.dumps(record))
    records = store.history("a", limit=50)
    assert [r.run_id for r in records] == [f"a@{i}.1" for i in range(len(shapes))]
    assert [r.traceback for r in records] == [want for _, want in shapes]
    assert all(r.error == "E: x" and r.status is RunStatus.FAILED for r in records)
    last = records[-1].traceback
    assert last is not None and len(last) <= MAX_CHARS and len(last.split("\n")) <= MAX_LINES


def test_only_a_failure_adds_a_traceback_to_the_outcome_patch() -> None:
    from schedcore_redis._codec import outcome_patch

    ok = outcome_for("a", fire_entry(0), "succeeded")
    failed = outcome_for("a", fire_entry(0), "failed", error="E: x", traceback="T\nE: x")
    assert "tb" not in json.loads(outcome_patch(ok, None))
    assert json.loads(outcome_patch(failed, None))["tb"] == "T\nE: x"


# -- memory ---------------------------------------------------------------------------------


@pytest.mark.redis
def test_a_typical_cron_schedule_costs_at_most_500_bytes(redis_server_url: str) -> None:  # noqa: F811
    store = RedisStore.from_url(redis_server_url, namespace=fresh_namespace())
    client = raw(store)
    n = 3000
    base = Schedule(
        id="x",
        task="app.jobs:nightly_report",
        trigger=Cron("0 3 * * *", tz="Europe/Paris"),
        retry=RetryPolicy(max_attempts=3),
    )
    after = datetime(2025, 1, 1, tzinfo=timezone.utc)
    nxt = base.trigger.next_after(after)
    assert nxt is not None
    first = Pending(kind=PendingKind.FIRE, nominal=nxt, due=nxt)
    store.add(base.evolve(id="warm-up"), first, Conflict.ERROR)  # loads the script into the server
    assert store.remove("warm-up")
    before = client.info("memory")["used_memory"]
    for i in range(n):
        store.add(base.evolve(id=f"report-{i:05d}"), first, Conflict.ERROR)
    grown = (client.info("memory")["used_memory"] - before) / n
    keys = store.keys
    usage = sum(client.memory_usage(k, samples=0) for k in (keys.schedules, keys.index, keys.ids)) / n
    per_key = [client.exists(keys.running("report-00001"), keys.extras("report-00001"), keys.history("report-00001"))]
    store.close()
    assert per_key == [0]  # nothing else is stored for an idle schedule
    assert usage <= 500, f"MEMORY USAGE per schedule {usage:.0f} bytes"
    assert grown <= 500, f"used_memory grew {grown:.0f} bytes per schedule"


# -- outages --------------------------------------------------------------------------------


@pytest.mark.redis
def test_store_survives_a_redis_restart(private_server: RedisServer) -> None:  # noqa: F811
    store = RedisStore.from_url(private_server.url, namespace="outage")
    seen: list[datetime] = []
    stop_watch = store.watch(seen.append)
    try:
        store.add(make_schedule("a"), fire_entry(0), Conflict.ERROR)
        private_server.stop()  # SHUTDOWN SAVE: the data survives, the connections die
        for call in (
            lambda: claim(store, at(0)),
            store.next_due,
            lambda: store.get("a"),
            lambda: store.add(make_schedule("b"), fire_entry(1), Conflict.ERROR),
        ):
            with pytest.raises(StoreUnavailable):
                call()
        private_server.start()
        [c] = claim(store, at(0))
        assert store.commit([commit_for(c, next_fire=fire_entry(60))]) == [True]
        # the watcher reconnected by itself: a new entry is notified
        store.add(make_schedule("b"), fire_entry(7), Conflict.ERROR)
        deadline = datetime.now(timezone.utc) + timedelta(seconds=10)
        while at(7) not in seen and datetime.now(timezone.utc) < deadline:
            import time

            time.sleep(0.05)
        assert at(7) in seen
    finally:
        stop_watch()
        store.close()


# -- the private server helper --------------------------------------------------------------


def test_missing_redis_server_skips_loudly_or_fails_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    from schedcore.testing import redis_server as helper

    monkeypatch.setattr(helper, "find_redis_server", lambda: None)
    monkeypatch.delenv("SCHEDCORE_REQUIRE_REDIS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="REDIS-SERVER NOT FOUND"):
        helper.require_redis_server()
    monkeypatch.setenv("SCHEDCORE_REQUIRE_REDIS", "1")
    with pytest.raises(pytest.fail.Exception, match="SCHEDCORE_REQUIRE_REDIS=1"):
        helper.require_redis_server()


@pytest.mark.redis
def test_private_server_listens_on_its_own_socket_only(private_server: RedisServer) -> None:  # noqa: F811
    client = redis.Redis.from_url(private_server.url)
    try:
        assert client.config_get("port") == {"port": "0"} or client.config_get("port") == {b"port": b"0"}
        assert str(private_server.directory) in private_server.url
    finally:
        client.close()


@pytest.mark.parametrize(
    "schedule",
    [
        make_schedule("plain"),
        Schedule(id="cron", task="app.jobs:nightly", trigger=Cron("0 3 * * *", tz="Europe/Paris")),
        make_schedule(
            "full",
            args=(1, "two", [3]),
            kwargs={"task": "not a key of ours", "t": 1},
            meta={"k": "v", "retry": None},
            executor_options={"queue": "x"},
            queue="q:1",
            retry=RetryPolicy(max_attempts=4, initial_delay=3, factor=3, max_delay=100, jitter=1),
            catchup="all",
            catchup_limit=7,
            misfire_grace=5,
            overlap="buffer_one",
            jitter=2,
            start_at=at(0),
            end_at=at(10_000),
            max_runs=9,
            paused=True,
        ),
    ],
    ids=lambda s: s.id,
)
def test_definitions_round_trip_through_the_compact_encoding(schedule: Schedule) -> None:
    from schedcore_redis._codec import decode_schedule, encode_schedule

    assert decode_schedule(schedule.id, encode_schedule(schedule)) == schedule


def test_signed_pickled_definitions_round_trip_through_the_compact_encoding(pickle_key: bytes) -> None:
    from schedcore_redis._codec import decode_schedule, encode_schedule

    schedule = make_schedule("pickled", args=({1, 2},), serializer="pickle")
    assert decode_schedule(schedule.id, encode_schedule(schedule)) == schedule


@pytest.mark.parametrize(
    "options",
    [
        {"decode_responses": True},
        pytest.param({"protocol": 3}, marks=pytest.mark.redis),
        pytest.param({"protocol": 2, "decode_responses": True}, marks=pytest.mark.redis),
    ],
    ids=str,
)
def test_client_options_do_not_matter(options: dict[str, object], request: pytest.FixtureRequest) -> None:
    if "protocol" in options:
        url = request.getfixturevalue("redis_server_url")
        store = RedisStore.from_url(url, namespace=fresh_namespace(), **options)
    else:
        store = RedisStore(fakeredis.FakeRedis(**options), namespace=fresh_namespace())  # type: ignore[arg-type]
    try:
        store.add(make_schedule("a"), fire_entry(0), Conflict.ERROR)
        store.enqueue("a", [entry("manual", 1)])
        assert store.next_due() == at(0)
        claims = claim(store, at(5))
        assert store.commit(
            [commit_for(c, next_fire=fire_entry(60) if c.entry.kind is PendingKind.FIRE else None) for c in claims]
        ) == [True, True]
        assert store.record_outcome(outcome_for("a", claims[0].entry), None)
        stored = store.get("a")
        assert stored is not None and stored.runs_started == 2 and stored.next_fire == fire_entry(60)
        assert [s.schedule.id for s in store.list_schedules()] == ["a"]
        assert len(store.history("a")) == 2
    finally:
        store.close()


@pytest.mark.redis
def test_watch_hears_other_processes_within_milliseconds(redis_server_url: str) -> None:  # noqa: F811
    import threading
    import time

    namespace = fresh_namespace()
    sleeper = RedisStore.from_url(redis_server_url, namespace=namespace)
    other = RedisStore.from_url(redis_server_url, namespace=namespace)  # its own connections, like another process
    woke = threading.Event()
    heard: list[datetime] = []

    def callback(due: datetime) -> None:
        heard.append(due)
        woke.set()

    stop = sleeper.watch(callback)
    try:
        started = time.monotonic()
        other.add(make_schedule("a"), fire_entry(42), Conflict.ERROR)
        assert woke.wait(5.0)
        latency = time.monotonic() - started
        assert heard == [at(42)]
        assert latency < 1.0, f"woke after {latency:.3f} s"
    finally:
        stop()
        sleeper.close()
        other.close()


def test_history_records_round_trip_compactly() -> None:
    from schedcore.records import RunRecord
    from schedcore_redis._codec import decode_record, encode_record

    full = RunRecord(
        run_id="a@1735689600000.2",
        kind="retry",
        nominal=at(0),
        due=at(30),
        attempt=2,
        status="failed",
        dispatched_at=at(30.5),
        finished_at=at(31),
        error='E: "x"',
        retry_at=at(90),
        note="n",
        traceback='Traceback (most recent call last):\n  File "a.py", line 1, in f\nE: "x"',
    )
    bare = RunRecord(run_id="a@1735689600000.1", kind="fire", nominal=at(0), due=at(0), attempt=1, status="skipped")
    for record in (full, bare):
        assert decode_record(encode_record(record)) == record
        assert decode_record(json.dumps(record.to_dict())) == record  # the full format is read too
    assert len(encode_record(bare)) < len(json.dumps(bare.to_dict())) / 2


@given(
    run_id=st.text(min_size=1, max_size=30),
    kind=st.sampled_from(list(PendingKind)),
    status=st.sampled_from(list(RunStatus)),
    attempt=st.integers(1, 10_000),
    offsets=st.lists(st.none() | st.integers(0, 10**9), min_size=4, max_size=4),
    error=st.none() | st.text(max_size=40),
    note=st.none() | st.text(max_size=40),
    trace=st.none() | st.text(max_size=80),
)
def test_history_records_are_written_as_the_compact_json_of_their_fields(
    run_id: str,
    kind: PendingKind,
    status: RunStatus,
    attempt: int,
    offsets: list[int | None],
    error: str | None,
    note: str | None,
    trace: str | None,
) -> None:
    """encode_record builds its text by hand (hot path): the same text json.dumps makes."""
    from schedcore.records import RunRecord
    from schedcore_redis._codec import KIND_CHAR, decode_record, encode_record

    def instant(ms: int | None) -> datetime | None:
        return None if ms is None else at(ms / 1000)

    due, dispatched, finished, retry = (instant(o) for o in offsets)
    record = RunRecord(
        run_id=run_id,
        kind=kind,
        nominal=at(0),
        due=due or at(0),
        attempt=attempt,
        status=status,
        dispatched_at=dispatched,
        finished_at=finished,
        error=error,
        retry_at=retry,
        note=note,
        traceback=trace,
    )
    data = {"i": run_id, "k": KIND_CHAR[kind], "n": to_ms(record.nominal)}
    if record.due != record.nominal:
        data["d"] = to_ms(record.due)
    data.update({"a": attempt, "s": status.value})
    data.update({k: to_ms(v) for k, v in (("t", dispatched), ("f", finished), ("r", retry)) if v is not None})
    data.update({k: v for k, v in (("e", error), ("o", note), ("tb", record.traceback)) if v is not None})
    assert encode_record(record) == json.dumps(data, separators=(",", ":"))
    assert decode_record(encode_record(record)) == record


# -- start-up errors through the CLI: one line, no traceback --------------------------------


def _cli_error(*args: str) -> tuple[int, str]:
    from click.testing import CliRunner

    from schedcore.cli import cli

    result = CliRunner().invoke(cli, ["run", "--store", "redis", *args, "--burst"])
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    return result.exit_code, lines[0]


@pytest.mark.redis
def test_cli_start_up_errors_are_one_line() -> None:
    server = RedisServer(require_redis_server(), password="right-secret")
    try:
        server.start()
        code, line = _cli_error("-S", f"url=unix://:wrong-secret@{server.socket}")
        assert code == 1 and "Authentication" in line and "wrong-secret" not in line
        code, line = _cli_error("-S", f"url={server.url}", "-S", "namespace={bad}")
        assert code == 2 and "namespace" in line
        code, line = _cli_error("-S", "url=redis://localhost:nope/0")
        assert code == 2 and "url" in line
    finally:
        server.close()


def test_a_shared_definition_with_an_unseeded_h_cron_hashes_each_schedule_id() -> None:
    # Hand-written data may leave the seed out: each schedule claimed from that one text
    # must hash its own id, not reuse the first one decoded (claims share decoded texts).
    store = RedisStore(redis.Redis(port=1))  # never connects: _decode is pure
    raw = '1{"k":"schedcore.demo:hello","t":{"y":"cron","expr":"H H * * *"}}'
    first, second = store._decode("job-a", raw), store._decode("job-b", raw)
    assert (first.trigger, second.trigger) == (Cron("H H * * *", seed="job-a"), Cron("H H * * *", seed="job-b"))
    seeded = '1{"k":"schedcore.demo:hello","t":{"y":"cron","expr":"H H * * *","seed":"x"}}'
    explicit = Cron("H H * * *", seed="x")
    assert store._decode("job-a", seeded).trigger == store._decode("job-b", seeded).trigger == explicit
