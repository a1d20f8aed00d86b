"""Bootstrap stability of rankings: rank intervals and Kendall's tau (challengeR's bootstrap)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from medarena.evaluators.ranking import (
    RankingRecipe,
    _resampled,
    bootstrap_stability,
    kendall_tau_b,
    leaderboard,
    pairwise_pvalues,
    rank,
    resampled_pvalues,
    wilcoxon_greater,
    wilcoxon_greater_resampled,
)
from medarena.evaluators.ranking._methods import _counts


def random_table(n_subs: int, n_cases: int, seed: int, ties: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    skill = np.linspace(0.0, 0.1, n_subs)
    dice = np.clip(0.7 + skill[:, None] + rng.normal(scale=0.08, size=(n_subs, n_cases)), 0, 1)
    if ties:
        dice = np.round(dice, 1)
    hd = np.abs(8 - 40 * skill[:, None] + rng.normal(scale=3, size=(n_subs, n_cases)))
    rows = [
        {"submission": f"s{s}", "case": f"c{k:03d}", "label": None, "metric": m, "value": v[s, k]}
        for m, v in (("dice", dice), ("hd95", hd)) for s in range(n_subs) for k in range(n_cases)
    ]
    return pd.DataFrame(rows)


def recipe(method: str, **kwargs) -> RankingRecipe:
    return RankingRecipe(method=method, metrics=[{"metric": "dice"}, {"metric": "hd95"}], **kwargs)


@pytest.mark.parametrize(("method", "aggregate"), [
    ("aggregate-then-rank", "mean"), ("aggregate-then-rank", "median"),
    ("rank-then-aggregate", "mean"), ("rank-then-aggregate", "median"), ("test-based", "mean"),
])
def test_bootstrap_ranks_equal_ranking_each_resampled_table(method, aggregate):
    """Every bootstrap row equals :func:`rank` of the table whose cases are the resampled ones
    (numpy's default_rng(seed).integers(0, K, (B, K)), as documented)."""
    table = random_table(5, 12, seed=3, ties=True)
    r = recipe(method, aggregate=aggregate, bootstrap=6, seed=11)
    result = bootstrap_stability(table, r)
    cases = sorted(table["case"].unique())
    draws = np.random.default_rng(11).integers(0, len(cases), size=(6, len(cases)))
    for b, draw in enumerate(draws):
        pieces = []
        for position, k in enumerate(draw):
            piece = table[table["case"] == cases[k]].copy()
            piece["case"] = f"draw{position}"
            pieces.append(piece)
        expected = rank(pd.concat(pieces), r).set_index("submission")["rank"]
        assert result.ranks.loc[b].to_dict() == expected.to_dict()


def test_summary_and_tau_against_numpy_and_scipy():
    table = random_table(6, 20, seed=5, ties=True)
    r = recipe("aggregate-then-rank", bootstrap=200, seed=1)
    summary, tau, ranks, note = bootstrap_stability(table, r)
    assert note is None and ranks.shape == (200, 6) and len(tau) == 200
    full = rank(table, r).set_index("submission")["rank"]
    for b in range(0, 200, 7):
        ref = stats.kendalltau(full.loc[ranks.columns].to_numpy(), ranks.loc[b].to_numpy()).statistic
        assert tau[b] == pytest.approx(ref, rel=1e-12, nan_ok=True)
    by_sub = summary.set_index("submission")
    for sub in ranks.columns:
        column = ranks[sub].to_numpy()
        assert by_sub.loc[sub, "rank_lo"] == pytest.approx(np.percentile(column, 2.5))
        assert by_sub.loc[sub, "rank_hi"] == pytest.approx(np.percentile(column, 97.5))
        assert by_sub.loc[sub, "rank_median"] == pytest.approx(np.median(column))
        assert by_sub.loc[sub, "frac_first"] == pytest.approx(np.mean(column == 1))
        assert by_sub.loc[sub, "rank"] == full.loc[sub]


def test_kendall_tau_b_against_scipy_with_ties():
    rng = np.random.default_rng(0)
    reference = rng.integers(1, 5, size=9).astype(float)
    rankings = rng.integers(1, 6, size=(50, 9)).astype(float)
    rankings[0] = 3.0  # all ties: undefined
    ours = kendall_tau_b(reference, rankings)
    for b in range(50):
        ref = stats.kendalltau(reference, rankings[b]).statistic
        assert ours[b] == pytest.approx(ref, rel=1e-12, nan_ok=True)
    assert math.isnan(ours[0])


def test_a_submission_best_on_every_case_is_first_in_every_resample():
    # A > B > C on every case: every resample ranks A 1, B 2, C 3, so tau = 1 everywhere
    rows = [{"submission": s, "case": f"c{k}", "metric": "dice", "value": v + 0.01 * k}
            for k in range(15) for s, v in (("A", 0.9), ("B", 0.8), ("C", 0.5))]
    r = RankingRecipe(method="rank-then-aggregate", metrics=[{"metric": "dice"}], bootstrap=50)
    summary, tau, ranks, note = bootstrap_stability(pd.DataFrame(rows), r)
    assert note is None
    assert (tau == 1.0).all()
    assert summary[["submission", "rank", "rank_lo", "rank_hi", "frac_first"]].to_dict("records") == [
        {"submission": "A", "rank": 1, "rank_lo": 1.0, "rank_hi": 1.0, "frac_first": 1.0},
        {"submission": "B", "rank": 2, "rank_lo": 2.0, "rank_hi": 2.0, "frac_first": 0.0},
        {"submission": "C", "rank": 3, "rank_lo": 3.0, "rank_hi": 3.0, "frac_first": 0.0},
    ]


def test_seeded():
    table = random_table(4, 10, seed=2)
    first = bootstrap_stability(table, recipe("aggregate-then-rank", bootstrap=30, seed=7))
    again = bootstrap_stability(table, recipe("aggregate-then-rank", bootstrap=30, seed=7))
    other = bootstrap_stability(table, recipe("aggregate-then-rank", bootstrap=30, seed=8))
    assert first.ranks.equals(again.ranks)
    assert not first.ranks.equals(other.ranks)


def test_one_submission_is_ranked_and_its_stability_undefined():
    table = random_table(1, 5, seed=1)
    r = recipe("aggregate-then-rank", bootstrap=20)
    summary, tau, ranks, note = bootstrap_stability(table, r)
    assert "single submission" in note
    assert summary["rank"].tolist() == [1] and math.isnan(summary.loc[0, "rank_lo"])
    assert len(tau) == 20 and tau.isna().all()
    board, board_note = leaderboard(table, r)
    assert board["rank"].tolist() == [1] and board_note == note


def test_all_tied_ranking_has_undefined_tau():
    rows = [{"submission": s, "case": f"c{k}", "metric": "dice", "value": 0.5}
            for s in "AB" for k in range(4)]
    r = RankingRecipe(metrics=[{"metric": "dice"}], bootstrap=10)
    _, tau, ranks, note = bootstrap_stability(pd.DataFrame(rows), r)
    assert "ties" in note and tau.isna().all() and (ranks.to_numpy() == 1).all()


def test_leaderboard_has_ranks_aggregates_and_intervals():
    table = random_table(4, 10, seed=4)
    board, note = leaderboard(table, recipe("aggregate-then-rank", bootstrap=25))
    assert note is None
    assert {"rank", "score", "dice_aggregate", "hd95_aggregate", "rank_lo", "rank_hi"} <= set(board.columns)
    assert (board["rank_lo"] <= board["rank_hi"]).all()
    assert board["rank"].is_monotonic_increasing


def tied_differences(n_pairs: int, n_cases: int, seed: int) -> np.ndarray:
    """Differences rounded to one decimal (ties of |d|, also of opposite sign), a third of them
    zero, the last row all zero."""
    rng = np.random.default_rng(seed)
    d = np.round(rng.normal(0.1, 0.5, size=(n_pairs, n_cases)), 1)
    d[rng.random(d.shape) < 0.3] = 0.0
    d[-1] = 0.0
    return d


def resample_counts(n_resamples: int, n_cases: int, seed: int) -> np.ndarray:
    idx = np.random.default_rng(seed).integers(0, n_cases, size=(n_resamples, n_cases))
    return np.stack([np.bincount(row, minlength=n_cases) for row in idx]).astype(float)


@pytest.mark.parametrize("n_cases", [1, 2, 7, 40])
def test_resampled_wilcoxon_equals_scipy_on_each_resample(n_cases):
    d = tied_differences(12, n_cases, seed=n_cases)
    counts = resample_counts(5, n_cases, seed=n_cases + 1)
    p_greater, p_less = wilcoxon_greater_resampled(d, counts)
    for b in range(5):
        resampled = np.repeat(d, counts[b].astype(int), axis=1)
        direct = wilcoxon_greater(resampled)
        assert np.array_equal(p_greater[b], direct[0], equal_nan=True)
        assert np.array_equal(p_less[b], direct[1], equal_nan=True)
        for row in range(len(d)):
            if not resampled[row].any():
                assert math.isnan(p_greater[b, row]) and math.isnan(p_less[b, row])
                continue
            for alternative, ours in (("greater", p_greater[b, row]), ("less", p_less[b, row])):
                ref = stats.wilcoxon(resampled[row], zero_method="wilcox", correction=True,
                                     alternative=alternative, method="asymptotic").pvalue
                assert ours == pytest.approx(ref, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("use_holm", [False, True])
def test_resampled_pvalues_equal_those_of_each_resampled_table(use_holm, monkeypatch):
    """Small chunks of pairs and resamples, so every chunk boundary is crossed."""
    monkeypatch.setattr(_resampled, "RUNNING_ROW_ELEMENTS", 7)
    monkeypatch.setattr(_resampled, "MAX_CHUNK_ELEMENTS", 50)
    rng = np.random.default_rng(4)
    oriented = np.round(rng.normal(0.7, 0.1, size=(6, 24)), 1)
    oriented[3] = oriented[1]  # a pair with no nonzero difference
    oriented[4, :8] = oriented[0, :8]
    idx = rng.integers(0, 24, size=(9, 24))
    p = resampled_pvalues(oriented, _counts(idx, 24), use_holm)
    for b in range(9):
        assert np.array_equal(p[b], pairwise_pvalues(oriented[:, idx[b]], use_holm), equal_nan=True)

