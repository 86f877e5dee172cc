"""Declarative schedule files: ``schedcore.sync.sync`` creates, updates, removes, and is idempotent."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from redis_helpers import BACKENDS, make_store, redis_server_url  # noqa: F401  (fixture)

from schedcore import Scheduler
from schedcore.clock import FakeClock
from schedcore.config import parse_schedules
from schedcore.exceptions import ConfigError, ValidationError
from schedcore.memory import MemoryStore
from schedcore.model import Schedule
from schedcore.plugins import get_plugin_manager
from schedcore.protocols import Store
from schedcore.records import AddResult
from schedcore.storekit import StoreBase
from schedcore.sync import SOURCE_KEY, default_source, sync, tag
from schedcore.testing.executors import CallbackExecutor
from schedcore.testing.factories import T0
from schedcore.triggers import Cron, Interval

FILE_V1 = """
[[schedule]]
id = "nightly"
task = "schedcore.demo:hello"
cron = "0 3 * * *"
tz = "Europe/Paris"

[[schedule]]
id = "often"
task = "schedcore.demo:hello"
every = 60

[[schedule]]
id = "gone-soon"
task = "schedcore.demo:hello"
every = 3600
"""

FILE_V2 = """
[[schedule]]
id = "nightly"
task = "schedcore.demo:hello"
cron = "0 3 * * *"
tz = "Europe/Paris"
args = ["changed"]

[[schedule]]
id = "often"
task = "schedcore.demo:hello"
every = 30

[[schedule]]
id = "new"
task = "schedcore.demo:hello"
at = 2030-01-01T00:00:00Z
"""


def ids(store: Store) -> list[str]:
    return [s.schedule.id for s in store.list_schedules(limit=1000)]


def scheduler(store: Store, clock: FakeClock | None = None) -> Scheduler:
    clock = clock or FakeClock(T0)
    return Scheduler(
        store,
        CallbackExecutor(clock=clock),
        clock=clock,
        plugins=get_plugin_manager(entry_points=False),
        heartbeat=None,
    )


@pytest.fixture(params=["memory", *BACKENDS])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    made: Store = MemoryStore() if request.param == "memory" else make_store(request.param, request)
    yield made
    made.close()


def test_creates_updates_removes_and_is_idempotent(store: Store) -> None:
    s = scheduler(store)
    first = sync(s, parse_schedules(FILE_V1), "jobs.toml")
    assert sorted(first.added) == ["gone-soon", "nightly", "often"] and first.changed
    stored = store.get("nightly")
    assert stored is not None and stored.schedule.meta[SOURCE_KEY] == "jobs.toml"
    fire_before = stored.next_fire

    again = sync(s, parse_schedules(FILE_V1), "jobs.toml")
    assert sorted(again.unchanged) == ["gone-soon", "nightly", "often"]
    assert not again.changed and again.added == again.updated == again.removed == ()

    second = sync(s, parse_schedules(FILE_V2), "jobs.toml")
    assert second.added == ("new",)
    assert sorted(second.updated) == ["nightly", "often"]
    assert second.removed == ("gone-soon",)
    assert ids(store) == ["new", "nightly", "often"]
    nightly = store.get("nightly")
    assert nightly is not None and nightly.schedule.args == ("changed",)
    assert nightly.next_fire == fire_before  # same timing: the pending occurrence is kept
    often = store.get("often")
    assert often is not None and often.schedule.trigger == Interval(30)
    assert not sync(s, parse_schedules(FILE_V2), "jobs.toml").changed


def test_leaves_schedules_added_by_other_means_alone(store: Store) -> None:
    s = scheduler(store)
    s.add(Schedule(id="by-hand", task="schedcore.demo:hello", trigger=Interval(10)))
    sync(s, parse_schedules(FILE_V1), "other.toml")  # another file's schedules
    report = sync(s, parse_schedules(FILE_V2), "jobs.toml")
    assert report.removed == ()
    assert set(ids(store)) == {"by-hand", "gone-soon", "nightly", "often", "new"}
    assert sorted(report.adopted) == ["nightly", "often"]  # same ids as other.toml: the newer file owns them
    sync(s, [], "jobs.toml")  # an empty file removes only its own schedules
    assert set(ids(store)) == {"by-hand", "gone-soon"}
    by_hand = store.get("by-hand")
    assert by_hand is not None and SOURCE_KEY not in by_hand.schedule.meta


def test_works_on_a_bare_store_too(store: Store) -> None:
    report = sync(store, parse_schedules(FILE_V1), "jobs.toml", now=T0)
    assert len(report.added) == 3
    often = store.get("often")
    assert often is not None and often.next_fire is not None and often.next_fire.nominal == T0
    assert not sync(store, parse_schedules(FILE_V1), "jobs.toml", now=T0 + timedelta(hours=1)).changed


def test_works_on_a_store_with_the_default_add_many() -> None:
    class OneAtATime:  # StoreBase's add_many (one add per item) on a MemoryStore
        def __init__(self) -> None:
            self.inner = MemoryStore()
            self.adds = 0

        def add(self, *args: Any) -> AddResult:
            self.adds += 1
            return self.inner.add(*args)

        def add_many(self, items: Any, conflict: Any) -> list[AddResult]:
            return StoreBase.add_many(self, items, conflict)  # type: ignore[arg-type]  # the default, on this proxy

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

    store = OneAtATime()
    report = sync(store, parse_schedules(FILE_V1), "jobs.toml", now=T0)
    assert len(report.added) == 3 and store.adds == 3
    assert not sync(store, parse_schedules(FILE_V1), "jobs.toml", now=T0 + timedelta(hours=1)).changed


def test_bad_input_changes_nothing(store: Store) -> None:
    s = scheduler(store)
    sync(s, parse_schedules(FILE_V1), "jobs.toml")
    before = {x.schedule.id: x for x in store.list_schedules()}
    dup = [Schedule(id="a", task="m:f", trigger=Interval(5)), Schedule(id="a", task="m:g", trigger=Interval(5))]
    with pytest.raises(ConfigError, match="duplicate schedule id 'a'"):
        sync(s, dup, "jobs.toml")
    with pytest.raises(ValidationError):
        sync(s, [], "")

    class Refusing(CallbackExecutor):
        def validate(self, schedule: Schedule) -> None:
            if schedule.id == "new":
                raise ValidationError("executor_options", {}, "refused by the executor")

    clock = FakeClock(T0)
    picky = Scheduler(store, Refusing(clock=clock), clock=clock, plugins=get_plugin_manager(entry_points=False))
    with pytest.raises(ValidationError, match="refused"):
        sync(picky, parse_schedules(FILE_V2), "jobs.toml")  # "nightly" comes first in the file: not written
    assert {x.schedule.id: x for x in store.list_schedules()} == before


def test_two_schedulers_syncing_the_same_file_at_once(store: Store) -> None:
    """Several schedulers starting together on one store: no duplicates, the file's state at the end."""
    many = parse_schedules(
        "\n".join(
            f'[[schedule]]\nid = "job-{i:03d}"\ntask = "schedcore.demo:hello"\ncron = "{i % 60} * * * *"\n'
            for i in range(60)
        )
    )
    sync(scheduler(store), parse_schedules(FILE_V1), "jobs.toml")  # an older version of the file
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []
    reports = []

    def start() -> None:
        try:
            s = scheduler(store)
            barrier.wait()
            reports.append(sync(s, many, "jobs.toml"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert ids(store) == [s.id for s in many]
    for expected in tag(many, "jobs.toml"):
        stored = store.get(expected.id)
        assert stored is not None and stored.schedule == expected and stored.next_fire is not None
    assert sorted(sid for r in reports for sid in r.added) == [s.id for s in many]  # each added exactly once
    assert sorted(sid for r in reports for sid in r.removed) == ["gone-soon", "nightly", "often"]
    assert not sync(scheduler(store), many, "jobs.toml").changed


def test_default_source_is_the_file_name() -> None:
    assert default_source("/etc/app/jobs.toml") == "jobs.toml"
    assert default_source("jobs.toml") == "jobs.toml"


def test_tag_keeps_other_meta() -> None:
    (tagged,) = tag([Schedule(id="a", task="m:f", trigger=Cron("@daily"), meta={"team": "ops"})], "f.toml")
    assert tagged.meta == {"team": "ops", SOURCE_KEY: "f.toml"}


def test_an_unreadable_schedule_of_the_file_is_repaired(request: pytest.FixtureRequest) -> None:
    pytest.importorskip("fakeredis", reason="fakeredis is not installed")
    store = make_store("fakeredis", request)
    try:
        sync(store, parse_schedules(FILE_V1), "jobs.toml", now=T0)
        raw = store._client.hget(store.keys.schedules, "often")
        store._client.hset(store.keys.schedules, "often", raw.split(b"\n")[0] + b"\n{not json")
        report = sync(store, parse_schedules(FILE_V1), "jobs.toml", now=T0)
        assert report.updated == ("often",)
        stored = store.get("often")
        assert stored is not None and stored.schedule.meta[SOURCE_KEY] == "jobs.toml"
    finally:
        store.close()
