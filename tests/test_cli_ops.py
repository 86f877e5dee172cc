"""The operating commands (add, list, show, remove, pause, resume, trigger, backfill, sync, status),
plugins' options and the heartbeat -- through click's runner and as real processes on a real Redis."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import schedcore.plugins
from schedcore import Interval, RetryPolicy, Schedule, Scheduler
from schedcore.cli import cli
from schedcore.clock import FakeClock
from schedcore.hookspecs import hookimpl
from schedcore.memory import MemoryStore
from schedcore.plugins import StoreFactory, get_plugin_manager
from schedcore.settings import CliOption
from schedcore.sync import SOURCE_KEY
from schedcore.testing.executors import CallbackExecutor
from schedcore.testing.executors import Result as Played
from schedcore.testing.factories import T0

# A clean SCHEDCORE_* environment and logging restored after each test (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("clean_schedcore_env", "restore_logging")


class Shared:
    """A plugin offering ``--store shared``: one MemoryStore that outlives each command."""

    def __init__(self) -> None:
        self.store = MemoryStore()

    @hookimpl
    def schedcore_store_factories(self) -> Sequence[StoreFactory]:
        return [StoreFactory(name="shared", create=lambda options: self.store)]


def use_plugin(monkeypatch: pytest.MonkeyPatch, plugin: Shared) -> None:
    """Every plugin manager the CLI builds gets ``plugin`` too, and ``--store shared`` is the default."""
    real = schedcore.plugins.get_plugin_manager
    monkeypatch.setattr(schedcore.plugins, "get_plugin_manager", lambda **kw: real(plugins=(plugin,), **kw))
    monkeypatch.setenv("SCHEDCORE_STORE", "shared")


@pytest.fixture
def shared(monkeypatch: pytest.MonkeyPatch) -> MemoryStore:
    plugin = Shared()
    use_plugin(monkeypatch, plugin)
    return plugin.store


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


def ok(*args: str) -> str:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return result.stdout


def assert_user_error(result: Result, code: int, *needles: str) -> str:
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# -- add / list / show -------------------------------------------------------------------


def test_add_every_option_and_show_it(shared: MemoryStore) -> None:
    out = ok(
        "add", "nightly", "schedcore.demo:hello", "--cron", "0 3 * * *", "--tz", "Europe/Paris",
        "--args", '["world"]', "--kwargs", '{"loud": true}', "--queue", "low",
        "--max-attempts", "3", "--retry-delay", "5", "--retry-factor", "3", "--retry-max-delay", "60",
        "--retry-jitter", "1", "--catchup", "all", "--catchup-limit", "7", "--misfire-grace", "30",
        "--overlap", "skip", "--jitter", "2", "--start-at", "2020-01-01T00:00:00Z", "--end-at", "2100-01-01T00:00:00Z",
        "--max-runs", "1000", "--meta", '{"team": "ops"}', "--executor-options", '{"timeout": 5}',
    )  # fmt: skip
    assert out.startswith("added nightly: next fire ")
    stored = shared.get("nightly")
    assert stored is not None
    s = stored.schedule
    assert (s.args, s.kwargs, s.queue, s.catchup.value, s.catchup_limit, s.overlap.value) == (
        ("world",), {"loud": True}, "low", "all", 7, "skip"
    )  # fmt: skip
    assert (s.retry.max_attempts, s.retry.factor, s.retry.max_delay) == (3, 3.0, timedelta(seconds=60))
    assert s.misfire_grace == timedelta(seconds=30) and s.jitter == timedelta(seconds=2) and s.max_runs == 1000
    assert s.meta == {"team": "ops"} and s.executor_options == {"timeout": 5}
    assert SOURCE_KEY not in s.meta  # added by hand: no sync owns it

    shown = ok("show", "nightly")
    assert "trigger:   cron '0 3 * * *' Europe/Paris" in shown
    assert "next fire times (Europe/Paris, then UTC):" in shown and "recent runs:\n  none" in shown
    fires = [line for line in shown.splitlines() if line.startswith("  20")]
    assert len(fires) == 5
    assert all(line.strip().endswith(":00Z)") for line in fires)  # local, then UTC in brackets
    data = json.loads(ok("show", "nightly", "--json"))
    assert data["definition"]["queue"] == "low" and len(data["next_fires"]) == 5
    utc = [datetime.fromisoformat(t.replace("Z", "+00:00")) for t in data["next_fires"]]
    assert all(t.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Paris")).hour == 3 for t in utc)


def test_add_every_and_at(shared: MemoryStore) -> None:
    assert ok("add", "often", "schedcore.demo:hello", "--every", "60", "--start", "2025-01-01T00:00:30Z").startswith(
        "added often: next fire"
    )
    assert ok("add", "once", "schedcore.demo:hello", "--at", "2099-01-01T00:00:00+01:00").startswith("added once")
    past = invoke("add", "past", "schedcore.demo:hello", "--at", "2001-01-01T00:00:00Z")
    assert past.exit_code == 0 and past.stdout == "expired past: nothing to fire\n"
    assert (
        "warning: --at 2001-01-01T00:00:00Z passed more than its misfire grace (60s) ago, so it will never fire; "
        "give a later --at or a larger --misfire-grace"
    ) in past.stderr.splitlines()
    assert "schedule past will never fire" in past.stderr  # the log line
    just = datetime.now(timezone.utc) - timedelta(seconds=5)
    assert ok("add", "just", "schedcore.demo:hello", "--at", just.isoformat()).startswith("added just: next fire")
    assert ok("add", "later", "schedcore.demo:hello", "--every", "5", "--paused").splitlines() == [
        "added later: paused",
        "  (at whole multiples of 5s since 1970-01-01T00:00:00Z; --start sets another anchor)",
    ]
    # conflict handling
    assert_user_error(invoke("add", "often", "schedcore.demo:hello", "--every", "60"), 1, "'often' already exists")
    assert ok("add", "often", "m:f", "--every", "60", "--conflict", "keep").startswith("kept often")
    assert ok("add", "often", "m:f", "--every", "30", "--conflict", "replace").startswith("replaced often")
    stored = shared.get("often")
    assert stored is not None and stored.schedule.task == "m:f"


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        ([], ["exactly one of --cron EXPR, --every SECONDS or --at ISO8601"]),
        (["--cron", "61 * * * *"], ["invalid --cron='61 * * * *'"]),
        (["--cron", "0 3 * * *", "--tz", "Mars/Base"], ["invalid --tz='Mars/Base'"]),
        (["--every", "0"], ["invalid --every="]),
        (["--every", "5", "--tz", "UTC"], ["--tz only goes with --cron"]),
        (["--at", "2030-01-01T00:00:00"], ["invalid --at=", "offset"]),
        (["--every", "5", "--args", "{}"], ["invalid --args='{}'", "JSON array"]),
        (["--every", "5", "--kwargs", "nope"], ["invalid --kwargs='nope'", "not JSON"]),
        (["--every", "5", "--max-attempts", "0"], ["invalid --max-attempts='0'"]),
        (["--every", "5", "--catchup", "some"], ["--catchup"]),
        (["--every", "5", "--end-at", "2001-01-01T00:00:00Z", "--start-at", "2002-01-01T00:00:00Z"], ["--end-at"]),
    ],
)
def test_add_bad_input_is_one_line_and_stores_nothing(shared: MemoryStore, args: list[str], needles: list[str]) -> None:
    assert_user_error(invoke("add", "x", "schedcore.demo:hello", *args), 2, *needles)
    assert shared.list_schedules() == []


def test_add_bad_id_and_task(shared: MemoryStore) -> None:
    assert_user_error(invoke("add", "bad id", "m:f", "--every", "5"), 2, "invalid ID=")
    assert_user_error(invoke("add", "x", "not a task", "--every", "5"), 2, "invalid TASK=")


def test_list_table_and_json(shared: MemoryStore) -> None:
    assert ok("list") == "no schedules\n"
    assert json.loads(ok("list", "--json")) == []
    ok("add", "b-cron", "schedcore.demo:hello", "--cron", "0 3 * * *", "--tz", "Asia/Tokyo")
    ok("add", "a-every", "schedcore.demo:hello", "--every", "3600")
    ok("pause", "a-every")
    lines = ok("list").splitlines()
    assert lines[0].split() == ["ID", "TRIGGER", "NEXT", "FIRE", "(ZONE)", "NEXT", "FIRE", "(UTC)", "PAUSED", "LAST"]
    assert lines[1].startswith("a-every") and " yes " in lines[1] and lines[1].rstrip().endswith("-")
    assert lines[2].startswith("b-cron") and "cron '0 3 * * *' Asia/Tokyo" in lines[2] and " no " in lines[2]
    assert lines[2].count("Z ") == 1  # the UTC column
    items = json.loads(ok("list", "--json"))
    assert [i["id"] for i in items] == ["a-every", "b-cron"]
    assert items[0]["paused"] is True and items[0]["next_fire"] is None
    assert items[1]["next_fire"].endswith("Z") and items[1]["last_outcome"] is None


def test_show_lists_recent_runs_with_outcome_and_error(shared: MemoryStore) -> None:
    clock = FakeClock(T0)

    def fail(run: Any) -> None:
        raise RuntimeError("disk full")

    s = Scheduler(
        shared, CallbackExecutor(fail, clock=clock), clock=clock, plugins=get_plugin_manager(entry_points=False)
    )
    ok("add", "job", "schedcore.demo:hello", "--every", "60", "--max-attempts", "2")
    s.trigger_now("job")
    s.tick()
    s.tick()
    shown = ok("show", "job")
    runs = shown[shown.index("recent runs:") :].splitlines()
    assert runs[1].split()[:4] == ["RUN", "KIND", "NOMINAL", "(UTC)"]
    assert "manual" in runs[2] and "failed" in runs[2] and "RuntimeError: disk full" in runs[2]
    items = json.loads(ok("list", "--json"))
    assert items[0]["last_outcome"] == "failed"
    assert json.loads(ok("show", "job", "--json"))["runs"][0]["error"] == "RuntimeError: disk full"


def test_show_prints_the_newest_failures_traceback(shared: MemoryStore) -> None:
    clock = FakeClock(T0)
    calls: list[int] = []

    def disk_full() -> None:
        raise RuntimeError(f"disk full {len(calls)}")

    def handler(run: Any) -> None:
        calls.append(1)
        if len(calls) < 4:  # the newest (4th) run succeeds: the newest *failure* is still shown
            disk_full()

    s = Scheduler(
        shared, CallbackExecutor(handler, clock=clock), clock=clock, plugins=get_plugin_manager(entry_points=False)
    )
    s.add(Schedule(id="job", task="schedcore.demo:hello", trigger=Interval(60)))
    for _ in range(4):
        s.tick()
        clock.advance(60)
    assert len(calls) == 4
    failed = [r.run_id for r in shared.history("job") if r.traceback]  # newest first
    assert len(failed) == 3
    lines = ok("show", "job").splitlines()
    at = lines.index(f"traceback of {failed[0]} (failed):")
    assert lines[at - 1].split()[:2] == [failed[-1], "fire"]  # right under the runs table
    assert lines[at + 1] == "  Traceback (most recent call last):" and lines[-1] == "  RuntimeError: disk full 3"
    assert any("in disk_full" in line for line in lines[at:])
    assert sum(line.startswith("traceback of") for line in lines) == 1
    everything = ok("show", "job", "--traceback", "all").splitlines()
    assert [line for line in everything if line.startswith("traceback of")] == [
        f"traceback of {run_id} (failed):" for run_id in failed
    ]
    assert not any(line.startswith("traceback of") for line in ok("show", "job", "--traceback", "none").splitlines())
    assert "Traceback" not in ok("show", "job", "--runs", "1")  # only the shown runs' tracebacks
    runs = json.loads(ok("show", "job", "--json"))["runs"]
    assert runs[0]["traceback"] is None and runs[1]["traceback"].endswith("RuntimeError: disk full 3")
    assert_user_error(invoke("show", "job", "--traceback", "some"), 2, "--traceback")


def test_show_escapes_control_characters_of_a_stored_traceback(shared: MemoryStore) -> None:
    clock = FakeClock(T0)
    hostile = "Traceback (most recent call last):\n  \x1b]0;owned\x07\x1b[2J\rcaf\u00e9\tx\nValueError: \u2028end"

    def handler(run: Any) -> Played:
        return Played(status="failed", error="ValueError: \x1b[2Jx", traceback=hostile)

    s = Scheduler(
        shared, CallbackExecutor(handler, clock=clock), clock=clock, plugins=get_plugin_manager(entry_points=False)
    )
    s.add(Schedule(id="job", task="schedcore.demo:hello", trigger=Interval(60)))
    clock.advance(60)
    s.tick()
    shown = ok("show", "job")
    assert "\x1b" not in shown and "\x07" not in shown and "\r" not in shown and "\u2028" not in shown
    assert "    \\x1b]0;owned\\x07\\x1b[2J\\rcaf\u00e9\tx" in shown.splitlines()
    assert shown.rstrip("\n").endswith("  ValueError: \\u2028end")
    assert "ValueError: \\x1b[2Jx" in shown  # the error column too
    assert json.loads(ok("show", "job", "--json"))["runs"][0]["traceback"] == hostile  # JSON keeps it as it is


def test_times_are_shown_in_the_schedules_own_zone(shared: MemoryStore) -> None:
    """A Paris 08:00 schedule reads 08:00+01:00 (and 07:00Z), whatever the machine's zone."""
    out = ok("add", "paris", "schedcore.demo:hello", "--cron", "0 8 * * mon-fri", "--tz", "Europe/Paris")
    assert "T08:00:00+01:00 (" in out and "T07:00:00Z)" in out
    (item,) = json.loads(ok("list", "--json"))
    assert item["zone"] == "Europe/Paris" and item["next_fire_zoned"].endswith("T08:00:00+01:00")
    assert item["next_fire"].endswith("T07:00:00Z")
    assert "T08:00:00+01:00" in ok("list").splitlines()[1]
    shown = ok("show", "paris")
    assert "next fire times (Europe/Paris, then UTC):" in shown and "T08:00:00+01:00 (" in shown
    assert json.loads(ok("show", "paris", "--json"))["zone"] == "Europe/Paris"


def test_show_has_lateness_and_the_pending_retry(shared: MemoryStore) -> None:
    clock = FakeClock(T0)

    def fail(run: Any) -> None:
        raise RuntimeError("disk full")

    s = Scheduler(
        shared, CallbackExecutor(fail, clock=clock), clock=clock, plugins=get_plugin_manager(entry_points=False)
    )
    s.add(Schedule(id="job", task="schedcore.demo:hello", trigger=Interval(60), retry=RetryPolicy(max_attempts=2)))
    clock.advance(60.25)  # a quarter of a second late
    s.tick()
    s.tick()
    shown = ok("show", "job")
    runs = shown[shown.index("recent runs:") :].splitlines()
    assert runs[1].split() == ["RUN", "KIND", "NOMINAL", "(UTC)", "LATENESS", "OUTCOME", "RETRY", "AT", "ERROR"]
    assert "250 ms" in runs[2] and "failed" in runs[2] and "RuntimeError: disk full" in runs[2]
    record = json.loads(ok("show", "job", "--json"))["runs"][0]  # the newest
    assert record["lateness"] == 0.25 and record["retry_at"] is not None
    retry_at = record["retry_at"]
    (item,) = json.loads(ok("list", "--json"))
    assert item["retry_at"] is not None and item["retry_at_zoned"] is not None
    assert f"failed, retry at {item['retry_at_zoned']}" in ok("list")
    assert retry_at.startswith(item["retry_at"].removesuffix("Z")[:19])


def test_add_warns_when_the_task_cannot_be_found_here(shared: MemoryStore, tmp_path: Path) -> None:
    result = invoke("add", "x", "no_such_module_anywhere.jobs:run", "--every", "60")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("added x: next fire")
    assert "warning: module 'no_such_module_anywhere.jobs' of task" in result.stderr
    assert "workers" in result.stderr
    result = invoke("add", "y", "schedcore.demo:hello", "--every", "60", "--start", "2025-01-01T00:00:00Z")
    assert result.exit_code == 0 and "warning:" not in result.stderr
    assert "multiples" not in result.stdout  # the anchor was given: no note
    # Finding the module runs none of its code.
    package = tmp_path / "loud_pkg_for_schedcore"
    package.mkdir()
    (package / "__init__.py").write_text("raise SystemExit('imported!')\n", encoding="utf-8")
    (package / "jobs.py").write_text("def run():\n    pass\n", encoding="utf-8")
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        result = invoke("add", "z", "loud_pkg_for_schedcore.jobs:run", "--every", "60")
    finally:
        sys.path.remove(str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "warning:" not in result.stderr and "loud_pkg_for_schedcore" not in sys.modules


# -- remove / pause / resume / trigger / backfill -----------------------------------------


def test_pause_resume_remove(shared: MemoryStore) -> None:
    ok("add", "job", "schedcore.demo:hello", "--every", "60")
    assert ok("pause", "job") == "paused job\n"
    stored = shared.get("job")
    assert stored is not None and stored.schedule.paused and stored.next_fire is None
    assert ok("resume", "job").startswith("resumed job: next fire ")
    stored = shared.get("job")
    assert stored is not None and not stored.schedule.paused and stored.next_fire is not None
    assert ok("remove", "job") == "removed job\n"
    assert shared.get("job") is None
    for command in ("remove", "pause", "resume", "trigger", "show"):
        assert_user_error(invoke(command, "job"), 1, "no schedule with id 'job'")


def test_trigger_and_backfill_queue_runs(shared: MemoryStore) -> None:
    ok("add", "job", "schedcore.demo:hello", "--every", "3600", "--start", "2025-01-01T00:00:00Z")
    out = ok("trigger", "job")
    assert out.startswith("queued job@")
    now = datetime.now(timezone.utc)
    assert shared.stats(now + timedelta(seconds=1)).due >= 1
    out = ok("backfill", "job", "--from", "2025-01-01T00:00:00Z", "--to", "2025-01-01T05:30:00+00:00")
    assert out == "queued 6 backfill run(s) of job\n"
    assert ok("backfill", "job", "--from", "2025-01-01T00:00:00Z", "--to", "2025-01-01T05:30:00Z") == (
        "queued 0 backfill run(s) of job\n"
    )
    assert_user_error(invoke("backfill", "job", "--from", "2025-01-02T00:00:00Z", "--to", "2025-01-01T00:00:00Z"), 2)
    assert_user_error(invoke("backfill", "job", "--from", "yesterday"), 2, "invalid --from='yesterday'")
    assert_user_error(invoke("backfill", "job"), 2, "--from")


# -- which store -------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["list", "status", "sync", "add", "show", "remove", "trigger"])
def test_the_memory_store_is_refused_outside_run(command: str, tmp_path: Path) -> None:
    args = {"sync": [str(_write(tmp_path, ""))], "add": ["x", "m:f", "--every", "5"]}.get(command, [])
    if command in ("show", "remove", "trigger"):
        args = ["x"]
    result = invoke(command, "--store", "memory", *args)
    assert_user_error(result, 2, "memory store lives inside one 'schedcore run' process")


def test_unknown_store_lists_the_registered_ones(shared: MemoryStore) -> None:
    assert_user_error(invoke("list", "--store", "nosuch"), 2, "unknown store 'nosuch'", "memory", "shared")


# -- sync --------------------------------------------------------------------------------


def _write(tmp_path: Path, text: str, name: str = "jobs.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


JOBS = '[[schedule]]\nid = "a"\ntask = "schedcore.demo:hello"\nevery = 60\n\n'
JOBS += '[[schedule]]\nid = "b"\ntask = "schedcore.demo:hello"\ncron = "0 3 * * *"\n'


def test_sync_command(shared: MemoryStore, tmp_path: Path) -> None:
    ok("add", "by-hand", "schedcore.demo:hello", "--every", "10")
    path = _write(tmp_path, JOBS)
    assert ok("sync", str(path)).splitlines() == ["+ a", "+ b", "jobs.toml: 2 added, 0 updated, 0 unchanged, 0 removed"]
    assert ok("sync", str(path)).splitlines() == ["jobs.toml: 0 added, 0 updated, 2 unchanged, 0 removed"]
    path.write_text(JOBS.replace("every = 60", "every = 30").split("\n\n")[0] + "\n", encoding="utf-8")
    assert ok("sync", str(path)).splitlines() == ["~ a", "- b", "jobs.toml: 0 added, 1 updated, 0 unchanged, 1 removed"]
    assert [s.schedule.id for s in shared.list_schedules()] == ["a", "by-hand"]
    # another source name: its own set of schedules
    out = ok("sync", str(_write(tmp_path, JOBS.split("\n\n")[1], "b.toml")), "--source", "team-b")
    assert out.splitlines()[-1] == "team-b: 1 added, 0 updated, 0 unchanged, 0 removed"
    stored = shared.get("b")
    assert stored is not None and stored.schedule.meta[SOURCE_KEY] == "team-b"
    assert ok("sync", str(_write(tmp_path, "", "jobs.toml")), "--keep-removed").endswith("0 removed\n")
    assert shared.get("a") is not None


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("[[schedule]\n", ["invalid TOML"]),
        ('[[schedule]]\nid = "a"\ntask = "m:f"\ncrn = "0 3 * * *"\n', ["unknown key 'crn'", "did you mean 'cron'"]),
        (JOBS + '\n[[schedule]]\nid = "a"\ntask = "m:f"\nevery = 5\n', ["duplicate schedule id 'a'"]),
        (JOBS + '\n[[schedule]]\nid = "c"\ntask = "m:f"\nevery = -5\n', ["schedule 'c'", "every"]),
    ],
)
def test_sync_bad_files_change_nothing(shared: MemoryStore, tmp_path: Path, text: str, needles: list[str]) -> None:
    ok("sync", str(_write(tmp_path, JOBS.replace("every = 60", "every = 90"))))
    before = shared.list_schedules()
    assert_user_error(invoke("sync", str(_write(tmp_path, text))), 2, "jobs.toml", *needles)
    assert shared.list_schedules() == before


def test_sync_several_files_and_a_directory(shared: MemoryStore, tmp_path: Path) -> None:
    first, second = JOBS.split("\n\n")
    conf = tmp_path / "conf.d"
    conf.mkdir()
    _write(conf, first, "10-a.toml")
    _write(conf, second, "20-b.toml")
    _write(conf, "not a schedule file", "README")
    out = ok("sync", str(conf)).splitlines()
    assert out == [
        "+ a", "10-a.toml: 1 added, 0 updated, 0 unchanged, 0 removed",
        "+ b", "20-b.toml: 1 added, 0 updated, 0 unchanged, 0 removed",
    ]  # fmt: skip
    extra = _write(tmp_path, '[[schedule]]\nid = "c"\ntask = "schedcore.demo:hello"\nevery = 5\n', "c.toml")
    assert ok("sync", str(conf), str(extra)).splitlines()[-1] == "c.toml: 1 added, 0 updated, 0 unchanged, 0 removed"
    assert {s.schedule.meta[SOURCE_KEY] for s in shared.list_schedules()} == {"10-a.toml", "20-b.toml", "c.toml"}
    # each file prunes only its own schedules
    (conf / "20-b.toml").write_text("", encoding="utf-8")
    assert "1 removed" in ok("sync", str(conf))
    assert [s.schedule.id for s in shared.list_schedules()] == ["a", "c"]


def test_sync_of_several_files_checks_them_all_first(shared: MemoryStore, tmp_path: Path) -> None:
    good = _write(tmp_path, JOBS, "good.toml")
    before = shared.list_schedules()
    clash = _write(tmp_path, '[[schedule]]\nid = "a"\ntask = "schedcore.demo:hello"\nevery = 5\n', "clash.toml")
    assert_user_error(invoke("sync", str(good), str(clash)), 2, "clash.toml", "'a' is also in", "good.toml")
    bad = _write(tmp_path, "[[schedule]\n", "bad.toml")
    assert_user_error(invoke("sync", str(good), str(bad)), 2, "bad.toml", "invalid TOML")
    other = tmp_path / "other"
    other.mkdir()
    same_name = _write(other, '[[schedule]]\nid = "z"\ntask = "schedcore.demo:hello"\nevery = 5\n', "good.toml")
    assert_user_error(invoke("sync", str(good), str(same_name)), 2, "source id 'good.toml'")
    assert_user_error(invoke("sync", str(good), str(clash), "--source", "x"), 2, "--source names one file")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_user_error(invoke("sync", str(empty)), 2, "no *.toml schedule files")
    assert shared.list_schedules() == before


def test_run_config_syncs_the_file(shared: MemoryStore, tmp_path: Path) -> None:
    path = _write(tmp_path, JOBS)
    ok("add", "by-hand", "schedcore.demo:hello", "--every", "10")
    for _ in range(2):  # a restart changes nothing
        result = invoke("run", "--config", str(path), "--burst")
        assert result.exit_code == 0, result.output
    assert [s.schedule.id for s in shared.list_schedules()] == ["a", "b", "by-hand"]
    path.write_text(JOBS.split("\n\n")[1], encoding="utf-8")
    result = invoke("run", "--config", str(path), "--burst")
    assert "1 removed" in result.stderr
    assert [s.schedule.id for s in shared.list_schedules()] == ["b", "by-hand"]


# -- status and the heartbeat ------------------------------------------------------------


def test_status_shows_live_schedulers_and_not_dead_ones(shared: MemoryStore) -> None:
    now = datetime.now(timezone.utc)
    info = {"host": "alpha", "pid": 4242, "version": "9.9", "started": "2025-01-01T00:00:00+00:00"}
    shared.heartbeat("live-one", info, now=now, ttl=timedelta(minutes=5))
    shared.heartbeat("dead-one", {"host": "beta"}, now=now - timedelta(hours=1), ttl=timedelta(seconds=15))
    ok("add", "job", "schedcore.demo:hello", "--every", "3600", "--start", "2025-01-01T00:00:00Z")
    ok("trigger", "job")
    out = ok("status")
    assert "schedulers: 1 live" in out
    assert "live-one" in out and "alpha" in out and "4242" in out and "9.9" in out
    assert "dead-one" not in out
    assert "schedules: 1" in out and "in flight: 0 claim(s)" in out
    data = json.loads(ok("status", "--json"))
    assert [s["owner"] for s in data["schedulers"]] == ["live-one"]
    assert data["schedulers"][0]["host"] == "alpha"
    assert data["due_now"] == 1 and data["oldest_overdue"] is not None and data["in_flight"] == 0


def test_status_warns_when_runs_are_due_and_nobody_is_alive(shared: MemoryStore) -> None:
    ok("add", "job", "schedcore.demo:hello", "--every", "3600", "--start", "2025-01-01T00:00:00Z")
    ok("trigger", "job")
    result = invoke("status")
    assert result.exit_code == 3, result.output  # unhealthy: see tests/test_cli_health.py
    assert "schedulers: 0 live" in result.stdout and "due now: 1 (oldest overdue by" in result.stdout
    assert "no scheduler is alive" in result.stdout


def test_status_shows_what_the_store_warns_about(shared: MemoryStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shared, "warnings", lambda: ["store <x> has persistence off"], raising=False)
    assert "warning: store <x> has persistence off" in ok("status")
    assert json.loads(ok("status", "--json"))["warnings"] == ["store <x> has persistence off"]


def test_status_survives_a_store_whose_warnings_raise(shared: MemoryStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> list[str]:
        raise RuntimeError("boom")

    monkeypatch.setattr(shared, "warnings", broken, raising=False)
    assert json.loads(ok("status", "--json"))["warnings"] == []


def test_allowed_tasks_refuse_add_and_status_warns_when_off(shared: MemoryStore) -> None:
    refused = invoke("--allowed-tasks", "schedcore.demo:*", "add", "x", "os:system", "--every", "60")
    assert_user_error(refused, 2, "os:system", "not in the allowed tasks")  # bad input: 2
    env_refused = invoke("add", "x", "os:system", "--every", "60", env={"SCHEDCORE_ALLOWED_TASKS": "app:*"})
    assert_user_error(env_refused, 2, "not in the allowed tasks")
    assert shared.list_schedules() == []
    assert_user_error(invoke("--allowed-tasks", "app*", "status"), 2, "--allowed-tasks")
    # off: accepted, and status says so; a live scheduler without a list is named
    now = datetime.now(timezone.utc)
    shared.heartbeat("open-one", {"allowed_tasks": False}, now=now, ttl=timedelta(minutes=5))
    shared.heartbeat("closed-one", {"allowed_tasks": True}, now=now, ttl=timedelta(minutes=5))
    ok("add", "x", "os:system", "--every", "60")
    out = ok("status")
    assert "warning: the task allow-list is off here" in out
    assert "off in 1 live scheduler(s): open-one" in out
    on = ok("--allowed-tasks", "schedcore.demo:*", "status")
    assert "off here" not in on and "open-one" in on


def test_a_running_scheduler_beats_and_dies_after_the_ttl() -> None:
    clock = FakeClock(T0)
    store = MemoryStore()
    s = Scheduler(
        store,
        CallbackExecutor(clock=clock),
        clock=clock,
        plugins=get_plugin_manager(entry_points=False),
        owner="me",
        heartbeat=timedelta(seconds=5),
    )
    live: list[Any] = []
    clock.call_at(T0 + timedelta(seconds=12), lambda: live.extend(store.schedulers(clock.now())))
    clock.call_at(T0 + timedelta(seconds=12, milliseconds=1), s.stop)
    s.run()  # on the fake clock: wakes at each beat, no sleeping
    (beat,) = live
    assert beat.owner == "me" and beat.beat_at == T0 + timedelta(seconds=10)
    assert beat.expires_at == T0 + timedelta(seconds=25)
    assert {"host", "pid", "started", "version"} <= set(beat.info)
    assert beat.info["started"].startswith("2025-01-01T00:00:00")
    # A scheduler that dies keeps its last beat until the TTL passes; one that stops cleanly leaves at once.
    assert store.schedulers(T0 + timedelta(seconds=25)) == []


def test_the_heartbeat_does_not_wake_the_loop_more_often_than_its_interval() -> None:
    clock = FakeClock(T0)
    store = MemoryStore()
    s = Scheduler(
        store, CallbackExecutor(clock=clock), clock=clock, plugins=get_plugin_manager(entry_points=False), owner="me"
    )
    beats: list[datetime] = []
    real = store.heartbeat

    def spy(owner: str, info: Mapping[str, Any], *, now: datetime, ttl: timedelta) -> None:
        beats.append(now)
        real(owner, info, now=now, ttl=ttl)

    store.heartbeat = spy  # type: ignore[method-assign]
    for second in range(1, 30):  # outcomes and wake-ups in between beats
        clock.call_at(T0 + timedelta(seconds=second), s._wake.set)
    clock.call_at(T0 + timedelta(seconds=31), s.stop)
    s.run()
    stopped = T0 + timedelta(seconds=31)
    every = s.heartbeat
    assert every is not None
    assert beats == [T0 + every * k for k in range(int(timedelta(seconds=31) / every) + 1)] + [stopped]  # + at the stop


def test_a_scheduler_that_stopped_cleanly_leaves_status_at_once() -> None:
    clock = FakeClock(T0)
    store = MemoryStore()
    s = Scheduler(
        store, CallbackExecutor(clock=clock), clock=clock, plugins=get_plugin_manager(entry_points=False), owner="me"
    )
    seen: list[list[str]] = []
    clock.call_at(T0 + timedelta(seconds=7), lambda: seen.append([b.owner for b in store.schedulers(clock.now())]))
    clock.call_at(T0 + timedelta(seconds=8), s.stop)
    s.run()
    assert seen == [["me"]]  # live while running
    assert store.schedulers(clock.now() + timedelta(milliseconds=2)) == []  # gone right after a clean stop


def test_a_failing_heartbeat_is_logged_and_the_loop_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(T0)
    store = MemoryStore()
    executor = CallbackExecutor(clock=clock)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("read-only")

    store.heartbeat = broken  # type: ignore[method-assign]
    s = Scheduler(store, executor, clock=clock, plugins=get_plugin_manager(entry_points=False))
    with caplog.at_level(logging.WARNING):
        s.run(burst=True)
    assert any(getattr(r, "event", None) == "heartbeat_failed" for r in caplog.records)


# -- plugins' options ----------------------------------------------------------------------


def test_run_help_shows_the_options_of_installed_plugins() -> None:
    out = ok("run", "--help")
    for option in ("--redis-url", "--redis-namespace", "--queue", "--workers", "SCHEDCORE_REDIS_URL"):
        assert option in out
    assert "--queue" not in ok("list", "--help")  # the rq plugin only adds options to run
    assert "--redis-url" in ok("list", "--help")
    assert "--redis-url" not in ok("next", "--help")
    out = ok("plugins")
    assert "options:" in out and "--redis-url" in out


def test_a_plugin_option_for_another_store_is_refused_on_the_command_line(tmp_path: Path) -> None:
    assert_user_error(invoke("run", "--queue", "low", "--burst"), 2, "--queue applies to --executor rq")
    assert_user_error(invoke("run", "--redis-url", "redis://x", "--burst"), 2, "--redis-url applies to")
    # from the environment it is only used where it applies
    result = invoke("run", "--burst", env={"SCHEDCORE_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert result.exit_code == 0, result.output


def test_a_plugin_raising_in_the_options_hook_is_logged_and_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        @hookimpl
        def schedcore_cli_options(self, command: str) -> Sequence[CliOption]:
            raise RuntimeError("broken plugin")

    real = schedcore.plugins.get_plugin_manager
    monkeypatch.setattr(schedcore.plugins, "get_plugin_manager", lambda **kw: real(plugins=(Broken(),), **kw))
    result = invoke("run", "--burst")
    assert result.exit_code == 0, result.output
    assert "raised in hook schedcore_cli_options" in result.stderr and "broken plugin" in result.stderr


# -- real processes on a real Redis ----------------------------------------------------------


def _cli(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDCORE_")}
    return subprocess.run(
        [sys.executable, "-m", "schedcore.cli", *args],
        capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd, env=env,
    )  # fmt: skip


@pytest.mark.redis
def test_real_processes_on_a_real_redis(tmp_path: Path) -> None:
    """A settings file, two ``schedcore sync`` processes at once, then list/show/status and a burst run."""
    from schedcore.testing.redis_server import redis_server
    from schedcore_redis import RedisStore

    with redis_server() as server:
        settings = _write(tmp_path, f'store = "redis"\nredis_url = "{server.url}"\nredis_namespace = "ops"\n', "s.toml")
        jobs = "".join(
            f'[[schedule]]\nid = "job-{i:02d}"\ntask = "schedcore.demo:hello"\ncron = "{i} 3 * * *"\n\n'
            for i in range(40)
        )
        path = _write(tmp_path, jobs)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDCORE_")}
        env["SCHEDCORE_SETTINGS"] = str(settings)
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "schedcore.cli", "sync", str(path)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=tmp_path,
                env=env,
            )
            for _ in range(2)
        ]
        outputs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outputs
        added = sum(int(out.splitlines()[-1].split(": ")[1].split()[0]) for out, _ in outputs)
        assert added == 40  # each schedule added by exactly one of them

        listed = _cli("--settings", str(settings), "list", "--json", cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
        assert [i["id"] for i in json.loads(listed.stdout)] == [f"job-{i:02d}" for i in range(40)]
        shown = _cli("--settings", str(settings), "show", "job-07", cwd=tmp_path)
        assert shown.returncode == 0 and "cron '7 3 * * *' UTC" in shown.stdout

        # a due-now schedule, run by `schedcore run --store redis --redis-url URL --burst` (flags, no settings)
        added_now = _cli(
            "add", "now", "schedcore.demo:hello", "--every", "0.001", "--max-runs", "1", "--args", '["redis"]',
            "--store", "redis", "--redis-url", server.url, "--redis-namespace", "ops", cwd=tmp_path,
        )  # fmt: skip
        assert added_now.returncode == 0, added_now.stderr
        run = _cli(
            "run", "--store", "redis", "--redis-url", server.url, "--redis-namespace", "ops", "--burst",
            cwd=tmp_path,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert run.stdout.count("hello, redis!") == 1

        status = _cli("--settings", str(settings), "status", "--json", cwd=tmp_path)
        assert status.returncode == 0, status.stderr
        data = json.loads(status.stdout)
        assert data["schedules"] == 41
        assert data["schedulers"] == []  # the burst run beat, then left status when it stopped cleanly

        bad = _cli("--settings", str(settings), "show", "nope", cwd=tmp_path)
        assert bad.returncode == 1 and bad.stderr.splitlines()[-1] == "error: no schedule with id 'nope'"
        assert "Traceback" not in bad.stderr
        store = RedisStore.from_url(server.url, namespace="ops")
        try:
            stored = store.get("now")
            assert stored is not None and stored.runs_started == 1
        finally:
            store.close()


@pytest.mark.redis
def test_the_issue_4_command_with_plugin_options(tmp_path: Path) -> None:
    """``schedcore run --store redis --executor rq --redis-url URL --queue NAME --workers N --burst``."""
    pytest.importorskip("rq", reason="rq is not installed")
    import time

    import redis
    from test_rq_support import worker_env

    from schedcore.model import Schedule
    from schedcore.records import Pending, PendingKind, RunStatus
    from schedcore.testing.redis_server import redis_server
    from schedcore.triggers import At
    from schedcore_redis import RedisStore

    with redis_server() as server:
        store = RedisStore.from_url(server.url, namespace="issue4")
        conn = redis.Redis.from_url(server.url)
        try:
            due = datetime.fromtimestamp(int(time.time()) + 1, tz=timezone.utc)
            for i in range(3):
                schedule = Schedule(id=f"j{i}", task="test_rq_tasks:incr", args=[server.url, "n:cli"], trigger=At(due))
                store.add(schedule, Pending(kind=PendingKind.FIRE, nominal=due, due=due), "error")
            while datetime.now(timezone.utc) < due:
                time.sleep(0.05)
            env = {k: v for k, v in worker_env().items() if not k.startswith("SCHEDCORE_")}
            env["SCHEDCORE_STORE_OPTIONS"] = "namespace=issue4"
            env["SCHEDCORE_EXECUTOR_OPTIONS"] = "namespace=issue4"
            result = subprocess.run(
                [sys.executable, "-m", "schedcore.cli", "run", "--store", "redis", "--executor", "rq",
                 "--redis-url", server.url, "--queue", "cli-jobs", "--workers", "2", "--burst"],
                capture_output=True, text=True, timeout=120, check=False, env=env, cwd=tmp_path,
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
            assert int(conn.get("n:cli") or 0) == 3
            for i in range(3):
                [record] = store.history(f"j{i}")
                assert record.status is RunStatus.SUCCEEDED
        finally:
            conn.close()
            store.close()


def test_sync_takes_the_file_from_the_settings_or_the_environment(shared: MemoryStore, tmp_path: Path) -> None:
    path = _write(tmp_path, JOBS)
    settings = _write(tmp_path, 'config = "jobs.toml"\n', "s.toml")
    assert ok("--settings", str(settings), "sync").endswith("jobs.toml: 2 added, 0 updated, 0 unchanged, 0 removed\n")
    result = invoke("sync", env={"SCHEDCORE_CONFIG": str(path)})
    assert result.exit_code == 0 and "2 unchanged" in result.stdout
    assert_user_error(invoke("sync"), 2, "give a schedule FILE")
