"""``add`` and ``sync`` check each schedule for the executor that will run it, without
connecting to it, and the built-in store and executor refuse unknown options like the
Redis and RQ plugins do (issue 12, item 3)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from test_cli_ops import Shared, use_plugin

from schedcore import Interval, Schedule
from schedcore.cli import cli
from schedcore.exceptions import ConfigError, ValidationError
from schedcore.hookspecs import hookimpl
from schedcore.memory import MemoryStore
from schedcore.plugins import ExecutorFactory, Hooks, get_plugin_manager, refuse_unknown_options
from schedcore.protocols import Executor

pytestmark = pytest.mark.usefixtures("clean_schedcore_env", "restore_logging")


class Plugin(Shared):
    """``--store shared`` (one MemoryStore for every command) and ``--executor unchecked``,
    an executor whose factory cannot check schedules before it runs them."""

    def __init__(self) -> None:
        super().__init__()
        self.built = 0

    def _executor(self, options: Mapping[str, Any]) -> Executor:
        self.built += 1  # add and sync must never build (connect) an executor
        raise AssertionError("the management commands must not build an executor")

    @hookimpl
    def schedcore_executor_factories(self) -> Sequence[ExecutorFactory]:
        return [ExecutorFactory(name="unchecked", create=self._executor)]


@pytest.fixture
def plugin(monkeypatch: pytest.MonkeyPatch) -> Plugin:
    found = Plugin()
    use_plugin(monkeypatch, found)
    return found


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


def error_line(result: Result, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def add(*extra: str, env: dict[str, str] | None = None) -> Result:
    return invoke("add", "nightly", "schedcore.demo:hello", "--cron", "0 3 * * *", *extra, env=env)


# -- add -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "field", "value"),
    [
        ('{"job_timeout": "ten"}', "executor_options.job_timeout", "'ten'"),
        ('{"bogus": 1}', "executor_options.bogus", "1"),
        ('{"queue": "no spaces"}', "executor_options.queue", "'no spaces'"),
        ('{"meta": {"schedcore": 1}}', "executor_options.meta", "{'schedcore': 1}"),
    ],
)
def test_add_refuses_options_the_rq_executor_refuses(plugin: Plugin, options: str, field: str, value: str) -> None:
    line = error_line(add("--executor", "rq", "--executor-options", options), 2)
    assert f"invalid {field}={value}" in line
    assert "schedule 'nightly'" in line and "executor 'rq'" in line
    assert plugin.store.get("nightly") is None
    assert plugin.built == 0


def test_add_takes_the_executor_from_the_environment_and_the_settings_file(plugin: Plugin, tmp_path: Path) -> None:
    bad = '{"job_timeout": "ten"}'
    line = error_line(add("--executor-options", bad, env={"SCHEDCORE_EXECUTOR": "rq"}), 2)
    assert "executor_options.job_timeout='ten'" in line
    settings = tmp_path / "s.toml"
    settings.write_text('executor = "rq"\n', encoding="utf-8")
    result = invoke("--settings", str(settings), "add", "x", "schedcore.demo:hello", "--every", "60",
                    "--executor-options", bad)  # fmt: skip
    assert "executor_options.job_timeout='ten'" in error_line(result, 2)
    assert plugin.store.list_schedules() == []


def test_add_accepts_valid_rq_options_without_connecting(plugin: Plugin) -> None:
    # --executor-option redis_url points nowhere: the check must not connect
    result = add("--executor", "rq", "-E", "redis_url=redis://127.0.0.1:1/0", "--executor-options",
                 '{"job_timeout": 30, "queue": "low", "at_front": true}')  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("added nightly")
    assert "warning" not in result.stderr
    stored = plugin.store.get("nightly")
    assert stored is not None and stored.schedule.executor_options["job_timeout"] == 30


def test_bad_executor_options_of_the_command_name_the_executor(plugin: Plugin) -> None:
    line = error_line(add("--executor", "rq", "-E", "bogus=1"), 2)
    assert "executor 'rq'" in line and "'bogus'" in line and "redis_url" in line  # the known ones
    line = error_line(add("--executor", "rq", "-E", "serializer=no_such_module.Serializer"), 2)
    assert "executor 'rq'" in line and "executor.serializer='no_such_module.Serializer'" in line
    assert plugin.store.get("nightly") is None


def test_an_unknown_executor_is_refused_with_the_registered_ones(plugin: Plugin) -> None:
    line = error_line(add("--executor", "nosuch"), 2)
    assert "unknown executor 'nosuch'" in line and "local" in line and "unchecked" in line
    assert plugin.store.get("nightly") is None


def test_the_default_executor_says_it_did_not_check_executor_options(plugin: Plugin) -> None:
    result = add("--executor-options", '{"job_timeout": "ten"}')
    assert result.exit_code == 0, result.output
    assert "checked for --executor local (the default), which ignores them" in result.stderr
    assert "'nightly'" in result.stderr
    plain = invoke("add", "other", "schedcore.demo:hello", "--every", "60")
    assert plain.exit_code == 0 and "ignores them" not in plain.stderr  # no executor options: nothing to say


def test_an_executor_that_cannot_check_says_so_and_the_schedule_is_added(plugin: Plugin) -> None:
    result = add("--executor", "unchecked", "--executor-options", '{"anything": 1}')
    assert result.exit_code == 0, result.output
    assert "executor 'unchecked' cannot check schedules before it runs them" in result.stderr
    assert plugin.store.get("nightly") is not None and plugin.built == 0


# -- sync ------------------------------------------------------------------------------------


def _file(tmp_path: Path, name: str, *schedules: tuple[str, str]) -> Path:
    path = tmp_path / name
    path.write_text(
        "".join(
            f'[[schedule]]\nid = "{sid}"\ntask = "schedcore.demo:hello"\nevery = 60\nexecutor_options = {opts}\n\n'
            for sid, opts in schedules
        ),
        encoding="utf-8",
    )
    return path


def test_sync_checks_every_file_for_the_executor_before_writing(plugin: Plugin, tmp_path: Path) -> None:
    good = _file(tmp_path, "a.toml", ("a1", "{ job_timeout = 30 }"))
    bad = _file(tmp_path, "b.toml", ("b1", "{}"), ("b2", '{ job_timeout = "ten" }'))
    line = error_line(invoke("sync", str(good), str(bad), "--executor", "rq"), 2)
    assert "b.toml" in line and "schedule 'b2'" in line and "executor_options.job_timeout='ten'" in line
    assert plugin.store.list_schedules() == []  # not even a.toml, which came first
    ok = invoke("sync", str(good), "--executor", "rq")
    assert ok.exit_code == 0, ok.output
    assert [s.schedule.id for s in plugin.store.list_schedules()] == ["a1"]


def test_sync_refuses_unknown_options_by_environment(plugin: Plugin, tmp_path: Path) -> None:
    path = _file(tmp_path, "jobs.toml", ("j", "{ bogus = 1 }"))
    line = error_line(invoke("sync", str(path), env={"SCHEDCORE_EXECUTOR": "rq"}), 2)
    assert "jobs.toml" in line and "executor_options.bogus=1" in line and "unknown RQ option" in line
    assert plugin.store.list_schedules() == []


# -- the built-in store and executor refuse unknown options ----------------------------------


def test_builtin_factories_refuse_unknown_options_naming_the_known_ones() -> None:
    hooks = Hooks(get_plugin_manager(entry_points=False))
    with pytest.raises(ValidationError, match=r"invalid store\.bogus=1: unknown option \(known: history_limit\)"):
        hooks.create_store("memory", {"bogus": 1})
    with pytest.raises(ValidationError, match=r"invalid executor\.max_workers=4: unknown option \(known: workers\)"):
        hooks.create_executor("local", {"max_workers": 4})
    with pytest.raises(ValidationError, match=r"store\.history_limit=0"):
        hooks.create_store("memory", {"history_limit": 0})
    store = hooks.create_store("memory", {"history_limit": 3})
    assert isinstance(store, MemoryStore) and store._history_limit == 3


def test_run_refuses_unknown_builtin_options(tmp_path: Path) -> None:
    config = tmp_path / "one.toml"
    config.write_text('[[schedule]]\nid = "a"\ntask = "schedcore.demo:hello"\nevery = 60\n', encoding="utf-8")
    line = error_line(invoke("run", "--config", str(config), "--burst", "--store", "memory", "-S", "bogus=1"), 2)
    assert "store 'memory'" in line and "store.bogus=1" in line and "known: history_limit" in line
    line = error_line(invoke("run", "--config", str(config), "--burst", "-S", "bogus=1"), 2)  # the default: sqlite
    assert "store 'sqlite'" in line and "store.bogus=1" in line and "known: busy_timeout, history_limit, path" in line
    line = error_line(invoke("run", "--config", str(config), "--burst", "-E", "max_workers=4"), 2)
    assert "executor 'local'" in line and "executor.max_workers=4" in line and "known: workers" in line


def test_refuse_unknown_options_for_a_store_without_options() -> None:
    refuse_unknown_options("store", {}, ())
    with pytest.raises(ValidationError, match=r"store\.x='y': unknown option \(known: none: it takes no options\)"):
        refuse_unknown_options("store", {"x": "y"}, ())


# -- the factories' validate, directly ---------------------------------------------------------


def test_the_factories_validate_without_building() -> None:
    hooks = Hooks(get_plugin_manager())
    schedule = Schedule(id="s", task="app:f", trigger=Interval(60), executor_options={"job_timeout": "ten"})
    local = hooks.executor_factory("local")
    assert local.validate is not None
    local.validate(schedule, {"workers": 2})  # the local executor ignores executor_options
    with pytest.raises(ValidationError, match="workers"):
        local.validate(schedule, {"workers": 0})
    rq = hooks.executor_factory("rq")
    assert rq.validate is not None
    with pytest.raises(ValidationError, match=r"executor_options\.job_timeout='ten'"):
        rq.validate(schedule, {})
    with pytest.raises(ConfigError, match="unknown rq executor option 'redis_ulr'"):
        rq.validate(schedule.evolve(executor_options={}), {"redis_ulr": "x"})
    rq.validate(schedule.evolve(executor_options={"ttl": 60}), {"serializer": "json"})


# -- on a real Redis, as real processes ----------------------------------------------------------


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDCORE_")}
    return subprocess.run(
        [sys.executable, "-m", "schedcore.cli", *args],
        capture_output=True, text=True, timeout=120, check=False, cwd=cwd, env=env,
    )  # fmt: skip


@pytest.mark.redis
def test_add_and_sync_refuse_rq_options_on_a_real_redis(tmp_path: Path) -> None:
    from schedcore.testing.redis_server import redis_server
    from schedcore_redis import RedisStore

    with redis_server() as server:
        target = ("--store", "redis", "--redis-url", server.url, "--redis-namespace", "chk", "--executor", "rq")
        for options, needle in (
            ('{"job_timeout": "ten"}', "invalid executor_options.job_timeout='ten'"),
            ('{"bogus": 1}', "invalid executor_options.bogus=1: unknown RQ option"),
        ):
            refused = _cli("add", "r", "schedcore.demo:hello", "--every", "60", "--executor-options", options,
                           *target, cwd=tmp_path)  # fmt: skip
            assert refused.returncode == 2, refused.stderr
            assert refused.stderr.splitlines()[-1].startswith("error: ")
            assert needle in refused.stderr and "schedule 'r'" in refused.stderr
        added = _cli("add", "r", "schedcore.demo:hello", "--every", "60", "--executor-options", '{"job_timeout": 30}',
                     *target, cwd=tmp_path)  # fmt: skip
        assert added.returncode == 0, added.stderr
        assert added.stdout.startswith("added r")

        good = _file(tmp_path, "good.toml", ("g", "{ ttl = 60 }"))
        bad = _file(tmp_path, "bad.toml", ("b", '{ at_front = "yes" }'))
        synced = _cli("sync", str(good), str(bad), *target, cwd=tmp_path)
        assert synced.returncode == 2, synced.stderr
        assert "bad.toml" in synced.stderr and "executor_options.at_front='yes'" in synced.stderr
        assert _cli("sync", str(good), *target, cwd=tmp_path).returncode == 0

        store = RedisStore.from_url(server.url, namespace="chk")
        try:
            stored = {s.schedule.id: s.schedule.executor_options for s in store.list_schedules()}
        finally:
            store.close()
        assert stored == {"r": {"job_timeout": 30}, "g": {"ttl": 60}}
