"""Ranking of challenge submissions and the stability of the ranking (docs/metrics.md, section Ranking).

Input is a long table of per-case metric values with the columns ``submission``, ``case``,
``label`` (optional; empty or None for a whole-case metric), ``metric`` and ``value``, plus a
:class:`RankingRecipe`. The rules follow challengeR (Wiesenfarth et al., Sci Rep 2021) and the
recommendations of Maier-Hein et al. (Nat Commun 2018):

- every (metric, label) pair the recipe selects is a *criterion* with a weight and a direction;
- the cases are the union over submissions (or those given explicitly); a missing value (a failed
  job, an empty output, NaN) gets the worst value of its metric over the whole table;
- ranks are 1 for the best, and ties share the best rank (R's ``ties.method = "min"``);
- ``aggregate-then-rank``: aggregate each criterion over cases, rank, combine the criterion ranks
  by their weighted mean, rank that;
- ``rank-then-aggregate``: rank the submissions within every case, aggregate the ranks over
  cases, combine criteria by the weighted mean of those aggregated ranks, rank that;
- ``test-based``: one-sided Wilcoxon signed-rank tests between every ordered pair of submissions,
  score = the number of others a submission significantly beats (weighted mean over criteria),
  rank by score, highest first;
- stability: bootstrap over cases, the rank distribution of every submission and Kendall's tau
  of each bootstrap ranking against the full ranking.

Single-criterion recipes reproduce challengeR's ``aggregateThenRank``, ``rankThenAggregate`` and
``testThenRank`` exactly (checked against wiesenfa/challengeR 1.0.5, commit
beb3b6752ce023e1c8e9f1982a91258c5855f3d3: ``ties.method = "min"`` in ``R/Rank.R``, the paired
one-sided ``wilcox.test(exact = FALSE)`` of ``R/Aggregate.R``). Everything here is pure
(pandas/numpy/scipy); the bootstrap is vectorized over resamples, and its Wilcoxon tests are
computed from how often each case occurs in each resample (:func:`wilcoxon_greater_resampled`),
with one sort per pair of submissions.
"""


from medarena.evaluators.ranking._rank import (
    bootstrap_stability,
    compare_methods,
    compare_values,
    leaderboard,
    rank,
    rank_values,
    significance_matrix,
    significance_values,
    stability_values,
)
from medarena.evaluators.ranking._recipe import (
    METHODS,
    CaseValues,
    Criterion,
    MetricWeight,
    RankingError,
    RankingRecipe,
    Stability,
)
from medarena.evaluators.ranking._resampled import resampled_pvalues, wilcoxon_greater_resampled
from medarena.evaluators.ranking._statistics import (
    holm,
    kendall_tau_b,
    pairwise_pvalues,
    rank_min,
    wilcoxon_greater,
)
from medarena.evaluators.ranking._table import case_values

__all__ = [
    "METHODS", "CaseValues", "Criterion", "MetricWeight", "RankingError", "RankingRecipe", "Stability",
    "bootstrap_stability", "case_values", "compare_methods", "compare_values", "holm", "kendall_tau_b",
    "leaderboard", "pairwise_pvalues", "rank", "rank_min", "rank_values", "resampled_pvalues",
    "significance_matrix", "significance_values", "stability_values", "wilcoxon_greater",
    "wilcoxon_greater_resampled",
]
