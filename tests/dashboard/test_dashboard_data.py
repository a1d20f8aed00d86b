"""The dashboard's queries against the values the fixture inserted (see filled_db)."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

from medarena.dashboard import data, images
from medarena.platform.settings import Settings
from tests.dashboard.filled_db import (
    DICE,
    HD95,
    PREDICTION,
    REFERENCE,
    SPACING,
    TEST_STDERR,
    TIMEOUT_DETAIL,
    VOLUME,
    Filled,
)


def test_challenges_with_phase_states_and_counts(filled: Filled) -> None:
    [challenge] = data.list_challenges(filled.url, now=dt.datetime(2025, 3, 15))
    assert (challenge.slug, challenge.title) == ("lungs", "Lung Nodule Segmentation")
    phases = {p.slug: p for p in challenge.phases}
    assert [p.slug for p in challenge.phases] == ["validation", "test", "live"]
    assert {s: p.state for s, p in phases.items()} == {"validation": "open", "test": "open", "live": "open"}
    assert [p.cases for p in challenge.phases] == [3, 3, 3]
    assert [p.submissions for p in challenge.phases] == [3, 1, 1]
    later = {p.slug: p.state for p in data.list_challenges(filled.url, now=dt.datetime(2025, 4, 2))[0].phases}
    assert later["test"] == "closed"
    assert (phases["test"].leaderboard_public, phases["test"].case_results_public) == (False, False)


def test_leaderboard_rows_in_rank_order_with_metric_columns(filled: Filled) -> None:
    board = data.leaderboard(filled.url, "lungs", "validation")
    assert list(board.columns) == [*data.LEADERBOARD_COLUMNS, "dice (nodule) mean", "auroc"]
    assert list(board["participant"]) == ["bob", "alice"]
    assert list(board["rank"]) == [1, 2]
    assert list(board["submission"]) == [filled.ids["bob"], filled.ids["alice"]]
    assert list(board["score"]) == [1.25, 1.75]
    assert list(board["rank interval"]) == ["1–2", "1–2"]
    assert list(board["auroc"]) == [0.91, 0.75]
    assert board["submitted"].iloc[0] == dt.datetime(2025, 3, 1, 10, 0)


def test_hidden_leaderboard_is_empty(filled: Filled) -> None:
    assert data.leaderboard(filled.url, "lungs", "test").empty
    assert data.unranked_results(filled.url, "lungs", "test").empty
    assert data.phase_case_values(filled.url, "lungs", "test").empty


def test_unknown_phase_gives_empty_tables(filled: Filled) -> None:
    assert data.phase_info(filled.url, "lungs", "nope") is None
    assert data.leaderboard(filled.url, "nope", "validation").empty
    assert data.unfinished_submissions(filled.url, "lungs", "nope").empty


def test_unranked_phase_lists_finished_submissions_with_aggregate_means(filled: Filled) -> None:
    assert data.leaderboard(filled.url, "lungs", "live").empty
    table = data.unranked_results(filled.url, "lungs", "live")
    assert list(table["participant"]) == ["dave"]
    assert table.loc[0, "nodule/dice"] == 0.66
    assert table.loc[0, "volume_difference_ml"] == 1.5  # the whole-case label "all" drops out of the name
    assert "std" not in " ".join(table.columns)


def test_unfinished_submissions_with_job_counts(filled: Filled) -> None:
    table = data.unfinished_submissions(filled.url, "lungs", "validation")
    assert list(table["participant"]) == ["carol"]
    row = table.iloc[0]
    assert (row["state"], row["queued"], row["running"], row["succeeded"], row["failed"]) == (
        "running", 1, 1, 1, 0)


def test_case_results_pivot_metric_values(filled: Filled) -> None:
    table = data.case_results(filled.url, filled.ids["alice"]).set_index("case")
    assert list(table.index) == ["case001", "case002", "case003"]
    for case, dice in DICE["alice"].items():
        assert table.loc[case, "nodule/dice"] == pytest.approx(dice)
        assert table.loc[case, "nodule/hd95"] == pytest.approx(HD95["alice"][case])
    assert table["volume_difference_ml"].isna().all()  # stored as NULL: undefined
    assert set(table["state"]) == {"succeeded"}


def test_failed_case_keeps_its_reason_and_first_line(filled: Filled) -> None:
    table = data.case_results(filled.url, filled.ids["bob"]).set_index("case")
    assert table.loc["case002", "state"] == "failed"
    assert table.loc["case002", "reason"] == "timeout"
    assert table.loc["case002", "detail"] == TIMEOUT_DETAIL
    assert math.isnan(table.loc["case002", "nodule/dice"])
    assert table.loc["case003", "nodule/dice"] == pytest.approx(DICE["bob"]["case003"])
    [failure] = data.failed_cases(filled.url, filled.ids["bob"])
    assert (failure.case, failure.reason) == ("case002", "timeout")
    assert failure.stderr_tail == "Killed after 300 s"
    assert failure.stdout_tail == "loading weights\npredicting"


def test_hidden_case_results_keep_states_but_not_values_or_logs(filled: Filled) -> None:
    table = data.case_results(filled.url, filled.ids["alice-test"])
    assert list(table.columns) == data.CASE_COLUMNS
    assert list(table["state"]) == ["succeeded", "succeeded", "failed"]
    assert table.iloc[2]["reason"] == "exit_code"
    assert data.metric_values(filled.url, filled.ids["alice-test"]).empty
    [failure] = data.failed_cases(filled.url, filled.ids["alice-test"])
    assert failure.reason == "exit_code"
    assert TEST_STDERR not in (failure.stderr_tail, failure.stdout_tail)


def test_metric_values_long_table(filled: Filled) -> None:
    values = data.metric_values(filled.url, filled.ids["bob"])
    assert len(values) == 2 * 3  # two succeeded cases, three metrics each
    dice = values[values["metric"] == "dice"].set_index("case")["value"]
    assert dice.to_dict() == pytest.approx(DICE["bob"])
    assert set(values["label"]) == {"nodule", ""}


def test_submission_scores_follow_the_leaderboard_rule(filled: Filled) -> None:
    public = data.submission_info(filled.url, filled.ids["bob"])
    assert public.participant == "bob" and public.image_digest == "sha256:bbbb"
    assert public.job_states == {"succeeded": 2, "failed": 1}
    assert public.dataset_metrics["auroc"] == 0.91
    hidden = data.submission_info(filled.url, filled.ids["alice-test"])
    assert hidden.state == "succeeded"
    assert hidden.dataset_metrics == {} and hidden.aggregates == {}
    assert data.submission_info(filled.url, 999) is None


def test_dataset_metrics_split_into_numbers_and_curves() -> None:
    numbers, curves = data.split_dataset_metrics({
        "auroc": 0.9, "cpm": None, "flag": True, "error": "text",
        "roc": {"fpr": [0, 0.5, 1], "tpr": [0, 0.75, 1], "thresholds": [1, 0.5, 0]},
        "froc": {"fp_per_case": [0.125, 0.25], "sensitivity": [0.5, 0.6], "cpm": 0.55},
        "odd": {"a": [1, 2], "b": [1]},
    })
    assert numbers == {"auroc": 0.9, "cpm": None, "froc.cpm": 0.55}
    assert set(curves) == {"roc", "froc"}
    assert list(curves["roc"].columns) == ["fpr", "tpr", "thresholds"]
    assert curves["froc"]["sensitivity"].tolist() == [0.5, 0.6]


def test_phase_case_values_in_rank_order(filled: Filled) -> None:
    values = data.phase_case_values(filled.url, "lungs", "validation")
    assert list(dict.fromkeys(values["participant"])) == ["bob", "alice"]  # carol is not ranked
    alice = values[(values["participant"] == "alice") & (values["column"] == "nodule/dice")]
    assert alice.set_index("case")["value"].to_dict() == pytest.approx(DICE["alice"])


def test_store_urls_match_the_scheduler(tmp_path) -> None:
    scheduler = pytest.importorskip("medarena.platform.scheduler")
    settings = Settings(home=tmp_path, database_url="sqlite://", store="/data/store", ray_address=None)
    assert data.prediction_store_url("/data/store", "c", "p", 7) == scheduler.predictions_url(settings, "c", "p", 7)
    assert data.inputs_store_url("/data/store", "c", "p") == scheduler.inputs_url(settings, "c", "p")
    assert data.references_store_url("/data/store", "c", "p") == scheduler.references_url(settings, "c", "p")


def test_slices_come_from_the_stored_volume(filled: Filled) -> None:
    volume = images.open_volume(data.inputs_store_url(filled.store, "lungs", "validation"), "case001", "ct")
    assert volume.shape == VOLUME.shape and volume.spacing == SPACING
    np.testing.assert_array_equal(images.read_slice(volume), VOLUME[3])
    np.testing.assert_array_equal(images.read_slice(volume, axis=1, index=7), VOLUME[:, 7, :])
    np.testing.assert_array_equal(images.display_plane(VOLUME[:, 7, :], 1, 3), VOLUME[::-1, 7, :])
    assert images.plane_spacing(volume, 2) == (2.5, 0.8)
    prediction = images.open_volume(
        data.prediction_store_url(filled.store, "lungs", "validation", filled.ids["bob"]), "case001", "mask")
    np.testing.assert_array_equal(images.read_slice(prediction, 0, 2), PREDICTION[2])


def test_missing_store_or_case_is_reported(filled: Filled) -> None:
    with pytest.raises(images.MissingStore):
        images.open_volume(f"{filled.store}/inputs/lungs/nowhere.zarr", "case001", "ct")
    with pytest.raises(images.MissingStore):
        images.open_volume(data.inputs_store_url(filled.store, "lungs", "validation"), "case002", "ct")


def test_render_draws_one_contour_set_per_overlay() -> None:
    overlays = [images.Overlay("reference", REFERENCE[3], "segmentation", "#00ff00"),
                images.Overlay("prediction", PREDICTION[3], "segmentation", "#ff0000"),
                images.Overlay("wrong grid", np.ones((4, 4)), "segmentation", "#0000ff")]
    figure = images.render(VOLUME[3], overlays, (0.8, 0.8))
    [axes] = figure.axes
    assert [t.get_text() for t in axes.get_legend().get_texts()] == ["reference", "prediction"]
    assert len(axes.collections) == 2  # a contour set each; the mismatched grid is left out


def test_window_scales_to_unit_range() -> None:
    plane = np.linspace(-1000, 1000, 101).reshape(1, 101)
    shown = images.window(plane)
    assert shown.min() == 0.0 and shown.max() == 1.0
    assert shown[0, 50] == pytest.approx(0.5)
