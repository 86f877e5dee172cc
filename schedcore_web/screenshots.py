"""Regenerate the screenshots of docs/web.md: ``python -m schedcore_web.screenshots [OUT_DIR]``.

Starts the demo store (:mod:`schedcore_web.demo`) with a running scheduler, serves the
dashboard on a free loopback port (waitress, in this process) and photographs the main
pages with headless Chromium driven by selenium (``/usr/bin/chromium`` and
``/usr/bin/chromedriver``, Debian's ``chromium`` and ``chromium-driver`` packages; nothing
is downloaded). Writes ``web-schedules.png``, ``web-schedule.png`` and ``web-overview.png``.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

from schedcore_web._app import WebConfig, create_app
from schedcore_web.demo import demo_store, pages_scheduler, start_demo_scheduler

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PAGES = (
    ("web-schedules.png", "/?limit=20"),
    ("web-schedule.png", "/schedules/sync.partners"),
    ("web-overview.png", "/overview"),
)


def chrome(width: int = 1360, height: int = 900) -> Any:
    """A headless Chromium driven through the system's chromedriver (selenium-manager never runs)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--window-size={width},{height}", "--hide-scrollbars"):  # fmt: skip
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


def main(out: Path) -> None:
    import waitress

    store = demo_store()
    running = start_demo_scheduler(store)
    scheduler = pages_scheduler(store)
    server = waitress.create_server(create_app(scheduler, WebConfig()), host="127.0.0.1", port=0)
    threading.Thread(target=server.run, daemon=True).start()
    base = f"http://127.0.0.1:{server.effective_port}"
    out.mkdir(parents=True, exist_ok=True)
    driver = chrome()
    try:
        for name, path in PAGES:
            driver.get(base + path)
            # As tall as the page, so one image shows all of it.
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(1360, min(max(int(height), 600), 1300))
            driver.get(base + path)
            driver.save_screenshot(str(out / name))
            print(f"wrote {out / name}")
    finally:
        driver.quit()
        server.close()
        running.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img"))
