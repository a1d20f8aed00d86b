"""The dashboard's reads (through the services) against the values the fixture inserted (see
filled_db), as each viewer sees them: anonymous, the participant, another participant, the
organizer, the admin."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

from medarena.dashboard import data, images
from medarena.dashboard.data import Viewer
from medarena.platform.settings import Settings
from tests.dashboard.filled_db import (
    BOB_COMPUTE,
    BOOTSTRAP,
    DEFINITION,
    DICE,
    HD95,
    PLATFORM_LOG,
    PREDICTION,
    REFERENCE,
    SPACING,
    TEST_PLATFORM_LOG,
    TEST_STDERR,
    TIMEOUT_DETAIL,
    VOLUME,
    Filled,
)


def test_challenges_with_phase_states_and_counts(filled: Filled, viewers: dict[str | None, Viewer]) -> None:
    [challenge] = data.list_challenges(viewers[None], now=dt.datetime(2025, 3, 15))
    assert (challenge.slug, challenge.title) == ("lungs", "Lung Nodule Segmentation")
    phases = {p.slug: p for p in challenge.phases}
    assert [p.slug for p in challenge.phases] == ["validation", "test", "live"]
    assert {s: p.state for s, p in phases.items()} == {"validation": "open", "test": "open", "live": "open"}
    assert [p.cases for p in challenge.phases] == [3, 3, 3]
    assert [p.submissions for p in challenge.phases] == [2, 0, 1]  # carol's run and the hidden phase: unseen
    for who, seen in (("carol", [3, 0, 1]), ("alice", [2, 1, 1]), ("olga", [3, 1, 1]), ("root", [3, 1, 1])):
        assert [p.submissions for p in data.list_challenges(viewers[who])[0].phases] == seen, who
    later = {p.slug: p.state for p in data.list_challenges(viewers[None], now=dt.datetime(2025, 4, 2))[0].phases}
    assert later["test"] == "closed"
    assert (phases["test"].leaderboard_public, phases["test"].case_results_public) == (False, False)


def test_leaderboard_rows_in_rank_order_with_metric_columns(filled: Filled, viewers: dict[str | None, Viewer]) -> None:
    board = data.leaderboard(viewers[None], "lungs", "validation")
    assert list(board.columns) == [*data.LEADERBOARD_COLUMNS, "dice (nodule) mean", "auroc"]
    assert list(board["participant"]) == ["bob", "alice"]
    assert list(board["rank"]) == [1, 2]
    assert list(board["submission"]) == [filled.ids["bob"], filled.ids["alice"]]
    assert list(board["score"]) == [1.25, 1.75]
    assert list(board["rank interval"]) == ["1–2", "1–2"]
    assert list(board["auroc"]) == [0.91, 0.75]
    assert board["submitted"].iloc[0] == dt.datetime(2025, 3, 1, 10, 0)


Viewers = dict[str | None, Viewer]


@pytest.mark.parametrize("who", [None, "alice", "bob"])
def test_hidden_leaderboard_does_not_exist_for_participants(viewers: Viewers, who: str | None) -> None:
    assert data.leaderboard(viewers[who], "lungs", "test") is None
    assert data.unranked_results(viewers[who], "lungs", "test") is None
    assert data.phase_case_values(viewers[who], "lungs", "test") is None
    assert data.rank_stability(viewers[who], "lungs", "test") is None


@pytest.mark.parametrize("who", ["olga", "root"])
def test_hidden_leaderboard_is_the_organizers(filled: Filled, viewers: Viewers, who: str) -> None:
    board = data.leaderboard(viewers[who], "lungs", "test")
    assert list(board["participant"]) == ["alice"]
    assert list(board["submission"]) == [filled.ids["alice-test"]]
    assert list(board["dice (nodule) mean"]) == [0.5]
    values = data.phase_case_values(viewers[who], "lungs", "test")
    assert values[values["column"] == "nodule/dice"].set_index("case")["value"].to_dict() == pytest.approx(
        {"case001": 0.55, "case002": 0.45})


def test_unknown_phase_gives_nothing(viewers: Viewers) -> None:
    assert data.phase_submissions(viewers["olga"], "lungs", "nope").empty
    assert data.leaderboard(viewers["root"], "nope", "validation") is None
    assert data.unfinished_submissions(viewers["olga"], "lungs", "nope").empty


def test_unranked_phase_lists_finished_submissions_with_aggregate_means(viewers: Viewers) -> None:
    assert data.leaderboard(viewers[None], "lungs", "live").empty
    table = data.unranked_results(viewers[None], "lungs", "live")
    assert list(table["participant"]) == ["dave"]
    assert table.loc[0, "nodule/dice"] == 0.66
    assert table.loc[0, "volume_difference_ml"] == 1.5  # the whole-case label "all" drops out of the name
    assert "std" not in " ".join(table.columns)


@pytest.mark.parametrize("who", ["carol", "olga", "root"])
def test_running_submission_with_job_counts_for_its_owner_and_organizers(viewers: Viewers, who: str) -> None:
    table = data.unfinished_submissions(viewers[who], "lungs", "validation")
    running = table[table["state"] == "running"]
    assert list(running["participant"]) == ["carol"]
    row = running.iloc[0]
    assert (row["queued"], row["running"], row["succeeded"], row["failed"]) == (1, 1, 1, 0)


@pytest.mark.parametrize("who", [None, "alice", "bob"])
def test_a_running_submission_is_not_listed_for_others(filled: Filled, viewers: Viewers, who: str | None) -> None:
    listed = set(data.phase_submissions(viewers[who], "lungs", "validation")["submission"])
    assert filled.ids["carol"] not in listed
    assert {filled.ids["alice"], filled.ids["bob"]} <= listed  # ended, in a public phase
    assert data.submission_info(viewers[who], filled.ids["carol"]) is None
    assert data.case_results(viewers[who], filled.ids["carol"]).empty


def test_lists_of_the_hidden_phase_by_viewer(filled: Filled, viewers: Viewers) -> None:
    def listed(who):
        return list(data.phase_submissions(viewers[who], "lungs", "test")["submission"])

    assert listed(None) == [] and listed("bob") == []
    assert listed("alice") == listed("olga") == listed("root") == [filled.ids["alice-test"]]


def test_case_results_pivot_metric_values(filled: Filled, viewers: Viewers) -> None:
    table = data.case_results(viewers[None], filled.ids["alice"]).set_index("case")
    assert list(table.index) == ["case001", "case002", "case003"]
    for case, dice in DICE["alice"].items():
        assert table.loc[case, "nodule/dice"] == pytest.approx(dice)
        assert table.loc[case, "nodule/hd95"] == pytest.approx(HD95["alice"][case])
    assert table["volume_difference_ml"].isna().all()  # stored as NULL: undefined
    assert set(table["state"]) == {"succeeded"}


@pytest.mark.parametrize("who", ["bob", "olga", "root"])
def test_failed_case_with_detail_and_logs_for_owner_and_organizers(filled: Filled, viewers: Viewers,
                                                                    who: str) -> None:
    table = data.case_results(viewers[who], filled.ids["bob"]).set_index("case")
    assert table.loc["case002", "state"] == "failed"
    assert table.loc["case002", "reason"] == "timeout"
    assert table.loc["case002", "detail"] == TIMEOUT_DETAIL  # the first line only
    assert math.isnan(table.loc["case002", "nodule/dice"])
    assert table.loc["case003", "nodule/dice"] == pytest.approx(DICE["bob"]["case003"])
    [failure] = data.failed_cases(viewers[who], filled.ids["bob"])
    assert (failure.case, failure.reason) == ("case002", "timeout")
    assert failure.stderr_tail == "Killed after 300 s"
    assert failure.stdout_tail == "loading weights\npredicting"
    assert failure.platform_log == ("" if who == "bob" else PLATFORM_LOG)


@pytest.mark.parametrize("who", [None, "alice"])
def test_others_see_a_public_failure_without_detail_or_logs(filled: Filled, viewers: Viewers,
                                                            who: str | None) -> None:
    table = data.case_results(viewers[who], filled.ids["bob"]).set_index("case")
    assert table.loc["case002", "reason"] == "timeout"
    assert table.loc["case002", "detail"] == ""
    assert table.loc["case003", "nodule/dice"] == pytest.approx(DICE["bob"]["case003"])
    [failure] = data.failed_cases(viewers[who], filled.ids["bob"])
    assert (failure.detail, failure.stdout_tail, failure.stderr_tail, failure.platform_log) == ("", "", "", "")
    info = data.submission_info(viewers[who], filled.ids["bob"])
    assert (info.image, info.image_digest) == ("", "")
    assert info.dataset_metrics["auroc"] == 0.91


def test_owner_of_a_hidden_phase_sees_states_not_scores_or_logs(filled: Filled, viewers: Viewers) -> None:
    alice = viewers["alice"]
    table = data.case_results(alice, filled.ids["alice-test"])
    assert list(table.columns) == data.CASE_COLUMNS + data.COMPUTE_COLUMNS  # her own: with what it used
    assert list(table["state"]) == ["succeeded", "succeeded", "failed"]
    assert table.iloc[2]["reason"] == "exit_code"
    assert data.metric_values(alice, filled.ids["alice-test"]).empty
    [failure] = data.failed_cases(alice, filled.ids["alice-test"])
    assert failure.reason == "exit_code"
    assert failure.detail == "the algorithm exited with code 1"
    assert TEST_STDERR not in (failure.stderr_tail, failure.stdout_tail)  # participant_logs: none
    assert failure.platform_log == ""
    info = data.submission_info(alice, filled.ids["alice-test"])
    assert info.view.owner and info.image == "alice/seg:1"
    assert info.dataset_metrics == {} and info.aggregates == {}
    assert data.case_image_submission(alice, filled.ids["alice-test"]) is None


@pytest.mark.parametrize("who", ["olga", "root"])
def test_organizers_see_everything_of_a_hidden_phase(filled: Filled, viewers: Viewers, who: str) -> None:
    [failure] = data.failed_cases(viewers[who], filled.ids["alice-test"])
    assert failure.stderr_tail == TEST_STDERR
    assert failure.platform_log == TEST_PLATFORM_LOG
    values = data.metric_values(viewers[who], filled.ids["alice-test"])
    assert values[values["metric"] == "dice"].set_index("case")["value"].to_dict() == pytest.approx(
        {"case001": 0.55, "case002": 0.45})
    info = data.submission_info(viewers[who], filled.ids["alice-test"])
    assert info.dataset_metrics == {"auroc": 0.5} and info.view.staff


@pytest.mark.parametrize("who", [None, "bob", "carol", "dave"])
def test_a_hidden_submission_is_not_found(filled: Filled, viewers: Viewers, who: str | None) -> None:
    sid = filled.ids["alice-test"]
    assert data.submission_info(viewers[who], sid) is None
    assert data.case_results(viewers[who], sid).empty
    assert data.metric_values(viewers[who], sid).empty
    assert data.failed_cases(viewers[who], sid) == []
    assert data.case_image_submission(viewers[who], sid) is None
    assert data.submission_info(viewers[who], 999) is None


def test_metric_values_long_table(filled: Filled, viewers: Viewers) -> None:
    values = data.metric_values(viewers[None], filled.ids["bob"])
    assert len(values) == 2 * 3  # two succeeded cases, three metrics each
    dice = values[values["metric"] == "dice"].set_index("case")["value"]
    assert dice.to_dict() == pytest.approx(DICE["bob"])
    assert set(values["label"]) == {"nodule", ""}


def test_rank_stability_counts_the_bootstrap_ranks(filled: Filled, viewers: Viewers) -> None:
    """The recipe ranks on the mean nodule dice. Bob failed case002, which counts as the worst dice
    of the table (alice's 0.64), so over (case001, case002, case003) bob has (0.93, 0.64, 0.88) and
    alice (0.81, 0.72, 0.64); a resample ranks bob first when his mean is higher (never equal
    here). The resamples are drawn as the ranking code documents them:
    ``default_rng(seed).integers(0, K, (B, K))``."""
    blobs, note = data.rank_stability(viewers[None], "lungs", "validation")
    assert note == ""
    assert list(dict.fromkeys(blobs["participant"])) == ["bob", "alice"]
    bob = np.array([0.93, 0.64, 0.88])
    alice = np.array([DICE["alice"][c] for c in ("case001", "case002", "case003")])
    resamples = np.random.default_rng(DEFINITION["ranking"]["seed"]).integers(0, 3, (BOOTSTRAP, 3))
    bob_first = float(np.mean(bob[resamples].mean(axis=1) > alice[resamples].mean(axis=1)))
    assert 0 < bob_first < 1

    def share(who: str, rank: int) -> float:
        return blobs[(blobs["participant"] == who) & (blobs["bootstrap rank"] == rank)]["frequency"].sum()

    assert share("bob", 1) == pytest.approx(bob_first)
    assert share("bob", 2) == pytest.approx(1 - bob_first)
    assert share("alice", 1) == pytest.approx(1 - bob_first)
    assert share("alice", 2) == pytest.approx(bob_first)
    assert set(blobs["bootstrap rank"]) == {1, 2}
    unranked, note = data.rank_stability(viewers[None], "lungs", "live")  # no leaderboard rows yet
    assert unranked.empty and note == ""


def test_submission_scores_follow_the_leaderboard_rule(filled: Filled, viewers: Viewers) -> None:
    public = data.submission_info(viewers[None], filled.ids["bob"])
    assert public.participant == "bob"
    assert public.job_states == {"succeeded": 2, "failed": 1}
    assert public.dataset_metrics["auroc"] == 0.91
    own = data.submission_info(viewers["bob"], filled.ids["bob"])
    assert own.image_digest == "sha256:bbbb" and own.view.owner and not own.view.platform_log


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


def test_phase_case_values_in_rank_order(filled: Filled, viewers: dict[str | None, Viewer]) -> None:
    values = data.phase_case_values(viewers[None], "lungs", "validation")
    assert list(dict.fromkeys(values["participant"])) == ["bob", "alice"]  # carol is not ranked
    alice = values[(values["participant"] == "alice") & (values["column"] == "nodule/dice")]
    assert alice.set_index("case")["value"].to_dict() == pytest.approx(DICE["alice"])


def test_store_urls_match_the_scheduler(tmp_path) -> None:
    scheduler = pytest.importorskip("medarena.platform.scheduler")
    settings = Settings(home=tmp_path, database_url="sqlite://", store="/data/store", ray_address=None)
    assert data.prediction_store_url("/data/store", "c", "p", 7) == scheduler.predictions_url(settings, "c", "p", 7)
    assert data.inputs_store_url("/data/store", "c", "p") == scheduler.inputs_url(settings, "c", "p")
    assert data.references_store_url("/data/store", "c", "p") == scheduler.references_url(settings, "c", "p")


def test_slices_come_from_the_stored_volume(filled: Filled, viewers: dict[str | None, Viewer]) -> None:
    volume = images.open_volume(data.inputs_store_url(filled.store, "lungs", "validation"), "case001", "ct")
    assert volume.shape == VOLUME.shape and volume.spacing == SPACING
    np.testing.assert_array_equal(images.read_slice(volume), VOLUME[3])
    np.testing.assert_array_equal(images.read_slice(volume, axis=1, index=7), VOLUME[:, 7, :])
    np.testing.assert_array_equal(images.display_plane(VOLUME[:, 7, :], 1, 3), VOLUME[::-1, 7, :])
    assert images.plane_spacing(volume, 2) == (2.5, 0.8)
    prediction = images.open_volume(
        data.prediction_store_url(filled.store, "lungs", "validation", filled.ids["bob"]), "case001", "mask")
    np.testing.assert_array_equal(images.read_slice(prediction, 0, 2), PREDICTION[2])


def test_missing_store_or_case_is_reported(filled: Filled, viewers: dict[str | None, Viewer]) -> None:
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


MiB = 2**20


@pytest.mark.parametrize("who", ["bob", "olga", "root"])
def test_compute_per_case_and_in_all_for_the_owner_and_organizers(filled: Filled, viewers: Viewers,
                                                                   who: str) -> None:
    table = data.case_results(viewers[who], filled.ids["bob"]).set_index("case")
    for case, (cpu, peak, gpu) in BOB_COMPUTE.items():
        assert (table.loc[case, "cpu (s)"], table.loc[case, "peak memory (MiB)"], table.loc[case, "gpu (s)"]) == (
            cpu, peak / MiB, gpu)
    info = data.submission_info(viewers[who], filled.ids["bob"])
    assert info.compute == {"cases": 3, "measured_cases": 3, "wall_seconds": 37.5, "cpu_seconds": 32.5,
                            "gpu_seconds": 37.5, "peak_memory_bytes": 500 * MiB}


@pytest.mark.parametrize("who", [None, "alice", "carol"])
def test_others_see_no_compute_of_a_public_submission(filled: Filled, viewers: Viewers, who: str | None) -> None:
    table = data.case_results(viewers[who], filled.ids["bob"])
    assert not set(data.COMPUTE_COLUMNS) & set(table.columns)
    assert data.submission_info(viewers[who], filled.ids["bob"]).compute is None
    assert data.phase_compute(viewers[who], "lungs", "validation") is None


@pytest.mark.parametrize("who", ["olga", "root"])
def test_organizers_see_a_phase_s_compute_per_participant(filled: Filled, viewers: Viewers, who: str) -> None:
    table, budget = data.phase_compute(viewers[who], "lungs", "validation")
    rows = {row["participant"]: row for row in table.to_dict("records")}
    # alice: 3 cases ran, nothing measured; carol: 1 case ended (one running, one queued: not counted)
    assert (rows["alice"]["cases"], rows["alice"]["cpu (s)"], rows["carol"]["cases"]) == (3, 0.0, 1)
    assert (rows["bob"]["cases"], rows["bob"]["cpu (s)"], rows["bob"]["gpu (s)"],
            rows["bob"]["largest peak memory (MiB)"]) == (3, 32.5, 37.5, 500.0)
    assert (rows["(all)"]["cases"], rows["(all)"]["wall (s)"], rows["(all)"]["cpu (s)"]) == (7, 87.5, 32.5)
    assert budget == dict.fromkeys(("cpu_hours_per_participant", "gpu_hours_per_participant",
                                    "cpu_hours_per_challenge", "gpu_hours_per_challenge"))
