"""The real dashboard server, started with launch(), in headless Chromium."""

from __future__ import annotations

import socket
import time
import urllib.request
from pathlib import Path

import pytest

from medarena.dashboard import launch
from tests.dashboard.filled_db import PASSWORDS, PLATFORM_LOG, TEST_PLATFORM_LOG, TEST_STDERR, Filled

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


def deploy_buttons(page) -> int:
    """Streamlit's "Deploy" button (and its developer menu) on the page."""
    return (page.locator("[data-testid='stAppDeployButton']").count()
            + page.get_by_role("button", name="Deploy").count())


def log_in(page, username: str) -> None:
    sidebar = page.locator("[data-testid='stSidebar']")
    sidebar.get_by_role("textbox", name="User name", exact=True).fill(username)
    sidebar.get_by_role("textbox", name="Password", exact=True).fill(PASSWORDS[username])
    sidebar.get_by_role("button", name="Log in").click()
    sidebar.get_by_text(f"Logged in as {username}").wait_for(timeout=30_000)


def open_submission(page, submission_id: int) -> None:
    """Follow the leaderboard's link to a submission (in the app: a reload would start a new
    session, logged out)."""
    page.get_by_text("Open a submission").wait_for(timeout=60_000)
    page.wait_for_timeout(1500)  # the link follows its heading
    link = page.get_by_role("link", name=f"Open submission #{submission_id}")
    if link.count() == 0:  # not the one selected: choose it
        page.locator("[data-testid='stSelectbox']").filter(has_text="Submission").click()
        page.get_by_role("option").filter(has_text=f"#{submission_id} ").click()
    link.click()
    page.get_by_role("heading", name=f"Submission #{submission_id}").wait_for(timeout=60_000)


def open_failure(page, label: str) -> None:
    page.get_by_text(label).click()
    page.wait_for_timeout(300)


def shot(page, name: str) -> None:
    page.wait_for_timeout(800)  # let the charts and data grids paint
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


@pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM)
def test_participant_and_organizer_log_in_and_see_their_pages(dashboard_env: Filled) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = launch(port=port)
    ids = dashboard_env.ids
    try:
        wait_until_serving(base, server, seconds=120)
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                # anonymous: the public leaderboard with its ranking stability, no Deploy menu
                page = browser.new_page(viewport={"width": 1400, "height": 1600})
                page.goto(f"{base}/leaderboard?challenge=lungs&phase=validation")
                page.get_by_text("Ranking stability").wait_for(timeout=60_000)
                page.locator("[data-testid='stVegaLiteChart']").first.wait_for(timeout=60_000)
                assert deploy_buttons(page) == 0
                assert page.get_by_text("None that you can see.").count() == 1  # carol's run is hers
                shot(page, "dashboard-anonymous-leaderboard.png")

                # the participant bob: his own failed case with its logs, never the platform log
                log_in(page, "bob")
                assert deploy_buttons(page) == 0
                open_submission(page, ids["bob"])
                open_failure(page, "case002: timeout")
                page.get_by_text("Killed after 300 s").wait_for(timeout=30_000)
                assert page.get_by_text(PLATFORM_LOG).count() == 0
                assert page.get_by_text("platform log").count() == 0
                shot(page, "dashboard-participant-submission.png")
                page.close()

                # the organizer olga: the hidden test leaderboard and the platform log
                page = browser.new_page(viewport={"width": 1400, "height": 1600})
                page.goto(f"{base}/leaderboard?challenge=lungs&phase=test")
                page.get_by_text("The leaderboard of this phase is not public.").wait_for(timeout=60_000)
                log_in(page, "olga")
                page.get_by_text("only the challenge's organizers see it").wait_for(timeout=60_000)
                grid = page.locator("[data-testid='stDataFrame']").first
                grid.wait_for(timeout=60_000)
                assert deploy_buttons(page) == 0
                shot(page, "dashboard-organizer-hidden-leaderboard.png")
                open_submission(page, ids["alice-test"])
                open_failure(page, "case003: exit_code")
                page.get_by_text(TEST_PLATFORM_LOG).wait_for(timeout=30_000)
                page.get_by_text(TEST_STDERR).wait_for(timeout=30_000)
                shot(page, "dashboard-organizer-submission.png")
            finally:
                browser.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except Exception:
            server.kill()
            server.wait()
