"""Keys of the wrong type in a RedisStore namespace (issue 11, item 4).

A per-schedule key (history ``h:``, running runs ``r:``, extras ``x:``) holding another
type sets that one schedule aside: its item of a batch is skipped before anything of it is
written and reported in one log line naming the schedule and the key, while the rest of the
batch commits. A namespace-wide key of another type is a loud CorruptStore naming the key,
with nothing written, and nothing is lost once it is repaired.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from redis_helpers import make_store, redis_server_url, store_fixture  # noqa: F401

pytest.importorskip("fakeredis", reason="fakeredis is not installed")
import redis

from schedcore import FakeClock, Scheduler
from schedcore.exceptions import CorruptScheduleData, CorruptStore
from schedcore.executors import LocalExecutor
from schedcore.model import Conflict
from schedcore.records import Claim
from schedcore.testing.factories import T0, at, commit_for, entry, fire_entry, make_schedule, outcome_for
from schedcore_redis import RedisStore

LEASE = timedelta(seconds=30)


store = store_fixture()


def raw(store: RedisStore) -> redis.Redis:
    return store._client  # type: ignore[return-value]


def claim(store: RedisStore, now_s: float, owner: str = "test") -> list[Claim]:
    return store.claim_due(at(now_s), limit=100, lease=LEASE, owner=owner)


def snapshot(store: RedisStore, sid: str) -> dict[str, Any]:
    """Everything stored for ``sid`` (to show that a skipped item wrote nothing)."""
    r, k = raw(store), store.keys
    member_keys = [m for m in r.zrange(k.leases, 0, -1) if m.decode().split("|")[0] == sid]
    return {
        "state": r.hget(k.schedules, sid),
        "index": [(m, s) for m, s in r.zrange(k.index, 0, -1, withscores=True) if m.decode().split("|")[0] == sid],
        "leases": member_keys,
        "claims": [r.hget(k.claims, m) for m in member_keys],
        "keys": {key: (r.type(key), r.dump(key)) for key in (k.history(sid), k.running(sid), k.extras(sid))},
    }


def dump_all(store: RedisStore) -> dict[str, Any]:
    """Every key of the namespace, whatever its type (to show that nothing was written)."""
    k = store.keys
    names = [k.index, k.leases, k.claims, k.schedules, k.ids, k.token]
    names += [f(sid) for sid in ("a", "b", "c") for f in (k.history, k.running, k.extras)]
    return {name: raw(store).dump(name) for name in names}


def three(store: RedisStore) -> None:
    for sid in ("a", "b", "c"):
        store.add(make_schedule(sid), fire_entry(0), Conflict.ERROR)


# -- per-schedule keys ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["history", "running", "extras"])
def test_a_wrong_typed_key_of_one_schedule_skips_only_its_commit_and_writes_none_of_it(
    store: RedisStore, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    three(store)
    if kind == "extras":  # the extras set is written by non-fire entries: commit a manual one each
        for sid in ("a", "b", "c"):
            store.enqueue(sid, [entry("manual", 1)])
    claims = [c for c in claim(store, 5) if kind != "extras" or c.entry.kind.value == "manual"]
    assert sorted(c.schedule_id for c in claims) == ["a", "b", "c"]
    key = getattr(store.keys, kind)("b")
    raw(store).delete(key)
    raw(store).set(key, "not ours")  # broken between the claim and the commit
    before = snapshot(store, "b")
    commits = [commit_for(c, next_fire=fire_entry(60)) for c in claims]
    with caplog.at_level(logging.ERROR, logger="schedcore.redis"):
        done = store.commit(commits)
    assert done == [c.schedule_id != "b" for c in claims]
    assert snapshot(store, "b") == before  # nothing of the broken item, not even its lease release
    [line] = [r.getMessage() for r in caplog.records if "'b'" in r.getMessage()]
    assert key in line and "string" in line
    for sid in ("a", "c"):  # the rest of the batch committed in the same call
        stored = store.get(sid)
        assert stored is not None and len(stored.running) == 1 and len(store.history(sid)) == 1


@pytest.mark.parametrize("kind", ["history", "running", "extras"])
def test_a_schedule_with_a_wrong_typed_key_is_not_claimed_until_repaired(
    store: RedisStore, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    three(store)
    key = getattr(store.keys, kind)("b")
    raw(store).set(key, "not ours")
    with caplog.at_level(logging.ERROR, logger="schedcore.redis"):
        claims = claim(store, 5)
        assert claim(store, 5) == []
    assert sorted(c.schedule_id for c in claims) == ["a", "c"]  # nothing of b runs: it could not be recorded
    assert caplog.text.count(key) == 1  # one line, naming the key (and the schedule)
    assert store.commit([commit_for(c, next_fire=fire_entry(60)) for c in claims]) == [True, True]
    assert store.next_due() == at(60)  # looks past b's entry, left in place for repair
    raw(store).delete(key)  # repaired: claimed again
    assert [c.schedule_id for c in claim(store, 6)] == ["b"]


def test_an_outcome_or_enqueue_of_a_broken_schedule_writes_nothing(store: RedisStore) -> None:
    three(store)
    claims = claim(store, 0)
    commits = [commit_for(c, next_fire=fire_entry(60)) for c in claims]
    assert store.commit(commits) == [True, True, True]
    raw(store).delete(store.keys.history("b"))
    raw(store).set(store.keys.history("b"), "not ours")
    before = snapshot(store, "b")
    [cb] = [c for c in claims if c.schedule_id == "b"]
    with pytest.raises(CorruptScheduleData) as info:
        store.record_outcome(outcome_for("b", cb.entry), retry=None)
    assert store.keys.history("b") in str(info.value)
    raw(store).delete(store.keys.extras("b"))
    raw(store).set(store.keys.extras("b"), "not ours")
    before = snapshot(store, "b")
    with pytest.raises(CorruptScheduleData) as info:
        store.enqueue("b", [entry("manual", 1)])
    assert store.keys.extras("b") in str(info.value)
    assert snapshot(store, "b") == before  # the run is still running; nothing was enqueued
    stored = store.get("b")
    assert stored is not None and len(stored.running) == 1
    [ca] = [c for c in claims if c.schedule_id == "a"]
    assert store.record_outcome(outcome_for("a", ca.entry), retry=None)  # the others go on


def test_the_engine_dispatches_the_rest_of_the_batch_on_time(store: RedisStore) -> None:
    clock = FakeClock(T0)
    ran: list[str] = []
    three(store)
    raw(store).set(store.keys.history("b"), "not ours")
    executor = LocalExecutor(clock=clock)
    sched = Scheduler(store=store, executor=executor, clock=clock, heartbeat=None)
    sched.executor.submit = lambda runs: ran.extend(r.schedule_id for r in runs)  # type: ignore[method-assign]
    sched.tick()
    assert sorted(ran) == ["a", "c"]
    assert sorted(s.schedule.id for s in store.list_schedules() if s.runs_started) == ["a", "c"]


# -- namespace-wide keys ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"), [("leases", "zset"), ("claims", "hash"), ("index", "zset"), ("schedules", "hash")]
)
def test_a_wrong_typed_namespace_key_is_a_loud_error_and_writes_nothing(
    store: RedisStore, name: str, expected: str
) -> None:
    three(store)
    claims = claim(store, 0)
    key = getattr(store.keys, name)
    kept = raw(store).dump(key)
    raw(store).delete(key)
    raw(store).set(key, "not ours")
    before = dump_all(store)
    calls = [
        lambda: claim(store, 1),
        lambda: store.commit([commit_for(c, next_fire=fire_entry(60)) for c in claims]),
        lambda: store.remove("a"),
        {"index": store.next_due, "leases": store.next_due, "claims": lambda: store.release(claims)}.get(
            name, lambda: store.get("a")
        ),
    ]
    for call in calls:
        with pytest.raises(CorruptStore) as info:
            call()
        assert info.value.key == key and info.value.found == "string" and info.value.expected == expected
        assert key in str(info.value) and "\n" not in str(info.value)
        assert dump_all(store) == before
    raw(store).delete(key)
    if kept is not None:
        raw(store).restore(key, 0, kept)
    assert store.commit([commit_for(c, next_fire=fire_entry(60)) for c in claims]) == [True, True, True]


def test_a_replaced_lease_key_loses_no_claim_once_repaired(store: RedisStore, caplog: pytest.LogCaptureFixture) -> None:
    three(store)
    claims = claim(store, 0)
    raw(store).set(store.keys.leases, "not ours")  # the in-flight entries' leases are gone
    with pytest.raises(CorruptStore):
        claim(store, 1)
    raw(store).delete(store.keys.leases)  # repaired the quick way: the leases are lost
    with caplog.at_level(logging.ERROR, logger="schedcore.redis"):
        assert claim(store, 2) == []  # the claims get a lease again (from now), not lost
    assert "3 claims had no lease" in caplog.text
    assert store.next_due() == at(32)
    assert sorted(c.schedule_id for c in claim(store, 32)) == ["a", "b", "c"]
    assert store.commit([commit_for(c) for c in claims]) == [False, False, False]  # fenced


def test_a_replaced_claims_key_loses_no_entry_once_repaired(store: RedisStore) -> None:
    three(store)
    store.enqueue("b", [entry("manual", 3)])
    claims = claim(store, 5)
    assert len(claims) == 4
    raw(store).set(store.keys.claims, "not ours")
    with pytest.raises(CorruptStore):
        claim(store, 6)
    raw(store).delete(store.keys.claims)
    assert claim(store, 6) == []  # the leases still hold them
    again = claim(store, 35)  # at their expiry the entries are due again
    assert sorted((c.schedule_id, c.entry.kind.value) for c in again) == [
        ("a", "fire"),
        ("b", "fire"),
        ("b", "manual"),
        ("c", "fire"),
    ]


def test_wrong_typed_heartbeats_are_a_loud_error(store: RedisStore) -> None:
    beats = store.keys.prefix + "beats"
    raw(store).set(beats, "not ours")
    with pytest.raises(CorruptStore, match="beats"):
        store.heartbeat("s1", {}, now=at(0), ttl=timedelta(seconds=5))
    with pytest.raises(CorruptStore, match="beats"):
        store.schedulers(at(0))
    with pytest.raises(CorruptStore, match="beats"):
        claim(store, 0)


def test_stats_and_listing_name_the_damaged_key(store: RedisStore) -> None:
    three(store)
    raw(store).set(store.keys.ids, "not ours")
    with pytest.raises(CorruptStore, match="ids"):
        store.list_schedules()
    with pytest.raises(CorruptStore, match="ids"):
        store.stats(at(0))
    before = dump_all(store)
    with pytest.raises(CorruptStore, match="ids"):
        store.add(make_schedule("d"), fire_entry(0), Conflict.ERROR)
    with pytest.raises(CorruptStore, match="ids"):
        store.add_many([(make_schedule("a", task="x.y:z"), fire_entry(0))], Conflict.REPLACE)
    assert dump_all(store) == before  # no definition without its listing, nothing half-added


def test_the_engine_logs_structural_damage_at_error_on_every_tick(
    store: RedisStore, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(T0)
    three(store)
    raw(store).set(store.keys.leases, "not ours")
    sched = Scheduler(store=store, executor=LocalExecutor(clock=clock), clock=clock, heartbeat=None)
    with caplog.at_level(logging.ERROR, logger="schedcore"):
        for _ in range(3):
            clock.set(sched.tick())
    lines = [r for r in caplog.records if store.keys.leases in r.getMessage()]
    assert len(lines) == 3 and all(r.levelno == logging.ERROR and not r.exc_info for r in lines)
    raw(store).delete(store.keys.leases)
    clock.set(sched.tick() or clock.now())
    assert all(s.runs_started == 1 for s in store.list_schedules())


@pytest.mark.redis
def test_status_shows_structural_damage_in_one_line(redis_server_url: str) -> None:  # noqa: F811
    from click.testing import CliRunner

    from schedcore.cli import cli

    store = make_store("redis", _Request(redis_server_url))
    raw(store).set(store.keys.index, "not ours")
    args = ["status", "--store", "redis", "-S", f"url={redis_server_url}", "-S", f"namespace={store.namespace}"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0
    [line] = [text for text in result.output.splitlines() if "damaged" in text]
    assert "Traceback" not in result.output
    assert store.keys.index in line and "string" in line and "zset" in line
    store.close()


class _Request:
    """The bit of a pytest request make_store uses (the session's server URL)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def getfixturevalue(self, name: str) -> str:
        return self.url
