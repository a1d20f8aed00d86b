"""The real dashboard server, started with launch(), in headless Chromium."""

from __future__ import annotations

import socket
import time
import urllib.request
from pathlib import Path

import pytest

from medarena.dashboard import launch
from tests.dashboard.filled_db import Filled

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
NO_CHROMIUM = ("no /usr/bin/chromium: infra/install-system.sh installs Debian's chromium; Ubuntu has no Chromium "
               "that runs without snapd (its chromium package only installs the snap), so this test skips there")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(url: str, server, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert server.poll() is None, "the dashboard server exited"
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"the dashboard did not answer at {url} within {seconds} s")


@pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM)
def test_leaderboard_page_in_a_browser(dashboard_env: Filled) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = launch(port=port)
    try:
        wait_until_serving(base, server)
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1600})
                page.goto(f"{base}/leaderboard?challenge=lungs&phase=validation")
                page.get_by_text("Leading: bob").wait_for(timeout=20_000)
                podium = page.locator("[data-testid='stTable']").first
                podium.wait_for(timeout=10_000)
                rows = podium.locator("tbody tr").all_inner_texts()
                assert [r.split("\t")[1].strip() for r in rows] == ["bob", "alice"]
                page.get_by_text("Submissions in progress or failed").wait_for()
                page.wait_for_timeout(500)  # let the charts and data grids paint
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "dashboard-leaderboard.png"), full_page=True)

                page.goto(f"{base}/submission?id={dashboard_env.ids['bob']}")
                page.get_by_text("case002: timeout").wait_for(timeout=20_000)
                page.locator("[data-testid='stMetricValue']", has_text="0.91").wait_for(timeout=10_000)
                page.locator("[data-testid='stVegaLiteChart']").last.wait_for(timeout=10_000)
                page.wait_for_timeout(1000)
                page.screenshot(path=str(ARTIFACTS / "dashboard-submission.png"), full_page=True)

                page.goto(f"{base}/case?submission={dashboard_env.ids['bob']}&case=case001")
                page.locator("[data-testid='stImage'] img").first.wait_for(timeout=20_000)
                page.screenshot(path=str(ARTIFACTS / "dashboard-case.png"), full_page=True)
            finally:
                browser.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except Exception:
            server.kill()
            server.wait()
