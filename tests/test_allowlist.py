"""Issue 11, item 2: the task allow-list, at each enforcement point (add, sync, hand-off, CLI)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest

from schedcore import Interval, MemoryStore, RetryPolicy, Schedule, Scheduler, ValidationError
from schedcore.allowlist import TaskAllowList
from schedcore.clock import FakeClock
from schedcore.plugins import get_plugin_manager
from schedcore.records import Pending, PendingKind, RunStatus
from schedcore.sync import sync
from schedcore.testing.executors import CallbackExecutor
from schedcore.testing.factories import T0

pytestmark = pytest.mark.usefixtures("clean_schedcore_env")


def _schedule(sid: str, task: str, **fields: object) -> Schedule:
    return Schedule(id=sid, task=task, trigger=Interval(60, start=T0), **fields)  # type: ignore[arg-type]


# -- the value object ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patterns", "task", "allowed"),
    [
        (("app.jobs:*",), "app.jobs:nightly", True),
        (("app.jobs:*",), "app.jobs2:nightly", False),
        (("app.jobs:*",), "os:system", False),
        (("app.*:*",), "app.a.b:f", True),
        (("app.*:*",), "apple:f", False),
        (("app.jobs:nightly", "lib:f?"), "lib:f1", True),
        (("app.jobs:nightly", "lib:f?"), "lib:f10", False),
        ((), "app.jobs:nightly", False),
        (None, "os:system", True),
    ],
)
def test_patterns_match_module_function_globs(patterns: tuple[str, ...] | None, task: str, allowed: bool) -> None:
    allow = TaskAllowList(patterns)
    assert allow.allows(task) is allowed
    assert allow.allows(task) is allowed  # memoised answer is the same


@pytest.mark.parametrize("bad", ["app*", "", "app.jobs:*;rm", "a:b:c", "a b:c"])
def test_a_pattern_without_module_and_function_is_refused(bad: str) -> None:
    with pytest.raises(ValidationError) as info:
        TaskAllowList((bad,))
    assert info.value.field == "allowed_tasks"


def test_parse_and_environment() -> None:
    assert TaskAllowList.parse(" app.jobs:* , lib:f ,") == TaskAllowList(("app.jobs:*", "lib:f"))
    assert not TaskAllowList.parse("  ").enabled
    assert not TaskAllowList.from_env({}).enabled
    assert TaskAllowList.from_env({"SCHEDCORE_ALLOWED_TASKS": "app.*:*"}).allows("app.x:y")
    with pytest.raises(ValidationError, match="not in the allowed tasks"):
        TaskAllowList.parse("app.*:*").check("os:system")


# -- Scheduler.add / add_many, sync ----------------------------------------------------------


def test_add_and_add_many_refuse_a_task_outside_the_list() -> None:
    sched = Scheduler(store=MemoryStore(), allowed_tasks=["schedcore.demo:*"])
    sched.add(_schedule("ok", "schedcore.demo:hello"))
    with pytest.raises(ValidationError, match="os:system") as info:
        sched.add(_schedule("evil", "os:system"))
    assert info.value.field == "task"
    with pytest.raises(ValidationError, match="os:system"):
        sched.add_many([_schedule("ok2", "schedcore.demo:hello"), _schedule("evil", "os:system")])
    assert [s.schedule.id for s in sched.list()] == ["ok"]  # nothing of the batch was written


def test_the_environment_sets_the_list_when_code_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHEDCORE_ALLOWED_TASKS", "schedcore.demo:*")
    with pytest.raises(ValidationError):
        Scheduler(store=MemoryStore()).add(_schedule("evil", "os:system"))
    Scheduler(store=MemoryStore(), allowed_tasks=["os:*"]).add(_schedule("x", "os:system"))  # code wins


def test_unset_allows_everything() -> None:
    Scheduler(store=MemoryStore()).add(_schedule("x", "os:system"))


@pytest.mark.parametrize("bare", [False, True])
def test_sync_refuses_before_writing(bare: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore()
    monkeypatch.setenv("SCHEDCORE_ALLOWED_TASKS", "schedcore.demo:*")
    target = store if bare else Scheduler(store=store)
    with pytest.raises(ValidationError, match="os:system"):
        sync(target, [_schedule("ok", "schedcore.demo:hello"), _schedule("evil", "os:system")], "jobs.toml")
    assert store.list_schedules() == []


# -- hand-off ------------------------------------------------------------------------------


def _engine(allowed: Sequence[str]) -> tuple[Scheduler, CallbackExecutor, MemoryStore, FakeClock]:
    clock = FakeClock(T0)
    store = MemoryStore()
    executor = CallbackExecutor(clock=clock)
    sched = Scheduler(
        store, executor, clock=clock, plugins=get_plugin_manager(entry_points=False), allowed_tasks=allowed
    )
    return sched, executor, store, clock


def test_a_stored_disallowed_task_is_never_handed_over_and_fails_without_retry() -> None:
    sched, executor, store, clock = _engine(["schedcore.demo:*"])
    fire = Pending(kind=PendingKind.FIRE, nominal=T0, due=T0)
    # written into the store directly, the way a poisoned store would hold it
    store.add(_schedule("evil", "os:system", retry=RetryPolicy(max_attempts=5)), fire, "error")
    store.add(_schedule("good", "schedcore.demo:hello"), fire, "error")
    sched.tick()
    # recorded by the very tick that refused it: no window in which the run stays "running"
    [record] = sched.history("evil")
    assert record.status is RunStatus.FAILED and store.get("evil").running == ()  # type: ignore[union-attr]
    sched.tick()  # applies the reported outcomes
    assert [r.task for r in executor.submitted] == ["schedcore.demo:hello"]
    [record] = sched.history("evil")
    assert record.status is RunStatus.FAILED
    assert record.error == "task 'os:system' is not in the allowed tasks"
    assert record.retry_at is None
    assert [r.status for r in sched.history("good")] == [RunStatus.SUCCEEDED]
    # the next occurrence is refused again, never retried in between
    clock.advance(timedelta(seconds=60))
    sched.tick()
    sched.tick()
    assert [r.task for r in executor.submitted] == ["schedcore.demo:hello"] * 2
    assert [r.status for r in sched.history("evil")] == [RunStatus.FAILED, RunStatus.FAILED]
    assert store.get("evil").running == ()  # type: ignore[union-attr]
