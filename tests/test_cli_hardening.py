"""Silent defaults and hostile inputs on the command line (issue 11, item 9): an empty URL,
``history_limit=0``, an empty ``--tz``, arguments nested 60,000 levels deep, a 10 kB id and
a ``run --burst`` that could not dispatch are each refused or failed with one clear line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result

from schedcore import Schedule, ValidationError
from schedcore._validate import MAX_DEPTH
from schedcore.cli import cli
from schedcore.exceptions import ScheduleNotFound, shown
from schedcore.testing.redis_server import redis_server
from schedcore.triggers import Interval
from schedcore_redis import RedisStore

# A clean SCHEDCORE_* environment and logging restored after each test (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("clean_schedcore_env", "restore_logging")


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    """A private redis-server for this module (unix socket)."""
    with redis_server() as server:
        yield server.url


@pytest.fixture
def no_default_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test instead of connecting when a store or executor falls back to localhost:6379."""
    real = RedisStore.from_url.__func__  # type: ignore[attr-defined]

    def from_url(cls: type[RedisStore], url: str, **kwargs: Any) -> RedisStore:
        assert "localhost:6379" not in url, "an empty URL was taken for the default server"
        return real(cls, url, **kwargs)  # type: ignore[no-any-return]

    monkeypatch.setattr(RedisStore, "from_url", classmethod(from_url))


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def error_line(result: Result) -> str:
    """The one ``error:`` line of a failed command (no traceback)."""
    assert result.exit_code != 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    return errors[0]


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# -- empty URLs and silent defaults --------------------------------------------------------


@pytest.mark.usefixtures("no_default_server")
@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--redis-url", ""], "--redis-url"),
        (["-S", "url="], "url="),
        (["--redis-url", "   "], "--redis-url"),
    ],
)
def test_an_empty_redis_url_is_refused_not_taken_for_localhost(args: list[str], named: str) -> None:
    result = invoke("list", "--store", "redis", *args)
    line = error_line(result)
    assert result.exit_code == 2
    assert "store.url" in line and named in line and "empty" in line


@pytest.mark.usefixtures("no_default_server")
def test_an_empty_rq_redis_url_is_refused(url: str) -> None:
    result = invoke("run", "--burst", "--store", "redis", "-S", f"url={url}", "--executor", "rq", "-E", "redis_url=")
    line = error_line(result)
    assert "executor.redis_url" in line and "empty" in line


@pytest.mark.parametrize("value", ["0", "", "-3"])
def test_history_limit_zero_or_empty_is_refused_not_replaced_by_50(url: str, value: str) -> None:
    result = invoke("list", "--store", "redis", "-S", f"url={url}", "-S", f"history_limit={value}")
    line = error_line(result)
    assert "history_limit" in line


def test_history_limit_one_is_honoured(url: str) -> None:
    result = invoke("list", "--store", "redis", "-S", f"url={url}", "-S", "history_limit=1")
    assert result.exit_code == 0, result.output


def test_an_empty_tz_is_refused_not_stored_as_utc(url: str) -> None:
    result = invoke("add", "--store", "redis", "-S", f"url={url}", "tz-empty", "m:f", "--cron", "0 3 * * *", "--tz", "")
    assert result.exit_code == 2
    assert "invalid --tz=''" in error_line(result)
    assert "no schedule" in error_line(invoke("show", "--store", "redis", "-S", f"url={url}", "tz-empty"))


def test_next_refuses_an_empty_tz() -> None:
    result = invoke("next", "--cron", "0 3 * * *", "--tz", "", "-n", "1")
    assert result.exit_code == 2
    assert "invalid --tz=''" in error_line(result)


# -- deep nesting ----------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["--args", "--kwargs", "--executor-options", "--meta"])
def test_json_options_nested_60000_deep_are_one_clear_line(url: str, option: str) -> None:
    text = nested(60_000) if option == "--args" else '{"a": ' + nested(60_000) + "}"
    result = invoke("add", "--store", "redis", "-S", f"url={url}", "deep", "m:f", "--every", "60", option, text)
    line = error_line(result)
    assert result.exit_code == 2
    assert f"invalid {option}=" in line and "unexpected" not in line
    assert len(line) < 300


@pytest.mark.parametrize("option", ["--args", "--kwargs"])
def test_json_options_deeper_than_the_limit_are_refused_by_the_model(url: str, option: str) -> None:
    text = nested(MAX_DEPTH + 1) if option == "--args" else '{"a": ' + nested(MAX_DEPTH) + "}"
    result = invoke("add", "--store", "redis", "-S", f"url={url}", "deep", "m:f", "--every", "60", option, text)
    line = error_line(result)
    assert f"invalid {option}=" in line and f"nested more than {MAX_DEPTH} levels deep" in line


def test_store_option_nested_60000_deep_is_one_clear_line() -> None:
    result = invoke("list", "--store", "redis", "-S", "namespace=" + nested(60_000))
    line = error_line(result)
    assert result.exit_code == 2 and "--store-option" in line and "nested too deeply" in line


def test_schedule_refuses_deep_args_and_accepts_the_limit() -> None:
    deep: Any = []
    for _ in range(MAX_DEPTH):
        deep = [deep]
    with pytest.raises(ValidationError) as info:
        Schedule(id="d", task="m:f", trigger=Interval(60), args=(deep,))  # args itself is one more level
    assert info.value.field == "args" and "nested" in info.value.reason
    Schedule(id="d", task="m:f", trigger=Interval(60), args=(json.loads(nested(MAX_DEPTH - 1)),))
    very: Any = []
    for _ in range(60_000):
        very = [very]
    with pytest.raises(ValidationError, match="nested more than"):
        Schedule(id="d", task="m:f", trigger=Interval(60), kwargs={"x": very})


# -- long values in error lines -------------------------------------------------------------


def test_shown_cuts_long_values_and_never_raises() -> None:
    assert shown("abc") == "'abc'"
    long = shown("a" * 10_240)
    assert long.startswith("'" + "a" * 79) and long.endswith("… (10240 characters)") and len(long) < 110
    very: Any = []
    for _ in range(60_000):
        very = [very]
    assert "nested too deeply" in shown(very)
    assert len(str(ValidationError("id", "a" * 10_240, "bad"))) < 150
    assert len(str(ScheduleNotFound("a" * 10_240))) < 150


@pytest.mark.parametrize("command", ["show", "remove", "pause", "trigger"])
def test_a_10_kb_id_is_not_echoed_whole(url: str, command: str) -> None:
    result = invoke(command, "--store", "redis", "-S", f"url={url}", "a" * 10_240)
    line = error_line(result)
    assert len(line) < 250 and "(10240 characters)" in line


def test_a_10_kb_id_on_add_is_not_echoed_whole(url: str) -> None:
    line = error_line(invoke("add", "--store", "redis", "-S", f"url={url}", "a" * 10_240, "m:f", "--every", "5"))
    assert len(line) < 250 and "(10240 characters)" in line


# -- run --burst ----------------------------------------------------------------------------


def test_run_burst_fails_when_the_executor_redis_is_unreachable(url: str) -> None:
    base = ("--store", "redis", "-S", f"url={url}", "-S", "namespace=burst")
    assert invoke("add", *base, "b", "schedcore.demo:hello", "--every", "3600").exit_code == 0
    assert invoke("trigger", *base, "b").exit_code == 0
    result = invoke("run", "--burst", *base, "--executor", "rq", "-E", "redis_url=redis://127.0.0.1:1/0")
    line = error_line(result)
    assert result.exit_code == 1 and "RQ" in line
