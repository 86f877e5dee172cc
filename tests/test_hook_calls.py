"""Hook calls go through pluggy's hook caller: tracing and wrappers work, and one failing
plugin is logged (naming plugin and hook) while the scheduler and the other plugins carry on."""

from __future__ import annotations

import logging
import re
from collections.abc import Generator, Sequence
from datetime import datetime, timezone
from typing import Any

import pluggy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schedcore import Interval, Schedule, Scheduler, hookspecs
from schedcore.hookspecs import hookimpl
from schedcore.plugins import Hooks, get_plugin_manager
from schedcore.records import Outcome, Run, RunRecord
from schedcore.settings import CliOption
from schedcore.testing.simulation import Simulation

T0 = datetime(2025, 3, 8, 12, 0, tzinfo=timezone.utc)


def _failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "schedcore.plugins" and "in hook" in r.getMessage()]


class Counter:
    """Counts the runs it hears about."""

    def __init__(self) -> None:
        self.dispatched: list[str] = []
        self.succeeded: list[str] = []

    @hookimpl
    def schedcore_run_dispatched(self, run: Run) -> None:
        self.dispatched.append(run.id)

    @hookimpl
    def schedcore_run_succeeded(self, outcome: Outcome) -> None:
        self.succeeded.append(outcome.run_id)


class Broken:
    @hookimpl
    def schedcore_run_dispatched(self, run: Run) -> None:
        raise RuntimeError(f"broken on {run.id}")


def _simulate(*plugins: object, pm: pluggy.PluginManager | None = None) -> Simulation:
    sim = Simulation.create(start=T0, plugins=pm or get_plugin_manager(entry_points=False, plugins=plugins))
    sim.scheduler.add(Schedule(id="s", task="app.jobs:x", trigger=Interval(60)))
    return sim


def test_a_failing_plugin_is_logged_once_per_call_and_the_others_still_run(caplog: pytest.LogCaptureFixture) -> None:
    # Registered before and after the broken one: pluggy calls the later ones first.
    before, after = Counter(), Counter()
    sim = _simulate(before, Broken(), after)
    with caplog.at_level(logging.DEBUG, logger="schedcore"):
        sim.advance(150)  # 12:00, 12:01, 12:02
    assert before.dispatched == after.dispatched and len(before.dispatched) == 3
    assert before.succeeded == after.succeeded == before.dispatched  # the scheduler carried on
    failures = _failures(caplog)
    assert len(failures) == 3
    expected = f"plugin '{__name__}.Broken' raised in hook schedcore_run_dispatched; continuing"
    assert failures == [expected] * 3


def test_a_failing_plugin_registered_by_name_is_named(caplog: pytest.LogCaptureFixture) -> None:
    pm = get_plugin_manager(entry_points=False)
    pm.register(Broken(), name="alerts")
    sim = _simulate(pm=pm)
    with caplog.at_level(logging.ERROR, logger="schedcore.plugins"):
        sim.advance(30)
    (record,) = [r for r in caplog.records if "in hook" in r.getMessage()]
    assert record.getMessage() == "plugin 'alerts' raised in hook schedcore_run_dispatched; continuing"
    assert record.exc_info is not None and "broken on s@" in str(record.exc_info[1])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=6))
def test_every_working_plugin_is_called_once_whatever_the_others_do(fails: list[bool]) -> None:
    """The rule: for any mix and order of failing and working plugins, each working one is
    called exactly once per event and each failing one is reported exactly once."""
    calls: list[int] = []

    def plugin(index: int, fail: bool) -> object:
        class Plugin:
            @hookimpl
            def schedcore_schedule_paused(self, schedule_id: str) -> None:
                calls.append(index)
                if fail:
                    raise ValueError(schedule_id)

        return Plugin()

    pm = get_plugin_manager(entry_points=False)
    for index, fail in enumerate(fails):
        pm.register(plugin(index, fail), name=f"p{index}")
    reported: list[str] = []
    handler = _ListHandler(reported)
    logger = logging.getLogger("schedcore.plugins")
    logger.addHandler(handler)
    try:
        Hooks(pm).emit("schedcore_schedule_paused", scheduler=None, schedule_id="x")
    finally:
        logger.removeHandler(handler)
    assert sorted(calls) == list(range(len(fails)))
    assert sorted(reported) == sorted(
        f"plugin 'p{i}' raised in hook schedcore_schedule_paused; continuing" for i, fail in enumerate(fails) if fail
    )


class _ListHandler(logging.Handler):
    def __init__(self, messages: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.messages = messages

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class Wrapper:
    """A new-style wrapper around run_dispatched and the plain implementations it wraps."""

    def __init__(self, log: list[Any]) -> None:
        self.log = log

    @hookimpl(wrapper=True)
    def schedcore_run_dispatched(self, run: Run, record: RunRecord) -> Generator[None, Any, Any]:
        self.log.append(("before", run.id, record.run_id))
        result = yield
        self.log.append(("after", run.id, result))
        return result


class Inner:
    def __init__(self, log: list[Any]) -> None:
        self.log = log

    @hookimpl
    def schedcore_run_dispatched(self, run: Run) -> None:
        self.log.append(("inner", run.id))


def test_a_wrapper_sees_the_call_and_the_result() -> None:
    log: list[Any] = []
    sim = _simulate(Inner(log), Wrapper(log))
    sim.advance(30)
    run_id = "s@1741435200000.1"
    assert log == [("before", run_id, run_id), ("inner", run_id), ("after", run_id, [])]


def test_a_wrapper_can_change_a_hooks_result() -> None:
    option = CliOption(name="x-url", key="url", store="memory", help="an url")

    class Options:
        @hookimpl
        def schedcore_cli_options(self, command: str) -> Sequence[CliOption]:
            return [option]

    seen: list[Any] = []

    class Filter:
        @hookimpl(wrapper=True)
        def schedcore_cli_options(self, command: str) -> Generator[None, Any, Any]:
            result = yield
            seen.append((command, result))
            return [] if command == "list" else result

    pm = get_plugin_manager(entry_points=False)
    pm.register(Options(), name="opts")
    pm.register(Filter(), name="filter")
    hooks = Hooks(pm)
    assert dict(hooks.results_by_plugin("schedcore_cli_options", command="run"))["opts"] == [option]
    assert hooks.results_by_plugin("schedcore_cli_options", command="list") == []  # the wrapper dropped them
    assert [command for command, _ in seen] == ["run", "list"]
    assert all([option] in result for _, result in seen)  # it saw what the plain implementations returned


def test_an_old_style_hookwrapper_works_too() -> None:
    log: list[Any] = []

    class Old:
        @hookimpl(hookwrapper=True)
        def schedcore_run_succeeded(self, outcome: Outcome) -> Generator[None, Any, None]:
            log.append(("before", outcome.run_id))
            result = yield
            log.append(("after", result.get_result()))

    sim = _simulate(Old())
    sim.advance(30)
    assert log == [("before", "s@1741435200000.1"), ("after", [])]


@pytest.mark.parametrize("style", ["wrapper", "hookwrapper"])
@pytest.mark.parametrize("where", ["before", "after", "no-yield", "twice"])
def test_a_failing_wrapper_does_not_stop_the_others(style: str, where: str, caplog: pytest.LogCaptureFixture) -> None:
    class BadWrapper:
        @hookimpl(**{style: True})
        def schedcore_run_dispatched(self, run: Run) -> Generator[None, Any, Any]:
            if where == "before":
                raise RuntimeError("before")
            if where != "no-yield":
                yield
                if where == "twice":
                    yield
                raise RuntimeError("after")
            return None

    counter = Counter()
    sim = _simulate(counter, BadWrapper())
    with caplog.at_level(logging.ERROR, logger="schedcore.plugins"):
        sim.advance(90)
    assert len(counter.dispatched) == 2 and counter.succeeded == counter.dispatched
    failures = _failures(caplog)
    assert len(failures) == 2, failures
    assert all("BadWrapper'" in f and "schedcore_run_dispatched" in f for f in failures)


def test_a_wrapper_sees_an_exception_from_an_unisolated_implementation(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[BaseException] = []

    class Watch:
        @hookimpl(wrapper=True)
        def schedcore_schedule_paused(self, schedule_id: str) -> Generator[None, Any, Any]:
            try:
                return (yield)
            except RuntimeError as exc:
                seen.append(exc)
                raise

    class Raw:
        @hookimpl
        def schedcore_schedule_paused(self, schedule_id: str) -> None:
            raise RuntimeError(schedule_id)

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(Watch())
    hooks = Hooks(pm)
    pm.register(Raw())  # behind the Hooks' back: not isolated yet
    with caplog.at_level(logging.ERROR, logger="schedcore.plugins"):
        hooks.emit("schedcore_schedule_paused", scheduler=None, schedule_id="x")  # does not raise
        hooks.emit("schedcore_schedule_paused", scheduler=None, schedule_id="y")
    assert [str(exc) for exc in seen] == ["x"]  # the second time Raw is isolated: nothing reaches Watch
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "hook schedcore_schedule_paused raised; continuing"
    assert messages[1].endswith(".Raw' raised in hook schedcore_schedule_paused; continuing")


def test_tracing_shows_lifecycle_hook_calls(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("SCHEDCORE_TRACE_HOOKS", "1")
    with caplog.at_level(logging.DEBUG, logger="schedcore.plugins"):
        sim = _simulate()  # nobody implements a lifecycle hook: the trace still shows them
        sim.advance(30)
        sim.scheduler.run(burst=True)
    traced = "\n".join(r.getMessage() for r in caplog.records if r.getMessage().startswith("hook: "))
    for hook in (
        "schedcore_schedule_added",
        "schedcore_run_dispatched",
        "schedcore_run_succeeded",
        "schedcore_scheduler_started",
        "schedcore_scheduler_stopped",
    ):
        assert re.search(rf"^hook: +{hook} \[hook\]$", traced, re.MULTILINE), hook
    assert "run: Run(" in traced  # with its arguments


def test_a_plain_pluggy_manager_is_isolated_too(caplog: pytest.LogCaptureFixture) -> None:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    counter = Counter()
    pm.register(counter)
    pm.register(Broken(), name="early")
    sim = Simulation.create(start=T0, plugins=pm)
    sim.scheduler.add(Schedule(id="s", task="app.jobs:x", trigger=Interval(60)))
    with caplog.at_level(logging.ERROR, logger="schedcore.plugins"):
        sim.advance(30)
        assert len(counter.dispatched) == 1
        # Registered behind the scheduler's back: its first failure is caught at the call
        # (the scheduler carries on), and it is isolated from then on.
        pm.register(Broken(), name="late")
        sim.advance(60)
        sim.advance(60)
    assert len(counter.succeeded) == 3
    # The call the late plugin broke (called first: pluggy goes last-registered first)
    # reached neither the early plugin nor the counter.
    assert len(counter.dispatched) == 2
    messages = _failures(caplog)
    assert messages.count("plugin 'early' raised in hook schedcore_run_dispatched; continuing") == 2
    assert messages.count("plugin 'late' raised in hook schedcore_run_dispatched; continuing") == 1
    assert any(r.getMessage() == "hook schedcore_run_dispatched raised; continuing" for r in caplog.records)


def test_no_implementation_means_no_call() -> None:
    """The engine emits per run; a hook nobody implements is not called at all."""
    pm = get_plugin_manager(entry_points=False)
    called: list[str] = []
    pm.add_hookcall_monitoring(lambda name, impls, kwargs: called.append(name), lambda *args: None)
    Hooks(pm).emit("schedcore_run_succeeded", scheduler=None, outcome=None)
    assert called == []
    heard: list[object] = []

    class Listener:
        @hookimpl
        def schedcore_run_succeeded(self, outcome: object) -> None:
            heard.append(outcome)

    pm.register(Listener())
    Hooks(pm).emit("schedcore_run_succeeded", scheduler=None, outcome="o")
    assert called == ["schedcore_run_succeeded"] and heard == ["o"]


def test_results_are_paired_with_their_plugin_and_a_failing_one_has_none(caplog: pytest.LogCaptureFixture) -> None:
    def options(name: str, fail: bool = False) -> object:
        class Plugin:
            @hookimpl
            def schedcore_cli_options(self, command: str) -> Sequence[CliOption]:
                if fail:
                    raise RuntimeError("no options today")
                return [CliOption(name=f"{name}-x", key="x", store="memory", help="x")]

        return Plugin()

    pm = get_plugin_manager(entry_points=False)
    pm.register(options("a"), name="a")
    pm.register(options("b", fail=True), name="b")
    pm.register(options("c"), name="c")
    with caplog.at_level(logging.ERROR, logger="schedcore.plugins"):
        found = Hooks(pm).results_by_plugin("schedcore_cli_options", command="run")
    ours = [(plugin, [o.name for o in opts]) for plugin, opts in found if plugin in {"a", "b", "c"}]
    assert ours == [("c", ["c-x"]), ("a", ["a-x"])]  # in pluggy's order: the last registered first
    assert _failures(caplog) == ["plugin 'b' raised in hook schedcore_cli_options; continuing"]


def test_a_failing_store_factory_hook_still_fails_loudly() -> None:
    class BadFactories:
        @hookimpl
        def schedcore_store_factories(self) -> Sequence[Any]:
            raise RuntimeError("cannot list")

    hooks = Hooks(get_plugin_manager(entry_points=False, plugins=(BadFactories(),)))
    with pytest.raises(RuntimeError, match="cannot list"):
        hooks.store_factories()


def test_the_scheduler_keeps_its_hooks_isolated_when_given_plugin_objects(caplog: pytest.LogCaptureFixture) -> None:
    counter = Counter()
    sched = Scheduler(plugins=[Broken(), counter], heartbeat=None)
    assert isinstance(sched.plugin_manager, pluggy.PluginManager)
    sim = Simulation.create(start=T0, plugins=sched.plugin_manager)
    sim.scheduler.add(Schedule(id="s", task="app.jobs:x", trigger=Interval(60)))
    with caplog.at_level(logging.ERROR, logger="schedcore.plugins"):
        sim.advance(30)
    assert len(counter.dispatched) == 1 and len(_failures(caplog)) == 1


def test_trigger_types_are_collected_through_pluggy(caplog: pytest.LogCaptureFixture) -> None:
    from schedcore.trigger_types import _collect

    class BrokenTypes:
        @hookimpl
        def schedcore_trigger_types(self) -> Sequence[Any]:
            raise RuntimeError("no types today")

    pm = get_plugin_manager(entry_points=False)
    pm.register(BrokenTypes(), name="broken-types")
    called: list[str] = []
    pm.add_hookcall_monitoring(lambda name, impls, kwargs: called.append(name), lambda *args: None)
    # strict (a plugin registered on purpose): its error reaches the caller
    with pytest.raises(RuntimeError, match="no types today"):
        _collect(pm)
    # lenient (entry points found while decoding): it loses its own types only
    with caplog.at_level(logging.ERROR, logger="schedcore.plugins"):
        found = _collect(pm, strict=False)
    assert {source for _, source in found} == {"plugin 'memory'"}
    assert {ttype.name for ttype, _ in found} >= {"at", "interval", "cron"}
    assert called == ["schedcore_trigger_types"] * 2
    assert _failures(caplog) == ["plugin 'broken-types' raised in hook schedcore_trigger_types; continuing"]
