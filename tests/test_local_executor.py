"""LocalExecutor: runs tasks on a thread pool and reports outcomes."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from schedcore.clock import FakeClock
from schedcore.exceptions import ExecutorUnavailable
from schedcore.executors import LocalExecutor
from schedcore.model import Schedule
from schedcore.protocols import Executor
from schedcore.records import Outcome, OutcomeStatus, Pending, PendingKind, Run
from schedcore.testing import tasks
from schedcore.testing.factories import T0, at
from schedcore.triggers import Interval

ASYNC_CALLS: list[Any] = []
_calls_lock = threading.Lock()


async def async_task(value: Any) -> None:
    await asyncio.sleep(0)
    with _calls_lock:
        ASYNC_CALLS.append(value)


def returns_coroutine(value: Any) -> Any:
    return async_task(value)


def make_run(task: Any, *, args: tuple[Any, ...] = (), nominal: float = 0, attempt: int = 1, sid: str = "s") -> Run:
    schedule = Schedule(id=sid, task=task, trigger=Interval(60, start=T0), args=args)
    return Run.create(schedule, Pending(kind=PendingKind.FIRE, nominal=at(nominal), due=at(nominal), attempt=attempt))


def execute(runs: list[Run], **options: Any) -> list[Outcome]:
    executor = LocalExecutor(**options)
    outcomes: list[Outcome] = []
    executor.start(outcomes.append)
    executor.submit(runs)
    executor.shutdown(wait=True)
    return outcomes


def test_is_an_executor() -> None:
    assert isinstance(LocalExecutor(), Executor)


def test_success_runs_the_task_with_its_arguments() -> None:
    tasks.reset()
    [outcome] = execute([make_run(tasks.record, args=(1, "x"))])
    assert outcome.status is OutcomeStatus.SUCCEEDED and outcome.error is None
    assert outcome.run_id == "s@1735689600000.1" and outcome.schedule_id == "s" and outcome.attempt == 1
    assert outcome.started_at is not None and outcome.started_at <= outcome.finished_at
    assert tasks.CALLS == [((1, "x"), {})]


def test_failure_is_reported_with_type_and_message() -> None:
    [outcome] = execute([make_run(tasks.fail, args=("kaput",))])
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.error == "RuntimeError: kaput"


@pytest.mark.parametrize("task", ["no_such_module_xyz:fn", "schedcore.testing.tasks:missing"])
def test_a_task_that_cannot_be_imported_is_a_failed_run(task: str) -> None:
    [outcome] = execute([make_run(task)])
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.error is not None and outcome.error.startswith("ImportError: ")
    assert task in outcome.error


def test_async_tasks_run_in_an_event_loop() -> None:
    ASYNC_CALLS.clear()
    outcomes = execute([make_run(async_task, args=("a",)), make_run(returns_coroutine, args=("b",), nominal=60)])
    assert {o.status for o in outcomes} == {OutcomeStatus.SUCCEEDED}
    assert sorted(ASYNC_CALLS) == ["a", "b"]


def test_repeated_hand_over_runs_once() -> None:
    tasks.reset()
    run = make_run(tasks.record)
    executor = LocalExecutor(max_workers=2)
    outcomes: list[Outcome] = []
    executor.start(outcomes.append)
    executor.submit([run, run])
    executor.submit([run])
    executor.shutdown(wait=True)
    assert len(tasks.CALLS) == 1 and len(outcomes) == 1


def test_dedupe_memory_is_bounded() -> None:
    tasks.reset()
    runs = [make_run(tasks.record, nominal=60 * i) for i in range(5)]
    executor = LocalExecutor(remember=2)
    executor.start(lambda o: None)
    executor.submit(runs)
    executor.submit(runs[:1])  # forgotten: the oldest ids fall out of the bounded memory
    executor.submit(runs[-1:])  # remembered
    executor.shutdown(wait=True)
    assert len(tasks.CALLS) == 6


def test_submit_needs_a_started_executor() -> None:
    executor = LocalExecutor()
    with pytest.raises(ExecutorUnavailable):
        executor.submit([make_run(tasks.noop)])
    executor.start(lambda o: None)
    executor.shutdown()
    executor.shutdown()  # idempotent
    with pytest.raises(ExecutorUnavailable):
        executor.submit([make_run(tasks.noop)])


def test_times_come_from_the_clock() -> None:
    clock = FakeClock(at(42))
    [outcome] = execute([make_run(tasks.noop)], clock=clock)
    assert outcome.started_at == at(42) and outcome.finished_at == at(42)


def test_a_failing_report_callback_does_not_kill_the_worker() -> None:
    executor = LocalExecutor(max_workers=1)
    seen: list[str] = []

    def report(outcome: Outcome) -> None:
        seen.append(outcome.run_id)
        raise RuntimeError("callback bug")

    executor.start(report)
    executor.submit([make_run(tasks.noop), make_run(tasks.noop, nominal=60)])
    executor.shutdown(wait=True)
    assert len(seen) == 2


def test_validate_accepts_any_schedule() -> None:
    LocalExecutor().validate(Schedule(id="x", task="pkg.mod:fn", trigger=Interval(1)))
