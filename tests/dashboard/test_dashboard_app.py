"""The dashboard's pages under Streamlit's AppTest, on the filled database (see conftest), as each
viewer sees them after logging in through the sidebar: anonymous, the participant, another
participant, the organizer, the admin."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from medarena.accounts.throttle import MAX_FAILURES_PER_ACCOUNT
from medarena.dashboard import app_path
from medarena.errors import Unauthenticated
from medarena.platform.settings import load_settings
from medarena.services import accounts
from tests.dashboard.filled_db import (
    PASSWORDS,
    PLATFORM_LOG,
    TEST_PLATFORM_LOG,
    TEST_STDERR,
    TIMEOUT_DETAIL,
    Filled,
)


def log_in(at: AppTest, username: str, password: str) -> AppTest:
    at.sidebar.text_input(key="login_user").input(username)
    at.sidebar.text_input(key="login_password").input(password)
    next(b for b in at.sidebar.button if b.label == "Log in").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def open_page(page: str, who: str | None = None, **params: str) -> AppTest:
    at = AppTest.from_file(str(app_path()), default_timeout=30).run()
    if who is not None:
        log_in(at, who, PASSWORDS[who])
        assert f"Logged in as {who}" in sidebar_text(at)
    for name, value in params.items():
        at.query_params[name] = value
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def sidebar_text(at: AppTest) -> str:
    return "\n".join(str(t.value) for t in at.sidebar.text)


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [t.value for t in at.title]
    parts += [i.value for i in at.info] + [w.value for w in at.warning] + [e.label for e in at.expander]
    parts += [c.value for c in at.code] + [t.value for t in at.text] + [s.value for s in at.subheader]
    return "\n".join(str(p) for p in parts)


def test_challenges_page_lists_phases_with_counts(dashboard_env: Filled) -> None:
    at = AppTest.from_file(str(app_path()), default_timeout=30).run()
    assert not at.exception
    assert "Lung Nodule Segmentation" in [h.value for h in at.header]
    phases = at.table[0].value
    assert list(phases.index) == ["Validation", "Final test", "Live"]
    assert phases.loc["Validation", "state"] == "open"
    assert phases.loc["Final test", "state"] == "closed"
    assert phases.loc["Validation", "submissions"] == 2  # carol's running one is hers
    assert phases.loc["Final test", "submissions"] == 0
    assert list(phases["cases"]) == [3, 3, 3]
    assert phases.loc["Final test", "leaderboard"] == "hidden"


def leaderboard_page(who: str | None, phase: str = "validation") -> AppTest:
    return open_page("views/leaderboard.py", who, challenge="lungs", phase=phase)


def frames(at: AppTest) -> list:
    return [frame.value for frame in at.dataframe]


@pytest.mark.parametrize("who", [None, "alice", "olga", "root"])
def test_leaderboard_in_rank_order_with_stability(dashboard_env: Filled, who: str | None) -> None:
    at = leaderboard_page(who)
    assert "bob" in [t.value for t in at.text]  # the leader, as plain text
    podium, board = frames(at)[:2]
    assert list(podium["participant"]) == ["bob", "alice"]
    assert list(podium["rank interval"]) == ["1–2", "1–2"]
    assert list(board["participant"]) == ["bob", "alice"]
    assert list(board["dice (nodule) mean"]) == [0.905, 0.7233]
    assert list(board["submission"]) == [f"submission?id={dashboard_env.ids['bob']}",
                                         f"submission?id={dashboard_env.ids['alice']}"]
    assert "Ranking stability" in [h.value for h in at.subheader]
    specs = [chart.proto.spec for chart in at.get("vega_lite_chart")]
    assert any("bootstrap rank" in spec and "frequency" in spec for spec in specs), "no blob plot"


def in_progress(at: AppTest):
    shown = [f for f in frames(at) if "running" in f.columns]
    return shown[0] if shown else None


@pytest.mark.parametrize("who", [None, "alice", "bob"])
def test_others_do_not_see_a_running_submission(dashboard_env: Filled, who: str | None) -> None:
    at = leaderboard_page(who)
    assert in_progress(at) is None
    assert "None that you can see." in texts(at)
    [chooser] = [s for s in at.selectbox if s.label == "Submission"]
    assert f"#{dashboard_env.ids['bob']} · bob" in " ".join(chooser.options)
    assert f"#{dashboard_env.ids['carol']} " not in " ".join(chooser.options)


@pytest.mark.parametrize("who", ["carol", "olga", "root"])
def test_owner_and_organizers_see_the_running_submission(dashboard_env: Filled, who: str) -> None:
    table = in_progress(leaderboard_page(who))
    assert list(table["participant"]) == ["carol"]
    assert table.iloc[0][["succeeded", "running", "queued"]].tolist() == [1, 1, 1]


def test_leaderboard_selection_follows_the_select_boxes(dashboard_env: Filled) -> None:
    at = open_page("views/leaderboard.py")  # no query parameters: the first challenge and phase
    assert at.selectbox[1].value == "validation"
    at.selectbox[1].set_value("live").run()
    assert not at.exception
    assert at.query_params["phase"] == "live"
    assert "not been ranked yet" in texts(at)
    assert list(at.dataframe[0].value["participant"]) == ["dave"]


@pytest.mark.parametrize("who", [None, "alice", "bob"])
def test_hidden_leaderboard_shows_no_scores_to_participants(dashboard_env: Filled, who: str | None) -> None:
    at = leaderboard_page(who, "test")
    assert "The leaderboard of this phase is not public." in texts(at)
    assert all("score" not in frame.columns for frame in frames(at))
    assert "Ranking stability" not in texts(at)


@pytest.mark.parametrize("who", ["olga", "root"])
def test_hidden_leaderboard_is_shown_to_organizers(dashboard_env: Filled, who: str) -> None:
    at = leaderboard_page(who, "test")
    assert "only the challenge's organizers see it" in texts(at)
    podium = frames(at)[0]
    assert list(podium["participant"]) == ["alice"]


def submission_page(who: str | None, key: str, filled: Filled) -> AppTest:
    return open_page("views/submission.py", who, id=str(filled.ids[key]))


@pytest.mark.parametrize("who", ["bob", "olga", "root"])
def test_failed_case_reason_and_logs_for_owner_and_organizers(dashboard_env: Filled, who: str) -> None:
    at = submission_page(who, "bob", dashboard_env)
    cases = at.dataframe[0].value.set_index("case")
    assert cases.loc["case002", "reason"] == "timeout"
    assert cases.loc["case002", "detail"] == TIMEOUT_DETAIL  # the first line only
    assert cases.loc["case001", "nodule/dice"] == pytest.approx(0.93)
    assert cases.loc["case003", "nodule/hd95"] == pytest.approx(2.0)
    shown = texts(at)
    assert "case002: timeout" in shown
    assert "Killed after 300 s" in shown
    assert "bob/unet:7" in shown
    assert (PLATFORM_LOG in shown) == (who != "bob")
    assert "0.91" in [m.value for m in at.metric]


@pytest.mark.parametrize("who", [None, "alice", "carol"])
def test_others_see_a_public_submission_without_logs(dashboard_env: Filled, who: str | None) -> None:
    at = submission_page(who, "bob", dashboard_env)
    cases = at.dataframe[0].value.set_index("case")
    assert cases.loc["case002", "reason"] == "timeout"
    assert cases.loc["case001", "nodule/dice"] == pytest.approx(0.93)
    shown = texts(at)
    assert "case002: timeout" in shown
    for secret in ("Killed after 300 s", "loading weights", PLATFORM_LOG, TIMEOUT_DETAIL, "bob/unet:7"):
        assert secret not in shown


def test_owner_of_a_hidden_phase_sees_states_only(dashboard_env: Filled) -> None:
    at = submission_page("alice", "alice-test", dashboard_env)
    cases = at.dataframe[0].value.set_index("case")
    assert "failed" in cases.loc["case003", "state"]
    assert cases.loc["case003", "reason"] == "exit_code"
    assert not any("dice" in str(c) for c in cases.columns)
    shown = texts(at)
    assert TEST_STDERR not in shown and TEST_PLATFORM_LOG not in shown
    assert "does not show participants the logs" in shown
    assert "Scores of this phase are not public." in shown
    assert "auroc" not in [m.label for m in at.metric]


@pytest.mark.parametrize("who", ["olga", "root"])
def test_organizers_see_the_hidden_phase_with_logs(dashboard_env: Filled, who: str) -> None:
    at = submission_page(who, "alice-test", dashboard_env)
    cases = at.dataframe[0].value.set_index("case")
    assert cases.loc["case001", "nodule/dice"] == pytest.approx(0.55)
    shown = texts(at)
    assert TEST_STDERR in shown and TEST_PLATFORM_LOG in shown
    assert "0.5" in [m.value for m in at.metric]


@pytest.mark.parametrize("who", [None, "bob", "dave"])
def test_a_hidden_submission_is_not_found(dashboard_env: Filled, who: str | None) -> None:
    at = submission_page(who, "alice-test", dashboard_env)
    sid = dashboard_env.ids["alice-test"]
    assert [e.value for e in at.error] == [f"There is no submission #{sid}."]
    assert not at.dataframe
    unknown = open_page("views/submission.py", who, id="999")
    assert [e.value for e in unknown.error] == ["There is no submission #999."]


def test_case_page_draws_the_case(dashboard_env: Filled) -> None:
    at = open_page("views/case.py", submission=str(dashboard_env.ids["bob"]), case="case001")
    assert "Case case001" in [t.value for t in at.title]
    assert at.slider[0].value == 3  # the middle of 6 axial slices
    assert not at.caption  # prediction and reference were both found and drawn
    at.slider[0].set_value(0).run()
    assert not at.exception


def test_case_page_without_stored_images_says_so(dashboard_env: Filled) -> None:
    at = open_page("views/case.py", submission=str(dashboard_env.ids["alice"]), case="case002")
    assert "The input image is not available" in texts(at)


@pytest.mark.parametrize("who", [None, "alice"])
def test_case_page_of_hidden_phase_shows_nothing(dashboard_env: Filled, who: str | None) -> None:
    at = open_page("views/case.py", who, submission=str(dashboard_env.ids["alice-test"]), case="case001")
    assert "Open a case from a submission's page." in texts(at)
    assert not at.slider


def test_wrong_password_is_refused_and_logout_forgets_the_login(dashboard_env: Filled) -> None:
    at = AppTest.from_file(str(app_path()), default_timeout=30).run()
    log_in(at, "bob", "not-his-password")
    assert [e.value for e in at.sidebar.error] == ["wrong user name or password"]
    assert "Logged in as" not in sidebar_text(at)
    log_in(at, "bob", PASSWORDS["bob"])
    assert "Logged in as bob" in sidebar_text(at)
    at.switch_page("views/submission.py")
    at.query_params["id"] = str(dashboard_env.ids["bob"])
    at.run()
    assert "Killed after 300 s" in texts(at)
    token = at.session_state["medarena_token"]
    next(b for b in at.sidebar.button if b.label == "Log out").click().run()
    assert not at.exception
    assert "Logged in as" not in sidebar_text(at)
    assert "Killed after 300 s" not in texts(at)  # the same page, now anonymous
    with pytest.raises(Unauthenticated, match="revoked"):  # the login's token is gone, not only forgotten
        accounts.authenticate(load_settings(), token)


def test_logins_are_throttled_per_account(dashboard_env: Filled) -> None:
    settings = load_settings()
    accounts.add_user(settings, "erin", "erin-password-1")
    at = AppTest.from_file(str(app_path()), default_timeout=30).run()
    for _ in range(MAX_FAILURES_PER_ACCOUNT):
        log_in(at, "erin", "guess")
        assert [e.value for e in at.sidebar.error] == ["wrong user name or password"]
    log_in(at, "erin", "erin-password-1")  # the right password, too late
    [refusal] = [e.value for e in at.sidebar.error]
    assert refusal.startswith("too many failed logins from this account")
    assert "Logged in as" not in sidebar_text(at)


@pytest.mark.parametrize("who", ["bob", "olga", None, "alice"])
def test_compute_on_the_submission_page_for_its_owner_and_organizers(dashboard_env: Filled, who: str | None) -> None:
    at = submission_page(who, "bob", dashboard_env)
    assert not at.exception
    sees = who in ("bob", "olga")
    assert ("Compute used" in [s.value for s in at.subheader]) == sees
    assert ({m.label: m.value for m in at.metric}.get("CPU") == "32.5 s") == sees
    assert ("cpu (s)" in at.dataframe[0].value.columns) == sees


@pytest.mark.parametrize("who", ["olga", "bob"])
def test_a_phase_s_compute_on_the_leaderboard_page_for_organizers(dashboard_env: Filled, who: str) -> None:
    at = leaderboard_page(who)
    assert not at.exception
    shown = [s.value for s in at.subheader]
    assert ("Compute used (organizers)" in shown) == (who == "olga")
    if who == "olga":
        usage = next(f for f in frames(at) if "largest peak memory (MiB)" in f.columns).set_index("participant")
        assert (usage.loc["bob", "cpu (s)"], usage.loc["(all)", "cases"]) == (32.5, 7)
        assert "Compute budget: none" in texts(at)
