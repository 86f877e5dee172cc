"""The conformance suite every :class:`~schedcore.protocols.Executor` runs against itself.

Subclass :class:`ExecutorConformance` in a test module and provide a ``harness`` fixture
that returns an :class:`ExecutorHarness`: a fresh executor, **not started**, plus a way to
make its backend process what was submitted::

    import pytest
    from schedcore.testing import ExecutorConformance

    class MyHarness:
        def __init__(self) -> None:
            self.executor = MyExecutor(...)

        def drain(self, timeout: float) -> None:
            run_my_workers_until_the_queue_is_empty(timeout)

    class TestMyExecutor(ExecutorConformance):
        @pytest.fixture
        def harness(self):
            harness = MyHarness()
            yield harness
            harness.executor.shutdown(wait=False)   # the suite has shut it down already; idempotent
            close_my_connections()

The tests use only the :class:`~schedcore.protocols.Executor` protocol and the harness.
They start the executor with a collecting ``report`` callback, hand over
:class:`~schedcore.records.Run` objects built from plain schedules (tasks from
:mod:`schedcore.testing.tasks`), call :meth:`ExecutorHarness.drain`, and wait up to
:attr:`ExecutorConformance.outcome_timeout` for the outcomes (reports may come from
any thread, later than ``drain`` returns). The suite shuts the executor down
(``shutdown(wait=True)``) after every test.

Executions are counted **on the task side**: the tasks append a line to a file in
pytest's ``tmp_path`` (one ``O_APPEND`` write per line), so the executor may run its
tasks in other processes -- as long as they run on this machine and can write there.

Where the protocol leaves room the suite says which reading it checks:

* a repeat report of one run is allowed ("ignored by the core"): where a run is handed
  over several times the suite counts executions and asks for at least one outcome; a
  run handed over once, in a quiet test, must be reported exactly once;
* ``submit`` after ``shutdown`` must raise :class:`~schedcore.exceptions.ExecutorUnavailable`:
  the executor has stopped accepting runs, so nothing can be handed over, and the
  protocol's answer to that is ExecutorUnavailable (the engine then releases its claims).
  Returning quietly would leave the engine believing the run was dispatched, and it would
  stay "running" forever;
* ``started_at`` is optional in :class:`~schedcore.records.Outcome`; when given it must be
  aware and not after ``finished_at``;
* a run whose task raised carries the task's traceback in ``Outcome.traceback``, as Python
  prints it, trimmed by :func:`schedcore.tracebacks.format_traceback` (the exception line
  last, the innermost frames kept); a success carries none. An executor whose backend
  cannot give one sets :attr:`ExecutorConformance.reports_tracebacks` to False.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import pytest

from schedcore.exceptions import ExecutorUnavailable
from schedcore.protocols import Executor
from schedcore.records import Outcome, OutcomeStatus, Pending, PendingKind, Run
from schedcore.testing.factories import make_schedule
from schedcore.tracebacks import MAX_CHARS, MAX_LINES

__all__ = ["ExecutorConformance", "ExecutorHarness", "Reports"]

#: The nominal fire time of the suite's first run (milliseconds: what outcomes keep).
NOMINAL = datetime(2025, 1, 1, 3, 0, tzinfo=timezone.utc)
_TASKS = "schedcore.testing.tasks"
#: Slack allowed between the test's clock and the clock that stamps outcomes (same machine).
_CLOCK_SLACK = timedelta(seconds=1)


@runtime_checkable
class ExecutorHarness(Protocol):
    """What a subclass's ``harness`` fixture returns.

    ``executor`` is a fresh executor that has **not** been started; the suite starts it,
    uses it, and shuts it down. :meth:`drain` makes the executor's backend process
    everything handed over so far.
    """

    @property
    def executor(self) -> Executor:
        """The executor under test (not started yet)."""
        ...

    def drain(self, timeout: float) -> None:
        """Make the backend execute every run submitted so far, within ``timeout`` seconds.

        For an in-process executor this may do nothing (its threads run the tasks anyway)
        or wait for them; for a queue-based one it runs workers until the queue is empty
        (RQ: ``rq worker --burst``). It need not wait for the outcomes to be *reported*:
        the suite waits for those itself. Raise (or fail the test) when the backend cannot
        finish in time. May be called from a thread other than the test's.
        """
        ...


class Reports:
    """A ``report`` callback that collects outcomes and lets a test wait for them."""

    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []
        self._cond = threading.Condition()

    def __call__(self, outcome: Outcome) -> None:
        with self._cond:
            self.outcomes.append(outcome)
            self._cond.notify_all()

    def for_run(self, run_id: str) -> list[Outcome]:
        """Every outcome reported for ``run_id``, in report order."""
        with self._cond:
            return [o for o in self.outcomes if o.run_id == run_id]

    def ids(self) -> set[str]:
        """The run ids reported so far."""
        with self._cond:
            return {o.run_id for o in self.outcomes}

    def wait_for(self, run_ids: Sequence[str], timeout: float) -> bool:
        """Wait until every one of ``run_ids`` was reported at least once."""
        wanted = set(run_ids)
        with self._cond:
            return self._cond.wait_for(lambda: wanted <= {o.run_id for o in self.outcomes}, timeout=timeout)


def make_run(
    schedule_id: str,
    task: str,
    *,
    args: Sequence[Any] = (),
    kwargs: dict[str, Any] | None = None,
    nominal: datetime = NOMINAL,
    attempt: int = 1,
    queue: str = "default",
) -> Run:
    """The run of a plain interval schedule ``schedule_id`` at ``nominal`` (attempt > 1: a retry)."""
    schedule = make_schedule(schedule_id, task=task, args=tuple(args), kwargs=kwargs or {}, queue=queue)
    kind = PendingKind.FIRE if attempt == 1 else PendingKind.RETRY
    return Run.create(schedule, Pending(kind=kind, nominal=nominal, due=nominal, attempt=attempt))


def read_lines(path: Path) -> list[str]:
    """The lines the task side appended to ``path`` (none when it does not exist yet)."""
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []


def _aware(value: datetime) -> bool:
    return value.tzinfo is not None and value.utcoffset() is not None


class ExecutorConformance:
    """Contract tests for an :class:`~schedcore.protocols.Executor`; subclass and provide ``harness``."""

    #: Seconds to wait for outcomes after :meth:`ExecutorHarness.drain` returned.
    outcome_timeout: ClassVar[float] = 15.0
    #: Seconds :meth:`ExecutorHarness.drain` is given.
    drain_timeout: ClassVar[float] = 30.0
    #: True for an executor whose backend keeps outcomes across a shutdown (see
    #: ``Executor.shutdown``): then the harness must offer ``restart()`` returning a fresh,
    #: unstarted executor on the same backend, which must report what the first one left.
    durable_outcomes: ClassVar[bool] = False
    #: Seconds to keep listening for reports that must *not* come (an unexpected repeat).
    quiet_period: ClassVar[float] = 0.3
    #: The ``Schedule.queue`` of the suite's runs (the queue the harness drains).
    queue: ClassVar[str] = "default"
    #: Whether a failed run's outcome carries the task's traceback (False: the suite only
    #: checks that whatever is reported is within the bounds).
    reports_tracebacks: ClassVar[bool] = True

    @pytest.fixture
    def harness(self) -> Iterator[ExecutorHarness]:
        raise NotImplementedError(
            "subclass ExecutorConformance and provide a `harness` fixture returning an ExecutorHarness"
        )

    @pytest.fixture
    def reports(self, harness: ExecutorHarness) -> Iterator[Reports]:
        """The report callback the suite starts the executor with; shuts the executor down afterwards."""
        collected = Reports()
        yield collected
        harness.executor.shutdown(wait=True)

    # -- helpers ------------------------------------------------------------------------

    def run(self, schedule_id: str, task: str, **changes: Any) -> Run:
        """A run of the suite (see :func:`make_run`), on :attr:`queue`."""
        return make_run(schedule_id, f"{_TASKS}:{task}" if ":" not in task else task, queue=self.queue, **changes)

    def start(self, harness: ExecutorHarness, reports: Reports) -> Executor:
        """Start the harness's executor with ``reports`` and return it."""
        harness.executor.start(reports)
        return harness.executor

    def execute(self, harness: ExecutorHarness, reports: Reports, runs: Sequence[Run]) -> None:
        """Drain the backend and wait until every one of ``runs`` was reported."""
        harness.drain(self.drain_timeout)
        ids = [run.id for run in runs]
        if not reports.wait_for(ids, self.outcome_timeout):
            missing = sorted(set(ids) - reports.ids())
            raise AssertionError(f"no outcome within {self.outcome_timeout}s for {len(missing)} runs: {missing[:5]}")

    def only_outcome(self, reports: Reports, run: Run) -> Outcome:
        """The single outcome of ``run`` (after a quiet period in which no repeat may come)."""
        time.sleep(self.quiet_period)
        outcomes = reports.for_run(run.id)
        assert len(outcomes) == 1, f"{run.id} was reported {len(outcomes)} times: {outcomes}"
        return outcomes[0]

    def assert_belongs_to(self, outcome: Outcome, run: Run) -> None:
        """The outcome carries the run's ids, nominal fire time and attempt."""
        assert outcome.run_id == run.id
        assert outcome.schedule_id == run.schedule_id
        assert outcome.nominal == run.nominal
        assert outcome.attempt == run.attempt

    # -- the protocol ---------------------------------------------------------------------

    def test_satisfies_the_protocol(self, harness: ExecutorHarness) -> None:
        assert isinstance(harness.executor, Executor)

    def test_validate_accepts_a_plain_schedule(self, harness: ExecutorHarness) -> None:
        executor = harness.executor
        executor.validate(make_schedule("plain"))  # raising ValidationError would fail the test
        executor.validate(
            make_schedule(
                "with-args", task=f"{_TASKS}:echo", args=(1, "two", [3.5, None]), kwargs={"value": {"k": True}}
            )
        )

    # -- one run ----------------------------------------------------------------------------

    def test_noop_run_succeeds_and_is_reported_once(self, harness: ExecutorHarness, reports: Reports) -> None:
        executor = self.start(harness, reports)
        run = self.run("noop", "noop")
        executor.submit([run])
        self.execute(harness, reports, [run])
        outcome = self.only_outcome(reports, run)
        self.assert_belongs_to(outcome, run)
        assert outcome.status is OutcomeStatus.SUCCEEDED
        assert outcome.error is None and outcome.traceback is None
        assert reports.ids() == {run.id}

    def test_settled_is_accepted_for_any_ids_and_changes_no_outcome(
        self, harness: ExecutorHarness, reports: Reports
    ) -> None:
        """``settled`` (what the engine calls after each commit) takes the ids of runs handed
        over, of runs it never saw and repeats, without raising; the run is reported once."""
        executor = self.start(harness, reports)
        run = self.run("settled", "noop")
        executor.submit([run])
        executor.settled([run.id])
        executor.settled([run.id, "never-handed-over@0.1"])
        executor.settled([])
        self.execute(harness, reports, [run])
        assert self.only_outcome(reports, run).status is OutcomeStatus.SUCCEEDED

    def test_task_that_raises_is_a_failed_run_with_type_and_message(
        self, harness: ExecutorHarness, reports: Reports
    ) -> None:
        executor = self.start(harness, reports)
        run = self.run("fails", "fail", args=["kaput on purpose"])
        executor.submit([run])
        self.execute(harness, reports, [run])
        outcome = self.only_outcome(reports, run)
        self.assert_belongs_to(outcome, run)
        assert outcome.status is OutcomeStatus.FAILED
        assert outcome.error == "RuntimeError: kaput on purpose"

    def test_task_that_raises_reports_its_traceback_trimmed(self, harness: ExecutorHarness, reports: Reports) -> None:
        """Deep enough to be trimmed: the end is kept, where the task raised."""
        executor = self.start(harness, reports)
        run = self.run("fails-deep", "fail_deep", args=[60, "deep on purpose"])
        executor.submit([run])
        self.execute(harness, reports, [run])
        outcome = self.only_outcome(reports, run)
        assert outcome.status is OutcomeStatus.FAILED
        trace = outcome.traceback
        if trace is None and not self.reports_tracebacks:
            return
        assert trace is not None, "a failed run's outcome carries no traceback"
        lines = trace.split("\n")
        assert len(lines) <= MAX_LINES and len(trace) <= MAX_CHARS
        assert lines[0] == "Traceback (most recent call last):"
        assert "lines trimmed)" in lines[1]
        assert lines[-1] == "RuntimeError: deep on purpose"
        assert ", in fail" in lines[-3] and "raise RuntimeError(message)" in lines[-2]  # the raising frame

    def test_task_whose_module_cannot_be_imported_is_a_failed_run(
        self, harness: ExecutorHarness, reports: Reports
    ) -> None:
        executor = self.start(harness, reports)
        run = self.run("no-module", "schedcore_conformance_no_such_module:task")
        executor.submit([run])  # never an exception here
        self.execute(harness, reports, [run])
        outcome = self.only_outcome(reports, run)
        self.assert_belongs_to(outcome, run)
        assert outcome.status is OutcomeStatus.FAILED
        assert outcome.error and "schedcore_conformance_no_such_module" in outcome.error

    def test_task_missing_from_its_module_is_a_failed_run(self, harness: ExecutorHarness, reports: Reports) -> None:
        executor = self.start(harness, reports)
        run = self.run("no-function", "no_such_task_in_tasks")
        executor.submit([run])
        self.execute(harness, reports, [run])
        outcome = self.only_outcome(reports, run)
        assert outcome.status is OutcomeStatus.FAILED
        assert outcome.error and "no_such_task_in_tasks" in outcome.error

    def test_task_that_is_not_callable_is_a_failed_run(self, harness: ExecutorHarness, reports: Reports) -> None:
        executor = self.start(harness, reports)
        run = self.run("not-callable", "CALLS")  # a list, not a function
        executor.submit([run])
        self.execute(harness, reports, [run])
        outcome = self.only_outcome(reports, run)
        assert outcome.status is OutcomeStatus.FAILED
        assert outcome.error

    def test_arguments_arrive_intact(self, harness: ExecutorHarness, reports: Reports, tmp_path: Path) -> None:
        executor = self.start(harness, reports)
        path = tmp_path / "args.log"
        args = [1, -2.5, 'é ☃ \\ "quoted"\ttab', True, False, None, [], {}, [1, [2, {"deep": [None, 0.1]}]]]
        kwargs = {"text": "x" * 300, "nested": {"list": [1, "a", {"b": False}], "n": 10**15}, "none": None}
        run = self.run("args", "record_args_to_file", args=[str(path), *args], kwargs=kwargs)
        executor.submit([run])
        self.execute(harness, reports, [run])
        assert reports.for_run(run.id)[0].status is OutcomeStatus.SUCCEEDED
        lines = read_lines(path)
        assert len(lines) == 1
        assert json.loads(lines[0]) == {"args": args, "kwargs": kwargs}

    def test_times_are_aware_and_ordered(self, harness: ExecutorHarness, reports: Reports, tmp_path: Path) -> None:
        executor = self.start(harness, reports)
        before = datetime.now(timezone.utc)
        run = self.run("timed", "sleep_then_record", args=[str(tmp_path / "timed.log"), "t", 0.2])
        executor.submit([run])
        self.execute(harness, reports, [run])
        after = datetime.now(timezone.utc)
        outcome = self.only_outcome(reports, run)
        assert outcome.status is OutcomeStatus.SUCCEEDED
        assert _aware(outcome.finished_at)
        assert before - _CLOCK_SLACK <= outcome.finished_at <= after + _CLOCK_SLACK
        if outcome.started_at is not None:
            assert _aware(outcome.started_at)
            assert before - _CLOCK_SLACK <= outcome.started_at <= outcome.finished_at

    # -- idempotent hand-over ---------------------------------------------------------------

    def test_same_run_handed_over_again_executes_once(
        self, harness: ExecutorHarness, reports: Reports, tmp_path: Path
    ) -> None:
        executor = self.start(harness, reports)
        path = tmp_path / "once.log"
        run = self.run("once", "record_to_file", args=[str(path), "once"])
        executor.submit([run, run])  # twice in one batch
        self.execute(harness, reports, [run])
        executor.submit([run])  # and again in a later batch, after it ran
        executor.submit([self.run("once", "record_to_file", args=[str(path), "once"])])  # an equal copy
        harness.drain(self.drain_timeout)
        time.sleep(self.quiet_period)
        assert read_lines(path) == ["once"]
        outcomes = reports.for_run(run.id)
        assert outcomes, "no outcome for the run"  # a repeat report is allowed, none is not
        assert {o.status for o in outcomes} == {OutcomeStatus.SUCCEEDED}

    def test_run_handed_over_again_before_it_ran_executes_once(
        self, harness: ExecutorHarness, reports: Reports, tmp_path: Path
    ) -> None:
        executor = self.start(harness, reports)
        path = tmp_path / "early.log"
        run = self.run("early", "record_to_file", args=[str(path), "early"])
        executor.submit([run])
        executor.submit([run])  # e.g. a scheduler that lost its lease before commit
        self.execute(harness, reports, [run])
        time.sleep(self.quiet_period)
        assert read_lines(path) == ["early"]
        assert {o.status for o in reports.for_run(run.id)} == {OutcomeStatus.SUCCEEDED}

    def test_attempts_of_one_occurrence_are_distinct_runs(
        self, harness: ExecutorHarness, reports: Reports, tmp_path: Path
    ) -> None:
        executor = self.start(harness, reports)
        path = tmp_path / "attempts.log"
        first = self.run("retried", "record_to_file", args=[str(path), "attempt"], attempt=1)
        second = self.run("retried", "record_to_file", args=[str(path), "attempt"], attempt=2)
        assert first.id != second.id
        executor.submit([first])
        self.execute(harness, reports, [first])
        executor.submit([second])
        self.execute(harness, reports, [second])
        assert read_lines(path) == ["attempt", "attempt"]
        for run in (first, second):
            outcome = self.only_outcome(reports, run)
            self.assert_belongs_to(outcome, run)
            assert outcome.status is OutcomeStatus.SUCCEEDED

    def test_batch_of_fifty_runs_each_executes_once(
        self, harness: ExecutorHarness, reports: Reports, tmp_path: Path
    ) -> None:
        executor = self.start(harness, reports)
        path = tmp_path / "batch.log"
        runs = [
            self.run("batch", "record_to_file", args=[str(path), f"n{i}"], nominal=NOMINAL + timedelta(minutes=i))
            for i in range(50)
        ]
        assert len({run.id for run in runs}) == 50
        executor.submit(runs)
        self.execute(harness, reports, runs)
        time.sleep(self.quiet_period)
        assert sorted(read_lines(path)) == sorted(f"n{i}" for i in range(50))
        assert reports.ids() == {run.id for run in runs}
        for run in runs:
            outcomes = reports.for_run(run.id)
            assert len(outcomes) == 1, f"{run.id} reported {len(outcomes)} times"
            self.assert_belongs_to(outcomes[0], run)
            assert outcomes[0].status is OutcomeStatus.SUCCEEDED

    def test_submitting_nothing_is_harmless(self, harness: ExecutorHarness, reports: Reports) -> None:
        executor = self.start(harness, reports)
        executor.submit([])
        harness.drain(self.drain_timeout)
        time.sleep(self.quiet_period)
        assert reports.outcomes == []

    # -- shutdown ---------------------------------------------------------------------------

    def test_shutdown_is_idempotent_and_refuses_later_runs(
        self, harness: ExecutorHarness, reports: Reports, tmp_path: Path
    ) -> None:
        executor = self.start(harness, reports)
        path = tmp_path / "late.log"
        run = self.run("before", "noop")
        executor.submit([run])
        self.execute(harness, reports, [run])
        executor.shutdown(wait=True)
        executor.shutdown(wait=True)
        executor.shutdown(wait=False)
        late = self.run("late", "record_to_file", args=[str(path), "late"])
        with pytest.raises(ExecutorUnavailable):
            executor.submit([late])
        harness.drain(self.drain_timeout)
        time.sleep(self.quiet_period)
        assert read_lines(path) == []
        assert late.id not in reports.ids()

    def test_shutdown_without_start_is_harmless(self, harness: ExecutorHarness) -> None:
        executor = harness.executor
        executor.shutdown(wait=True)
        executor.shutdown(wait=True)
        with pytest.raises(ExecutorUnavailable):
            executor.submit([self.run("never", "noop")])

    def test_shutdown_with_wait_reports_runs_the_backend_finished(
        self, harness: ExecutorHarness, reports: Reports, tmp_path: Path
    ) -> None:
        executor = self.start(harness, reports)
        path = tmp_path / "finished.log"
        runs = [
            self.run("finished", "record_to_file", args=[str(path), f"r{i}"], nominal=NOMINAL + timedelta(minutes=i))
            for i in range(3)
        ]
        executor.submit(runs)
        harness.drain(self.drain_timeout)
        executor.shutdown(wait=True)
        assert reports.ids() == {run.id for run in runs}  # no waiting: reported before shutdown returned
        assert sorted(read_lines(path)) == ["r0", "r1", "r2"]

    def test_shutdown_with_wait_lets_a_running_task_finish_and_report(
        self, harness: ExecutorHarness, reports: Reports, tmp_path: Path
    ) -> None:
        executor = self.start(harness, reports)
        path = tmp_path / "slow.log"
        run = self.run("slow", "sleep_then_record", args=[str(path), "slow", 1.0])
        executor.submit([run])
        drainer = threading.Thread(target=harness.drain, args=(self.drain_timeout,), name="conformance-drain")
        drainer.start()
        try:
            deadline = time.monotonic() + self.drain_timeout
            while "start slow" not in read_lines(path):
                assert time.monotonic() < deadline, "the slow task never started"
                time.sleep(0.02)
            executor.shutdown(wait=True)
            if self.durable_outcomes and not reports.for_run(run.id):
                # Allowed to return before the remote task ended: the next executor on the
                # same backend must report it, once the task is done.
                drainer.join(self.drain_timeout + 5)
                successor = harness.restart()  # type: ignore[attr-defined]
                later = Reports()
                successor.start(later)
                try:
                    assert later.wait_for([run.id], self.drain_timeout), "the next executor never reported the run"
                finally:
                    successor.shutdown(wait=False)
                outcomes = later.for_run(run.id)
                assert read_lines(path) == ["start slow", "end slow"]
                assert outcomes[0].status is OutcomeStatus.SUCCEEDED
                return
            assert read_lines(path) == ["start slow", "end slow"], "shutdown(wait=True) returned before the task ended"
            outcomes = reports.for_run(run.id)
            assert outcomes, "shutdown(wait=True) returned before the running task was reported"
            assert outcomes[0].status is OutcomeStatus.SUCCEEDED
        finally:
            drainer.join(self.drain_timeout + 5)
