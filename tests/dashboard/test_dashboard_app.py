"""The dashboard's pages under Streamlit's AppTest, on the filled database (see conftest)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from medarena.dashboard import app_path
from tests.dashboard.filled_db import TEST_STDERR, TIMEOUT_DETAIL, Filled


def open_page(page: str, **params: str) -> AppTest:
    at = AppTest.from_file(str(app_path()), default_timeout=30).run()
    for name, value in params.items():
        at.query_params[name] = value
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [t.value for t in at.title]
    parts += [i.value for i in at.info] + [w.value for w in at.warning] + [e.label for e in at.expander]
    parts += [c.value for c in at.code]
    return "\n".join(str(p) for p in parts)


def test_challenges_page_lists_phases_with_counts(dashboard_env: Filled) -> None:
    at = AppTest.from_file(str(app_path()), default_timeout=30).run()
    assert not at.exception
    assert "Lung Nodule Segmentation" in [h.value for h in at.header]
    phases = at.table[0].value
    assert list(phases.index) == ["Validation", "Final test", "Live"]
    assert phases.loc["Validation", "state"] == "open"
    assert phases.loc["Final test", "state"] == "closed"
    assert phases.loc["Validation", "submissions"] == 3
    assert list(phases["cases"]) == [3, 3, 3]
    assert phases.loc["Final test", "leaderboard"] == "hidden"


def test_leaderboard_in_rank_order(dashboard_env: Filled) -> None:
    at = open_page("views/leaderboard.py", challenge="lungs", phase="validation")
    assert "### Leading: bob" in [m.value for m in at.markdown]
    podium = at.table[0].value
    assert list(podium["participant"]) == ["bob", "alice"]
    assert list(podium["rank interval"]) == ["1–2", "1–2"]
    board = at.dataframe[0].value
    assert list(board["participant"]) == ["bob", "alice"]
    assert list(board["dice (nodule) mean"]) == [0.905, 0.7233]
    assert list(board["submission"]) == [f"submission?id={dashboard_env.ids['bob']}",
                                         f"submission?id={dashboard_env.ids['alice']}"]
    in_progress = at.dataframe[1].value
    assert list(in_progress["participant"]) == ["carol"]
    assert in_progress.iloc[0][["succeeded", "running", "queued"]].tolist() == [1, 1, 1]


def test_leaderboard_selection_follows_the_select_boxes(dashboard_env: Filled) -> None:
    at = open_page("views/leaderboard.py")  # no query parameters: the first challenge and phase
    assert at.selectbox[1].value == "validation"
    at.selectbox[1].set_value("live").run()
    assert not at.exception
    assert at.query_params["phase"] == "live"
    assert "not been ranked yet" in texts(at)
    assert list(at.dataframe[0].value["participant"]) == ["dave"]


def test_hidden_leaderboard_shows_no_participant_scores(dashboard_env: Filled) -> None:
    at = open_page("views/leaderboard.py", challenge="lungs", phase="test")
    assert "The leaderboard of this phase is not public." in texts(at)
    assert not at.table
    assert all("score" not in frame.value.columns for frame in at.dataframe)


def test_submission_page_shows_failed_case_reason_and_logs(dashboard_env: Filled) -> None:
    at = open_page("views/submission.py", id=str(dashboard_env.ids["bob"]))
    cases = at.dataframe[0].value.set_index("case")
    assert cases.loc["case002", "reason"] == "timeout"
    assert cases.loc["case002", "detail"] == TIMEOUT_DETAIL  # the first line only
    assert cases.loc["case001", "nodule/dice"] == pytest.approx(0.93)
    assert cases.loc["case003", "nodule/hd95"] == pytest.approx(2.0)
    shown = texts(at)
    assert "case002: timeout" in shown
    assert "Killed after 300 s" in shown
    assert [m.label for m in at.metric if m.label == "auroc"] and "0.91" in [m.value for m in at.metric]


def test_submission_of_hidden_phase_shows_states_only(dashboard_env: Filled) -> None:
    at = open_page("views/submission.py", id=str(dashboard_env.ids["alice-test"]))
    cases = at.dataframe[0].value.set_index("case")
    assert "failed" in cases.loc["case003", "state"]
    assert cases.loc["case003", "reason"] == "exit_code"
    assert not any("dice" in str(c) for c in cases.columns)
    shown = texts(at)
    assert TEST_STDERR not in shown
    assert "Scores of this phase are not public." in shown
    assert "auroc" not in [m.label for m in at.metric]


def test_unknown_submission_is_an_error_message(dashboard_env: Filled) -> None:
    at = open_page("views/submission.py", id="999")
    assert "There is no submission #999." in [e.value for e in at.error]


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


def test_case_page_of_hidden_phase_shows_nothing(dashboard_env: Filled) -> None:
    at = open_page("views/case.py", submission=str(dashboard_env.ids["alice-test"]), case="case001")
    assert "Case images and per-case results of this phase are not public." in texts(at)
    assert not at.slider
