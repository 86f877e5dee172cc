"""``RedisStore.check`` and ``schedcore doctor``: damage written with raw Redis commands, as an
attacker or an accident would, is reported with its key, repaired where that is safe, and a
repaired namespace dispatches its schedules again -- on a private real redis-server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from redis_helpers import fresh_namespace, redis_server_url  # noqa: F401

from schedcore import At, Interval, Schedule, Scheduler
from schedcore.cli import cli
from schedcore.clock import FakeClock
from schedcore.doctor import CheckReport, Finding
from schedcore.memory import MemoryStore
from schedcore.model import SCHEMA_VERSION
from schedcore.testing.executors import CallbackExecutor
from schedcore.testing.factories import T0
from schedcore_redis import RedisStore, _doctor

pytestmark = pytest.mark.redis

IDS = ("a", "b", "c")


class Namespace:
    """A namespace with three interval schedules, a fake clock and a raw client."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.name = fresh_namespace()
        self.store = RedisStore.from_url(url, namespace=self.name)
        self.clock = FakeClock(T0)
        self.executor = CallbackExecutor(clock=self.clock)
        self.scheduler = Scheduler(store=self.store, executor=self.executor, clock=self.clock, heartbeat=None)
        for sid in IDS:
            self.scheduler.add(Schedule(id=sid, task="schedcore.demo:hello", trigger=Interval(60)))
        self.raw: Any = redis.Redis.from_url(url)  # replies are bytes
        self.p = f"{{schedcore:{self.name}}}:"

    def check(self, repair: bool = False) -> CheckReport:
        return self.store.check(repair=repair, now=self.clock.now())

    def dump(self) -> dict[bytes, bytes]:
        """Every key of the namespace with its DUMP (a test may scan; the store never does)."""
        return {k: self.raw.dump(k) for k in self.raw.scan_iter(match=f"*{self.name}*")}

    def close(self) -> None:
        self.store.close()
        self.raw.close()


@pytest.fixture
def ns(redis_server_url: str) -> Iterator[Namespace]:  # noqa: F811
    n = Namespace(redis_server_url)
    yield n
    n.close()


def only(report: CheckReport, kind: str) -> list[Finding]:
    return [f for f in report.findings if f.kind == kind]


# -- each kind of damage: reported with its key, repaired, then clean ---------------------


def set_state(p: str, r: Any, sid: str, fire: bytes) -> None:
    """Overwrite the fire part (``f`` of ``f;n;p``) of a schedule's stored state."""
    rest = r.hget(p + "sched", sid).split(b";", 1)[1]
    r.hset(p + "sched", sid, fire + b";" + rest)


# (damage, kind, key suffix, schedule id) -- the damage takes the namespace's key prefix and raw client
DAMAGE: dict[str, tuple[Callable[[str, Any], Any], str, str, str]] = {
    "index entry of a missing schedule": (lambda p, r: r.zadd(p + "idx", {"ghost": 5}), "orphan_entry", "idx", "ghost"),
    "claim of a missing schedule": (
        lambda p, r: (r.hset(p + "claims", "ghost", "7|5|1|x"), r.zadd(p + "lease", {"ghost": 1})),
        "orphan_entry",
        "claims",
        "ghost",
    ),
    "listed id without definition": (lambda p, r: r.zadd(p + "ids", {"ghost": 0}), "orphan_id", "ids", "ghost"),
    "definition not listed": (lambda p, r: r.zrem(p + "ids", "b"), "unlisted", "ids", "b"),
    "fire entry gone": (lambda p, r: r.zrem(p + "idx", "b"), "missing_fire", "idx", "b"),
    "fire entry without its data": (lambda p, r: set_state(p, r, "b", b""), "fire_without_data", "idx", "b"),
    "unreadable index entry": (lambda p, r: r.zadd(p + "idx", {"b|zz|1": 5}), "unreadable", "idx", "b"),
    "unreadable definition": (lambda p, r: r.hset(p + "sched", "b", b"\x80\x04garbage"), "unreadable", "sched", "b"),
    "unreadable fire time": (lambda p, r: set_state(p, r, "b", b"nope"), "unreadable", "sched", "b"),
    "unreadable claim": (lambda p, r: r.hset(p + "claims", "b|m|1|1", "nonsense"), "unreadable", "claims", "b"),
    "lease without claim": (lambda p, r: r.zadd(p + "lease", {"b|m|1|1": 1}), "lease_without_claim", "lease", "b"),
    "unreadable history record": (lambda p, r: r.lpush(p + "h:b", "{not json"), "unreadable", "h:b", "b"),
    "unreadable heartbeat": (lambda p, r: r.hset(p + "beats", "evil", "[1, 2]"), "unreadable", "beats", ""),
    "wrong-typed history": (lambda p, r: r.set(p + "h:b", "a string"), "wrong_type", "h:b", "b"),
    "wrong-typed running set": (lambda p, r: r.rpush(p + "r:b", "x"), "wrong_type", "r:b", "b"),
}


@pytest.mark.parametrize("name", list(DAMAGE))
def test_damage_is_reported_repaired_and_gone(ns: Namespace, name: str) -> None:
    damage, kind, suffix, sid = DAMAGE[name]
    assert ns.check().clean
    damage(ns.p, ns.raw)

    found = only(ns.check(), kind)
    assert len(found) == 1, ns.check().findings
    assert found[0].key == ns.p + suffix
    assert (found[0].schedule_id or "") == sid
    assert not found[0].repaired and ns.check().exit_code == 1

    repaired = ns.check(repair=True)
    assert [f.repaired for f in only(repaired, kind)] == [True], repaired.findings
    assert repaired.exit_code == 0

    again = ns.check()
    assert again.clean, again.findings
    assert [f.kind for f in again.findings] in ([], ["quarantine"])


def test_a_repaired_namespace_dispatches_every_schedule(ns: Namespace) -> None:
    for name in ("index entry of a missing schedule", "fire entry gone", "unreadable claim"):
        DAMAGE[name][0](ns.p, ns.raw)
    set_state(ns.p, ns.raw, "c", b"12,x")
    report = ns.check(repair=True)
    assert report.exit_code == 0, report.findings
    assert {(f.kind, f.schedule_id) for f in report.problems} == {
        ("orphan_entry", "ghost"),
        ("missing_fire", "b"),
        ("unreadable", "b"),
        ("unreadable", "c"),
    }
    ns.clock.set(T0 + timedelta(seconds=61))
    ns.scheduler.tick()
    assert sorted(run.schedule_id for run in ns.executor.executed) == ["a", "b", "c"]
    ns.clock.set(T0 + timedelta(seconds=121))
    ns.scheduler.tick()
    assert sorted(run.schedule_id for run in ns.executor.executed) == ["a", "a", "b", "b", "c", "c"]
    assert ns.check().clean


def test_repair_on_a_healthy_namespace_changes_nothing(ns: Namespace) -> None:
    # a paused schedule and a finished one have no fire entry, and need none
    ns.scheduler.add(Schedule(id="paused", task="schedcore.demo:hello", trigger=Interval(60), paused=True))
    ns.scheduler.add(Schedule(id="once", task="schedcore.demo:hello", trigger=At(T0 + timedelta(seconds=30))))
    ns.clock.set(T0 + timedelta(seconds=61))
    ns.scheduler.tick()  # history, running sets and a token counter too
    assert ns.store.get("once").next_fire is None  # type: ignore[union-attr]
    ns.store.heartbeat("me", {"pid": 1}, now=ns.clock.now(), ttl=timedelta(seconds=30))
    before = ns.dump()
    report = ns.check(repair=True)
    assert report.clean and report.findings == (), report.findings
    assert ns.dump() == before


def test_quarantine_keeps_what_was_moved_and_says_where(ns: Namespace) -> None:
    poison = b"\x80\x04\x95cos\nsystem\n"  # a pickle: kept as bytes, never loaded
    ns.raw.hset(ns.p + "sched", "b", poison)
    [finding] = only(ns.check(repair=True), "unreadable")
    assert finding.repaired and f"HGET {ns.p}quarantine sched|b|" in finding.action
    field = finding.action.split("HGET ")[1].split(" ", 1)[1]
    assert ns.raw.hget(ns.p + "quarantine", field) == poison
    assert ns.store.get("b") is None and ns.raw.zscore(ns.p + "idx", "b") is None  # its entry went with it
    assert ns.raw.zscore(ns.p + "ids", "b") is None


def test_a_definition_of_a_newer_schema_is_left_alone(ns: Namespace) -> None:
    value = ns.raw.hget(ns.p + "sched", "b")
    state, _, definition = value.partition(b"\n")
    newer = state + b"\n" + str(SCHEMA_VERSION + 1).encode() + definition.lstrip(b"0123456789")
    ns.raw.hset(ns.p + "sched", "b", newer)
    [finding] = only(ns.check(repair=True), "unreadable")
    assert finding.severity == "warning" and not finding.repaired and "upgrade" in finding.action
    assert ns.raw.hget(ns.p + "sched", "b") == newer  # a rolling upgrade keeps its schedules


def test_a_wrong_typed_namespace_key_is_reported_with_what_to_do(ns: Namespace) -> None:
    ns.raw.delete(ns.p + "claims")
    ns.raw.set(ns.p + "claims", "oops")
    report = ns.check(repair=True)
    [finding] = only(report, "wrong_type")
    assert finding.key == ns.p + "claims" and not finding.repaired
    assert "RENAME" in finding.action and "doctor --repair" in finding.action
    assert report.exit_code == 1
    assert ns.raw.get(ns.p + "claims") == b"oops"  # left alone


def test_claims_of_dead_owners_are_released_and_of_live_ones_kept(ns: Namespace) -> None:
    now = ns.clock.now()
    [ca, cb, _] = ns.store.claim_due(now, limit=10, lease=timedelta(seconds=30), owner="dead")
    ns.store.heartbeat("alive", {}, now=now, ttl=timedelta(minutes=5))
    ns.raw.hset(ns.p + "claims", "b", ns.raw.hget(ns.p + "claims", "b").replace(b"|dead", b"|alive"))
    ns.raw.zrem(ns.p + "lease", "b", "c")  # b (alive) and c (dead) lose their lease
    ns.clock.set(T0 + timedelta(seconds=31))  # a's lease expired
    report = ns.check(repair=True)
    assert {(f.kind, f.schedule_id, f.repaired) for f in report.problems} == {
        ("stale_claim", "a", True),
        ("claim_without_lease", "b", True),
        ("claim_without_lease", "c", True),
    }
    assert ns.raw.zscore(ns.p + "idx", "a") is not None and ns.raw.zscore(ns.p + "idx", "c") is not None
    assert ns.raw.hexists(ns.p + "claims", "b") and ns.raw.zscore(ns.p + "lease", "b") is not None
    assert ns.store.commit([]) == []
    assert not ns.check().problems
    # the live owner's claim can still commit; the released ones are fenced off
    from schedcore.testing.factories import commit_for

    assert ns.store.commit([commit_for(cb), commit_for(ca)]) == [True, False]


def test_a_repair_never_overwrites_what_changed_while_checking(ns: Namespace, monkeypatch: pytest.MonkeyPatch) -> None:
    ns.raw.zrem(ns.p + "idx", "b")
    real = _doctor._Check._apply

    def racing(self: Any, fix: tuple[Any, ...], done: str, todo: str) -> tuple[bool, str]:
        # a concurrent writer re-adds b with another timing (a new fire entry) and claims it
        ns.scheduler.add(Schedule(id="b", task="schedcore.demo:hello", trigger=Interval(90)))
        ns.store.claim_due(ns.clock.now(), limit=10, lease=timedelta(seconds=30), owner="other")
        return real(self, fix, done, todo)

    monkeypatch.setattr(_doctor._Check, "_apply", racing)
    [finding] = only(ns.check(repair=True), "missing_fire")
    assert not finding.repaired and "changed while checking" in finding.action
    assert ns.raw.zscore(ns.p + "idx", "b") is None and ns.raw.hexists(ns.p + "claims", "b")  # still claimed


def test_memory_store_checks_fire_entries_and_stale_claims() -> None:
    store = MemoryStore()
    clock = FakeClock(T0)
    sched = Scheduler(store=store, executor=CallbackExecutor(clock=clock), clock=clock, heartbeat=None)
    for sid in IDS:
        sched.add(Schedule(id=sid, task="schedcore.demo:hello", trigger=Interval(60)))
    assert store.check(repair=False, now=T0).clean
    store._schedules["b"].index.pop("fire")  # the damage a store bug would leave
    store._indexed -= 1
    store.claim_due(T0, limit=1, lease=timedelta(seconds=30), owner="gone")
    report = store.check(repair=True, now=T0 + timedelta(seconds=31))
    assert {(f.kind, f.schedule_id) for f in report.problems} == {("missing_fire", "b"), ("stale_claim", "a")}
    assert report.exit_code == 0 and store.check(repair=False, now=T0 + timedelta(seconds=31)).clean
    assert store.get("b").next_fire is not None  # type: ignore[union-attr]


# -- the command line ----------------------------------------------------------------------


def doctor(ns: Namespace, *args: str) -> Any:
    options = ["--store", "redis", "--redis-url", ns.url, "--redis-namespace", ns.name]
    return CliRunner().invoke(cli, ["doctor", *args, *options], env={"SCHEDCORE_SETTINGS": ""})


@pytest.mark.usefixtures("clean_schedcore_env", "restore_logging")
def test_doctor_command_exit_codes_table_and_json(ns: Namespace) -> None:
    clean = doctor(ns)
    assert clean.exit_code == 0 and "clean" in clean.stdout
    ns.raw.zadd(ns.p + "idx", {"ghost": 5})
    found = doctor(ns)
    assert found.exit_code == 1
    assert "orphan_entry" in found.stdout and f"{ns.p}idx" in found.stdout and "NOT repaired" in found.stdout
    data = json.loads(doctor(ns, "--json").stdout)
    assert data["remaining"] == 1 and data["findings"][0]["key"] == f"{ns.p}idx"
    fixed = doctor(ns, "--repair")
    assert fixed.exit_code == 0 and "repaired: removed" in fixed.stdout
    assert doctor(ns).exit_code == 0
    usage = doctor(ns, "--nope")
    assert usage.exit_code == 2 and usage.stderr.startswith("error: ")


def test_doctor_as_a_real_process(ns: Namespace, tmp_path: Path) -> None:
    ns.raw.zrem(ns.p + "idx", "a")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDCORE_")}
    command = [sys.executable, "-m", "schedcore.cli", "doctor", "--store", "redis", "--redis-url", ns.url]
    command += ["--redis-namespace", ns.name, "--repair", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    [finding] = json.loads(done.stdout)["findings"]
    assert finding["kind"] == "missing_fire" and finding["schedule_id"] == "a" and finding["repaired"]
    assert ns.raw.zscore(ns.p + "idx", "a") is not None
