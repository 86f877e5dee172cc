"""Plugins: entry-point discovery, hook isolation, validation of hook implementations."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping, Sequence
from importlib.metadata import entry_points
from typing import Any

import pluggy
import pytest

from schedcore import PluginError, hookspecs
from schedcore.hookspecs import hookimpl
from schedcore.plugins import ExecutorFactory, Hooks, StoreFactory, get_plugin_manager
from schedcore.protocols import Executor, Store


def _specs() -> dict[str, Any]:
    return {
        name: func
        for name, func in vars(hookspecs).items()
        if name.startswith("schedcore_") and callable(func) and hasattr(func, f"{hookspecs.PROJECT}_spec")
    }


def test_builtin_plugin_is_an_entry_point_like_any_other() -> None:
    found = {ep.name: ep.value for ep in entry_points(group="schedcore")}
    assert found.get("memory") == "schedcore._builtin"


def test_entry_point_plugin_manager_offers_memory_and_local() -> None:
    pm = get_plugin_manager()
    assert pm.get_plugin("memory") is not None
    distributions = {dist.project_name for _, dist in pm.list_plugin_distinfo()}
    assert "schedcore-engine" in distributions
    hooks = Hooks(pm)
    assert "memory" in hooks.store_factories()
    assert "local" in hooks.executor_factories()


def test_builtin_factories_build_the_reference_backends() -> None:
    from schedcore import LocalExecutor, MemoryStore

    hooks = Hooks(get_plugin_manager())
    store = hooks.create_store("memory", {})
    executor = hooks.create_executor("local", {"workers": 2})
    try:
        assert isinstance(store, MemoryStore)
        assert isinstance(executor, LocalExecutor)
        assert isinstance(store, Store)
        assert isinstance(executor, Executor)
    finally:
        store.close()
        executor.shutdown(wait=True)


def test_without_entry_points_the_builtins_are_still_registered() -> None:
    hooks = Hooks(get_plugin_manager(entry_points=False))
    assert set(hooks.store_factories()) == {"memory", "sqlite"}
    assert set(hooks.executor_factories()) == {"local"}


def test_unknown_names_list_the_registered_ones() -> None:
    hooks = Hooks(get_plugin_manager(entry_points=False))
    with pytest.raises(PluginError, match=r"unknown store 'redis'; registered stores: memory, sqlite"):
        hooks.create_store("redis", {})
    with pytest.raises(PluginError, match=r"unknown executor 'rq'; registered executors: local"):
        hooks.create_executor("rq", {})


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    @hookimpl
    def schedcore_schedule_removed(self, scheduler: Any, schedule_id: str) -> None:
        self.calls.append(("removed", schedule_id))


class _Exploding:
    @hookimpl
    def schedcore_schedule_removed(self, scheduler: Any, schedule_id: str) -> None:
        raise RuntimeError(f"kaboom on {schedule_id}")


def test_a_plugin_raising_in_a_lifecycle_hook_is_logged_by_name_and_contained(
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, second = _Recorder(), _Recorder()
    pm = get_plugin_manager(entry_points=False, plugins=(first,))
    pm.register(_Exploding(), name="exploding-plugin")
    pm.register(second, name="after-the-explosion")
    with caplog.at_level(logging.ERROR, logger="schedcore.plugins"):
        Hooks(pm).emit("schedcore_schedule_removed", scheduler=None, schedule_id="nightly")
    # every other implementation still ran
    assert first.calls == [("removed", "nightly")]
    assert second.calls == [("removed", "nightly")]
    (record,) = [r for r in caplog.records if r.name == "schedcore.plugins"]
    assert "exploding-plugin" in record.getMessage()
    assert "schedcore_schedule_removed" in record.getMessage()
    assert record.exc_info is not None and "kaboom on nightly" in str(record.exc_info[1])


def test_emit_passes_only_the_arguments_an_implementation_asks_for() -> None:
    seen: list[str] = []

    class Minimal:
        @hookimpl
        def schedcore_schedule_paused(self, schedule_id: str) -> None:
            seen.append(schedule_id)

    pm = get_plugin_manager(entry_points=False, plugins=(Minimal(),))
    Hooks(pm).emit("schedcore_schedule_paused", scheduler=object(), schedule_id="a")
    assert seen == ["a"]


def test_a_misspelled_hook_implementation_fails_check_pending() -> None:
    class Typo:
        @hookimpl
        def schedcore_schedule_addded(self, schedule: Any) -> None:
            pass

    with pytest.raises(pluggy.PluginValidationError, match="schedcore_schedule_addded"):
        get_plugin_manager(entry_points=False, plugins=(Typo(),))


def test_a_hook_implementation_with_an_unknown_argument_is_refused() -> None:
    class WrongArgs:
        @hookimpl
        def schedcore_schedule_removed(self, schedule_id: str, reason: str) -> None:
            pass

    with pytest.raises(pluggy.PluginValidationError, match="reason"):
        get_plugin_manager(entry_points=False, plugins=(WrongArgs(),))


def _factory_plugin(store_name: str, executor_name: str) -> object:
    def store(options: Mapping[str, Any]) -> Store:
        raise AssertionError("not built in this test")

    def executor(options: Mapping[str, Any]) -> Executor:
        raise AssertionError("not built in this test")

    class Plugin:
        @hookimpl
        def schedcore_store_factories(self) -> Sequence[StoreFactory]:
            return [StoreFactory(name=store_name, create=store, description="test store")]

        @hookimpl
        def schedcore_executor_factories(self) -> Sequence[ExecutorFactory]:
            return [ExecutorFactory(name=executor_name, create=executor)]

    return Plugin()


def test_third_party_factories_are_added_by_name() -> None:
    hooks = Hooks(get_plugin_manager(entry_points=False, plugins=(_factory_plugin("other", "elsewhere"),)))
    assert set(hooks.store_factories()) == {"memory", "sqlite", "other"}
    assert set(hooks.executor_factories()) == {"local", "elsewhere"}
    assert hooks.store_factories()["other"].description == "test store"


def test_duplicate_store_names_are_a_plugin_error() -> None:
    hooks = Hooks(get_plugin_manager(entry_points=False, plugins=(_factory_plugin("memory", "fine"),)))
    with pytest.raises(PluginError, match="store named 'memory'"):
        hooks.store_factories()
    with pytest.raises(PluginError, match="store named 'memory'"):
        hooks.create_store("memory", {})


def test_duplicate_executor_names_are_a_plugin_error() -> None:
    hooks = Hooks(get_plugin_manager(entry_points=False, plugins=(_factory_plugin("fine", "local"),)))
    with pytest.raises(PluginError, match="executor named 'local'"):
        hooks.executor_factories()


@pytest.mark.usefixtures("restore_logging")  # the CLI configures the root logger; later caplog tests need it back
def test_duplicate_names_make_the_cli_fail_cleanly(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    import schedcore.plugins
    from schedcore.cli import cli

    real = schedcore.plugins.get_plugin_manager

    def with_clash(**kwargs: Any) -> pluggy.PluginManager:
        return real(plugins=(_factory_plugin("memory", "x"),))

    monkeypatch.setattr(schedcore.plugins, "get_plugin_manager", with_clash)
    result = CliRunner().invoke(cli, ["plugins"])
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: two plugins register a store named 'memory'"


def test_every_hookspec_has_a_docstring_and_is_typed() -> None:
    specs = _specs()
    assert len(specs) >= 14  # registration + every lifecycle event of issue 2
    for name, func in specs.items():
        assert (func.__doc__ or "").strip(), f"hookspec {name} has no docstring"
        signature = inspect.signature(func)
        assert signature.return_annotation is not inspect.Signature.empty, name
        for param in signature.parameters.values():
            assert param.annotation is not inspect.Parameter.empty, f"{name}({param.name}) is untyped"
            assert "Any" not in str(param.annotation), f"{name}({param.name}) is typed Any"


@pytest.mark.parametrize(
    "event",
    [
        "schedcore_scheduler_started",
        "schedcore_scheduler_stopped",
        "schedcore_schedule_added",
        "schedcore_schedule_removed",
        "schedcore_schedule_paused",
        "schedcore_schedule_resumed",
        "schedcore_run_dispatched",
        "schedcore_run_succeeded",
        "schedcore_run_failed",
        "schedcore_run_retry_scheduled",
        "schedcore_run_exhausted",
        "schedcore_misfire_skipped",
    ],
)
def test_every_lifecycle_event_of_the_issue_has_a_hook(event: str) -> None:
    assert event in _specs()


def test_trace_env_var_logs_hook_calls(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("SCHEDCORE_TRACE_HOOKS", "1")
    pm = get_plugin_manager(entry_points=False)
    with caplog.at_level(logging.DEBUG, logger="schedcore.plugins"):
        Hooks(pm).store_factories()
    assert any("schedcore_store_factories" in r.getMessage() for r in caplog.records)


def test_a_plugin_that_fails_to_import_is_named_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    from schedcore import plugins as plugins_module
    from schedcore.exceptions import PluginError

    broken = importlib.metadata.EntryPoint(name="broken", value="no_such_module_for_schedcore:x", group="schedcore")
    monkeypatch.setattr(plugins_module.importlib.metadata, "entry_points", lambda group: [broken])
    with pytest.raises(PluginError, match=r"'broken' \(no_such_module_for_schedcore:x.*ModuleNotFoundError"):
        plugins_module.get_plugin_manager()
