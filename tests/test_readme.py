"""The README says what works: its commands, snippets and outputs are run here.

The pages of ``docs/`` have their own test, ``tests/test_docs_samples.py``, which runs
every sample of every page.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from schedcore.cli import cli

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def marked_block(text: str, marker: str) -> str:
    """The fenced block right after ``<!-- marker -->``."""
    match = re.search(rf"<!-- {re.escape(marker)} -->\n```\w*\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)
    assert match, f"no block marked {marker!r}"
    return match.group(1)


def blocks(path: Path, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(path.read_text(encoding="utf-8")) if lang == language]


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False, cwd=cwd
    )


def test_quick_start_snippet_runs(tmp_path: Path) -> None:
    code = marked_block(README.read_text(encoding="utf-8"), "quick-start")
    assert (
        "from schedcore import Scheduler, Schedule, At, Interval, Cron, RetryPolicy, MemoryStore, LocalExecutor" in code
    )
    # run() loops until a signal; in the test it runs in burst mode so that it returns.
    assert "logging.basicConfig(level=logging.INFO)" in code  # the in-code quick start shows its lines
    assert code.count("sched.run()") == 1
    code = code.replace("sched.run()", "sched.run(burst=True)")
    code += (
        "\n(stored,) = sched.list()\n"
        "assert stored.schedule.id == 'nightly' and stored.next_fire is not None\n"
        "from zoneinfo import ZoneInfo\n"
        "assert stored.next_fire.nominal.astimezone(ZoneInfo('Europe/Paris')).hour == 3\n"
        "print('quick start ok')\n"
    )
    proc = run_python(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("quick start ok")


def test_simulated_time_snippet_prints_what_it_says(tmp_path: Path) -> None:
    code = marked_block(README.read_text(encoding="utf-8"), "simulated")
    expected = [line[2:] for line in code.splitlines() if line.startswith("# ")]
    assert expected, "the snippet shows its output in a trailing comment"
    proc = run_python(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "hello, simulated time!" in proc.stdout
    assert proc.stdout.splitlines()[-len(expected) :] == expected


def test_run_command_is_one_line_and_points_at_a_real_example() -> None:
    command = marked_block(README.read_text(encoding="utf-8"), "run-command").strip()
    assert "\n" not in command
    assert command.startswith("python3 -m venv .venv && .venv/bin/pip install -e . && ")
    words = shlex.split(command.rpartition("&& ")[2])
    assert words[:2] == [".venv/bin/schedcore", "run"]
    config = words[words.index("--config") + 1]
    assert (ROOT / config).is_file()


def test_readme_toml_excerpt_matches_the_example_file() -> None:
    (excerpt,) = blocks(README, "toml")
    example = (ROOT / "examples" / "hello.toml").read_text(encoding="utf-8").splitlines()
    for line in excerpt.splitlines():
        assert line in example, f"README shows {line!r}, which examples/hello.toml does not have"


def test_test_command_is_one_line_and_is_what_ci_runs() -> None:
    command = marked_block(README.read_text(encoding="utf-8"), "test-command").strip()
    assert "\n" not in command
    assert command == "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert ci.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in ci
    assert re.search(r'^\s*"?\$VENV/bin/python"? -m pytest\s*$', ci, re.MULTILINE), "CI runs the README's pytest"
    assert "install -q -e '.[test]'" in ci
    for step in ("ruff check .", "ruff format --check .", "mypy"):
        assert step in ci
    assert (ROOT / ".ci" / "run").stat().st_mode & 0o111, ".ci/run is executable"


def test_local_links_resolve() -> None:
    text = README.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
        assert (README.parent / target).exists(), f"README.md links to missing {target}"


def _console_examples() -> list[tuple[str, str, list[str]]]:
    """Every ``$ schedcore next ...`` line in the README, with the output shown under it."""
    found = []
    for path in [README]:
        for body in blocks(path, "console"):
            lines = body.splitlines()
            for index, line in enumerate(lines):
                if line.startswith("$ schedcore next "):
                    output = []
                    for following in lines[index + 1 :]:
                        if following.startswith("$ "):
                            break
                        output.append(following)
                    found.append((path.name, line[2:], output))
    return found


@pytest.mark.parametrize(("page", "command", "output"), _console_examples())
def test_console_examples_print_what_the_docs_show(page: str, command: str, output: list[str]) -> None:
    args = shlex.split(command)[1:]
    result = CliRunner().invoke(cli, args)
    if output and output[0].startswith("error: "):
        assert result.exit_code != 0
        assert result.stderr.splitlines() == output
    else:
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines() == output


def test_there_are_console_examples() -> None:
    assert len(_console_examples()) >= 1


_LOCAL_URL = "redis://localhost:6379/0"


@pytest.mark.redis
@pytest.mark.slow
def test_redis_and_rq_quick_start_runs_its_task_on_rq_workers(tmp_path: Path) -> None:
    """The README's shell flow, on a private redis-server: add, then run with workers."""
    from schedcore.testing.redis_server import redis_server

    lines = [line for line in marked_block(README.read_text(encoding="utf-8"), "rq-quick-start").splitlines() if line]
    assert lines[0].startswith(".venv/bin/pip install -e '.[redis,rq]'")  # this environment has both
    bindir = Path(sys.executable).parent
    with redis_server() as server:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        for line in lines[1:]:
            line = line.replace(_LOCAL_URL, server.url).replace(".venv/bin/", f"{bindir}/")
            if line.startswith("export "):
                env.update(dict(item.split("=", 1) for item in shlex.split(line)[1:]))
            elif " run " in line:
                proc = subprocess.Popen(shlex.split(line), env=env, cwd=tmp_path, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
                try:
                    deadline = time.monotonic() + 60
                    while time.monotonic() < deadline:
                        show = subprocess.run([f"{bindir}/schedcore", "show", "hello"], env=env,
                                              capture_output=True, text=True, timeout=60)  # fmt: skip
                        if "succeeded" in show.stdout:
                            break
                        time.sleep(0.5)
                finally:
                    proc.send_signal(signal.SIGTERM)
                    out, _ = proc.communicate(timeout=60)
                assert "succeeded" in show.stdout, out
                assert "hello, rq!" in out
                assert proc.returncode == 0, out
            else:
                done = subprocess.run(shlex.split(line), env=env, cwd=tmp_path, capture_output=True, text=True,
                                      timeout=60)  # fmt: skip
                assert done.returncode == 0, done.stderr


@pytest.mark.redis
@pytest.mark.slow
def test_redis_and_rq_in_code_hands_its_run_to_an_rq_worker(tmp_path: Path) -> None:
    """The README's code flow: the run it hands over is executed by a real ``rq worker``."""
    from schedcore.testing.redis_server import redis_server

    code = marked_block(README.read_text(encoding="utf-8"), "rq-in-code")
    assert code.count('url = "redis://localhost:6379/0"') == 1 and code.count("sched.run()") == 1
    with redis_server() as server:
        code = code.replace(_LOCAL_URL, server.url)
        # run() loops until a signal: here one run is triggered now and dispatched in burst mode.
        code = code.replace("sched.run()", 'sched.trigger_now("hello")\nsched.run(burst=True)')
        proc = run_python(code, tmp_path)
        assert proc.returncode == 0, proc.stderr
        worker = subprocess.run(
            [sys.executable, "-m", "rq.cli", "worker", "--burst", "--url", server.url, "default"],
            env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert worker.returncode == 0, worker.stderr
        assert "hello, rq!" in worker.stdout + worker.stderr


@pytest.mark.slow
def test_history_survives_a_restart_and_the_downtime_is_caught_up(tmp_path: Path) -> None:
    """The README's try-it, stopped and started again on the default SQLite file."""
    text = README.read_text(encoding="utf-8")
    flow = [line for line in marked_block(text, "restart-flow").splitlines() if line]
    run_line = marked_block(text, "run-command").strip().rpartition("&& ")[2]
    assert flow == [".venv/bin/schedcore show hello", run_line]
    bindir = Path(sys.executable).parent
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}  # the default file, in a temp dir

    def command(line: str) -> list[str]:
        return shlex.split(line.replace(".venv/bin/", f"{bindir}/"))

    def show(*, polling: bool = False) -> str:
        done = subprocess.run(command(flow[0]), env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
        if polling and "no schedule with id 'hello'" in done.stderr:
            return ""  # run has not synced the file yet
        assert done.returncode == 0, done.stderr
        return done.stdout

    def run_until(predicate: Callable[[str], bool]) -> str:
        proc = subprocess.Popen(command(run_line), env=env, cwd=ROOT, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not predicate(show(polling=True)):
                time.sleep(0.5)
        finally:
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
        return out

    first = run_until(lambda shown: "succeeded" in shown)
    assert "2 added" in first
    before = show()
    assert "succeeded" in before  # the history survived the stop
    time.sleep(8)  # downtime: two or three occurrences of the 3 s schedule are missed
    second = run_until(lambda shown: shown.count("succeeded") >= before.count("succeeded") + 2)
    assert "0 added, 0 updated, 2 unchanged" in second  # kept, not added again
    after = show()
    assert "catchup" in after  # missed beyond misfire_grace: recorded as skipped
    assert (tmp_path / "data" / "schedcore" / "schedcore.db").is_file()
