"""The ranking report: CSV tables with the hand-computed ranks, readable PNG and HTML plots."""

from __future__ import annotations

import pandas as pd
import pytest
from matplotlib.image import imread

from medarena.evaluators.ranking import RankingError, RankingRecipe
from medarena.platform.ranking_report import write_report

# Six cases; A beats B and C on every case (one-sided Wilcoxon p = 0.018), B and C are even.
# dice means: A 0.91, B 0.479, C 0.479; hd95 (lower is better): A 2, B 4, C 6 on every case.
DICE = {
    "A": [0.9, 0.95, 0.85, 0.99, 0.8, 0.97],
    "B": [0.5, 0.25, 0.75, 0.5, 0.25, 0.625],
    "C": [0.625, 0.125, 0.5, 0.75, 0.375, 0.5],
}


def table() -> pd.DataFrame:
    rows = []
    for sub, values in DICE.items():
        for k, v in enumerate(values):
            rows.append({"submission": sub, "case": f"c{k}", "label": "liver", "metric": "dice", "value": v})
            rows.append({"submission": sub, "case": f"c{k}", "label": None, "metric": "hd95",
                         "value": {"A": 2.0, "B": 4.0, "C": 6.0}[sub] + 0.1 * k})
    return pd.DataFrame(rows)


RECIPE = RankingRecipe(metrics=[{"metric": "dice"}, {"metric": "hd95"}], bootstrap=40)


def test_report_files_hold_the_ranking(tmp_path):
    paths = write_report(table(), RECIPE, tmp_path, submissions=["A", "B", "C", "D"])
    names = {p.name for p in paths}
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)
    for stem in ("dotbox_dice_liver", "dotbox_hd95", "blob", "significance_dice_liver",
                 "significance_hd95", "methods"):
        assert {f"{stem}.png", f"{stem}.html"} <= names
    assert {"ranking.csv", "bootstrap.csv", "bootstrap_ranks.csv", "kendall_tau.csv", "methods.csv",
            "values.csv", "pvalues_hd95.csv", "plotly.min.js"} <= names

    # dice[liver] ranks: A 1, B 2, C 2, D (failed, worst = 0.125) 4; hd95: A 1, B 2, C 3, D 4
    # mean of metric ranks: A 1, B 2, C 2.5, D 4
    ranking = pd.read_csv(tmp_path / "ranking.csv")
    assert ranking[["submission", "rank", "score", "n_missing"]].to_dict("records") == [
        {"submission": "A", "rank": 1, "score": 1.0, "n_missing": 0},
        {"submission": "B", "rank": 2, "score": 2.0, "n_missing": 0},
        {"submission": "C", "rank": 3, "score": 2.5, "n_missing": 0},
        {"submission": "D", "rank": 4, "score": 4.0, "n_missing": 12},
    ]
    assert ranking["dice[liver]_aggregate"].iloc[0] == pytest.approx(sum(DICE["A"]) / 6)

    significance = pd.read_csv(tmp_path / "significance_dice_liver.csv", index_col=0)
    assert significance.loc["A"].tolist() == [0, 1, 1, 1]
    # B - D: |d| .125 .125 .375 .375 .5 .625, all positive, W+ = 21, var 22.75 - 12/48: p = 0.018
    assert significance.loc["B"].tolist() == [0, 0, 0, 1]
    # C - D: one zero dropped, five positive, W+ = 15, var 13.75 - 6/48: p = 0.029
    assert significance.loc["C"].tolist() == [0, 0, 0, 1]
    assert significance.loc["D"].tolist() == [0, 0, 0, 0]
    bootstrap = pd.read_csv(tmp_path / "bootstrap.csv")
    assert list(bootstrap.columns[:6]) == [
        "submission", "rank", "rank_median", "rank_mean", "rank_lo", "rank_hi"]
    assert len(pd.read_csv(tmp_path / "bootstrap_ranks.csv")) == 40
    methods = pd.read_csv(tmp_path / "methods.csv")
    assert list(methods["submission"]) == ["A", "B", "C", "D"]

    image = imread(tmp_path / "blob.png")
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    html = (tmp_path / "significance_dice_liver.html").read_text()
    assert 'src="plotly.min.js"' in html and '"A"' in html


def test_one_submission_reports_undefined_stability(tmp_path):
    one = table()
    one = one[one["submission"] == "A"]
    paths = write_report(one, RECIPE, tmp_path)
    assert "single submission" in (tmp_path / "notes.txt").read_text()
    assert pd.read_csv(tmp_path / "ranking.csv")["rank"].tolist() == [1]
    assert (tmp_path / "blob.png") in paths


def test_bad_input_writes_nothing(tmp_path):
    bad = RankingRecipe(metrics=[{"metric": "nsd@2"}])
    with pytest.raises(RankingError, match="nsd@2"):
        write_report(table(), bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()
