"""``schedcore web`` in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``) driven by selenium, against a real redis-server, a real ``schedcore web``
process, a real scheduler process (``schedcore run --executor rq``) and a real ``rq worker``.

Skipped when chromium or chromedriver is missing, unless ``SCHEDCORE_REQUIRE_BROWSER=1``
(CI sets it), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

# ruff: noqa: F401, F811  (pytest fixtures imported from test_rq_support)
from test_rq_support import rconn, rq_redis_url, start_worker, stop_process, wait_for, worker_env

from schedcore import Interval, Schedule, Scheduler
from schedcore_redis import RedisStore
from schedcore_web.screenshots import CHROMEDRIVER, CHROMIUM, chrome

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def _browser_or_skip() -> None:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).exists()]
    if missing:
        reason = f"headless browser missing ({', '.join(missing)}): apt-get install chromium chromium-driver"
        if os.environ.get("SCHEDCORE_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + " (SCHEDCORE_REQUIRE_BROWSER=1)")
        pytest.skip(reason)


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "schedcore.cli", *args],
        env=worker_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _served_url(process: subprocess.Popen[str], timeout: float = 30) -> str:
    """The URL ``schedcore web`` prints once it listens (its stderr, line by line)."""
    assert process.stderr is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        found = re.search(r"serving on (http://\S+)", line)
        if found:
            return found.group(1)
    raise AssertionError("schedcore web did not start:\n" + "".join(seen))


@pytest.fixture
def stack(rq_redis_url: str, rconn: redis.Redis) -> Iterator[dict[str, Any]]:
    """Schedules in Redis, a scheduler, a worker and the dashboard, all real processes."""
    _browser_or_skip()
    store = RedisStore.from_url(rq_redis_url)
    admin = Scheduler(store=store, heartbeat=None)
    # Hourly from a far start: nothing fires by itself during the test; the trigger does.
    admin.add(Schedule(id="tick", task="test_rq_tasks:incr", trigger=Interval(3600), args=[rq_redis_url, "n:web"]))
    admin.add(Schedule(id="other", task="test_rq_tasks:incr", trigger=Interval(7200), args=[rq_redis_url, "n:x"]))
    store.close()
    redis_opts = ["--store", "redis", "--redis-url", rq_redis_url]
    scheduler = _spawn("run", *redis_opts, "--executor", "rq", "-E", f"redis_url={rq_redis_url}")
    worker = start_worker(rq_redis_url, "rq.worker.SimpleWorker")
    web = _spawn("web", *redis_opts, "--port", "0")
    try:
        yield {"url": _served_url(web), "redis": rconn}
    finally:
        for process in (web, scheduler):
            process.terminate()
            try:
                process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
        stop_process(worker)


def test_list_open_pause_trigger_and_see_the_run_in_history(stack: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    driver = chrome()
    loaded = WebDriverWait(driver, 30)  # a click starts the navigation; wait for the next page
    try:
        driver.get(stack["url"])
        ids = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "a.sid")]
        assert ids == ["other", "tick"]
        driver.find_element(By.LINK_TEXT, "tick").click()
        loaded.until(expected_conditions.url_contains("/schedules/tick"))
        assert driver.find_element(By.TAG_NAME, "h1").text.endswith("tick")

        driver.find_element(By.ID, "pause").click()
        loaded.until(expected_conditions.url_contains("done=pause"))
        assert "Paused." in driver.find_element(By.CSS_SELECTOR, "p.notice").text
        assert driver.find_element(By.CSS_SELECTOR, "h1 .badge.paused").text == "paused"
        assert driver.find_elements(By.ID, "resume") and not driver.find_elements(By.ID, "pause")

        driver.find_element(By.ID, "trigger").click()
        loaded.until(expected_conditions.url_contains("done=trigger"))
        assert "Triggered" in driver.find_element(By.CSS_SELECTOR, "p.notice").text

        def ran() -> bool:
            driver.refresh()
            rows = driver.find_elements(By.CSS_SELECTOR, "table.history tbody tr")
            return any("manual" in row.text and "succeeded" in row.text for row in rows)

        wait_for(ran, timeout=60, interval=0.5, what="the manual run to appear as succeeded in the history")
        assert int(stack["redis"].get("n:web") or 0) == 1  # the worker really ran it, once
        driver.get(stack["url"] + "?status=paused")
        assert [a.text for a in driver.find_elements(By.CSS_SELECTOR, "a.sid")] == ["tick"]
    finally:
        driver.quit()
