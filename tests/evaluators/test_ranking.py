"""Ranking methods on small hand-computed tables (the rules of challengeR, Wiesenfarth et al. 2021)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from scipy import stats

from medarena.evaluators.ranking import (
    RankingError,
    RankingRecipe,
    compare_methods,
    holm,
    rank,
    significance_matrix,
    wilcoxon_greater,
)


def long_table(values: dict[str, list[float | None]], metric: str = "dice", label: str | None = None,
               cases: list[str] | None = None) -> pd.DataFrame:
    """Rows of one metric: values[submission][k] is case k's value; None leaves the row out."""
    rows = []
    for submission, vals in values.items():
        for k, v in enumerate(vals):
            if v is not None:
                case = cases[k] if cases else f"c{k + 1}"
                rows.append({"submission": submission, "case": case, "label": label,
                             "metric": metric, "value": v})
    return pd.DataFrame(rows)


def ranks(result: pd.DataFrame) -> dict[str, int]:
    return dict(zip(result["submission"], result["rank"], strict=True))


def recipe(method: str = "aggregate-then-rank", **kwargs) -> RankingRecipe:
    metrics = kwargs.pop("metrics", [{"metric": "dice"}])
    return RankingRecipe(method=method, metrics=metrics, **kwargs)


# A: 0.9 0.8 0.7 (mean 0.8, median 0.8); B: 0.6 0.9 0.9 (mean 0.8, median 0.9);
# C: 0.5 0.5 1.0 (mean 0.667, median 0.5); D: 0.7 0.7 0.7
DICE = {"A": [0.9, 0.8, 0.7], "B": [0.6, 0.9, 0.9], "C": [0.5, 0.5, 1.0], "D": [0.7, 0.7, 0.7]}


class TestAggregateThenRank:
    def test_mean_ties_share_the_best_rank(self):
        result = rank(long_table(DICE), recipe())
        assert ranks(result) == {"A": 1, "B": 1, "D": 3, "C": 4}
        assert result.set_index("submission").loc["C", "dice_aggregate"] == pytest.approx(2 / 3)

    def test_median(self):
        assert ranks(rank(long_table(DICE), recipe(aggregate="median"))) == {"B": 1, "A": 2, "D": 3, "C": 4}

    def test_quantile_linear_interpolation(self):
        # q = 0.9, position 1.8 of 3: A 0.8 + 0.8 * 0.1 = 0.88, B 0.9, C 0.5 + 0.8 * 0.5 = 0.9, D 0.7
        result = rank(long_table(DICE), recipe(aggregate="quantile", quantile=0.9))
        assert ranks(result) == {"B": 1, "C": 1, "A": 3, "D": 4}
        assert result.set_index("submission").loc["A", "dice_aggregate"] == pytest.approx(0.88)

    def test_lower_is_better_from_the_metric_name(self):
        table = long_table({"A": [1, 2, 3], "B": [4, 4, 1], "C": [2, 2, 2]}, metric="hd95")
        assert ranks(rank(table, recipe(metrics=[{"metric": "hd95"}]))) == {"A": 1, "C": 1, "B": 3}

    def test_direction_overridden_in_the_recipe(self):
        table = long_table({"A": [1, 2, 3], "B": [4, 4, 1], "C": [2, 2, 2]}, metric="hd95")
        flipped = recipe(metrics=[{"metric": "hd95", "higher_is_better": True}])
        assert ranks(rank(table, flipped)) == {"B": 1, "A": 2, "C": 2}

    def test_metric_ranks_combine_by_weighted_mean(self):
        # dice ranks A 1, B 2; hd95 ranks A 2, B 1
        table = pd.concat([long_table({"A": [0.9], "B": [0.8]}),
                           long_table({"A": [5.0], "B": [3.0]}, metric="hd95")])
        dice_heavy = recipe(metrics=[{"metric": "dice", "weight": 2}, {"metric": "hd95"}])
        hd_heavy = recipe(metrics=[{"metric": "dice"}, {"metric": "hd95", "weight": 2}])
        equal = recipe(metrics=[{"metric": "dice"}, {"metric": "hd95"}])
        result = rank(table, dice_heavy)
        assert ranks(result) == {"A": 1, "B": 2}
        assert result.set_index("submission")["score"].to_dict() == pytest.approx({"A": 4 / 3, "B": 5 / 3})
        assert ranks(rank(table, hd_heavy)) == {"B": 1, "A": 2}
        assert ranks(rank(table, equal)) == {"A": 1, "B": 1}

    def test_labels_are_separate_criteria_and_can_be_weighted(self):
        liver = long_table({"A": [0.9, 0.9], "B": [0.8, 0.8]}, label="liver")
        kidney = long_table({"A": [0.5, 0.5], "B": [0.7, 0.7]}, label="kidney")
        table = pd.concat([liver, kidney])
        both = rank(table, recipe())
        assert set(both.columns) >= {"dice[liver]_rank", "dice[kidney]_rank"}
        assert ranks(both) == {"A": 1, "B": 1}
        kidney_heavy = recipe(metrics=[{"metric": "dice", "label": "liver"},
                                       {"metric": "dice", "label": "kidney", "weight": 3}])
        assert ranks(rank(table, kidney_heavy)) == {"B": 1, "A": 2}
        assert ranks(rank(table, recipe(metrics=[{"metric": "dice", "label": "liver"}]))) == {"A": 1, "B": 2}


class TestRankThenAggregate:
    def test_mean_of_per_case_ranks(self):
        # case 1: A1 D2 B3 C4; case 2: B1 A2 D3 C4; case 3: C1 B2 A3 D3 (tie)
        # mean ranks: A 2, B 2, C 3, D 8/3
        result = rank(long_table(DICE), recipe("rank-then-aggregate"))
        assert ranks(result) == {"A": 1, "B": 1, "D": 3, "C": 4}
        assert result.set_index("submission")["score"].to_dict() == pytest.approx(
            {"A": 2, "B": 2, "C": 3, "D": 8 / 3})

    def test_median_of_per_case_ranks(self):
        result = rank(long_table(DICE), recipe("rank-then-aggregate", aggregate="median"))
        assert result.set_index("submission")["score"].to_dict() == pytest.approx(
            {"A": 2, "B": 2, "C": 4, "D": 3})

    def test_differs_from_aggregate_then_rank(self):
        # A is better on average, B wins most cases
        table = long_table({"A": [0.9, 0.9, 0.9], "B": [0.95, 0.95, 0.1]})
        assert ranks(rank(table, recipe())) == {"A": 1, "B": 2}
        assert ranks(rank(table, recipe("rank-then-aggregate"))) == {"B": 1, "A": 2}

    def test_lower_is_better(self):
        # case ranks (lower is better): A 1 1 3, B 3 3 1, C 2 2 2 -> means 5/3, 7/3, 2
        table = long_table({"A": [1, 2, 3], "B": [4, 4, 1], "C": [2, 3, 2]}, metric="hd95")
        assert ranks(rank(table, recipe("rank-then-aggregate", metrics=[{"metric": "hd95"}]))) == {
            "A": 1, "C": 2, "B": 3}

    def test_criteria_combine_as_the_mean_over_all_case_ranks(self):
        # dice case ranks: A 1 1, B 2 2; hd95 case ranks: A 2 2, B 1 1 (weight 3) -> A 7/4, B 5/4
        table = pd.concat([long_table({"A": [0.9, 0.9], "B": [0.8, 0.8]}),
                           long_table({"A": [5.0, 6.0], "B": [3.0, 4.0]}, metric="hd95")])
        r = recipe("rank-then-aggregate", metrics=[{"metric": "dice"}, {"metric": "hd95", "weight": 3}])
        result = rank(table, r)
        assert ranks(result) == {"B": 1, "A": 2}
        assert result.set_index("submission")["score"].to_dict() == pytest.approx({"A": 7 / 4, "B": 5 / 4})


# Six cases. A beats B and C on every case, by distinct margins: W+ = 21, n = 6, no ties,
# z = (21 - 10.5 - 0.5) / sqrt(6 * 7 * 13 / 24) = 2.0966, one-sided p = 0.0180.
# B against C: |d| = .125 x4 (rank 2.5) and .25 x2 (rank 5.5), W+ = 10.5 = n(n+1)/4: p ~ 0.43.
TESTED = {
    "A": [0.9, 0.95, 0.85, 0.99, 0.8, 0.97],
    "B": [0.5, 0.25, 0.75, 0.5, 0.25, 0.625],
    "C": [0.625, 0.125, 0.5, 0.75, 0.375, 0.5],
}
P_ALL_WINS_6 = stats.norm.sf((21 - 10.5 - 0.5) / math.sqrt(6 * 7 * 13 / 24))


class TestTestBased:
    def test_number_of_significant_wins(self):
        result = rank(long_table(TESTED), recipe("test-based"))
        assert ranks(result) == {"A": 1, "B": 2, "C": 2}
        assert result.set_index("submission")["score"].to_dict() == {"A": 2, "B": 0, "C": 0}

    def test_holm_correction_removes_the_wins(self):
        # Holm over 6 ordered pairs: 6 * 0.018 = 0.108 > 0.05
        assert P_ALL_WINS_6 * 6 > 0.05
        result = rank(long_table(TESTED), recipe("test-based", holm=True))
        assert ranks(result) == {"A": 1, "B": 1, "C": 1}

    def test_alpha(self):
        result = rank(long_table(TESTED), recipe("test-based", alpha=0.01))
        assert ranks(result) == {"A": 1, "B": 1, "C": 1}

    def test_lower_is_better(self):
        result = rank(long_table(TESTED, metric="hd95"), recipe("test-based", metrics=[{"metric": "hd95"}]))
        assert ranks(result) == {"B": 1, "C": 1, "A": 3}

    def test_significance_matrix_and_pvalues(self):
        table = long_table(TESTED)
        significant = significance_matrix(table, "dice")
        assert significant.loc["A"].tolist() == [False, True, True]
        assert not significant.loc[["B", "C"]].to_numpy().any()
        p = significance_matrix(table, "dice", pvalues=True)
        assert p.loc["A", "B"] == pytest.approx(P_ALL_WINS_6, rel=1e-9)
        assert p.loc["B", "C"] == pytest.approx(
            stats.wilcoxon(TESTED["B"], TESTED["C"], alternative="greater", correction=True,
                           method="asymptotic").pvalue, rel=1e-9)
        assert math.isnan(p.loc["A", "A"])
        assert significance_matrix(table, "dice", holm=True).to_numpy().sum() == 0


class TestWilcoxonAgainstScipy:
    @pytest.mark.parametrize("n", [1, 2, 5, 13, 30, 49, 50, 51, 120])
    def test_random_with_ties_and_zeros(self, n):
        rng = np.random.default_rng(n)
        x = np.round(rng.normal(size=(20, n)), 1)
        y = np.round(rng.normal(0.2, size=(20, n)), 1)
        y[::3, : n // 3] = x[::3, : n // 3]  # zero differences
        p_greater, p_less = wilcoxon_greater(x - y)
        for row in range(20):
            d = x[row] - y[row]
            if not d.any():
                assert math.isnan(p_greater[row]) and math.isnan(p_less[row])
                continue
            for alternative, ours in (("greater", p_greater[row]), ("less", p_less[row])):
                ref = stats.wilcoxon(x[row], y[row], zero_method="wilcox", correction=True,
                                     alternative=alternative, method="asymptotic").pvalue
                assert ours == pytest.approx(ref, rel=1e-9, abs=1e-15)

    def test_all_zero_differences_are_never_significant(self):
        table = long_table({"A": [0.5, 0.6], "B": [0.5, 0.6]})
        assert ranks(rank(table, recipe("test-based"))) == {"A": 1, "B": 1}


def test_holm_by_hand():
    # sorted: .005*4 = .02, .01*3 = .03, .03*2 = .06, .04*1 = .04 -> cummax .02 .03 .06 .06
    assert holm(np.array([0.01, 0.04, 0.03, 0.005])) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adjusted = holm(np.array([0.2, np.nan, 0.01]))
    assert adjusted[[0, 2]] == pytest.approx([0.2, 0.02]) and math.isnan(adjusted[1])


class TestMissingValues:
    def test_missing_and_nan_get_the_worst_value_of_the_metric(self):
        # worst dice over the table = 0.6; B (.7, .6) mean .65; C (.6, .6); F failed every case
        table = long_table({"A": [0.9, 0.8], "B": [0.7, None], "C": [0.6, float("nan")]})
        result = rank(table, recipe(), submissions=["A", "B", "C", "F"])
        assert ranks(result) == {"A": 1, "B": 2, "C": 3, "F": 3}
        by_sub = result.set_index("submission")
        assert by_sub["n_missing"].to_dict() == {"A": 0, "B": 1, "C": 1, "F": 2}
        assert by_sub.loc["B", "dice_aggregate"] == pytest.approx(0.65)

    def test_worst_of_a_lower_is_better_metric_is_the_highest(self):
        table = long_table({"A": [1.0, 2.0], "B": [3.0, None], "C": [9.0, 1.0]}, metric="hd95")
        result = rank(table, recipe(metrics=[{"metric": "hd95"}])).set_index("submission")
        # B: (3 + 9) / 2 = 6 ; C: 5 ; A: 1.5
        assert result["hd95_aggregate"].to_dict() == pytest.approx({"A": 1.5, "B": 6.0, "C": 5.0})
        assert result["rank"].to_dict() == {"A": 1, "C": 2, "B": 3}

    def test_worst_is_taken_over_every_label_of_the_metric(self):
        liver = long_table({"A": [0.9, 0.8], "B": [0.85, None]}, label="liver")
        kidney = long_table({"A": [0.3, 0.4], "B": [0.5, 0.5]}, label="kidney")
        result = rank(pd.concat([liver, kidney]), recipe(metrics=[{"metric": "dice", "label": "liver"}]))
        b_liver = result.set_index("submission").loc["B", "dice[liver]_aggregate"]
        assert b_liver == pytest.approx((0.85 + 0.3) / 2)

    def test_missing_in_rank_then_aggregate_ties_with_the_worst(self):
        # case 2: A .8, B missing -> .6 (worst), C .6 -> A1, B2, C2
        table = long_table({"A": [0.9, 0.8], "B": [0.7, None], "C": [0.6, 0.6]})
        result = rank(table, recipe("rank-then-aggregate")).set_index("submission")
        assert result["score"].to_dict() == pytest.approx({"A": 1.0, "B": 2.0, "C": 2.5})

    def test_explicit_cases_count_a_case_nobody_scored(self):
        table = long_table({"A": [0.9, 0.8], "B": [0.7, 0.7]})
        result = rank(table, recipe(), cases=["c1", "c2", "c3"]).set_index("submission")
        assert result["n_missing"].to_dict() == {"A": 1, "B": 1}
        assert result.loc["A", "dice_aggregate"] == pytest.approx((0.9 + 0.8 + 0.7) / 3)

    def test_whole_case_label_none_or_empty(self):
        table = long_table({"A": [0.9], "B": [0.8]})
        table.loc[0, "label"] = ""
        assert ranks(rank(table, recipe())) == {"A": 1, "B": 2}
        assert ranks(rank(table.drop(columns="label"), recipe())) == {"A": 1, "B": 2}


class TestBadInput:
    def test_unknown_metric(self):
        with pytest.raises(RankingError, match=r"metric 'nsd@2'.*its metrics: dice"):
            rank(long_table(DICE), recipe(metrics=[{"metric": "nsd@2"}]))

    def test_unknown_label(self):
        with pytest.raises(RankingError, match=r"label 'liver' of metric 'dice'"):
            rank(long_table(DICE), recipe(metrics=[{"metric": "dice", "label": "liver"}]))

    def test_duplicate_rows(self):
        table = long_table(DICE)
        table = pd.concat([table, table.iloc[[0]]])
        with pytest.raises(RankingError, match=r"duplicate rows .*\(A, c1, -, dice\)"):
            rank(table, recipe())

    def test_non_numeric_value(self):
        table = long_table(DICE)
        table["value"] = table["value"].astype(object)
        table.iloc[2, table.columns.get_loc("value")] = "n/a"
        with pytest.raises(RankingError, match="non-numeric value 'n/a'"):
            rank(table, recipe())

    def test_missing_column(self):
        with pytest.raises(RankingError, match="lacks the column"):
            rank(long_table(DICE).drop(columns="metric"), recipe())

    def test_rows_outside_the_given_cases(self):
        with pytest.raises(RankingError, match="cases that were not given: 'c3'"):
            rank(long_table(DICE), recipe(), cases=["c1", "c2"])

    def test_recipe_is_strict(self):
        with pytest.raises(ValidationError):
            RankingRecipe(metrics=[{"metric": "dice"}], methd="median")
        with pytest.raises(ValidationError):
            RankingRecipe(metrics=[{"metric": "dice"}], method="borda")
        with pytest.raises(ValidationError, match="more than once"):
            RankingRecipe(metrics=[{"metric": "dice"}, {"metric": "dice"}])
        with pytest.raises(ValidationError):
            RankingRecipe(metrics=[])
        with pytest.raises(ValidationError):
            RankingRecipe(metrics=[{"metric": "dice", "weight": 0}])

    def test_metric_with_no_values(self):
        table = long_table({"A": [float("nan")], "B": [float("nan")]})
        with pytest.raises(RankingError, match="no values"):
            rank(table, recipe())

    def test_significance_matrix_needs_a_label_when_there_are_several(self):
        table = pd.concat([long_table({"A": [0.9]}, label="liver"), long_table({"A": [0.9]}, label="kidney")])
        with pytest.raises(RankingError, match="several labels"):
            significance_matrix(table, "dice")

    def test_one_submission_ranks_first(self):
        for method in ("aggregate-then-rank", "rank-then-aggregate", "test-based"):
            assert ranks(rank(long_table({"A": [0.5, 0.6]}), recipe(method))) == {"A": 1}


def test_compare_methods_side_by_side():
    # A better on average, B wins two of three cases; with three cases no test is significant
    table = long_table({"A": [0.9, 0.9, 0.9], "B": [0.95, 0.95, 0.1]})
    table_rows = compare_methods(table, recipe()).set_index("submission")
    assert table_rows.loc["A"].to_dict() == {
        "aggregate-then-rank": 1, "rank-then-aggregate": 2, "test-based": 1, "spread": 1}
    assert table_rows.loc["B"].to_dict() == {
        "aggregate-then-rank": 2, "rank-then-aggregate": 1, "test-based": 1, "spread": 1}
