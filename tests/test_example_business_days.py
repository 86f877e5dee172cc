"""The worked example of a custom trigger type, ``examples/schedcore-business-days``: found
through its entry point, correct around holidays and daylight saving, and the same on every
store (memory, SQLite, a real redis-server) and in a fresh ``schedcore`` process.

CI installs it (``pip install -e examples/schedcore-business-days``) and sets
``SCHEDCORE_REQUIRE_EXAMPLES=1``, so that these tests fail there instead of skipping when it
is missing.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from example_helpers import require_example
from redis_helpers import fresh_namespace, redis_server_url  # noqa: F401  (fixtures)

from schedcore import FakeClock, Schedule, Scheduler, ValidationError
from schedcore.config import parse_schedules
from schedcore.plugins import get_plugin_manager
from schedcore.protocols import Store
from schedcore.sqlite import SQLiteStore
from schedcore.testing.executors import CallbackExecutor
from schedcore.testing.trigger_suite import TriggerContract
from schedcore.trigger_types import TriggerRegistry

require_example("schedcore-business-days")

from schedcore_business_days import BusinessDays  # noqa: E402  (once it is known to be installed)
from schedcore_business_days import plugin as entry_point_plugin  # noqa: E402

UTC = timezone.utc
PARIS_HOLIDAYS = ["2025-12-25", "2026-01-01"]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def series(trigger: BusinessDays, start: datetime, count: int) -> list[datetime]:
    out: list[datetime] = []
    instant = start
    for _ in range(count):
        fire = trigger.next_after(instant)
        assert fire is not None
        out.append(fire.astimezone(UTC))
        instant = fire
    return out


# -- discovery ---------------------------------------------------------------------------------


def test_the_entry_point_registers_the_type() -> None:
    (ep,) = [ep for ep in importlib.metadata.entry_points(group="schedcore") if ep.name == "business_days"]
    assert ep.dist is not None and ep.dist.name == "schedcore-business-days"
    assert ep.load() is entry_point_plugin
    found = TriggerRegistry().get("business_days")  # a fresh registry: found on first miss
    assert found is not None and found.cls is BusinessDays


# -- the rule --------------------------------------------------------------------------------


def test_business_days_skip_weekends_and_holidays() -> None:
    trigger = BusinessDays(at="09:00", tz="Europe/Paris", holidays=PARIS_HOLIDAYS)
    # Wed 24 Dec 2025, 11:00 Paris: Thu 25 is a holiday, Sat/Sun are not business days,
    # Thu 1 Jan is a holiday.
    assert series(trigger, utc(2025, 12, 24, 10), 5) == [
        utc(2025, 12, 26, 8),
        utc(2025, 12, 29, 8),
        utc(2025, 12, 30, 8),
        utc(2025, 12, 31, 8),
        utc(2026, 1, 2, 8),
    ]


def test_other_weekdays_and_the_local_calendar() -> None:
    # Sunday to Thursday in Asia/Dubai (UTC+4): 00:30 local is 20:30 UTC the day before, and a
    # holiday is the local date, not the UTC one.
    trigger = BusinessDays(at="00:30", tz="Asia/Dubai", weekdays="sun-thu", holidays=["2025-03-31"])
    got = series(trigger, utc(2025, 3, 28), 4)  # Fri 28 March
    assert got == [utc(2025, 3, 29, 20, 30), utc(2025, 3, 31, 20, 30), utc(2025, 4, 1, 20, 30), utc(2025, 4, 2, 20, 30)]


def test_daylight_saving_keeps_the_wall_clock_time() -> None:
    trigger = BusinessDays(at="09:00", tz="Europe/Paris")
    # Clocks go forward on Sunday 30 March 2025: 09:00 is 08:00 UTC before, 07:00 UTC after.
    assert series(trigger, utc(2025, 3, 27, 12), 2) == [utc(2025, 3, 28, 8), utc(2025, 3, 31, 7)]


def test_a_time_in_the_gap_fires_at_its_end_and_a_repeated_time_once() -> None:
    # Sao Paulo jumped 00:00 -> 01:00 on Sunday 4 November 2018: 00:30 did not exist that day.
    gap = BusinessDays(at="00:30", tz="America/Sao_Paulo", weekdays="sun")
    fire = gap.next_after(utc(2018, 11, 1))
    assert fire is not None and fire.astimezone(UTC) == utc(2018, 11, 4, 3)  # 01:00 -02:00
    # Paris repeated 02:00-03:00 on Sunday 26 October 2025: 02:30 fires at its first pass only.
    overlap = BusinessDays(at="02:30", tz="Europe/Paris", weekdays="sun")
    assert series(overlap, utc(2025, 10, 20), 2) == [utc(2025, 10, 26, 0, 30), utc(2025, 11, 2, 1, 30)]


def test_holidays_are_normalised_and_serialised_as_iso_dates() -> None:
    trigger = BusinessDays(at="08:15", holidays=[date(2026, 1, 1), "2025-12-25", "2026-01-01"])
    assert trigger.holidays == (date(2025, 12, 25), date(2026, 1, 1))
    assert trigger.to_dict() == {
        "type": "business_days",
        "at": "08:15",
        "tz": "UTC",
        "holidays": ["2025-12-25", "2026-01-01"],
        "weekdays": "mon-fri",
    }
    assert trigger.describe() == "business days (mon-fri) at 08:15 UTC, except 2 holidays"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"at": "9:00"}, "trigger.at"),
        ({"at": "24:00"}, "trigger.at"),
        ({"at": 900}, "trigger.at"),
        ({"at": "09:00", "tz": "Mars/Olympus"}, "trigger.tz"),
        ({"at": "09:00", "weekdays": "mon-fry"}, "trigger.weekdays"),
        ({"at": "09:00", "weekdays": "1-5"}, "trigger.weekdays"),
        ({"at": "09:00", "weekdays": "mon-fri; rm -rf"}, "trigger.weekdays"),
        ({"at": "09:00", "holidays": "2025-12-25"}, "trigger.holidays"),
        ({"at": "09:00", "holidays": ["2025-13-01"]}, "trigger.holidays"),
        ({"at": "09:00", "holidays": ["25/12/2025"]}, "trigger.holidays"),
        ({"at": "09:00", "holidays": [datetime(2025, 12, 25, tzinfo=UTC)]}, "trigger.holidays"),
        ({"at": "09:00", "holidays": ["2025-01-01"] * 10_001}, "trigger.holidays"),
    ],
)
def test_bad_values_name_their_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        BusinessDays(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValidationError):
        BusinessDays(at="09:00").next_after(datetime(2025, 1, 1))


# -- the trigger contract (schedcore.testing.trigger_suite) --------------------------------------


class TestBusinessDaysContract(TriggerContract):
    @pytest.fixture(
        params=[
            BusinessDays(at="09:00", tz="Europe/Paris", holidays=PARIS_HOLIDAYS),
            BusinessDays(at="02:30", tz="Europe/Paris", weekdays="sat,sun"),  # gap and repeated hour
            BusinessDays(at="00:30", tz="America/Sao_Paulo", weekdays="sun-thu"),
            BusinessDays(at="23:59", tz="Australia/Lord_Howe", weekdays="fri-mon", holidays=["2024-01-05"]),
        ],
        ids=lambda t: t.describe(),
    )
    def trigger(self, request: pytest.FixtureRequest) -> BusinessDays:
        trigger: BusinessDays = request.param
        return trigger


# -- the same on every store --------------------------------------------------------------------

T0 = utc(2025, 12, 24, 10)  # Wed 24 Dec 2025, 11:00 in Paris
EXPECTED = [utc(2025, 12, 26, 8), utc(2025, 12, 29, 8), utc(2025, 12, 30, 8), utc(2025, 12, 31, 8), utc(2026, 1, 2, 8)]


def fired_on(store: Store) -> tuple[list[datetime], Schedule]:
    """Run a scheduler in simulated time over the holidays; the nominal times it dispatched."""
    clock = FakeClock(T0)
    executor = CallbackExecutor(lambda run: None, clock=clock)
    # Only the built-ins in the plugin manager: the type must come from the registry's own
    # entry-point lookup, as in a process that reads a store without building a scheduler.
    sched = Scheduler(store, executor, clock=clock, plugins=get_plugin_manager(entry_points=False))
    trigger = BusinessDays(at="09:00", tz="Europe/Paris", holidays=PARIS_HOLIDAYS)
    sched.add(Schedule(id="payroll", task="schedcore.demo:hello", trigger=trigger))
    while clock.now() < utc(2026, 1, 2, 12):
        wake = sched.tick()
        clock.set(min(wake or utc(2026, 1, 3), utc(2026, 1, 2, 12)))
    stored = sched.get("payroll")
    assert stored is not None
    return sorted(run.nominal for run in executor.executed), stored.schedule


def test_on_the_memory_store() -> None:
    from schedcore import MemoryStore

    fired, schedule = fired_on(MemoryStore())
    assert fired == EXPECTED
    assert schedule.trigger == BusinessDays(at="09:00", tz="Europe/Paris", holidays=PARIS_HOLIDAYS)


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / "schedules.db"


def test_on_the_sqlite_store_and_in_a_fresh_cli_process(sqlite_path: Path) -> None:
    store = SQLiteStore(sqlite_path)
    try:
        fired, _ = fired_on(store)
    finally:
        store.close()
    assert fired == EXPECTED
    again = SQLiteStore(sqlite_path)  # nothing cached: decoded from the file
    try:
        got = again.get("payroll")
        assert got is not None and got.schedule.trigger == BusinessDays("09:00", "Europe/Paris", PARIS_HOLIDAYS)
    finally:
        again.close()
    # A new process that only has the installed plugin: `schedcore list` decodes and describes it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDCORE_")}
    proc = subprocess.run(
        [sys.executable, "-m", "schedcore.cli", "list", "--json", "--sqlite-path", str(sqlite_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    (item,) = json.loads(proc.stdout)
    assert item["trigger"] == "business days (mon-fri) at 09:00 Europe/Paris, except 2 holidays"
    assert item["next_fire_zoned"].startswith("2026-01-05T09:00:00")  # Monday, shown in Paris time


@pytest.fixture
def redis_store(redis_server_url: str) -> Iterator[Store]:  # noqa: F811
    from schedcore_redis import RedisStore

    store = RedisStore.from_url(redis_server_url, namespace=fresh_namespace())
    yield store
    store.close()


@pytest.mark.redis
def test_on_redis(redis_store: Store, redis_server_url: str) -> None:  # noqa: F811
    from schedcore_redis import RedisStore

    fired, _ = fired_on(redis_store)
    assert fired == EXPECTED
    namespace = redis_store.namespace  # type: ignore[attr-defined]
    other = RedisStore.from_url(redis_server_url, namespace=namespace)  # another process's view
    try:
        got = other.get("payroll")
        assert got is not None and got.schedule.trigger == BusinessDays("09:00", "Europe/Paris", PARIS_HOLIDAYS)
        assert [s.schedule.id for s in other.list_schedules()] == ["payroll"]
    finally:
        other.close()


def test_in_a_schedule_file() -> None:
    text = """
    [[schedule]]
    id = "payroll"
    task = "app.jobs:payroll"
    [schedule.trigger]
    type = "business_days"
    at = "09:00"
    tz = "Europe/Paris"
    holidays = [2025-12-25, "2026-01-01"]   # TOML dates or strings
    """
    (schedule,) = parse_schedules(text)
    assert schedule.trigger == BusinessDays(at="09:00", tz="Europe/Paris", holidays=PARIS_HOLIDAYS)
    assert "trigger.at" in _file_error(text.replace('"09:00"', '"9am"'))


def _file_error(text: str) -> str:
    from schedcore import ConfigError

    with pytest.raises(ConfigError) as info:
        parse_schedules(text)
    return str(info.value)


def test_a_store_read_without_the_plugin_sets_only_that_schedule_aside(sqlite_path: Path) -> None:
    # A process without the plugin (simulated: its registry lost the type) reads a store that
    # holds a business-days schedule next to a plain one.
    from schedcore import CorruptScheduleData, Interval
    from schedcore import trigger_types as tt

    store = SQLiteStore(sqlite_path)
    store.add(Schedule(id="payroll", task="m:f", trigger=BusinessDays("09:00")), None, "error")
    store.add(Schedule(id="plain", task="m:f", trigger=Interval(60)), None, "error")
    store.close()
    tt.default_registry().unregister("business_days")
    try:
        again = SQLiteStore(sqlite_path)
        with pytest.raises(CorruptScheduleData, match=r"'business_days'.*plugin that provides it may be missing"):
            again.get("payroll")
        assert [s.schedule.id for s in again.list_schedules()] == ["plain"]
        again.close()
    finally:
        tt.register_trigger_type(entry_point_plugin.TYPE)
