"""Settings: flag > ``SCHEDCORE_*`` environment > settings file > default, for every kind of setting."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import schedcore.plugins
from schedcore.cli import cli
from schedcore.exceptions import ConfigError
from schedcore.hookspecs import hookimpl
from schedcore.memory import MemoryStore
from schedcore.plugins import StoreFactory
from schedcore.protocols import Store
from schedcore.settings import CliOption, load_settings, merge_cli_options

# A clean SCHEDCORE_* environment and logging restored after each test (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("clean_schedcore_env", "restore_logging")


class Recorder:
    """A plugin with a ``shared`` store (one MemoryStore) that records the options it gets."""

    def __init__(self) -> None:
        self.store = MemoryStore()
        self.options: list[dict[str, Any]] = []

    def create(self, options: Mapping[str, Any]) -> Store:
        self.options.append(dict(options))
        return self.store

    @hookimpl
    def schedcore_store_factories(self) -> Sequence[StoreFactory]:
        return [StoreFactory(name="shared", create=self.create)]

    @hookimpl
    def schedcore_cli_options(self, command: str) -> Sequence[CliOption]:
        return [CliOption(name="flavour", store="shared", key="flavour", help="A test option.")]


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    plugin = Recorder()
    real = schedcore.plugins.get_plugin_manager
    monkeypatch.setattr(schedcore.plugins, "get_plugin_manager", lambda **kw: real(plugins=(plugin,), **kw))
    return plugin


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


def write(tmp_path: Path, text: str, name: str = "schedcore.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_store_name_flag_beats_env_beats_file(recorder: Recorder, tmp_path: Path) -> None:
    settings = write(tmp_path, 'store = "shared"\n')
    assert invoke("--settings", str(settings), "list").exit_code == 0  # from the file
    result = invoke("--settings", str(settings), "list", env={"SCHEDCORE_STORE": "nosuch"})
    assert result.exit_code == 2 and "unknown store 'nosuch'" in result.stderr  # env beats the file
    result = invoke("--settings", str(settings), "list", "--store", "shared", env={"SCHEDCORE_STORE": "nosuch"})
    assert result.exit_code == 0, result.output  # the flag beats the env


def test_store_options_flag_beats_env_beats_file_per_key(recorder: Recorder, tmp_path: Path) -> None:
    settings = write(tmp_path, 'store = "shared"\n[store_options]\nflavour = "file"\nsize = 1\nonly_file = true\n')
    env = {"SCHEDCORE_SETTINGS": str(settings)}
    assert invoke("list", env=env).exit_code == 0
    assert recorder.options[-1] == {"flavour": "file", "size": 1, "only_file": True}
    assert invoke("list", env={**env, "SCHEDCORE_STORE_OPTIONS": "flavour=env size=2"}).exit_code == 0
    assert recorder.options[-1] == {"flavour": "env", "size": 2, "only_file": True}
    result = invoke("list", "-S", "flavour=flag", env={**env, "SCHEDCORE_STORE_OPTIONS": "flavour=env size=2"})
    assert result.exit_code == 0, result.output
    assert recorder.options[-1] == {"flavour": "flag", "size": 1, "only_file": True}  # -S replaces the env list


def test_plugin_option_flag_beats_env_beats_file(recorder: Recorder, tmp_path: Path) -> None:
    settings = write(tmp_path, 'store = "shared"\nflavour = "file"\n')
    base = ["--settings", str(settings), "list"]
    assert invoke(*base).exit_code == 0
    assert recorder.options[-1] == {"flavour": "file"}
    assert invoke(*base, env={"SCHEDCORE_FLAVOUR": "env"}).exit_code == 0
    assert recorder.options[-1] == {"flavour": "env"}
    assert invoke(*base, "--flavour", "flag", env={"SCHEDCORE_FLAVOUR": "env"}).exit_code == 0
    assert recorder.options[-1] == {"flavour": "flag"}
    # a plugin option from a flag beats -S from the environment; -S on the command line beats it
    assert invoke(*base, "--flavour", "flag", env={"SCHEDCORE_STORE_OPTIONS": "flavour=env"}).exit_code == 0
    assert recorder.options[-1] == {"flavour": "flag"}
    assert invoke(*base, "--flavour", "flag", "-S", "flavour=s").exit_code == 0
    assert recorder.options[-1] == {"flavour": "s"}


def test_global_options_flag_beats_env_beats_file(tmp_path: Path) -> None:
    settings = write(tmp_path, 'log_level = "warning"\nlog_format = "json"\n')
    result = invoke("--settings", str(settings), "run", "--burst")
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("{") and '"level": "WARNING"' in result.stderr
    assert '"level": "INFO"' not in result.stderr  # the file's level
    result = invoke("--settings", str(settings), "run", "--burst", env={"SCHEDCORE_LOG_LEVEL": "info"})
    assert '"level": "INFO"' in result.stderr  # the env beats the file
    result = invoke("--settings", str(settings), "--log-format", "text", "run", "--burst")
    assert not result.stderr.startswith("{") and " WARNING " in result.stderr  # the flag beats the file
    result = invoke(
        "--settings", str(settings), "--log-level", "error", "run", "--burst", env={"SCHEDCORE_LOG_LEVEL": "info"}
    )
    assert "WARNING" not in result.stderr and "INFO" not in result.stderr  # the flag beats the env


def test_config_in_the_settings_file_is_relative_to_it(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    write(tmp_path / "conf", '[[schedule]]\nid = "x"\ntask = "schedcore.demo:hello"\nevery = 3600\n', "jobs.toml")
    settings = write(tmp_path / "conf", 'config = "jobs.toml"\n')
    result = invoke("--settings", str(settings), "run", "--burst")
    assert result.exit_code == 0, result.output
    assert "loaded 1 schedule(s)" in result.stderr


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ('stor = "redis"\n', ["unknown key 'stor'", "did you mean 'store'"]),
        ("store = \n", ["invalid TOML"]),
        ('[[schedule]]\nid = "a"\n', ["schedule file"]),
        ("store_options = 5\n", ["'store_options' must be a table"]),
        ('store = ["a"]\n', ["'store' must be a single value"]),
        ('log_level = "loud"\n', ["log_level='loud'"]),
    ],
)
def test_bad_settings_files_are_one_line(tmp_path: Path, text: str, needles: list[str]) -> None:
    settings = write(tmp_path, text)
    result = invoke("--settings", str(settings), "run", "--burst")
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: settings file") or line.startswith("error: "), line
    for needle in needles:
        assert needle in line
    assert "Traceback" not in result.output


def test_missing_settings_file(tmp_path: Path) -> None:
    result = invoke("list", env={"SCHEDCORE_SETTINGS": str(tmp_path / "nope.toml")})
    assert result.exit_code == 2
    assert result.stderr.startswith("error: settings file") and "no such file" in result.stderr


def test_load_settings_accepts_plugin_keys(tmp_path: Path) -> None:
    path = write(tmp_path, 'redis_url = "redis://x"\nconfig = "jobs.toml"\n')
    with pytest.raises(ConfigError, match="unknown key 'redis_url'"):
        load_settings(path)
    loaded = load_settings(path, allowed={"redis_url"})
    assert loaded["redis_url"] == "redis://x"
    assert loaded["config"] == str(tmp_path / "jobs.toml")


def test_merge_cli_options() -> None:
    store_url = CliOption(name="redis-url", store="redis", key="url", help="store")
    rq_url = CliOption(name="redis-url", executor="rq", key="redis_url", help="rq")
    workers = CliOption(name="workers-x", executor="rq", key="workers", type="int")
    clash = CliOption(name="workers-x", executor="other", key="n", type="flag")
    merged, problems = merge_cli_options([("rq", rq_url), ("redis", store_url), ("rq", workers), ("o", clash)])
    by_name = {m.spec.name: m for m in merged}
    assert by_name["redis-url"].spec.help == "store"  # the store plugin's declaration leads
    assert by_name["redis-url"].applies_to("redis", "rq") == [("store", "url"), ("executor", "redis_url")]
    assert by_name["redis-url"].applies_to("memory", "local") == []
    assert by_name["redis-url"].describe_targets() == "--executor rq or --store redis"
    assert by_name["workers-x"].spec.type == "int"
    assert len(problems) == 1 and "ignoring the one of 'o'" in problems[0]
    with pytest.raises(ValueError, match="exactly one of"):
        CliOption(name="x", key="x")
    with pytest.raises(ValueError, match="name"):
        CliOption(name="--x", store="s", key="x")
    with pytest.raises(ValueError, match="type"):
        CliOption(name="x", store="s", key="x", type="list")
    assert CliOption(name="redis-url", store="r", key="url").env == "SCHEDCORE_REDIS_URL"
