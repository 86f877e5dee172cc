"""The ``schedcore`` command line, invoked through click's runner and as a real process."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from schedcore import logs
from schedcore.cli import cli, main

ROOT = Path(__file__).resolve().parent.parent
HELLO = ROOT / "examples" / "hello.toml"


# A clean SCHEDCORE_* environment and logging restored after each test (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("clean_schedcore_env", "restore_logging")


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


def assert_user_error(result: Result, code: int, *needles: str) -> str:
    """One ``error:`` line on stderr, the given exit code, no traceback."""
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    assert result.stdout == ""
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


# -- next --------------------------------------------------------------------------------


def test_next_cron_spring_forward() -> None:
    result = invoke(
        "next", "--cron", "30 2 * * *", "--tz", "America/New_York", "--after", "2025-03-08T12:00:00-05:00", "-n", "2"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["2025-03-09T03:00:00-04:00", "2025-03-10T02:30:00-04:00"]
    assert result.stderr == ""


def test_next_cron_fall_back_fixed_time_fires_once() -> None:
    result = invoke(
        "next", "--cron", "30 1 * * *", "--tz", "America/New_York", "--after", "2025-11-01T12:00:00-04:00", "-n", "3"
    )
    assert result.stdout.splitlines() == [
        "2025-11-02T01:30:00-04:00",
        "2025-11-03T01:30:00-05:00",
        "2025-11-04T01:30:00-05:00",
    ]


def test_next_cron_fall_back_wildcard_fires_in_both_copies() -> None:
    result = invoke(
        "next", "--cron", "*/30 * * * *", "--tz", "America/New_York", "--after", "2025-11-02T00:45:00-04:00", "-n", "5"
    )
    assert result.stdout.splitlines() == [
        "2025-11-02T01:00:00-04:00",
        "2025-11-02T01:30:00-04:00",
        "2025-11-02T01:00:00-05:00",
        "2025-11-02T01:30:00-05:00",
        "2025-11-02T02:00:00-05:00",
    ]


def test_next_after_is_strict_and_converted_to_the_cron_zone() -> None:
    # 08:00Z is exactly 09:00 in Paris: strictly after means the next day.
    result = invoke("next", "--cron", "0 9 * * *", "--tz", "Europe/Paris", "--after", "2025-01-10T08:00:00Z", "-n", "1")
    assert result.stdout.splitlines() == ["2025-01-11T09:00:00+01:00"]


def test_next_cron_defaults_to_utc_and_shows_seconds_field() -> None:
    result = invoke("next", "--cron", "*/20 * * * * *", "--after", "2025-01-01T00:00:00+05:00", "-n", "2")
    assert result.stdout.splitlines() == ["2024-12-31T19:00:20+00:00", "2024-12-31T19:00:40+00:00"]


def test_next_every_is_in_utc_from_its_start() -> None:
    result = invoke(
        "next", "--every", "90", "--start", "2025-01-01T00:00:10+01:00", "--after", "2025-01-01T00:00:00+01:00"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "2024-12-31T23:00:10+00:00",
        "2024-12-31T23:01:40+00:00",
        "2024-12-31T23:03:10+00:00",
        "2024-12-31T23:04:40+00:00",
        "2024-12-31T23:06:10+00:00",
    ]


def test_next_every_fractional_seconds_keep_milliseconds() -> None:
    result = invoke("next", "--every", "0.25", "--after", "2025-01-01T00:00:00Z", "-n", "2")
    assert result.stdout.splitlines() == ["2025-01-01T00:00:00.250+00:00", "2025-01-01T00:00:00.500+00:00"]


def test_next_defaults_to_now() -> None:
    before = datetime.now(timezone.utc)
    result = invoke("next", "--every", "1", "-n", "3")
    after = datetime.now(timezone.utc)
    times = [datetime.fromisoformat(line) for line in result.stdout.splitlines()]
    assert len(times) == 3
    assert before < times[0] <= after + timedelta(seconds=1)
    assert times == sorted(set(times))


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--cron", "61 * * * *"], ["invalid --cron='61 * * * *'", "minute"]),
        (["--cron", "not a cron"], ["invalid --cron='not a cron'"]),
        (["--cron", "0 3 * * *", "--tz", "Mars/Olympus"], ["invalid --tz='Mars/Olympus'"]),
        (
            ["--cron", "0 3 * * *", "--after", "2025-03-08T12:00:00"],
            ["invalid --after='2025-03-08T12:00:00'", "offset"],
        ),
        (["--every", "5", "--after", "yesterday"], ["invalid --after='yesterday'"]),
        (["--every", "0"], ["invalid --every='0'", "positive"]),
        (["--every", "-5"], ["invalid --every='-5'"]),
        (["--every", "ten"], ["--every"]),
        (["--every", "5", "--start", "2025-01-01T00:00:00"], ["invalid --start="]),
        ([], ["exactly one of --cron EXPR or --every SECONDS"]),
        (["--cron", "* * * * *", "--every", "5"], ["exactly one of"]),
        (["--every", "5", "--tz", "UTC"], ["--tz only goes with --cron"]),
        (["--cron", "* * * * *", "--start", "2025-01-01T00:00:00Z"], ["--start only goes with --every"]),
        (["--every", "5", "-n", "0"], ["-n"]),
        (["--every", "5", "--bogus"], ["--bogus", "schedcore next --help"]),
    ],
)
def test_next_bad_input_is_one_error_line(args: list[str], needles: list[str]) -> None:
    assert_user_error(invoke("next", *args), 2, *needles)


def test_debug_shows_the_traceback() -> None:
    result = invoke("--debug", "next", "--cron", "61 * * * *")
    assert result.exit_code == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert "ValidationError" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: invalid --cron=")


def test_debug_from_the_environment() -> None:
    result = invoke("next", "--every", "0", env={"SCHEDCORE_DEBUG": "1"})
    assert "Traceback" in result.stderr


def test_unknown_command_and_bad_global_option() -> None:
    assert_user_error(invoke("nope"), 2, "nope")
    assert_user_error(invoke("--log-format", "xml", "next", "--every", "1"), 2, "--log-format", "xml")
    assert_user_error(invoke("next", "--every", "1", env={"SCHEDCORE_LOG_LEVEL": "loud"}), 2, "loud")


def test_no_arguments_prints_help() -> None:
    result = invoke()
    assert "Commands:" in result.stdout
    assert "next" in result.stdout and "run" in result.stdout


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert "schedcore" in result.stdout and "0." in result.stdout


def test_main_is_the_console_entry_point(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["next", "--every", "60", "--after", "2025-01-01T00:00:30Z", "-n", "1"])
    assert info.value.code == 0
    assert capsys.readouterr().out == "2025-01-01T00:01:00+00:00\n"
    with pytest.raises(SystemExit) as info:
        main(["next", "--every", "0"])
    assert info.value.code == 2
    assert capsys.readouterr().err.startswith("error: invalid --every")


def test_real_process_next_and_error() -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "schedcore.cli", "next", "--cron", "@daily", "--tz", "Asia/Kolkata",
         "--after", "2025-06-01T00:00:00+05:30", "-n", "1"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "2025-06-02T00:00:00+05:30\n", "")
    bad = subprocess.run(
        [sys.executable, "-m", "schedcore.cli", "next", "--cron", "0 3 * * *", "--tz", "Nowhere/Land"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert bad.stderr.startswith("error: invalid --tz='Nowhere/Land'")
    assert len(bad.stderr.splitlines()) == 1


# -- run: errors before anything starts --------------------------------------------------


def test_run_unknown_store_lists_the_registered_ones() -> None:
    line = assert_user_error(invoke("run", "--store", "nosuch"), 2, "unknown store 'nosuch'", "memory")
    assert "registered stores" in line


def test_run_unknown_executor_from_the_environment() -> None:
    assert_user_error(
        invoke("run", env={"SCHEDCORE_EXECUTOR": "nosuch"}),
        2,
        "unknown executor 'nosuch'",
        "registered executors: local",
    )


def test_run_missing_config_file() -> None:
    assert_user_error(invoke("run", "--config", "does/not/exist.toml"), 2, "--config", "does/not/exist.toml")


def test_run_bad_config_file(tmp_path: Path) -> None:
    path = tmp_path / "jobs.toml"
    path.write_text('[[schedule]]\nid = "nightly"\ntask = "m:f"\ncrn = "0 3 * * *"\n', encoding="utf-8")
    assert_user_error(invoke("run", "--config", str(path)), 2, str(path), "'nightly'", "unknown key 'crn'")


def test_run_config_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "env.toml"
    path.write_text("[[schedule\n", encoding="utf-8")
    assert_user_error(invoke("run", env={"SCHEDCORE_CONFIG": str(path)}), 2, str(path), "invalid TOML", "line 1")


def test_unexpected_errors_are_one_line_unless_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    import schedcore.config

    def boom(path: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(schedcore.config, "load_schedules", boom)
    assert_user_error(invoke("run", "--config", str(HELLO)), 1, "unexpected RuntimeError: disk on fire", "--debug")
    result = invoke("--debug", "run", "--config", str(HELLO))
    assert result.exit_code == 1
    assert "Traceback" in result.stderr and "disk on fire" in result.stderr


# -- plugins -----------------------------------------------------------------------------


def test_plugins_lists_builtin_store_and_executor() -> None:
    result = invoke("plugins")
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.stdout.splitlines()]
    assert ["plugins:"] in lines and ["stores:"] in lines and ["executors:"] in lines
    assert any(parts[:2] == ["memory", "schedcore._builtin"] for parts in lines)
    assert any(parts[:1] == ["memory"] and "in-process" in parts for parts in lines)
    assert any(parts[:1] == ["local"] for parts in lines)


# -- logging -----------------------------------------------------------------------------


def _record(**extra: object) -> logging.LogRecord:
    record = logging.getLogger("schedcore.scheduler").makeRecord(
        "schedcore.scheduler", logging.INFO, __file__, 1, "dispatched %s", ("nightly@1.1",), None, extra=extra
    )
    return record


def test_json_log_lines_carry_the_extra_fields() -> None:
    nominal = datetime(2025, 3, 9, 7, 0, tzinfo=timezone.utc)
    line = logs.JsonFormatter().format(
        _record(event="run_dispatched", schedule_id="nightly", run_id="nightly@1.1", lateness=0.25, nominal=nominal)
    )
    data = json.loads(line)
    assert data["message"] == "dispatched nightly@1.1"
    assert data["level"] == "INFO"
    assert data["logger"] == "schedcore.scheduler"
    assert data["event"] == "run_dispatched"
    assert data["schedule_id"] == "nightly"
    assert data["run_id"] == "nightly@1.1"
    assert data["lateness"] == 0.25
    assert data["nominal"] == "2025-03-09T07:00:00.000Z"
    assert data["ts"].endswith("Z")
    assert "\n" not in line


def test_json_log_lines_include_exceptions_on_one_line() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        record = logging.getLogger("x").makeRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = logs.JsonFormatter().format(record)
    assert "\n" not in line
    assert "ValueError: bad" in json.loads(line)["exc"]


def test_text_log_lines_append_extras() -> None:
    line = logs.TextFormatter().format(_record(event="run_dispatched", schedule_id="nightly", note="two words"))
    assert " INFO " in line
    assert line.endswith(
        'schedcore.scheduler: dispatched nightly@1.1 event=run_dispatched schedule_id=nightly note="two words"'
    )


def test_configure_replaces_its_own_handler() -> None:
    root = logging.getLogger()
    logs.configure("info", "json")
    logs.configure("warning", "text")
    ours = [h for h in root.handlers if h.get_name() == "schedcore.cli"]
    assert len(ours) == 1
    assert isinstance(ours[0].formatter, logs.TextFormatter)
    assert root.level == logging.WARNING
    with pytest.raises(ValueError, match="log format"):
        logs.configure("info", "xml")


def test_cli_json_logs_go_to_stderr(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("", encoding="utf-8")
    result = invoke("--log-format", "json", "run", "--config", str(path), "--store", "nosuch")
    assert result.exit_code == 2
    result = invoke("--log-format", "json", "--log-level", "DEBUG", "next", "--every", "5", "-n", "1")
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 1


# -- run: the embedded default, end to end -----------------------------------------------


def _due_now_config(tmp_path: Path, fillers: int = 150) -> Path:
    """A schedule file whose first schedule is due the moment the scheduler starts.

    A schedule added at ``now`` first fires at its first occurrence at or after ``now``;
    every 1 ms with ``max_runs = 1`` makes that occurrence fall within the millisecond it
    is added, and the ``fillers`` schedules added after it (far-off cron jobs) make sure
    that millisecond has passed when ``--burst`` looks for due runs.
    """
    lines = [
        "[[schedule]]",
        'id = "due-now"',
        'task = "schedcore.demo:hello"',
        "every = 0.001",
        "max_runs = 1",
        'args = ["burst"]',
    ]
    for number in range(fillers):
        lines += [
            "",
            "[[schedule]]",
            f'id = "later-{number}"',
            'task = "schedcore.demo:hello"',
            'cron = "0 0 1 1 *"',
            'tz = "Pacific/Kiritimati"',
            'args = ["never in this test"]',
        ]
    path = tmp_path / "due.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_run_burst_dispatches_what_is_due(tmp_path: Path) -> None:
    result = invoke("run", "--config", str(_due_now_config(tmp_path)), "--burst")
    assert result.exit_code == 0, result.output
    assert "hello, burst!" in result.stdout
    assert "never in this test" not in result.stdout
    assert "loaded 151 schedule(s)" in result.stderr
    assert result.stdout.count("hello, burst!") == 1


def test_real_process_burst_with_json_logs(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "schedcore.cli", "--log-level", "debug", "--log-format", "json", "run",
         "--config", str(_due_now_config(tmp_path)), "--burst", "--workers", "2"],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "hello, burst!" in proc.stdout
    records = [json.loads(line) for line in proc.stderr.splitlines()]
    assert any(r.get("event") == "config_loaded" and r.get("count") == 151 for r in records)
    assert any(r.get("greeting") == "hello, burst!" for r in records)
    (dispatched,) = [r for r in records if r.get("event") == "run_dispatched"]
    assert dispatched["schedule_id"] == "due-now"
    assert dispatched["run_id"].startswith("due-now@")
    assert isinstance(dispatched["lateness"], (int, float)) and dispatched["lateness"] >= 0
    assert {"ts", "level", "logger", "message"} <= set(dispatched)


def _schedcore_executable() -> list[str]:
    script = Path(sys.executable).with_name("schedcore")
    return [str(script)] if script.exists() else [sys.executable, "-m", "schedcore.cli"]


def test_real_process_hello_example_prints_and_stops_on_sigterm() -> None:
    """The README's command: ``schedcore run --config examples/hello.toml`` greets within seconds."""
    proc = subprocess.Popen(
        [*_schedcore_executable(), "run", "--config", str(HELLO)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    lines: list[str] = []
    seen = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "hello, world!" in line:
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert seen.wait(30), (
            f"no greeting within 30 s; stderr: {proc.stderr.read() if proc.poll() is not None else ''}"
        )
    finally:
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    reader.join(5)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert any("hello, world!" in line for line in lines)


# -- run: settings and plugin options ------------------------------------------------------


def test_flags_win_over_the_environment() -> None:
    result = invoke("run", "--store", "memory", "--burst", env={"SCHEDCORE_STORE": "nosuch"})
    assert result.exit_code == 0, result.output
    assert "nothing will run" in result.stderr


def test_store_and_executor_options_reach_the_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    from collections.abc import Sequence

    import schedcore.plugins
    from schedcore import LocalExecutor, MemoryStore
    from schedcore.hookspecs import hookimpl
    from schedcore.plugins import ExecutorFactory, StoreFactory
    from schedcore.protocols import Executor, Store

    seen: dict[str, Mapping[str, Any]] = {}

    def store(options: Mapping[str, Any]) -> Store:
        seen["store"] = dict(options)
        return MemoryStore()

    def executor(options: Mapping[str, Any]) -> Executor:
        seen["executor"] = dict(options)
        return LocalExecutor(max_workers=int(options["workers"]))

    class Recording:
        @hookimpl
        def schedcore_store_factories(self) -> Sequence[StoreFactory]:
            return [StoreFactory(name="recording", create=store)]

        @hookimpl
        def schedcore_executor_factories(self) -> Sequence[ExecutorFactory]:
            return [ExecutorFactory(name="recording", create=executor)]

    real = schedcore.plugins.get_plugin_manager
    monkeypatch.setattr(schedcore.plugins, "get_plugin_manager", lambda **kw: real(plugins=(Recording(),)))
    result = invoke(
        "run", "--store", "recording", "-S", "url=redis://h:1/0", "-S", "limit=5",
        "--executor", "recording", "-E", "queues=[\"a\", \"b\"]", "-E", "workers=3", "--burst",
        # --workers belongs to the executors that declare it (local, rq), not to this one:
        env={"SCHEDCORE_WORKERS": "7", "SCHEDCORE_STORE_OPTIONS": "ignored=1"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert seen["store"] == {"url": "redis://h:1/0", "limit": 5}
    assert seen["executor"] == {"queues": ["a", "b"], "workers": 3}


def test_workers_is_an_option_of_the_executor_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    import schedcore._builtin

    built: list[int | None] = []
    real = schedcore._builtin._local_executor

    def spy(options: Mapping[str, Any]) -> Any:
        executor = real(options)
        built.append(executor.max_workers)
        return executor

    monkeypatch.setattr(schedcore._builtin, "_local_executor", spy)
    assert invoke("run", "--workers", "2", "--burst").exit_code == 0
    assert invoke("run", "--burst", env={"SCHEDCORE_WORKERS": "5"}).exit_code == 0
    assert built == [2, 5]
    assert_user_error(invoke("run", "--workers", "0", "--burst"), 2, "invalid workers=0")


def test_bad_plugin_options_are_usage_errors() -> None:
    assert_user_error(invoke("run", "-E", "novalue", "--burst"), 2, "invalid --executor-option='novalue'", "KEY=VALUE")
    assert_user_error(invoke("run", "-S", "=1", "--burst"), 2, "--store-option")


def test_an_unreachable_store_is_a_runtime_error() -> None:
    from schedcore.plugins import Hooks, get_plugin_manager

    if "redis" not in Hooks(get_plugin_manager()).store_factories():
        pytest.skip("the redis store plugin is not registered")
    result = invoke("run", "--store", "redis", "-S", "url=redis://127.0.0.1:1/0", "--burst")
    assert_user_error(result, 1, "redis")


@pytest.mark.redis
def test_real_process_run_against_a_real_redis(tmp_path: Path) -> None:
    """``schedcore run --store redis``: the file's schedules land in the shared store and run."""
    from schedcore.testing.redis_server import redis_server
    from schedcore_redis import RedisStore

    with redis_server() as server:
        base = [*_schedcore_executable(), "run", "--store", "redis", "-S", f"url={server.url}", "-S", "namespace=cli"]
        first = subprocess.run(
            [*base, "--config", str(_due_now_config(tmp_path, fillers=150)), "--burst"],
            capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
        )  # fmt: skip
        assert first.returncode == 0, first.stderr
        assert first.stdout.count("hello, burst!") == 1
        # a second scheduler, without the file: the schedules are in the store already
        again = subprocess.run([*base, "--burst"], capture_output=True, text=True, timeout=120, check=False)
        assert again.returncode == 0, again.stderr
        assert "hello" not in again.stdout  # nothing due: the due-now schedule reached max_runs
        store = RedisStore.from_url(server.url, namespace="cli")
        try:
            ids = {s.schedule.id for s in store.list_schedules(limit=1000)}
            assert len(ids) == 151 and "due-now" in ids
            stored = store.get("due-now")
            assert stored is not None and stored.runs_started == 1 and stored.next_fire is None
        finally:
            store.close()


def test_a_plugin_that_cannot_load_does_not_stop_the_embedded_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:

    import pluggy

    import schedcore.plugins
    from schedcore.exceptions import PluginError

    real = schedcore.plugins.get_plugin_manager

    def broken(*, entry_points: bool = True, **kwargs: Any) -> pluggy.PluginManager:
        if entry_points:
            raise PluginError("could not load a schedcore plugin: ModuleNotFoundError: No module named 'redis'")
        return real(entry_points=False, **kwargs)

    monkeypatch.setattr(schedcore.plugins, "get_plugin_manager", broken)
    result = invoke("run", "--config", str(_due_now_config(tmp_path)), "--burst")
    assert result.exit_code == 0, result.output
    assert "hello, burst!" in result.stdout
    assert "No module named 'redis'" in result.stderr and "built-in memory store" in result.stderr
    # anything but the built-in default needs the plugins
    assert_user_error(invoke("run", "--store", "redis", "--burst"), 1, "could not load a schedcore plugin")


def test_a_hard_interrupt_is_one_line_and_exit_130(monkeypatch: pytest.MonkeyPatch) -> None:
    import schedcore.scheduler

    def interrupted(self: object, burst: bool = False) -> None:
        raise KeyboardInterrupt  # what a second Ctrl-C does while running tasks finish

    monkeypatch.setattr(schedcore.scheduler.Scheduler, "run", interrupted)
    result = invoke("--log-level", "error", "run", "--config", str(HELLO))
    assert result.exit_code == 130
    # click ends the ^C line with a newline first, as a shell would
    assert [line for line in result.stderr.splitlines() if line] == ["error: interrupted"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("next", "--every", "1e20"), "--every='1e+20': must be at most 100 years"),
        (("next", "--every", "1e12", "--after", "2025-01-01T00:00:00Z"), "must be at most 100 years"),
        (("next", "--every", "1e-9"), "must be at least 1 millisecond"),
    ],
)
def test_out_of_range_numbers_are_usage_errors(args: tuple[str, ...], needle: str) -> None:
    assert_user_error(invoke(*args), 2, needle)


def test_out_of_range_numbers_in_a_schedule_file(tmp_path: Path) -> None:
    path = tmp_path / "jobs.toml"
    path.write_text('[[schedule]]\nid = "a"\ntask = "schedcore.demo:hello"\nevery = 1e300\n', encoding="utf-8")
    assert_user_error(invoke("run", "--config", str(path), "--burst"), 2, "'a'", "every=1e+300", "100 years")
    path.write_text(
        '[[schedule]]\nid = "a"\ntask = "schedcore.demo:hello"\nevery = 60\n[schedule.retry]\nmax_delay = 1e300\n',
        encoding="utf-8",
    )
    assert_user_error(invoke("run", "--config", str(path), "--burst"), 2, "max_delay", "100 years")


@pytest.mark.parametrize(
    "args",
    [
        ("next", "--every", "60", "-n", "1", "--log-level", "warning", "--after", "2025-01-01T00:00:00Z"),
        ("next", "--log-level=warning", "--every", "60", "-n", "1", "--after", "2025-01-01T00:00:00Z"),
        ("--log-level", "warning", "next", "--every", "60", "-n", "1", "--after", "2025-01-01T00:00:00Z"),
        ("next", "--debug", "--every", "60", "-n", "1", "--after", "2025-01-01T00:00:00Z", "--log-format", "json"),
    ],
)
def test_global_options_after_the_subcommand(args: tuple[str, ...]) -> None:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert result.stdout == "2025-01-01T00:01:00+00:00\n"


def test_global_option_after_the_subcommand_takes_effect() -> None:
    import logging as _logging

    result = invoke("next", "--every", "60", "-n", "1", "--log-level", "error")
    assert result.exit_code == 0, result.output
    assert _logging.getLogger().level == _logging.ERROR
    assert_user_error(invoke("next", "--every", "60", "--log-level", "loud"), 2, "--log-level", "'loud'")


def test_a_value_of_the_subcommand_is_never_taken_for_a_global_option() -> None:
    from schedcore.cli import _hoist_global_options
    from schedcore.cli import cli as group

    ctx = click.Context(group)
    args = ["add", "x", "m:f", "--args", "--debug", "--every", "60", "--", "--log-level", "x"]
    assert _hoist_global_options(group, ctx, args) == args
    assert _hoist_global_options(group, ctx, ["--settings", "s.toml", "run", "--debug"]) == [
        "--settings", "s.toml", "--debug", "run",
    ]  # fmt: skip


def test_next_previews_h_fields_for_a_schedule_id() -> None:
    assert_user_error(invoke("next", "--cron", "H 3 * * *"), 2, "has H fields", "--id")
    result = invoke("next", "--cron", "H 3 * * *", "--id", "nightly", "--after", "2025-01-01T00:00:00Z", "-n", "2")
    assert result.exit_code == 0, result.output
    from schedcore import Cron

    trigger = Cron("H 3 * * *", seed="nightly")
    first = trigger.next_after(datetime(2025, 1, 1, tzinfo=timezone.utc))
    assert first is not None and result.stdout.splitlines()[0] == first.isoformat()
    assert_user_error(invoke("next", "--every", "60", "--id", "x"), 2, "--id only goes with --cron")
