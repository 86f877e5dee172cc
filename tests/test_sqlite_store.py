"""The conformance suite on SQLiteStore, plus what only the SQLite store promises: the file."""

from __future__ import annotations

import base64
import json
import pickle
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schedcore import _sqlite_schema as sqlite_schema
from schedcore import sqlite as sqlite_module
from schedcore._sqlite_schema import SCHEMA_VERSION
from schedcore.exceptions import CorruptScheduleData, StoreError, ValidationError
from schedcore.model import Conflict
from schedcore.protocols import Store
from schedcore.records import PendingKind, RunRecord, RunStatus
from schedcore.sqlite import SQLiteStore, default_path
from schedcore.testing import StoreConformance
from schedcore.testing.factories import at, commit_for, entry, fire_entry, make_schedule, outcome_for


class TestSQLiteStore(StoreConformance):
    history_limit = 50
    stateful_settings = settings(StoreConformance.stateful_settings, max_examples=60)

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        store = SQLiteStore(tmp_path / "s.db", history_limit=self.history_limit)
        yield store
        store.close()


class TestSQLiteSmallHistory(StoreConformance):
    """The suite again with a tiny history cap (the stateful test then exercises eviction)."""

    history_limit = 3

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        store = SQLiteStore(tmp_path / "s.db", history_limit=3)
        yield store
        store.close()


# -- the file ---------------------------------------------------------------------------


def _rows(path: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        with conn:
            return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def test_the_file_and_its_wal_files_are_readable_by_the_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "s.db"
    store = SQLiteStore(path)
    try:
        store.add(make_schedule("a"), fire_entry(10), Conflict.ERROR)  # a write: -wal and -shm exist now
        for name in ("s.db", "s.db-wal", "s.db-shm"):
            mode = stat.S_IMODE((path.parent / name).stat().st_mode)
            assert mode == 0o600, (name, oct(mode))
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert _rows(path, "PRAGMA journal_mode") == [("wal",)]
    finally:
        store.close()


def test_a_file_open_to_others_is_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "s.db"
    SQLiteStore(path).close()
    path.chmod(0o644)
    SQLiteStore(path).close()
    assert "chmod 600" in caplog.text


def test_data_survives_reopening(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    store.add(make_schedule("a"), fire_entry(10), Conflict.ERROR)
    c = store.claim_due(at(10), limit=5, lease=timedelta(seconds=30), owner="x")[0]
    assert store.commit([commit_for(c, next_fire=fire_entry(70))]) == [True]
    store.close()
    again = SQLiteStore(tmp_path / "s.db")
    try:
        stored = again.get("a")
        assert stored is not None and stored.next_fire == fire_entry(70) and stored.runs_started == 1
        assert [r.nominal for r in again.history("a")] == [at(10)]
        # fencing tokens keep increasing across reopening
        assert again.claim_due(at(70), limit=5, lease=timedelta(seconds=30), owner="y")[0].token > c.token
    finally:
        again.close()


def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("my precious notes\n" * 100)
    with pytest.raises(StoreError, match="not a SQLite database"):
        SQLiteStore(path)
    assert path.read_text() == "my precious notes\n" * 100


def test_a_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    _rows(path, "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    with pytest.raises(StoreError, match=r"without schedcore's tables.*users"):
        SQLiteStore(path)
    assert _rows(path, "SELECT name FROM sqlite_master WHERE type = 'table'") == [("users",)]


def test_a_damaged_file_gets_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    SQLiteStore(path).close()
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # the first page's b-tree (sqlite_master) is garbage now
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"damaged|malformed|not a database"):
        SQLiteStore(path)


def test_a_file_from_a_newer_schedcore_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    SQLiteStore(path).close()
    _rows(path, "UPDATE schedcore_meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StoreError, match=rf"newer schedcore \(schema {SCHEMA_VERSION + 1}.*upgrade"):
        SQLiteStore(path)


def test_an_older_schema_is_migrated_in_place_keeping_the_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    store.add(make_schedule("a"), fire_entry(10), Conflict.ERROR)
    store.close()
    # a later schedcore: schema + 1, with a step that adds a column
    step = ("ALTER TABLE history ADD COLUMN extra TEXT",)
    monkeypatch.setattr(sqlite_schema, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setitem(sqlite_schema.MIGRATIONS, SCHEMA_VERSION, step)
    again = SQLiteStore(path)
    try:
        assert again.get("a") is not None
        assert "migrated the schema" in caplog.text
    finally:
        again.close()
    assert _rows(path, "SELECT value FROM schedcore_meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION + 1),)]
    assert "extra" in [r[1] for r in _rows(path, "PRAGMA table_info(history)")]


def test_a_failed_migration_leaves_the_file_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.db"
    SQLiteStore(path).close()
    monkeypatch.setattr(sqlite_schema, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setitem(sqlite_schema.MIGRATIONS, SCHEMA_VERSION, ("ALTER TABLE history ADD COLUMN x", "NOT SQL"))
    with pytest.raises(StoreError):
        SQLiteStore(path)
    assert _rows(path, "SELECT value FROM schedcore_meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
    assert "x" not in [r[1] for r in _rows(path, "PRAGMA table_info(history)")]


@pytest.mark.parametrize("bad", [0, -1, True, "5"])
def test_bad_options_are_refused(tmp_path: Path, bad: object) -> None:
    for option in ("history_limit", "busy_timeout", "watch_interval", "synchronous"):
        with pytest.raises(ValidationError, match=option):
            SQLiteStore(tmp_path / "s.db", **{option: bad})  # type: ignore[arg-type]


@pytest.mark.parametrize(("level", "pragma"), [("full", 2), ("normal", 1)])
def test_the_durability_level_is_set_on_the_connection(tmp_path: Path, level: str, pragma: int) -> None:
    store = SQLiteStore(tmp_path / "s.db", synchronous=level)
    try:
        assert store._conn.execute("PRAGMA synchronous").fetchone() == (pragma,)
        assert store._conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        store.close()
    default = SQLiteStore(tmp_path / "d.db")
    assert default.synchronous == "full"  # durable against a power cut unless asked otherwise
    default.close()


def test_only_lease_bookkeeping_commits_without_the_fsync(tmp_path: Path) -> None:
    """Claims and heartbeats are what a restart treats as lapsed anyway: no fsync for them;
    everything a power cut must not undo (adds, commits, outcomes) keeps synchronous=FULL."""
    store = SQLiteStore(tmp_path / "s.db")
    seen: list[str] = []
    store._conn.set_trace_callback(seen.append)
    try:
        store.add(make_schedule("a"), fire_entry(0), Conflict.ERROR)
        claims = store.claim_due(at(0), limit=5, lease=timedelta(seconds=30), owner="x")
        store.heartbeat("x", {}, now=at(0), ttl=timedelta(seconds=6))
        assert store.commit([commit_for(c, next_fire=fire_entry(60)) for c in claims]) == [True]
        assert store.record_outcomes([(outcome_for("a", claims[0].entry), None)]) == [True]
        assert store._conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL again
    finally:
        store._conn.set_trace_callback(None)
        store.close()
    levels = [line for line in seen if line.startswith(("PRAGMA synchronous =", "BEGIN", "COMMIT"))]
    assert (
        levels
        == ["BEGIN IMMEDIATE", "COMMIT"]
        + ["PRAGMA synchronous = NORMAL", "BEGIN IMMEDIATE", "COMMIT", "PRAGMA synchronous = FULL"] * 2
        + ["BEGIN IMMEDIATE", "COMMIT"] * 2
    )


def test_default_path_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SCHEDCORE_SQLITE_PATH", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_path() == tmp_path / "xdg" / "schedcore" / "schedcore.db"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/not/allowed")  # the XDG spec: ignore relative paths
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_path() == tmp_path / "home" / ".local" / "share" / "schedcore" / "schedcore.db"
    monkeypatch.setenv("SCHEDCORE_SQLITE_PATH", str(tmp_path / "x.db"))
    assert default_path() == tmp_path / "x.db"


# -- hostile rows: one is reported and skipped, the others go on -------------------------


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[SQLiteStore, Path]]:
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    store.add(make_schedule("bad"), fire_entry(5), Conflict.ERROR)
    store.add(make_schedule("good"), fire_entry(10), Conflict.ERROR)
    yield store, path
    store.close()


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE schedules SET definition = 'not json' WHERE id = 'bad'",
        "UPDATE schedules SET definition = '[1, 2]' WHERE id = 'bad'",
        "UPDATE schedules SET definition = X'00ff' WHERE id = 'bad'",
        """UPDATE schedules SET definition = json_set(definition, '$.id', 'good') WHERE id = 'bad'""",
        """UPDATE schedules SET definition = json_set(definition, '$.serializer', 'pickle',
               '$.payload', 'v1.00.gASVAAAAAAAAAAB9lC4=') WHERE id = 'bad'""",
        "UPDATE entries SET kind = 'evil' WHERE schedule_id = 'bad'",
        "UPDATE entries SET due = 4.5 WHERE schedule_id = 'bad'",
        "UPDATE entries SET attempt = 'x' WHERE schedule_id = 'bad'",
    ],
)
def test_an_unreadable_schedule_is_reported_and_skipped_never_stopping_the_others(
    two: tuple[SQLiteStore, Path], damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    store, path = two
    _rows(path, damage)
    claims = store.claim_due(at(20), limit=10, lease=timedelta(seconds=30), owner="x")
    assert [c.schedule_id for c in claims] == ["good"]
    assert "'bad'" in caplog.text and "skipping it" in caplog.text
    assert store.next_due() == at(20 + 30)  # the good claim's lease; the bad entry does not wake anyone
    assert [s.schedule.id for s in store.list_schedules()] in (["good"], ["bad", "good"])
    assert _rows(path, "SELECT COUNT(*) FROM entries WHERE schedule_id = 'bad'") == [(1,)]  # left in place


def test_a_pickled_definition_is_never_unpickled_without_the_key(two: tuple[SQLiteStore, Path]) -> None:
    store, path = two
    payload = base64.b64encode(pickle.dumps(((), {}))).decode()
    _rows(
        path,
        "UPDATE schedules SET definition = json_set(definition, '$.serializer', 'pickle', '$.payload', ?)"
        " WHERE id = 'bad'",
        (f"v1.{'0' * 64}.{payload}",),
    )
    with pytest.raises(CorruptScheduleData, match="bad"):
        store.get("bad")


def test_an_unreadable_history_record_is_skipped(
    two: tuple[SQLiteStore, Path], caplog: pytest.LogCaptureFixture
) -> None:
    store, path = two
    for now in (10, 70):
        claims = store.claim_due(at(now), limit=5, lease=timedelta(seconds=30), owner="x")
        assert store.commit([commit_for(c, next_fire=fire_entry(now + 55)) for c in claims]) == [True, True]
    _rows(path, "UPDATE history SET record = '{' WHERE seq = (SELECT MIN(seq) FROM history WHERE schedule_id = 'bad')")
    assert [r.nominal for r in store.history("bad")] == [at(65)]
    assert "history record" in caplog.text


@pytest.mark.parametrize("record", ["{", "[1, 2]", "null", "x" * 100_000, "{" * 5_000])
def test_outcomes_whose_history_record_is_unreadable_still_end_their_runs(
    two: tuple[SQLiteStore, Path], caplog: pytest.LogCaptureFixture, record: str
) -> None:
    store, path = two
    claims = store.claim_due(at(10), limit=5, lease=timedelta(seconds=30), owner="x")
    assert store.commit([commit_for(c, next_fire=fire_entry(70)) for c in claims]) == [True, True]
    _rows(path, "UPDATE history SET record = ? WHERE schedule_id = 'bad'", (record,))
    outcomes = [(outcome_for(c.schedule_id, c.entry, "failed", error="x"), None) for c in claims]
    assert store.record_outcomes(outcomes) == [True, True]  # one bad record fails nothing else
    assert all(store.get(sid).running == () for sid in ("bad", "good"))  # type: ignore[union-attr]
    assert _rows(path, "SELECT record FROM history WHERE schedule_id = 'bad'") == [(record,)]  # left as it was
    assert [r.status for r in store.history("good")] == [RunStatus.FAILED]
    assert "'bad'" in caplog.text and "history record" in caplog.text


@pytest.mark.parametrize("value", ["X'00'", "'7'", "1.5", "NULL"])
def test_a_hostile_claim_row_refuses_only_its_own_commit(two: tuple[SQLiteStore, Path], value: str) -> None:
    store, path = two
    claims = store.claim_due(at(10), limit=5, lease=timedelta(seconds=30), owner="x")
    _rows(path, f"UPDATE schedules SET fire_token = {value} WHERE id = 'bad'")
    if value != "NULL":  # (a claim's token is NOT NULL)
        _rows(path, f"UPDATE claims SET token = {value} WHERE schedule_id = 'bad'")
    results = store.commit([commit_for(c, next_fire=fire_entry(70)) for c in claims])
    assert dict(zip([c.schedule_id for c in claims], results, strict=True)) == {"bad": value == "NULL", "good": True}
    assert [r.status for r in store.history("good")] == [RunStatus.DISPATCHED]


def test_a_finished_record_reads_back_like_the_other_stores(tmp_path: Path) -> None:
    """The record finished inside SQLite (json_set) is the record RunRecord.to_dict would write."""
    store = SQLiteStore(tmp_path / "s.db")
    store.add(make_schedule("a"), fire_entry(0), Conflict.ERROR)
    [c] = store.claim_due(at(0), limit=1, lease=timedelta(seconds=30), owner="x")
    assert store.commit([commit_for(c, next_fire=fire_entry(60))]) == [True]
    error = 'Boom: "quoted" \u00e9\n'
    trace = f'Traceback (most recent call last):\n  File "t.py", line 1, in <module>\n{error}'
    outcome = outcome_for("a", c.entry, "failed", finished_at=at(1.5), error=error, traceback=trace)
    assert store.record_outcomes([(outcome, entry("retry", 0, due=30, attempt=2))]) == [True]
    [(raw,)] = _rows(tmp_path / "s.db", "SELECT record FROM history")
    [record] = store.history("a")
    assert json.loads(str(raw)) == record.to_dict()
    assert (record.finished_at, record.error, record.retry_at) == (at(1.5), outcome.error, at(30))
    assert record.traceback == outcome.traceback and record.traceback
    store.close()


# -- doctor -----------------------------------------------------------------------------


def test_doctor_finds_and_repairs_the_damage_of_the_file(two: tuple[SQLiteStore, Path]) -> None:
    store, path = two
    store.claim_due(at(10), limit=1, lease=timedelta(seconds=5), owner="dead")  # bad's fire entry, claimed
    _rows(path, "UPDATE schedules SET definition = 'garbage' WHERE id = 'bad'")
    _rows(path, "INSERT INTO entries VALUES ('ghost', 'fire', 'fire', 0, 0, 1)")
    _rows(path, "DELETE FROM entries WHERE schedule_id = 'good'")
    _rows(path, "INSERT INTO beats VALUES ('odd', 'x', 'y', '[]')")
    report = store.check(now=at(100))
    kinds = sorted(f.kind for f in report.problems)
    assert kinds == ["missing_fire", "orphan_entry", "stale_claim", "unreadable", "unreadable"], report.rows()
    assert report.exit_code == 1
    repaired = store.check(repair=True, now=at(100))
    assert repaired.exit_code == 0 and all(f.repaired for f in repaired.problems)
    assert store.check(now=at(100)).problems == ()
    assert len(_rows(path, "SELECT * FROM quarantine")) == 2  # the definition and the beat, kept for the operator
    stored = store.get("good")
    assert stored is not None and stored.next_fire is not None and stored.next_fire.nominal >= at(100)
    assert store.get("bad") is None


def test_doctor_releases_stale_claims(two: tuple[SQLiteStore, Path]) -> None:
    store, _ = two
    store.claim_due(at(10), limit=5, lease=timedelta(seconds=5), owner="dead")
    report = store.check(now=at(60))
    assert sorted(f.kind for f in report.problems) == ["stale_claim", "stale_claim"]
    store.check(repair=True, now=at(60))
    assert store.stats(at(60)).due == 2


def test_doctor_reports_a_damaged_file(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    try:
        store.add_many([(make_schedule(f"s{i:04}"), fire_entry(i)) for i in range(2000)], Conflict.ERROR)
        _rows(path, "PRAGMA wal_checkpoint(TRUNCATE)")
        page = _rows(path, "PRAGMA page_size")[0][0]
        assert isinstance(page, int)
        data = bytearray(path.read_bytes())
        data[page * 3 : page * 3 + 64] = b"\x0d" + b"\xee" * 63  # an index page's header
        path.write_bytes(bytes(data))
        try:
            report = store.check(now=at(0))
        except StoreError as exc:
            assert "damaged" in str(exc)
        else:
            assert any(f.kind == "damaged_file" for f in report.problems), report.rows()
    finally:
        store.close()


# -- watch across store objects (as across processes) -----------------------------------


def test_watch_hears_the_writes_of_another_connection_within_the_interval(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    sleeper, writer = SQLiteStore(path), SQLiteStore(path)
    heard: list[tuple[datetime, float]] = []
    event = threading.Event()

    def callback(due: datetime) -> None:
        heard.append((due, time.monotonic()))
        event.set()

    stop = sleeper.watch(callback)
    try:
        writer.add(make_schedule("late"), fire_entry(500), Conflict.ERROR)
        time.sleep(0.3)  # the poller saw the first entry: the earliest one it knows
        event.clear()
        heard.clear()
        writer.add(make_schedule("later"), fire_entry(900), Conflict.ERROR)  # not earlier: no news
        writer.add(make_schedule("early"), fire_entry(100), Conflict.ERROR)
        written = time.monotonic()
        assert event.wait(5.0)
        assert heard[0][0] == at(100)
        assert heard[0][1] - written < 2.0  # generous: the bound is the 50 ms interval (measured by the bench)
    finally:
        stop()
        sleeper.close()
        writer.close()


# -- the record codec -------------------------------------------------------------------

_instants = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(9000, 1, 1), timezones=st.just(timezone.utc)
).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))


@given(
    st.builds(
        RunRecord,
        run_id=st.text(),
        kind=st.sampled_from(PendingKind),
        nominal=_instants,
        due=_instants,
        attempt=st.integers(0, 2**62),
        status=st.sampled_from(RunStatus),
        dispatched_at=st.none() | _instants,
        finished_at=st.none() | _instants,
        error=st.none() | st.text(),
        retry_at=st.none() | _instants,
        note=st.none() | st.text(),
        traceback=st.none() | st.text(),
    )
)
def test_the_compact_record_codec_writes_exactly_what_to_dict_does(record: RunRecord) -> None:
    text = sqlite_module._encode_record(record)
    assert text == json.dumps(record.to_dict(), separators=(",", ":"))
    assert RunRecord.from_dict(json.loads(text)) == record
