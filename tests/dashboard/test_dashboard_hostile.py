"""Hostile names, titles, comments and logs on every dashboard page (Streamlit's AppTest): each
reaches a Markdown-rendering element only escaped (so it shows as the characters it holds), and a
plain-text element (code, text, table, select box) with its control characters made visible."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from medarena.dashboard import app_path
from medarena.display import markdown_literal as md
from medarena.display import visible
from medarena.platform.database import Case, Challenge, Submission, session_scope
from tests.dashboard.filled_db import PASSWORDS, fill, store_case_images

NAME = "[/x] **bold** <b>h</b> :red[r] :material/home: $x^2$ [l](http://e.x) # \x1b[2J\u202eevil\x07"
TITLE = "Lungs **!** <i>x</i> :smile: \x1b]0;t\x07"
LOG = "step [/x] **1**\n\x1b[31mred\x1b[0m\r\n<script>alert(1)</script> \u202eevil"
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e]")
# Markdown that would render as something other than its characters, if it were left unescaped
UNESCAPED = re.compile(r"(?<!\\)(\*\*(bold|!|1)|<b>|<i>|<script>|\[l\]|\$x)")


@pytest.fixture(scope="module")
def hostile_db(tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("hostile-dashboard")
    url = f"sqlite:///{home}/t.db"
    ids = fill(url)
    store = str(home / "store")
    store_case_images(store, ids["bob"])
    with session_scope(url) as session:
        challenge = session.scalar(select(Challenge).where(Challenge.slug == "lungs"))
        challenge.title, challenge.description = TITLE, f"{NAME}\nsecond line"
        challenge.phases[0].title = TITLE
        bob = session.get(Submission, ids["bob"])
        bob.participant, bob.comment, bob.image = NAME, NAME, NAME
        failed = next(j for j in bob.jobs if j.state == "failed")
        failed.detail, failed.stdout_tail, failed.stderr_tail = NAME, LOG, LOG
        session.scalar(select(Case).where(Case.id == failed.case_id)).name = NAME
    return {"url": url, "home": home, "store": store, "ids": ids}


@pytest.fixture
def env(hostile_db: dict, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setenv("MEDARENA_HOME", str(hostile_db["home"]))
    monkeypatch.setenv("MEDARENA_DATABASE_URL", hostile_db["url"])
    monkeypatch.setenv("MEDARENA_STORE", hostile_db["store"])
    return hostile_db


def open_page(page: str | None = None, who: str | None = None, **params: str) -> AppTest:
    """A page as an anonymous viewer, or logged in as ``who`` (an account of filled_db)."""
    at = AppTest.from_file(str(app_path()), default_timeout=30).run()
    if who is not None:
        at.sidebar.text_input(key="login_user").input(who)
        at.sidebar.text_input(key="login_password").input(PASSWORDS[who])
        next(b for b in at.sidebar.button if b.label == "Log in").click().run()
    if page:
        for name, value in params.items():
            at.query_params[name] = value
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def markdown_texts(at: AppTest) -> Iterator[str]:
    """Every string a Markdown renderer receives: bodies, titles, captions, labels, st.table cells."""
    for kind in ("markdown", "title", "header", "subheader", "caption", "info", "warning", "error"):
        yield from (str(e.value) for e in at.get(kind))
    yield from (e.label for e in at.expander)
    yield from (e.label for e in at.metric)
    for table in at.table:
        frame = table.value
        yield from map(str, [*frame.columns, *frame.index, *frame.to_numpy().ravel()])


def plain_texts(at: AppTest) -> Iterator[str]:
    """Every string shown without Markdown: code, text, data frames and select-box options."""
    yield from (str(e.value) for e in at.code)
    yield from (str(e.value) for e in at.text)
    for frame in at.dataframe:
        yield from map(str, [*frame.value.columns, *frame.value.to_numpy().ravel()])
    for box in at.selectbox:
        yield from map(str, box.options)


def check_page(at: AppTest) -> tuple[list[str], list[str]]:
    shown_md, shown_plain = list(markdown_texts(at)), list(plain_texts(at))
    for text in shown_md + shown_plain:
        assert not RAW.search(text), text
    for text in shown_md:
        assert not UNESCAPED.search(text), text
    return shown_md, shown_plain


def test_challenges_page(env: dict) -> None:
    shown_md, shown_plain = check_page(open_page())
    assert md(TITLE) in shown_md  # the header and the phase title in the table
    assert shown_md.count(md(TITLE)) == 2
    assert visible(f"{NAME}\nsecond line", lines=True) in shown_plain  # the description, as text


def test_leaderboard_page(env: dict) -> None:
    at = open_page("views/leaderboard.py", challenge="lungs", phase="validation")
    shown_md, shown_plain = check_page(at)
    assert f"{md(TITLE)}: {md(TITLE)}" in [t.value for t in at.title]
    assert visible(NAME) in shown_plain  # the podium's leader, as text
    assert visible(NAME) in list(at.dataframe[0].value["participant"])
    assert visible(TITLE) in at.selectbox[0].options
    assert any(visible(NAME) in option for option in at.selectbox[-1].options)


def test_submission_page(env: dict) -> None:
    at = open_page("views/submission.py", who="olga", id=str(env["ids"]["bob"]))  # the organizer sees all
    shown_md, shown_plain = check_page(at)
    assert f"Submission #{env['ids']['bob']}" in [t.value for t in at.title]
    assert visible(f"Participant: {NAME}") in shown_plain
    assert any(visible(f"Comment: {NAME}") in text for text in shown_plain)
    assert f"{md(NAME)}: timeout" in [e.label for e in at.expander]
    assert [c.value for c in at.code].count(visible(LOG, lines=True)) == 2  # stdout and stderr
    assert visible(NAME) in list(at.dataframe[0].value["case"])


def test_case_page(env: dict) -> None:
    at = open_page("views/case.py", submission=str(env["ids"]["bob"]), case=NAME)
    check_page(at)
    assert f"Case {md(NAME)}" in [t.value for t in at.title]
    assert visible(NAME) in at.selectbox[0].options


def test_hostile_text_renders_as_its_characters_in_a_browser(env: dict) -> None:
    """The real frontend: escaped Markdown shows the very characters (no bold, link, HTML, emoji,
    icon, colour or math), the word joiners after colons being the only addition."""
    from tests.dashboard.test_dashboard_browser import (
        CHROMIUM,
        CHROMIUM_ARGS,
        free_port,
        sync_api,
        wait_until_serving,
    )

    if not CHROMIUM.exists():
        pytest.skip("chromium is not installed")
    from medarena.dashboard import launch

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
                page.locator("h3", has_text="Leading").first.wait_for(timeout=90_000)
                leader = page.locator("[data-testid='stText']").filter(has_text="bold").first
                leader.wait_for(timeout=30_000)
                shown = {"title": page.locator("h1").first.inner_text(), "leader": leader.inner_text()}
                markup = page.locator("h1 strong, h1 em, h1 b, h1 i, h1 img, h1 .katex, h3 strong, h3 b, h3 img, "
                                      "h3 .katex, [data-testid='stTable'] strong, [data-testid='stTable'] b, "
                                      "a[href*='e.x'], "
                                      "[class*='stMarkdownColor'], h1 [data-testid='stIconMaterial'], "
                                      "h3 [data-testid='stIconMaterial'], [data-testid='stTable'] "
                                      "[data-testid='stIconMaterial']")
                count = markup.count()
            finally:
                browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    joined = {name: text.replace("\u2060", "").strip() for name, text in shown.items()}
    assert joined == {"title": f"{visible(TITLE)}: {visible(TITLE)}", "leader": visible(NAME)}
    assert count == 0
