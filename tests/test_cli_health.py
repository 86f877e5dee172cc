"""``status`` as a health check (exit codes), ``trigger`` warning when no scheduler is alive,
and ``backfill``'s errors in ISO text naming the option (issue 12, friction items)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st

# the ``shared`` fixture: ``--store shared``, one MemoryStore for every command of a test
from test_cli_ops import shared  # noqa: F401

from schedcore import Interval, Schedule, Scheduler
from schedcore._health import HEALTHY, UNHEALTHY, assess
from schedcore._planner import BACKFILL_LIMIT
from schedcore.cli import cli
from schedcore.clock import FakeClock
from schedcore.exceptions import StoreUnavailable, ValidationError
from schedcore.memory import MemoryStore
from schedcore.protocols import SchedulerBeat, StoreStats
from schedcore.testing.executors import CallbackExecutor
from schedcore.testing.factories import T0

pytestmark = pytest.mark.usefixtures("clean_schedcore_env", "restore_logging")


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def error_line(result: Result, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.output)
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and "Traceback" not in result.output
    return line


def _beat(store: MemoryStore, owner: str = "alive-1") -> None:
    store.heartbeat(owner, {"host": "h"}, now=datetime.now(timezone.utc), ttl=timedelta(minutes=5))


def _due_job(store: MemoryStore, overdue: timedelta = timedelta(0)) -> None:
    """A schedule with one entry due ``overdue`` ago (a manual run queued then)."""
    now = datetime.now(timezone.utc)
    scheduler = Scheduler(store=store, executor=CallbackExecutor(), clock=FakeClock(now - overdue), heartbeat=None)
    scheduler.add(Schedule(id="job", task="schedcore.demo:hello", trigger=Interval(86400 * 365)))
    scheduler.trigger_now("job")


# -- status ------------------------------------------------------------------------------------


def test_status_is_healthy_with_nothing_due_or_a_live_scheduler(shared: MemoryStore) -> None:  # noqa: F811
    assert invoke("status").exit_code == HEALTHY  # empty store, nobody alive, nothing due
    _due_job(shared)
    _beat(shared)
    result = invoke("status")
    assert result.exit_code == HEALTHY, result.output
    assert "unhealthy" not in result.stdout
    data = json.loads(invoke("status", "--json").stdout)
    assert data["healthy"] is True and data["problems"] == []


def test_status_exits_3_when_runs_are_due_and_no_scheduler_is_alive(shared: MemoryStore) -> None:  # noqa: F811
    _due_job(shared)
    result = invoke("status")
    assert result.exit_code == UNHEALTHY == 3
    assert "unhealthy: runs are due but no scheduler is alive (1 due): nothing will run them" in result.stdout
    json_result = invoke("status", "--json")
    assert json_result.exit_code == 3
    data = json.loads(json_result.stdout)
    assert data["healthy"] is False and len(data["problems"]) == 1


def test_status_max_late_and_min_schedulers(shared: MemoryStore) -> None:  # noqa: F811
    _due_job(shared, overdue=timedelta(minutes=10))
    _beat(shared)
    assert invoke("status").exit_code == HEALTHY  # alive, and no lateness bound given
    assert invoke("status", "--max-late", "3600").exit_code == HEALTHY
    late = invoke("status", "--max-late", "120")
    assert late.exit_code == UNHEALTHY
    assert "more than --max-late 120s" in late.stdout and "the oldest due run has waited 6" in late.stdout
    few = invoke("status", "--min-schedulers", "2")
    assert few.exit_code == UNHEALTHY and "1 live scheduler(s), fewer than --min-schedulers 2" in few.stdout
    _beat(shared, "alive-2")
    assert invoke("status", "--min-schedulers", "2").exit_code == HEALTHY


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["--max-late", "-1"], "--max-late"), (["--max-late", "soon"], "--max-late"), (["--min-schedulers", "-2"], "")],
)
def test_status_bad_thresholds_are_usage_errors(shared: MemoryStore, args: list[str], needle: str) -> None:  # noqa: F811
    assert needle in error_line(invoke("status", *args), 2)


def test_status_exits_1_when_the_store_cannot_be_read(monkeypatch: pytest.MonkeyPatch) -> None:
    class Down(MemoryStore):
        def stats(self, now: datetime) -> Any:
            raise StoreUnavailable("redis at x: connection refused")

    import schedcore.plugins
    from schedcore.hookspecs import hookimpl
    from schedcore.plugins import StoreFactory

    class Plugin:
        @hookimpl
        def schedcore_store_factories(self) -> list[StoreFactory]:
            return [StoreFactory(name="down", create=lambda options: Down())]

    real = schedcore.plugins.get_plugin_manager
    monkeypatch.setattr(schedcore.plugins, "get_plugin_manager", lambda **kw: real(plugins=(Plugin(),), **kw))
    assert "connection refused" in error_line(invoke("status", "--store", "down"), 1)


def _stats(due: int = 0, oldest: datetime | None = None, expired: int = 0) -> StoreStats:
    return StoreStats(schedules=1, due=due, oldest_due=oldest, in_flight=0, expired=expired)


def test_expired_claims_with_nobody_alive_are_unhealthy() -> None:
    health = assess([], _stats(expired=2), T0)
    assert health.exit_code == UNHEALTHY and "2 claim(s) with an expired lease" in health.problems[0]


@given(
    alive=st.integers(0, 3),
    due=st.integers(0, 5),
    expired=st.integers(0, 2),
    waited=st.integers(0, 7200),
    max_late=st.none() | st.integers(0, 7200),
    min_schedulers=st.integers(0, 3),
)
def test_health_rule(
    alive: int, due: int, expired: int, waited: int, max_late: int | None, min_schedulers: int
) -> None:
    """Unhealthy exactly when one of the three rules holds, with one sentence per broken rule."""
    beats = [SchedulerBeat(owner=f"s{i}", beat_at=T0, expires_at=T0 + timedelta(seconds=6)) for i in range(alive)]
    oldest = T0 - timedelta(seconds=waited) if due else None
    limit = timedelta(seconds=max_late) if max_late is not None else None
    health = assess(beats, _stats(due, oldest, expired), T0, max_late=limit, min_schedulers=min_schedulers)
    broken = [
        alive == 0 and (due > 0 or expired > 0),
        due > 0 and max_late is not None and waited > max_late,
        alive < min_schedulers,
    ]
    assert len(health.problems) == sum(broken)
    assert health.healthy is (not any(broken))
    assert health.exit_code == (UNHEALTHY if any(broken) else HEALTHY)


# -- trigger -----------------------------------------------------------------------------------


def test_trigger_warns_when_no_scheduler_is_alive(shared: MemoryStore) -> None:  # noqa: F811
    assert invoke("add", "job", "schedcore.demo:hello", "--every", "3600").exit_code == 0
    lonely = invoke("trigger", "job")
    assert lonely.exit_code == 0 and lonely.stdout.startswith("queued job@")
    assert (
        "warning: no live scheduler was seen" in lonely.stderr and "nothing runs it until one starts" in lonely.stderr
    )
    _beat(shared)
    watched = invoke("trigger", "job")
    assert watched.exit_code == 0 and "warning" not in watched.stderr


# -- backfill ----------------------------------------------------------------------------------


def test_backfill_errors_are_iso_text_naming_the_option(shared: MemoryStore) -> None:  # noqa: F811
    assert invoke("add", "job", "schedcore.demo:hello", "--every", "1").exit_code == 0
    capped = error_line(invoke("backfill", "job", "--from", "2025-01-01T00:00:00Z", "--to", "2025-01-02T00:00:00Z"), 2)
    assert capped.startswith("error: invalid --to='2025-01-02T00:00:00Z': the range from 2025-01-01T00:00:00+00:00")
    assert f"more than {BACKFILL_LIMIT} occurrences" in capped and "datetime.datetime" not in capped
    to_now = error_line(invoke("backfill", "job", "--from", "2025-01-01T00:00:00Z"), 2)
    assert to_now.startswith("error: invalid --to='now, ") and "datetime.datetime" not in to_now
    future = error_line(invoke("backfill", "job", "--from", "2999-01-01T00:00:00Z"), 2)
    assert "invalid --from='2999-01-01T00:00:00Z': in the future" in future and "before --from" not in future
    backwards = error_line(
        invoke("backfill", "job", "--from", "2025-01-02T00:00:00Z", "--to", "2025-01-01T00:00:00Z"), 2
    )
    assert "invalid --to='2025-01-01T00:00:00Z': before --from='2025-01-02T00:00:00Z'" in backwards

    def backfills() -> int:
        claims = shared.claim_due(datetime.now(timezone.utc), limit=100, lease=timedelta(seconds=30), owner="t")
        shared.release(claims)
        return sum(c.entry.kind.value == "backfill" for c in claims)

    assert backfills() == 0  # none of them queued anything
    recent = (datetime.now(timezone.utc) - timedelta(seconds=5)).isoformat()
    queued = invoke("backfill", "job", "--from", recent)
    assert queued.exit_code == 0 and queued.stdout.startswith("queued ")
    assert "warning: no live scheduler was seen" in queued.stderr and "nothing runs them" in queued.stderr
    assert backfills() >= 5  # what a valid one queues is seen
    _beat(shared)
    watched = invoke("backfill", "job", "--from", (datetime.now(timezone.utc) - timedelta(seconds=5)).isoformat())
    assert watched.exit_code == 0 and "warning" not in watched.stderr


def test_backfill_limit_is_in_the_help_and_the_docs() -> None:
    from pathlib import Path

    assert str(BACKFILL_LIMIT) in invoke("backfill", "--help").stdout.replace(",", "")
    docs = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text(encoding="utf-8")
    section = docs[docs.index("## `schedcore backfill`") :]
    assert f"{BACKFILL_LIMIT:,}" in section[: section.index("\n## ")]


def test_the_python_api_shows_instants_as_iso_text() -> None:
    scheduler = Scheduler(store=MemoryStore(), executor=CallbackExecutor(), clock=FakeClock(T0), heartbeat=None)
    scheduler.add(Schedule(id="s", task="app:f", trigger=Interval(1)))
    with pytest.raises(ValidationError) as caught:
        scheduler.backfill("s", T0 - timedelta(days=1), T0)
    assert "datetime.datetime" not in str(caught.value)
    assert caught.value.field == "end" and caught.value.value == T0.isoformat(timespec="seconds")
