"""One contract: every method of Store and Executor is required, the defaults live in
StoreBase and ExecutorBase, and a store written from docs/plugins.md alone passes the suite."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from contract_helpers.dict_store import DictStore
from hypothesis import given
from hypothesis import strategies as st

from schedcore.exceptions import ScheduleExists, StoreError, StoreUnavailable
from schedcore.executors import ExecutorBase, LocalExecutor
from schedcore.memory import MemoryStore
from schedcore.model import Conflict, Schedule
from schedcore.protocols import Executor, Store, missing_methods
from schedcore.records import AddResult, Claim, Commit, Pending, Run
from schedcore.sqlite import SQLiteStore
from schedcore.storekit import FireMode, StoreBase, fire_on_add, fire_on_replace
from schedcore.testing import StoreConformance
from schedcore.testing.executor_suite import make_run
from schedcore.testing.executors import CallbackExecutor
from schedcore.testing.factories import T0, at, fire_entry, make_schedule
from schedcore.triggers import Cron, Interval

DOCS = Path(__file__).resolve().parent.parent / "docs"


class TestDictStoreFromTheDocs(StoreConformance):
    """The claim of docs/plugins.md: a third-party store written from it passes the suite."""

    @pytest.fixture
    def store(self) -> Iterator[Store]:
        store = DictStore(history_limit=self.history_limit)
        yield store
        store.close()


def test_the_dict_store_uses_the_defaults_of_store_base() -> None:
    for name in ("add_many", "claim_due_nowait", "commit_and_next_due", "warnings", "check"):
        assert name not in vars(DictStore) and getattr(DictStore, name) is getattr(StoreBase, name)


def test_plugins_md_names_every_required_method_and_every_default() -> None:
    text = (DOCS / "plugins.md").read_text()
    row = {m.group(1): m.group(2) for m in re.finditer(r"\| `schedcore\.\w+\.(\w+Base)` \| (.*?) \|", text)}
    for base, protocol in ((StoreBase, Store), (ExecutorBase, Executor)):
        written = set(re.findall(r"`(\w+)`", row[base.__name__]))
        defaults = {n for n in missing_methods(object, protocol) if n not in base.__abstractmethods__}
        defaults = {n for n in defaults if callable(getattr(base, n, None))}
        assert written | defaults == set(missing_methods(object, protocol)), base.__name__
        assert not written & defaults, f"{base.__name__}: a default listed as to be written"


# -- every method is required ------------------------------------------------------------


def test_missing_methods_names_what_an_object_lacks() -> None:
    assert missing_methods(MemoryStore(), Store) == []
    assert missing_methods(LocalExecutor(), Executor) == []
    assert missing_methods(object(), Executor) == [
        "validate",
        "task_references",
        "start",
        "submit",
        "submit_nowait",
        "settled",
        "shutdown",
    ]


def test_a_store_lacking_a_method_is_refused_when_built_naming_it() -> None:
    class Incomplete(DictStore):
        stats = None  # type: ignore[assignment]

    with pytest.raises(TypeError, match="lacks required methods of Store: stats"):
        Incomplete()


def test_an_executor_lacking_a_method_is_refused_when_built_naming_it() -> None:
    class Incomplete(ExecutorBase):
        def submit(self, runs: Sequence[Run]) -> None:
            pass

    with pytest.raises(TypeError, match="lacks required methods of Executor: validate, start, shutdown"):
        Incomplete()


def test_shipped_stores_inherit_store_base(tmp_path: Path) -> None:
    from schedcore_redis import RedisStore

    assert issubclass(RedisStore, StoreBase) and issubclass(SQLiteStore, StoreBase)
    for built in (MemoryStore(), DictStore(), SQLiteStore(str(tmp_path / "s.db"))):
        try:
            assert isinstance(built, StoreBase) and isinstance(built, Store)
        finally:
            built.close()


def test_shipped_executors_inherit_executor_base() -> None:
    from schedcore_rq import RQExecutor

    assert issubclass(LocalExecutor, ExecutorBase) and issubclass(CallbackExecutor, ExecutorBase)
    assert issubclass(RQExecutor, ExecutorBase) and RQExecutor.durable_outcomes
    assert not LocalExecutor.durable_outcomes


# -- the defaults ------------------------------------------------------------------------


def test_default_add_many_with_conflict_error_writes_nothing_when_one_id_is_taken() -> None:
    store = DictStore()
    store.add(make_schedule("b"), fire_entry(0), Conflict.ERROR)
    batch = [(make_schedule("a"), fire_entry(0)), (make_schedule("b", args=(1,)), fire_entry(0))]
    with pytest.raises(ScheduleExists, match="'b'"):
        store.add_many(batch, Conflict.ERROR)
    assert store.get("a") is None
    assert store.add_many(batch, Conflict.REPLACE) == [AddResult.ADDED, AddResult.REPLACED]


def test_default_claim_due_nowait_raises_where_the_answer_is_asked_for() -> None:
    class Down(DictStore):
        def claim_due(self, *args: Any, **kwargs: Any) -> list[Claim]:
            raise StoreUnavailable("down")

    waiter = Down().claim_due_nowait(T0, limit=1, lease=timedelta(seconds=1), owner="o")
    with pytest.raises(StoreUnavailable, match="down"):
        waiter()


def test_default_commit_and_next_due_is_both_calls() -> None:
    store = DictStore()
    store.add(make_schedule("a"), fire_entry(0), Conflict.ERROR)
    [claim] = store.claim_due(T0, limit=1, lease=timedelta(seconds=30), owner="o")
    assert store.commit_and_next_due([Commit(claim=claim, next_fire=fire_entry(60))]) == ([True], at(60))


def test_default_check_says_there_is_no_checker_and_warnings_are_none() -> None:
    store = DictStore()
    with pytest.raises(StoreError, match="DictStore has no consistency checker"):
        store.check(now=T0)
    assert store.warnings() == []


def test_default_submit_nowait_hands_over_at_once_and_settled_does_nothing() -> None:
    class Recording(ExecutorBase):
        def __init__(self) -> None:
            self.handed: list[str] = []

        def validate(self, schedule: Schedule) -> None:
            pass

        def start(self, report: Any) -> None:
            pass

        def submit(self, runs: Sequence[Run]) -> None:
            self.handed += [r.id for r in runs]

        def shutdown(self, wait: bool = True) -> None:
            pass

    executor = Recording()
    run = make_run("a", "app:job")
    waiter = executor.submit_nowait([run])
    assert executor.handed == [run.id]  # before the waiter is called
    assert waiter() is None
    executor.settled([run.id, "unknown@0.1"])
    assert isinstance(executor, Executor)


# -- the replace rule of add, in one place --------------------------------------------------

timings = st.sampled_from([Interval(60, start=T0), Interval(90, start=T0), Cron("*/5 * * * *")])


@given(
    old_paused=st.booleans(),
    new_paused=st.booleans(),
    old_timing=timings,
    new_timing=timings,
    args_change=st.booleans(),
    readable=st.booleans(),
    has_first=st.booleans(),
)
def test_fire_on_replace_is_the_rule_the_protocol_states(
    old_paused: bool,
    new_paused: bool,
    old_timing: Any,
    new_timing: Any,
    args_change: bool,
    readable: bool,
    has_first: bool,
) -> None:
    old = make_schedule("s", trigger=old_timing, paused=old_paused)
    new = make_schedule("s", trigger=new_timing, paused=new_paused, args=(1,) if args_change else ())
    first: Pending | None = fire_entry(10) if has_first else None
    mode = fire_on_replace(old if readable else None, new, first)
    # Store.add: equal definitions write nothing; paused never has a fire entry; the same
    # timing on a running schedule keeps the entry; otherwise first becomes the fire entry.
    if readable and old == new:
        assert mode is None
    elif new_paused:
        assert mode is FireMode.DROP
    elif readable and not old_paused and old_timing == new_timing:
        assert mode is FireMode.KEEP
    else:
        assert mode is (FireMode.SET if has_first else FireMode.DROP)
    assert fire_on_add(new, first) is (FireMode.SET if has_first and not new_paused else FireMode.DROP)
