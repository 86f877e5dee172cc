"""Trigger types registered through the ``schedcore_trigger_types`` hook: how stored triggers
find their class, and why a type name read from a store can only select among them."""

from __future__ import annotations

import importlib.metadata
import logging
import sys
import types
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schedcore import CorruptScheduleData, PluginError, Schedule, Scheduler, ValidationError
from schedcore import trigger_types as tt
from schedcore._time import require_aware
from schedcore.hookspecs import hookimpl
from schedcore.plugins import get_plugin_manager
from schedcore.sqlite import SQLiteStore
from schedcore.trigger_types import TriggerRegistry, TriggerType
from schedcore.triggers import At, Cron, Interval, trigger_from_dict


@attrs.frozen
class Every2h:
    """A small custom trigger: every two hours on the hour (UTC), with a label."""

    label: str = "x"

    def next_after(self, instant: datetime) -> datetime | None:
        require_aware(instant, "instant")
        hours = int(instant.timestamp() // 7200) + 1
        return datetime.fromtimestamp(hours * 7200, tz=timezone.utc)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "every2h", "label": self.label}

    def describe(self) -> str:
        return f"every 2 hours ({self.label})"


class Other(Every2h):
    """Another class that wants the same name."""


EVERY2H = TriggerType(name="every2h", cls=Every2h, description="every two hours")


class Every2hPlugin:
    @hookimpl
    def schedcore_trigger_types(self) -> Sequence[TriggerType]:
        return [EVERY2H]


class OtherPlugin:
    @hookimpl
    def schedcore_trigger_types(self) -> Sequence[TriggerType]:
        return [TriggerType(name="every2h", cls=Other)]


@pytest.fixture
def unregister() -> Iterator[None]:
    """Leaves the process-wide registry as it found it (tests register ``every2h`` in it)."""
    yield
    tt.default_registry().unregister("every2h")


# -- the built-ins register like any plugin ------------------------------------------------


def test_the_built_in_types_come_from_the_built_in_plugin() -> None:
    registry = TriggerRegistry(entry_points=False)
    sources = registry.sources()
    assert {name: (t.cls, source) for name, (t, source) in sources.items()} == {
        "at": (At, "plugin 'memory'"),
        "interval": (Interval, "plugin 'memory'"),
        "cron": (Cron, "plugin 'memory'"),
    }
    assert all(t.description for t, _ in sources.values())


def test_known_types_never_load_the_installed_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    real = importlib.metadata.entry_points

    def counting(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(importlib.metadata, "entry_points", counting)
    registry = TriggerRegistry()
    assert registry.get("cron") is not None and calls == []  # decoding built-ins imports nothing
    assert registry.get("nope") is None and len(calls) == 1  # a miss loads the plugins, once
    assert registry.get("nope2") is None and len(calls) == 1


# -- registering --------------------------------------------------------------------------


def test_a_registered_type_round_trips_and_an_unregistered_one_names_the_missing_plugin(unregister: None) -> None:
    data = Every2h("a").to_dict()
    with pytest.raises(ValidationError) as info:
        trigger_from_dict(data)
    assert info.value.field == "trigger.type" and info.value.value == "every2h"
    assert "plugin that provides it may be missing" in str(info.value)
    assert "(registered: at, " in str(info.value) and "cron, interval" in str(info.value)

    tt.register_trigger_type(EVERY2H)
    tt.register_trigger_type(EVERY2H)  # the same class again: harmless
    assert trigger_from_dict(data) == Every2h("a")
    schedule = Schedule(id="s", task="schedcore.demo:hello", trigger=Every2h("a"))
    assert Schedule.from_dict(schedule.to_dict()) == schedule


def test_the_default_loader_checks_keys_like_the_built_ins(unregister: None) -> None:
    tt.register_trigger_type(EVERY2H)
    with pytest.raises(ValidationError, match=r"trigger\.lable.*unknown key for a every2h trigger"):
        trigger_from_dict({"type": "every2h", "lable": "x"})


def test_a_loader_that_raises_anything_is_one_validation_error() -> None:
    def load(fields: Mapping[str, Any]) -> Any:
        return Every2h(**fields)  # TypeError for unknown keywords

    registry = TriggerRegistry(entry_points=False)
    registry.register(TriggerType(name="strict", cls=Every2h, load=load))
    ttype = registry.get("strict")
    assert ttype is not None
    with pytest.raises(TypeError):
        ttype.build({"nope": 1})
    tt.default_registry().register(TriggerType(name="strict_loader", cls=Every2h, load=load))
    try:
        with pytest.raises(ValidationError, match=r"not a valid strict_loader trigger \(TypeError"):
            trigger_from_dict({"type": "strict_loader", "nope": 1})
    finally:
        tt.default_registry().unregister("strict_loader")


def test_a_name_taken_by_another_class_is_refused_naming_both() -> None:
    registry = TriggerRegistry(entry_points=False)
    registry.register_plugin_manager(get_plugin_manager(entry_points=False, plugins=(Every2hPlugin(),)))
    with pytest.raises(PluginError, match=r"two plugins register a trigger type named 'every2h'.*Every2h.*Other"):
        registry.register_plugin_manager(get_plugin_manager(entry_points=False, plugins=(OtherPlugin(),)))
    with pytest.raises(PluginError, match="'cron'"):
        registry.register(TriggerType(name="cron", cls=Every2h))


@pytest.mark.parametrize("name", ["", "Cron", "a b", "x" * 51, "os.system", "pkg:obj", "1abc"])
def test_type_names_are_short_identifiers(name: str) -> None:
    with pytest.raises(PluginError, match="trigger type name"):
        TriggerType(name=name, cls=Every2h)


def test_a_class_that_is_not_attrs_needs_a_loader() -> None:
    with pytest.raises(PluginError, match="pass load="):
        TriggerType(name="plain", cls=object)


def test_a_hook_returning_the_wrong_thing_is_a_plugin_error() -> None:
    class Bad:
        @hookimpl
        def schedcore_trigger_types(self) -> Any:
            return [Every2h]  # a class, not a TriggerType

    with pytest.raises(PluginError, match="returned a type, not a TriggerType"):
        TriggerRegistry(entry_points=False).register_plugin_manager(
            get_plugin_manager(entry_points=False, plugins=(Bad(),))
        )


# -- installed plugins (entry points), order-independent --------------------------------------


@pytest.fixture
def fake_entry_points(monkeypatch: pytest.MonkeyPatch) -> list[importlib.metadata.EntryPoint]:
    """The ``schedcore`` entry points the registry sees: whatever the test puts in the list."""
    module = types.ModuleType("fake_trigger_plugins")
    module.every2h = Every2hPlugin()  # type: ignore[attr-defined]
    module.other = OtherPlugin()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_trigger_plugins", module)
    points: list[importlib.metadata.EntryPoint] = []
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kwargs: list(points))
    return points


def ep(name: str, value: str) -> importlib.metadata.EntryPoint:
    return importlib.metadata.EntryPoint(name=name, value=value, group="schedcore")


def test_an_installed_plugin_is_found_on_first_miss(fake_entry_points: list[importlib.metadata.EntryPoint]) -> None:
    fake_entry_points.append(ep("every2h", "fake_trigger_plugins:every2h"))
    registry = TriggerRegistry()
    found = registry.get("every2h")
    assert found is not None and found.cls is Every2h
    assert registry.sources()["every2h"][1] == "plugin 'every2h'"


@pytest.mark.parametrize("order", [("a", "b"), ("b", "a")])
def test_two_installed_plugins_claiming_one_name_give_it_to_neither(
    fake_entry_points: list[importlib.metadata.EntryPoint], caplog: pytest.LogCaptureFixture, order: tuple[str, str]
) -> None:
    values = {"a": "fake_trigger_plugins:every2h", "b": "fake_trigger_plugins:other"}
    fake_entry_points.extend(ep(name, values[name]) for name in order)
    registry = TriggerRegistry()
    with caplog.at_level(logging.ERROR, logger="schedcore.plugins"):
        assert registry.get("every2h") is None  # whatever the load order
    assert "two plugins register a trigger type of that name" in registry.missing("every2h")
    assert "neither is used" in caplog.text
    assert registry.get("cron") is not None


def test_a_broken_plugin_costs_only_its_own_types(
    fake_entry_points: list[importlib.metadata.EntryPoint], caplog: pytest.LogCaptureFixture
) -> None:
    fake_entry_points.extend([ep("broken", "no_such_module_xyz:plugin"), ep("every2h", "fake_trigger_plugins:every2h")])
    registry = TriggerRegistry()
    with caplog.at_level(logging.ERROR, logger="schedcore.plugins"):
        assert registry.get("every2h") is not None
    assert "'broken'" in caplog.text


def test_an_installed_plugin_cannot_take_a_built_in_name(
    fake_entry_points: list[importlib.metadata.EntryPoint],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    class CronThief:
        @hookimpl
        def schedcore_trigger_types(self) -> Sequence[TriggerType]:
            return [TriggerType(name="cron", cls=Every2h)]

    monkeypatch.setattr(sys.modules["fake_trigger_plugins"], "thief", CronThief(), raising=False)
    fake_entry_points.append(ep("thief", "fake_trigger_plugins:thief"))
    registry = TriggerRegistry()
    with caplog.at_level(logging.ERROR, logger="schedcore.plugins"):
        assert registry.get("nope") is None
        found = registry.get("cron")
    assert found is not None and found.cls is Cron
    assert "already registers; ignored" in caplog.text


# -- stored data is hostile -------------------------------------------------------------------


@given(st.one_of(st.text(max_size=60), st.integers(), st.none(), st.lists(st.text(max_size=3), max_size=2)))
def test_a_stored_type_name_only_selects_among_registered_types(kind: Any) -> None:
    known = tt.default_registry().names()  # (this loads the installed plugins, once)
    before = set(sys.modules)
    if kind in known:
        return
    with pytest.raises(ValidationError) as info:
        trigger_from_dict({"type": kind, "expr": "* * * * *"})
    assert info.value.field == "trigger.type"
    assert set(sys.modules) == before  # nothing was imported because stored data named it
    assert tt.default_registry().names() == known


# -- through the stores -----------------------------------------------------------------------


def test_a_scheduler_registers_the_types_of_its_plugins_for_every_store(tmp_path: Path, unregister: None) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    sched = Scheduler(store=store, plugins=get_plugin_manager(entry_points=False, plugins=(Every2hPlugin(),)))
    sched.add(Schedule(id="custom", task="schedcore.demo:hello", trigger=Every2h("night")))
    sched.add(Schedule(id="plain", task="schedcore.demo:hello", trigger=Interval(60)))
    store.close()
    again = SQLiteStore(path)  # a fresh store: nothing cached, the definition is decoded
    try:
        got = again.get("custom")
        assert got is not None and got.schedule.trigger == Every2h("night")
        assert got.schedule.trigger.describe() == "every 2 hours (night)"
    finally:
        again.close()


def test_an_unregistered_type_in_a_store_sets_that_schedule_aside_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    tt.register_trigger_type(EVERY2H)
    try:
        store.add(Schedule(id="custom", task="schedcore.demo:hello", trigger=Every2h()), None, "error")
        store.add(Schedule(id="plain", task="schedcore.demo:hello", trigger=Interval(60)), None, "error")
    finally:
        tt.default_registry().unregister("every2h")  # ... as in a process without its plugin
        store.close()
    again = SQLiteStore(path)
    try:
        with pytest.raises(CorruptScheduleData) as info:
            again.get("custom")
        assert "'every2h'" in str(info.value) and "may be missing" in str(info.value)
        with caplog.at_level(logging.WARNING):
            assert [s.schedule.id for s in again.list_schedules()] == ["plain"]
        assert "custom" in caplog.text
    finally:
        again.close()


# -- schedule files, schedcore export and schedcore plugins --------------------------------------


def test_schedule_files_and_their_writer_carry_a_plugin_trigger(unregister: None) -> None:
    from schedcore.config import parse_schedules
    from schedcore.tomlwriter import schedules_to_toml

    tt.register_trigger_type(EVERY2H)
    (parsed,) = parse_schedules(
        '[[schedule]]\nid = "c"\ntask = "m:f"\n[schedule.trigger]\ntype = "every2h"\nlabel = "n"\n'
    )
    assert parsed.trigger == Every2h("n")
    text = schedules_to_toml([parsed])
    assert 'trigger = { type = "every2h", label = "n" }' in text
    assert parse_schedules(text) == [parsed]


@pytest.mark.usefixtures("clean_schedcore_env", "restore_logging")
def test_schedcore_plugins_lists_the_trigger_types() -> None:
    from click.testing import CliRunner

    from schedcore.cli import cli

    result = CliRunner().invoke(cli, ["plugins"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    section = lines[lines.index("triggers:") + 1 :]
    assert any(line.split()[:1] == ["cron"] and "(plugin 'memory')" in line for line in section)
