"""``schedcore web``: the JSON API and the pages through Flask's test client, the security
rules (CSRF, read-only, authentication, the Host check, hostile content escaped) and the
non-loopback refusal of the command. The real-browser test is in test_web_browser.py."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

# ruff: noqa: F401, F811  (the `shared` fixture, a store that outlives each command, from test_cli_ops)
from test_cli_ops import shared

from schedcore import Cron, Interval, RetryPolicy, Schedule, Scheduler
from schedcore.cli import cli
from schedcore.clock import FakeClock
from schedcore.memory import MemoryStore
from schedcore.records import OutcomeStatus, Run
from schedcore.testing.executors import CallbackExecutor, Result
from schedcore.testing.factories import T0
from schedcore.testing.simulation import run_until
from schedcore_web import Activity, Auth, WebConfig, create_app
from schedcore_web._security import LOOPBACK_NAMES

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'

pytestmark = pytest.mark.usefixtures("clean_schedcore_env", "restore_logging")


def make(
    schedules: Sequence[Schedule] = (), handler: Any = None, *, store: Any = None, **config: Any
) -> tuple[FlaskClient, Scheduler, FakeClock]:
    clock = FakeClock(T0)
    store = MemoryStore(history_limit=500) if store is None else store
    scheduler = Scheduler(store, CallbackExecutor(handler, clock=clock), clock=clock)
    scheduler.add_many(list(schedules))
    config.setdefault("activity", Activity(ttl=timedelta(0)))
    app = create_app(scheduler, WebConfig(clock=clock.now, **config))
    return app.test_client(), scheduler, clock


def every(sid: str, seconds: int = 60, **kw: Any) -> Schedule:
    return Schedule(id=sid, task="schedcore.demo:hello", trigger=Interval(seconds, start=T0), **kw)


def csrf(client: FlaskClient) -> str:
    token = client.get("/api/csrf").get_json()["csrf_token"]
    assert isinstance(token, str) and token
    return token


def form_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF field in the form"
    return found.group(1)


# -- the schedules list and its pagination ------------------------------------------------


def test_api_pages_through_every_schedule_once_with_the_cursor() -> None:
    client, _, _ = make([every(f"job-{n:02d}") for n in range(25)])
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        query = "/api/schedules?limit=10" + (f"&after={after}" if after else "")
        data = client.get(query).get_json()
        seen += [row["id"] for row in data["schedules"]]
        pages += 1
        after = data["next_after"]
        if after is None:
            break
    assert seen == [f"job-{n:02d}" for n in range(25)]
    assert pages == 3


def test_a_page_reads_the_store_a_page_at_a_time_never_all_of_it(monkeypatch: pytest.MonkeyPatch) -> None:
    client, scheduler, _ = make([every(f"job-{n:03d}") for n in range(300)])
    asked: list[int] = []
    real = scheduler.store.list_schedules

    def counting(*, after: str | None = None, limit: int = 100) -> Any:
        asked.append(limit)
        return real(after=after, limit=limit)

    monkeypatch.setattr(scheduler.store, "list_schedules", counting)
    data = client.get("/api/schedules?limit=20").get_json()
    assert len(data["schedules"]) == 20 and data["next_after"] == "job-019"
    assert sum(asked) <= 21


def test_text_and_status_filters_page_too_within_the_scan_budget() -> None:
    schedules = [every(f"a-{n:03d}", paused=(n % 10 == 0)) for n in range(100)]
    client, _, _ = make(schedules, scan_budget=30)
    found: list[str] = []
    after = None
    while True:
        data = client.get("/api/schedules?status=paused&limit=5" + (f"&after={after}" if after else "")).get_json()
        assert data["scanned"] <= 30
        found += [row["id"] for row in data["schedules"]]
        after = data["next_after"]
        if after is None:
            break
    assert found == [f"a-{n:03d}" for n in range(0, 100, 10)]
    # A text filter (case-insensitive: id, task or trigger) that matches nothing in the first 30
    # schedules returns an empty page with a cursor: the next request goes on from there.
    data = client.get("/api/schedules?q=A-05").get_json()
    assert data["schedules"] == [] and data["next_after"] == "a-029" and data["scanned"] == 30
    data = client.get("/api/schedules?q=A-05&after=a-029").get_json()
    assert [row["id"] for row in data["schedules"]] == [f"a-{n:03d}" for n in range(50, 60)]
    assert data["next_after"] == "a-059"  # the budget ran out there


def test_bad_list_parameters_are_a_400_naming_the_field() -> None:
    client, _, _ = make()
    response = client.get("/api/schedules?status=bogus")
    assert response.status_code == 400 and response.get_json()["field"] == "status"
    response = client.get("/api/schedules?limit=0")
    assert response.status_code == 400 and response.get_json()["field"] == "limit"
    assert client.get("/?limit=100000").status_code == 400


def test_row_shows_last_outcome_running_and_pending_retries() -> None:
    def handler(run: Run) -> Result:
        return Result(status=OutcomeStatus.FAILED, error="ValueError: nope")

    flaky = every("flaky", 3600, retry=RetryPolicy(max_attempts=3, initial_delay=timedelta(minutes=5)))
    client, scheduler, _clock = make([flaky], handler)
    run_until(scheduler, T0 + timedelta(seconds=1))
    row = client.get("/api/schedules").get_json()["schedules"][0]
    assert row["last_outcome"] == "failed" and row["pending_retries"] == 1
    assert row["next_retry"]["utc"] == "2025-01-01T00:05:00Z"
    assert row["trigger"] == "every hour" and row["next_fire"]["utc"] == "2025-01-01T01:00:00Z"
    assert client.get("/api/schedules?status=retrying").get_json()["schedules"][0]["id"] == "flaky"
    assert client.get("/api/schedules?status=failing").get_json()["schedules"][0]["id"] == "flaky"
    run_until(scheduler, T0 + timedelta(minutes=30))  # both retries ran and failed: none pending
    row = client.get("/api/schedules").get_json()["schedules"][0]
    assert row["pending_retries"] == 0 and row["last_outcome"] == "failed"
    assert client.get("/api/schedules?status=retrying").get_json()["schedules"] == []


# -- a schedule ---------------------------------------------------------------------------


def test_schedule_detail_has_toml_that_round_trips_next_fires_with_dst_and_history() -> None:
    from schedcore.config import parse_schedules

    paris = Schedule(id="paris", task="schedcore.demo:hello", trigger=Cron("30 2 * * *", tz="Europe/Paris"),
                     args=["a \"quoted\" arg"], meta={"team": "ops"})  # fmt: skip
    client, scheduler, clock = make([paris])
    clock.set(datetime(2025, 3, 25, tzinfo=timezone.utc))
    scheduler.pause("paris")
    scheduler.resume("paris")  # fire entry from "now", a few days before the clocks change
    data = client.get("/api/schedules/paris").get_json()
    assert parse_schedules(data["toml"]) == [paris]
    fires = data["next_fires"]
    assert len(fires) == 10
    assert fires[0]["zoned"] == "2025-03-25T02:30:00+01:00"
    # 2025-03-30 02:30 does not exist in Paris: fixed-time jobs fire at the end of the gap.
    assert any(f["zoned"] == "2025-03-30T03:00:00+02:00" and f["offset_changed"] for f in fires)
    assert "fixed-time job" in data["dst_rule"]
    assert data["history"] == []
    assert client.get("/api/schedules/nope").status_code == 404
    page = client.get("/schedules/paris").get_data(as_text=True)
    assert "clocks changed" in page and "at 02:30 every day (Europe/Paris)" in page


def test_history_api_reports_lateness_attempt_error_and_duration() -> None:
    def handler(run: Run) -> Result:
        return Result(status=OutcomeStatus.FAILED, error="KeyError: 'x'", duration=2)

    client, scheduler, _ = make([every("job", 60)], handler)
    run_until(scheduler, T0 + timedelta(seconds=70))
    history = client.get("/api/schedules/job/history?limit=5").get_json()["history"]
    newest = history[-1]
    assert newest["status"] == "failed" and newest["attempt"] == 1 and newest["error"] == "KeyError: 'x'"
    assert newest["duration"] == 2.0 and newest["lateness"] == 0.0
    assert client.get("/api/schedules/job/history?limit=x").status_code == 400


# -- actions, CSRF and read-only --------------------------------------------------------------


def test_api_actions_with_a_csrf_token_pause_resume_trigger_backfill_remove() -> None:
    client, scheduler, clock = make([every("job", 60)])
    headers = {"X-CSRF-Token": csrf(client)}
    assert client.post("/api/schedules/job/pause", headers=headers).get_json() == {"id": "job", "paused": True}
    assert scheduler.get("job").schedule.paused  # type: ignore[union-attr]
    assert client.post("/api/schedules/job/resume", headers=headers).get_json()["paused"] is False
    run_id = client.post("/api/schedules/job/trigger", headers=headers).get_json()["run_id"]
    assert run_id.startswith("job@")
    clock.advance(timedelta(minutes=10))
    body = {"start": "2025-01-01T00:00:00Z", "end": "2025-01-01T00:03:00Z"}
    assert client.post("/api/schedules/job/backfill", json=body, headers=headers).get_json()["queued"] == 4
    bad = client.post("/api/schedules/job/backfill", json={"start": "yesterday"}, headers=headers)
    assert bad.status_code == 400 and bad.get_json()["field"] == "start"
    assert client.post("/api/schedules/job/remove", headers=headers).get_json()["removed"] is True
    assert scheduler.get("job") is None
    assert client.post("/api/schedules/job/pause", headers=headers).status_code == 404
    assert client.post("/api/schedules/job/explode", headers=headers).status_code == 404


def test_the_dashboard_on_the_sqlite_store(tmp_path: Any) -> None:
    """The web layer knows only the Store protocol: the default SQLite store serves it too."""
    from schedcore.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "web.db")
    try:
        client, scheduler, _ = make([every(f"job-{n}", 60) for n in range(3)], store=store)
        assert [row["id"] for row in client.get("/api/schedules?limit=2").get_json()["schedules"]] == ["job-0", "job-1"]
        headers = {"X-CSRF-Token": csrf(client)}
        assert client.post("/api/schedules/job-1/pause", headers=headers).get_json()["paused"] is True
        assert client.post("/api/schedules/job-2/trigger", headers=headers).get_json()["run_id"].startswith("job-2@")
        run_until(scheduler, T0 + timedelta(seconds=1))
        history = client.get("/api/schedules/job-2/history").get_json()
        assert history["history"] and {run["status"] for run in history["history"]} == {"succeeded"}
        page = client.get("/schedules/job-1")
        assert page.status_code == 200 and b"job-1" in page.data
        assert client.get("/overview").status_code == 200
    finally:
        store.close()


def test_post_without_or_with_a_wrong_csrf_token_changes_nothing() -> None:
    client, scheduler, _ = make([every("job")])
    assert client.post("/api/schedules/job/pause").status_code == 403
    assert client.post("/api/schedules/job/pause", headers={"X-CSRF-Token": "forged.token"}).status_code == 403
    other, _, _ = make()
    stolen = csrf(other)  # valid for another app's secret, not this one's cookie
    assert client.post("/api/schedules/job/pause", headers={"X-CSRF-Token": stolen}).status_code == 403
    assert client.post("/schedules/job/pause", data={"csrf_token": "x"}).status_code == 403
    assert not scheduler.get("job").schedule.paused  # type: ignore[union-attr]


def test_a_cross_origin_post_is_refused_even_with_the_token() -> None:
    client, scheduler, _ = make([every("job")])
    headers = {"X-CSRF-Token": csrf(client), "Origin": "https://evil.example"}
    assert client.post("/api/schedules/job/pause", headers=headers).status_code == 403
    assert not scheduler.get("job").schedule.paused  # type: ignore[union-attr]
    headers["Origin"] = "http://localhost"
    assert client.post("/api/schedules/job/pause", headers=headers).status_code == 200


def test_page_forms_carry_the_token_and_redirect_after_the_action() -> None:
    client, scheduler, _ = make([every("job")])
    page = client.get("/schedules/job").get_data(as_text=True)
    response = client.post("/schedules/job/pause", data={"csrf_token": form_token(page)})
    assert response.status_code == 303 and response.headers["Location"].endswith("/schedules/job?done=pause")
    assert scheduler.get("job").schedule.paused  # type: ignore[union-attr]
    assert "Paused." in client.get("/schedules/job?done=pause").get_data(as_text=True)
    # A backfill form's naive date-times are read in the schedule's zone (UTC here).
    page = client.get("/schedules/job").get_data(as_text=True)
    response = client.post(
        "/schedules/job/backfill", data={"csrf_token": form_token(page), "start": "2024-12-31T23:58", "end": ""}
    )
    assert response.status_code == 303
    response = client.post("/schedules/job/remove", data={"csrf_token": form_token(page)})
    assert response.status_code == 303 and scheduler.get("job") is None


def test_read_only_turns_every_action_off_and_hides_the_buttons() -> None:
    client, scheduler, _ = make([every("job")], read_only=True)
    token = csrf(client)
    for action in ("pause", "resume", "trigger", "remove", "backfill"):
        assert client.post(f"/api/schedules/job/{action}", headers={"X-CSRF-Token": token}).status_code == 403
        assert client.post(f"/schedules/job/{action}", data={"csrf_token": token}).status_code == 403
    assert scheduler.get("job") is not None and not scheduler.get("job").schedule.paused  # type: ignore[union-attr]
    page = client.get("/schedules/job").get_data(as_text=True)
    assert "actions are off" in page and 'id="pause"' not in page and "read-only" in page
    assert client.get("/api/").get_json()["read_only"] is True


# -- authentication and the Host check ----------------------------------------------------------


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_token_auth_bearer_or_basic_password_and_bearer_needs_no_csrf() -> None:
    client, _scheduler, _ = make([every("job")], auth=Auth(token="s3cret-token"))
    for path in ("/", "/overview", "/api/schedules", "/schedules/job", "/api/csrf"):
        response = client.get(path)
        assert response.status_code == 401 and "Basic" in response.headers["WWW-Authenticate"]
    assert client.get("/api/schedules", headers={"Authorization": "Bearer wrong-token"}).status_code == 401
    assert client.get("/", headers=basic("anyone", "s3cret-token")).status_code == 200
    bearer = {"Authorization": "Bearer s3cret-token"}
    assert client.post("/api/schedules/job/pause", headers=bearer).status_code == 200
    # basic auth is sent by browsers on their own: it still needs the CSRF token
    assert client.post("/api/schedules/job/resume", headers=basic("x", "s3cret-token")).status_code == 403


def test_basic_auth_user_and_password() -> None:
    client, _, _ = make(auth=Auth(username="ops", password="correct horse"))
    assert client.get("/", headers=basic("ops", "correct horse")).status_code == 200
    assert client.get("/", headers=basic("ops", "wrong horse!")).status_code == 401
    assert client.get("/", headers=basic("root", "correct horse")).status_code == 401
    assert client.get("/", headers={"Authorization": "Basic !!notbase64"}).status_code == 401
    with pytest.raises(ValueError, match="both"):
        Auth(username="ops")
    with pytest.raises(ValueError, match="at least 8"):
        Auth(token="short")
    assert "correct" not in repr(Auth(username="ops", password="correct horse"))


def test_only_loopback_host_names_are_served_when_so_configured() -> None:
    client, _, _ = make(allowed_hosts=LOOPBACK_NAMES)
    assert client.get("/api/schedules", headers={"Host": "localhost:8780"}).status_code == 200
    assert client.get("/api/schedules", headers={"Host": "[::1]:8780"}).status_code == 200
    assert client.get("/api/schedules", headers={"Host": "rebind.evil.example:8780"}).status_code == 400


def test_security_headers_on_every_page() -> None:
    client, _, _ = make([every("job")])
    response = client.get("/")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


# -- hostile content ----------------------------------------------------------------------------


def test_hostile_args_meta_task_and_error_texts_are_escaped_everywhere() -> None:
    def handler(run: Run) -> Result:
        return Result(status=OutcomeStatus.FAILED, error=f"RuntimeError: {HOSTILE}")

    job = every("job", 60, args=[HOSTILE], kwargs={HOSTILE: HOSTILE}, meta={"note": HOSTILE})
    client, scheduler, _ = make([job], handler)
    run_until(scheduler, T0 + timedelta(seconds=1))
    # A poisoned store can hold a task name no validation would let in.
    stored = scheduler.store.get("job")
    assert stored is not None
    object.__setattr__(stored.schedule, "task", f"evil:{HOSTILE}")
    for path in ("/", "/schedules/job", "/overview", f"/?q={HOSTILE}", "/schedules/" + "%3Cscript%3E"):
        html = client.get(path).get_data(as_text=True)
        assert "<script>alert" not in html and "<img src=x" not in html, path
    page = client.get("/schedules/job").get_data(as_text=True)
    assert "&lt;script&gt;alert(" in page  # shown, as text
    data = client.get("/api/schedules/job").get_json()
    assert data["history"][0]["error"] == f"RuntimeError: {HOSTILE}"  # JSON keeps the text as it is
    assert json.loads(client.get("/api/schedules/job").get_data(as_text=True))["definition"]["args"] == [HOSTILE]


def test_a_schedule_that_cannot_be_read_is_reported_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    from schedcore.exceptions import CorruptScheduleData

    client, scheduler, _ = make([every("good"), every("bad")])
    real = scheduler.store.history

    def history(schedule_id: str, limit: int = 50) -> Any:
        if schedule_id == "bad":
            raise CorruptScheduleData("bad", "undecodable run record")
        return real(schedule_id, limit)

    monkeypatch.setattr(scheduler.store, "history", history)
    data = client.get("/api/schedules").get_json()
    assert [row["id"] for row in data["schedules"]] == ["bad", "good"] and data["skipped"] == ["bad"]
    assert "Could not read the history of: bad" in client.get("/").get_data(as_text=True)
    assert client.get("/api/schedules/bad").status_code == 500
    assert client.get("/api/overview").status_code == 200


# -- the overview ---------------------------------------------------------------------------------


def test_overview_schedulers_stats_warnings_and_activity(monkeypatch: pytest.MonkeyPatch) -> None:
    def handler(run: Run) -> Result:
        return Result(status=OutcomeStatus.FAILED if run.schedule_id == "bad" else OutcomeStatus.SUCCEEDED)

    client, scheduler, clock = make([every("good", 60), every("bad", 120)], handler)
    run_until(scheduler, T0 + timedelta(minutes=10))
    data = client.get("/api/overview").get_json()
    assert data["schedulers"] == [] and data["warnings"] == []
    assert sum(data["activity"]["runs"]) == 11 + 6 and sum(data["activity"]["failures"]) == 6
    assert data["activity"]["complete"] is True and data["stats"]["schedules"] == 2
    scheduler.store.heartbeat("sched-1", {"host": "h1", "version": "9.9", "allowed_tasks": False},
                              now=clock.now(), ttl=timedelta(minutes=1))  # fmt: skip
    scheduler.trigger_now("good")
    monkeypatch.setattr(scheduler.store, "warnings", lambda: ["redis has persistence off"], raising=False)
    data = client.get("/api/overview").get_json()
    assert [(b["owner"], b["host"], b["version"]) for b in data["schedulers"]] == [("sched-1", "h1", "9.9")]
    assert data["stats"]["due"] == 1
    assert "redis has persistence off" in data["warnings"]
    assert any("allow-list is off" in w for w in data["warnings"])
    clock.advance(timedelta(minutes=5))  # the scheduler's beat expired; a run is due
    data = client.get("/api/overview").get_json()
    assert any("no scheduler is alive" in w for w in data["warnings"])
    assert "persistence off" in client.get("/overview").get_data(as_text=True)


def test_activity_reads_at_most_max_schedules_and_says_so() -> None:
    client, scheduler, _ = make([every(f"j{n}", 60) for n in range(5)], activity=Activity(max_schedules=2))
    run_until(scheduler, T0 + timedelta(minutes=2))
    activity = client.get("/api/overview").get_json()["activity"]
    assert activity["schedules_read"] == 2 and activity["complete"] is False
    assert "a sample" in client.get("/overview").get_data(as_text=True)


# -- the command --------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::", "example.com"])
def test_web_refuses_a_non_loopback_bind_without_auth(shared: MemoryStore, host: str) -> None:
    result = CliRunner().invoke(cli, ["web", "--store", "shared", "--host", host])
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "not loopback" in lines[0]


def test_web_bad_auth_settings_and_demo_misuse_are_usage_errors(shared: MemoryStore) -> None:
    result = CliRunner().invoke(cli, ["web", "--store", "shared", "--user", "ops"])
    assert result.exit_code == 2 and "both a user name and a password" in result.stderr
    result = CliRunner().invoke(cli, ["web", "--store", "shared", "--token", "short"])
    assert result.exit_code == 2 and "at least 8" in result.stderr
    result = CliRunner().invoke(cli, ["web", "--store", "shared", "--demo"])
    assert result.exit_code == 2 and "--demo only goes with --store memory" in result.stderr
    result = CliRunner().invoke(cli, ["web", "--store", "memory"])  # without --demo: nothing to see
    assert result.exit_code == 2 and "memory store" in result.stderr
