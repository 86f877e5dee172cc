"""Schedule files (TOML): what they accept, and one clear ConfigError line for everything else."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from schedcore import At, ConfigError, Cron, Interval, RetryPolicy
from schedcore.config import SCHEDULE_KEYS, load_schedules, parse_schedules
from schedcore.model import Catchup, Overlap, Schedule

ROOT = Path(__file__).resolve().parent.parent


def _error(text: str, source: str = "jobs.toml") -> str:
    with pytest.raises(ConfigError) as info:
        parse_schedules(text, source=source)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{source}: ")
    return message


def test_every_trigger_kind_and_option() -> None:
    text = """
    [[schedule]]
    id = "nightly"
    task = "app.jobs:nightly"
    cron = "0 3 * * *"
    tz = "Europe/Paris"
    args = [1, "two"]
    kwargs = { verbose = true }
    queue = "low"
    retry = { max_attempts = 3, initial_delay = 5, factor = 3, max_delay = 60, jitter = 1.5 }
    catchup = "all"
    catchup_limit = 7
    misfire_grace = 30
    overlap = "buffer_one"
    jitter = 2
    start_at = 2025-01-01T00:00:00Z
    end_at = "2026-01-01T00:00:00+01:00"
    max_runs = 10
    paused = true
    meta = { owner = "ops", tags = ["a"] }
    executor_options = { timeout = 30 }

    [[schedule]]
    id = "tick"
    task = "schedcore.demo:hello"
    every = 2.5
    start = "2025-01-01T00:00:01Z"

    [[schedule]]
    id = "once"
    task = "schedcore.demo:hello"
    at = 2025-03-09T03:00:00-04:00
    """
    nightly, tick, once = parse_schedules(text)
    assert nightly == Schedule(
        id="nightly",
        task="app.jobs:nightly",
        trigger=Cron("0 3 * * *", tz="Europe/Paris"),
        args=(1, "two"),
        kwargs={"verbose": True},
        queue="low",
        retry=RetryPolicy(max_attempts=3, initial_delay=5, factor=3, max_delay=60, jitter=1.5),
        catchup=Catchup.ALL,
        catchup_limit=7,
        misfire_grace=30,
        overlap=Overlap.BUFFER_ONE,
        jitter=2,
        start_at=datetime(2025, 1, 1, tzinfo=timezone.utc),
        end_at=datetime(2025, 12, 31, 23, tzinfo=timezone.utc),
        max_runs=10,
        paused=True,
        meta={"owner": "ops", "tags": ["a"]},
        executor_options={"timeout": 30},
    )
    assert tick.trigger == Interval(timedelta(seconds=2.5), start=datetime(2025, 1, 1, 0, 0, 1, tzinfo=timezone.utc))
    assert once.trigger == At(datetime(2025, 3, 9, 7, tzinfo=timezone.utc))
    assert [s.id for s in (nightly, tick, once)] == ["nightly", "tick", "once"]


def test_cron_defaults_to_utc_and_options_to_model_defaults() -> None:
    (schedule,) = parse_schedules('[[schedule]]\nid = "a"\ntask = "m:f"\ncron = "@hourly"\n')
    assert schedule == Schedule(id="a", task="m:f", trigger=Cron("@hourly", tz="UTC"))


def test_empty_file_has_no_schedules() -> None:
    assert parse_schedules("") == []
    assert parse_schedules("# nothing yet\n") == []


def test_every_model_field_but_the_trigger_is_a_schedule_key() -> None:
    import attrs

    fields = {a.name for a in attrs.fields(Schedule)} - {"trigger", "serializer"}
    assert fields <= SCHEDULE_KEYS


@pytest.mark.parametrize("name", ["hello.toml", "retries.toml"])
def test_shipped_examples_load(name: str) -> None:
    schedules = load_schedules(ROOT / "examples" / name)
    assert schedules
    assert all(s.task.startswith("schedcore.demo:") for s in schedules)


def test_typo_names_key_file_and_schedule() -> None:
    message = _error('[[schedule]]\nid = "nightly"\ntask = "m:f"\ncrn = "0 3 * * *"\n')
    assert "'crn'" in message
    assert "'nightly'" in message
    assert "did you mean 'cron'" in message


def test_unknown_key_without_close_match_lists_allowed_keys() -> None:
    message = _error('[[schedule]]\nid = "a"\ntask = "m:f"\nevery = 5\nxyzzy = 1\n')
    assert "'xyzzy'" in message
    assert "allowed:" in message and "misfire_grace" in message


def test_schedule_without_id_is_named_by_position() -> None:
    message = _error('[[schedule]]\nid = "a"\ntask = "m:f"\nevery = 5\n\n[[schedule]]\ntask = "m:f"\nevery = 5\n')
    assert "schedule #2" in message
    assert "missing required key 'id'" in message


def test_missing_task() -> None:
    assert "missing required key 'task'" in _error('[[schedule]]\nid = "a"\nevery = 5\n')


def test_malformed_toml_gives_the_line() -> None:
    message = _error('[[schedule]]\nid = "a"\ntask = "m:f"\nevery = \n')
    assert "invalid TOML" in message
    assert "line 4" in message


def test_duplicate_ids() -> None:
    one = '[[schedule]]\nid = "dup"\ntask = "m:f"\nevery = 5\n'
    message = _error(one + '[[schedule]]\nid = "other"\ntask = "m:f"\nevery = 5\n' + one)
    assert "duplicate schedule id 'dup'" in message
    assert "#1 and #3" in message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('every = 5\ncron = "* * * * *"', "exactly one of 'cron', 'every', 'at' or 'trigger' (got 'cron' and 'every')"),
        ("", "exactly one of 'cron', 'every', 'at' or 'trigger' (got none)"),
        ('every = 5\ntrigger = { type = "at", when = 2031-01-01T00:00:00Z }', "(got 'every' and 'trigger')"),
        ('trigger = "cron"', "invalid trigger='cron': expected a table with a 'type'"),
        ('trigger = { expr = "0 3 * * *" }', "expected a table with a 'type'"),
        ('trigger = { type = "crn", expr = "0 3 * * *" }', "invalid trigger.type='crn': no trigger type"),
        ('trigger = { type = "cron", expr = "61 * * * *" }', "invalid trigger.expr='61 * * * *'"),
        ('trigger = { type = "cron", expr = "0 3 * * *", tz = "Mars/Olympus" }', "invalid trigger.tz='Mars/Olympus'"),
        ('trigger = { type = "cron", exp = "0 3 * * *" }', "invalid trigger.exp='0 3 * * *': unknown key"),
        ('trigger = { type = "interval" }', "trigger.every=None: missing from a interval trigger"),
        ('trigger = { type = "cron", expr = "0 3 * * *" }\ntz = "UTC"', "'tz' only goes with 'cron'"),
        ('every = 5\ntz = "UTC"', "'tz' only goes with 'cron'"),
        ('cron = "* * * * *"\nstart = "2025-01-01T00:00:00Z"', "'start' only goes with 'every'"),
        ('cron = "61 * * * *"', "invalid cron='61 * * * *'"),
        ('cron = "* * * * *"\ntz = "Mars/Olympus"', "invalid tz='Mars/Olympus'"),
        ("cron = 5", "invalid cron=5"),
        ("every = 0", "invalid every=0"),
        ("every = -3", "invalid every=-3"),
        ('every = "5s"', "invalid every='5s'"),
        ("at = 2025-03-09T03:00:00", "invalid at="),
        ('at = "2025-03-09T03:00:00"', "without a UTC offset"),
        ('at = "tomorrow"', "not an ISO-8601"),
        ("every = 5\nstart = 2025-01-01T00:00:00", "without a UTC offset"),
        ("every = 5\nretry = { max_atempts = 3 }", "retry.max_atempts"),
        ("every = 5\nretry = { max_attempts = 0 }", "retry.max_attempts=0"),
        ('every = 5\ncatchup = "sometimes"', "invalid catchup='sometimes'"),
        ('every = 5\noverlap = "never"', "invalid overlap='never'"),
        ("every = 5\nmax_runs = 0", "invalid max_runs=0"),
        ('every = 5\npaused = "yes"', "invalid paused='yes'"),
        ("every = 5\nargs = 5", "invalid args=5"),
        ("every = 5\nstart_at = 2025-01-02T00:00:00Z\nend_at = 2025-01-01T00:00:00Z", "invalid end_at="),
        ("every = 5\nmisfire_grace = -1", "invalid misfire_grace=-1"),
    ],
)
def test_bad_values_name_field_and_value(body: str, expected: str) -> None:
    message = _error(f'[[schedule]]\nid = "job"\ntask = "m:f"\n{body}\n')
    assert "schedule 'job'" in message
    assert expected in message


def test_a_trigger_table_names_any_registered_type() -> None:
    text = """
    [[schedule]]
    id = "inline"
    task = "app.jobs:a"
    trigger = { type = "cron", expr = "0 3 * * *", tz = "Europe/Paris" }

    [[schedule]]
    id = "table"
    task = "app.jobs:b"
    [schedule.trigger]
    type = "interval"
    every = 90
    start = 2025-01-01T00:00:30Z

    [[schedule]]
    id = "once"
    task = "app.jobs:c"
    trigger = { type = "at", when = 2031-05-01T10:00:00+02:00 }
    """
    inline, table, once = parse_schedules(text)
    assert inline.trigger == Cron("0 3 * * *", tz="Europe/Paris")
    assert table.trigger == Interval(90, start=datetime(2025, 1, 1, 0, 0, 30, tzinfo=timezone.utc))
    assert once.trigger == At("2031-05-01T10:00:00+02:00")


def test_bad_id_and_task() -> None:
    assert "invalid id='no spaces'" in _error('[[schedule]]\nid = "no spaces"\ntask = "m:f"\nevery = 5\n')
    assert "invalid task='not a ref'" in _error('[[schedule]]\nid = "a"\ntask = "not a ref"\nevery = 5\n')


def test_top_level_shape() -> None:
    assert "unknown top-level key 'schedules'" in _error('[[schedules]]\nid = "a"\n')
    assert "array of tables" in _error('[schedule]\nid = "a"\n')
    assert "must be an array of tables" in _error("schedule = 3\n")
    assert "expected a [[schedule]] table" in _error("schedule = [1]\n")


def test_load_reports_missing_file_and_directories(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: no such file"):
        load_schedules(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_schedules(tmp_path)
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'# caf\xe9\n[[schedule]]\nid = "a"\ntask = "m:f"\nevery = 5\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_schedules(bad)


def test_load_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "jobs.toml"
    path.write_text('[[schedule]]\nid = "a"\ntask = "m:f"\ncrn = "x"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_schedules(path)
    assert str(info.value).startswith(f"{path}: schedule 'a': unknown key 'crn'")
    path.write_text('[[schedule]]\nid = "a"\ntask = "m:f"\nevery = 5\n', encoding="utf-8")
    assert [s.id for s in load_schedules(str(path))] == ["a"]


def test_toml_dates_in_payloads_are_refused_clearly() -> None:
    message = _error('[[schedule]]\nid = "a"\ntask = "m:f"\nevery = 5\nargs = [2025-01-01]\n')
    assert "invalid args=" in message
    assert "quote dates and times" in message
