"""The command line's default store: a SQLite file in the user's data directory."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from schedcore.cli import cli
from schedcore.sqlite import SQLiteStore

# A clean SCHEDCORE_* environment and logging restored after each test (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("clean_schedcore_env", "restore_logging")


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


def ok(*args: str, env: dict[str, str] | None = None) -> str:
    result = invoke(*args, env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


def _ids(path: Path) -> list[str]:
    store = SQLiteStore(path)
    try:
        return [s.schedule.id for s in store.list_schedules()]
    finally:
        store.close()


def test_the_tests_never_use_the_real_data_directory() -> None:
    data = Path(os.environ["XDG_DATA_HOME"])
    assert not str(data).startswith(str(Path.home() / ".local"))
    assert "SCHEDCORE_SQLITE_PATH" not in os.environ


def test_management_commands_work_without_naming_a_store() -> None:
    default = Path(os.environ["XDG_DATA_HOME"]) / "schedcore" / "schedcore.db"
    assert ok("add", "nightly", "schedcore.demo:hello", "--every", "60").startswith("added nightly")
    assert stat.S_IMODE(default.stat().st_mode) == 0o600
    assert "nightly" in ok("list")
    ok("pause", "nightly")
    assert "paused" in ok("show", "nightly")
    ok("resume", "nightly")
    ok("trigger", "nightly")
    status = invoke("status")  # the triggered run is due and no scheduler is alive: unhealthy
    assert status.exit_code == 3 and "schedules: 1" in status.stdout, status.output
    assert _ids(default) == ["nightly"]
    ok("remove", "nightly")
    assert _ids(default) == []


@pytest.mark.parametrize("how", ["option", "flag", "env", "settings"])
def test_the_path_is_set_by_option_flag_environment_or_settings(how: str, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "jobs.db"
    args: list[str] = []
    env: dict[str, str] = {}
    if how == "option":
        args = ["-S", f"path={target}"]
    elif how == "flag":
        args = ["--sqlite-path", str(target)]
    elif how == "env":
        env = {"SCHEDCORE_SQLITE_PATH": str(target)}
    settings: list[str] = []
    if how == "settings":
        file = tmp_path / "schedcore.toml"
        file.write_text(f'[store_options]\npath = "{target}"\n', encoding="utf-8")
        settings = ["--settings", str(file)]
    ok(*settings, "add", "a", "schedcore.demo:hello", "--every", "60", *args, env=env)
    assert _ids(target) == ["a"]
    assert not (Path(os.environ["XDG_DATA_HOME"]) / "schedcore" / "schedcore.db").exists()


def test_flag_beats_environment_beats_settings(tmp_path: Path) -> None:
    file = tmp_path / "schedcore.toml"
    file.write_text(f'[store_options]\npath = "{tmp_path / "file.db"}"\n', encoding="utf-8")
    env = {"SCHEDCORE_SQLITE_PATH": str(tmp_path / "env.db")}
    ok("--settings", str(file), "add", "a", "schedcore.demo:hello", "--every", "60", env=env)
    flag = ["-S", f"path={tmp_path / 'flag.db'}"]
    ok("--settings", str(file), "add", "b", "schedcore.demo:hello", "--every", "60", *flag, env=env)
    assert _ids(tmp_path / "env.db") == ["a"] and _ids(tmp_path / "flag.db") == ["b"]
    assert not (tmp_path / "file.db").exists()


def test_a_foreign_file_is_one_error_line(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("not a database")
    result = invoke("list", "-S", f"path={bad}")
    assert result.exit_code == 1, result.output  # the store cannot be opened, as for an unreachable server
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and "not a SQLite database" in line
    assert bad.read_text() == "not a database"


def test_unknown_and_empty_options_are_refused(tmp_path: Path) -> None:
    result = invoke("list", "-S", "paht=x")
    assert result.exit_code == 2 and "unknown option" in result.stderr
    result = invoke("list", "-S", "path=")
    assert result.exit_code == 2 and "store.path" in result.stderr


def test_the_durability_level_is_an_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    real = SQLiteStore.__init__

    def spy(self: SQLiteStore, *args: object, **kwargs: object) -> None:
        real(self, *args, **kwargs)  # type: ignore[arg-type]
        opened.append(self.synchronous)

    monkeypatch.setattr(SQLiteStore, "__init__", spy)
    ok("list", "-S", f"path={tmp_path / 'a.db'}")
    ok("list", "-S", f"path={tmp_path / 'a.db'}", "-S", "synchronous=normal")
    assert opened == ["full", "normal"]
    result = invoke("list", "-S", f"path={tmp_path / 'a.db'}", "-S", "synchronous=off")
    assert result.exit_code == 2 and "store.synchronous" in result.stderr


def test_history_survives_a_restart_and_catches_up(tmp_path: Path) -> None:
    config = tmp_path / "jobs.toml"
    config.write_text(
        '[[schedule]]\nid = "tick"\ntask = "schedcore.demo:hello"\nevery = 1\ncatchup = "latest"\n', encoding="utf-8"
    )
    first = invoke("run", "--config", str(config), "--burst")
    assert first.exit_code == 0, first.output
    second = invoke("run", "--config", str(config), "--burst")
    assert second.exit_code == 0, second.output
    assert "1 unchanged" in second.stderr or "unchanged" in second.stderr  # not "added" again: it was kept
    assert "tick" in ok("show", "tick")
