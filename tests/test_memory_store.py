"""The conformance suite against MemoryStore, plus what only the memory store promises."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from hypothesis import settings

from schedcore.exceptions import ValidationError
from schedcore.memory import MemoryStore
from schedcore.model import Conflict
from schedcore.protocols import Store
from schedcore.records import PendingKind
from schedcore.testing import StoreConformance
from schedcore.testing.factories import at, commit_for, entry, fire_entry, make_schedule


class TestMemoryStore(StoreConformance):
    history_limit = 50
    # The memory store is fast: give the model-based test more room than the suite's default.
    stateful_settings = settings(StoreConformance.stateful_settings, max_examples=100)

    @pytest.fixture
    def store(self) -> Iterator[Store]:
        store = MemoryStore()
        yield store
        store.close()


class TestSmallHistory(StoreConformance):
    """The suite again with a tiny history cap (the stateful test then exercises eviction)."""

    history_limit = 3

    @pytest.fixture
    def store(self) -> Iterator[Store]:
        store = MemoryStore(history_limit=3)
        yield store
        store.close()


def test_history_limit_must_be_positive() -> None:
    with pytest.raises(ValidationError):
        MemoryStore(history_limit=0)


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.enqueue("a", [fire_entry(0)]),
        lambda s: s.add(make_schedule("b"), entry("manual", 0), Conflict.ERROR),
        lambda s: s.set_paused("a", False, entry("manual", 0)),
        lambda s: s.add(make_schedule("b"), None, "sometimes"),
    ],
)
def test_entries_of_the_wrong_kind_are_refused(call: object) -> None:
    store = MemoryStore()
    store.add(make_schedule("a"), fire_entry(0), Conflict.ERROR)
    before = store.get("a")
    with pytest.raises(ValidationError):
        call(store)  # type: ignore[operator]
    assert store.get("a") == before and store.get("b") is None


def test_commit_validates_every_item_before_writing_any() -> None:
    store = MemoryStore()
    store.add(make_schedule("a"), fire_entry(0), Conflict.ERROR)
    store.add(make_schedule("b"), fire_entry(0), Conflict.ERROR)
    ca, cb = sorted(store.claim_due(at(0), limit=5, lease=timedelta(seconds=30), owner="t"), key=lambda c: c.token)
    with pytest.raises(ValidationError):
        store.commit([commit_for(ca), commit_for(cb, next_fire=entry("manual", 5))])
    assert store.commit([commit_for(ca), commit_for(cb)]) == [True, True]


def test_a_failing_watch_callback_does_not_break_the_store(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore()
    seen: list[datetime] = []

    def broken(due: datetime) -> None:
        raise RuntimeError("callback bug")

    store.watch(broken)
    store.watch(seen.append)
    store.add(make_schedule("a"), fire_entry(10), Conflict.ERROR)
    assert seen == [at(10)]
    assert "callback bug" in caplog.text


def test_lazy_index_is_compacted() -> None:
    store = MemoryStore()
    store.add(make_schedule("a"), None, Conflict.ERROR)
    for i in range(3000):  # re-index the same key over and over, leaving dead heap items behind
        store.set_paused("a", True, None)
        store.set_paused("a", False, fire_entry(i))
    assert len(store._due_heap) < 2100
    claims = store.claim_due(at(10_000), limit=10, lease=timedelta(seconds=1), owner="t")
    assert [c.entry for c in claims] == [fire_entry(2999)]


def test_lease_shorter_than_a_millisecond_still_expires_in_the_future() -> None:
    store = MemoryStore()
    store.add(make_schedule("a"), fire_entry(0), Conflict.ERROR)
    [c] = store.claim_due(at(0), limit=1, lease=timedelta(microseconds=10), owner="t")
    assert c.lease_expires > at(0)
    assert store.claim_due(at(0), limit=1, lease=timedelta(seconds=1), owner="u") == []


def test_importing_schedcore_does_not_import_the_testing_package() -> None:
    import subprocess
    import sys

    code = "import sys, schedcore, schedcore.memory; print('schedcore.testing' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_kind_of_keys() -> None:
    assert fire_entry(0).key("a") == "fire"
    assert entry(PendingKind.MANUAL, 0).key("a").startswith("manual:a@")
