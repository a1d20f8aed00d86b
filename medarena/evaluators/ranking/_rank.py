"""The public ranking functions: rank, stability, method comparison, significance, leaderboard."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from medarena.evaluators.ranking._methods import aggregate, case_ranks, method_scores, ranks_of_resamples
from medarena.evaluators.ranking._recipe import (
    METHODS,
    CaseValues,
    MetricWeight,
    RankingError,
    RankingRecipe,
    Stability,
)
from medarena.evaluators.ranking._statistics import kendall_tau_b, pairwise_pvalues
from medarena.evaluators.ranking._table import case_values


def rank(
    table: pd.DataFrame,
    recipe: RankingRecipe,
    cases: Sequence[Any] | None = None,
    submissions: Sequence[Any] | None = None,
    method: str | None = None,
) -> pd.DataFrame:
    """The ranking of a phase: one row per submission, best first.

    Parameters
    ----------
    table : pandas.DataFrame
        Long table of per-case values: ``submission``, ``case``, ``label`` (None or empty for a
        whole-case metric), ``metric``, ``value``.
    recipe : RankingRecipe
        Method, aggregate, metrics with weights and directions (a direction left out is the one
        :mod:`medarena.evaluators.registry` declares).
    cases, submissions : sequence, optional
        The cases and submissions to rank (default: those in the table); a missing value gets the
        worst value of its metric.
    method : str, optional
        Overrides the recipe's method.

    Returns
    -------
    pandas.DataFrame
        ``submission``, ``rank`` (1 = best, ties share the best rank), ``score`` (what the rank
        orders: the weighted mean of criterion ranks for aggregate-then-rank and of aggregated
        per-case ranks for rank-then-aggregate, lower is better; the weighted mean number of
        significant wins for test-based, higher is better), ``n_missing`` (case values filled with
        the worst value), and per criterion ``<key>_aggregate`` (the recipe's aggregate of the metric
        over cases), ``<key>_score`` (what the criterion is ranked on) and ``<key>_rank``.

    References
    ----------
    challengeR's ``aggregateThenRank``, ``rankThenAggregate`` and ``testThenRank`` (Wiesenfarth et
    al., Scientific Reports 11:2369, 2021); docs/metrics.md, section Ranking.

    Examples
    --------
    >>> import pandas as pd
    >>> dice = {"A": [0.9, 0.8, 0.7, 0.9, 0.85], "B": [0.6, 0.7, 0.5, 0.8, 0.75]}
    >>> table = pd.DataFrame([{"submission": s, "case": f"c{k}", "label": None, "metric": "dice", "value": v}
    ...                       for s, values in dice.items() for k, v in enumerate(values)])
    >>> ranking = rank(table, RankingRecipe(metrics=[{"metric": "dice"}]))
    >>> ranking[["submission", "rank", "dice_aggregate"]].round(4).to_dict("records")
    [{'submission': 'A', 'rank': 1, 'dice_aggregate': 0.83}, {'submission': 'B', 'rank': 2, 'dice_aggregate': 0.67}]
    """
    data = case_values(table, recipe, cases, submissions)
    return rank_values(data, recipe, method)


def rank_values(data: CaseValues, recipe: RankingRecipe, method: str | None = None) -> pd.DataFrame:
    """:func:`rank` on an already validated dense table."""
    method = method or recipe.method
    if method not in METHODS:
        raise RankingError(f"unknown ranking method {method!r}; known: {', '.join(METHODS)}")
    full = np.arange(len(data.cases))[None, :]
    ranks_by_case = case_ranks(data) if method == "rank-then-aggregate" else None
    crit_score, crit_rank, score, ranks = method_scores(data, recipe, method, full, ranks_by_case)
    aggregates = aggregate(data.values, recipe.aggregate, recipe.quantile)
    out = pd.DataFrame({
        "submission": data.submissions,
        "rank": ranks[0].astype(int),
        "score": score[0],
        "n_missing": data.missing.sum(axis=(0, 2)),
    })
    for c, crit in enumerate(data.criteria):
        out[f"{crit.key}_aggregate"] = aggregates[c]
        out[f"{crit.key}_score"] = crit_score[0, c]
        out[f"{crit.key}_rank"] = crit_rank[0, c].astype(int)
    out.attrs.update(method=method, criteria=[c.key for c in data.criteria])
    return out.sort_values("rank", kind="stable").reset_index(drop=True)


def bootstrap_stability(
    table: pd.DataFrame,
    recipe: RankingRecipe,
    cases: Sequence[Any] | None = None,
    submissions: Sequence[Any] | None = None,
    n_resamples: int | None = None,
) -> Stability:
    """The stability of a ranking under resampled cases.

    The cases are resampled with replacement ``recipe.bootstrap`` times, seeded by ``recipe.seed``
    (``numpy.random.default_rng(seed).integers(0, K, (B, K))`` case indices); each resample is ranked
    with the recipe's method.

    Parameters
    ----------
    table : pandas.DataFrame
        Long table of per-case values: ``submission``, ``case``, ``label`` (None or empty for a
        whole-case metric), ``metric``, ``value``.
    recipe : RankingRecipe
        As :func:`rank`; ``bootstrap`` and ``seed`` set the resampling.
    cases, submissions : sequence, optional
        The cases and submissions to rank (default: those in the table); a missing value gets the
        worst value of its metric.
    n_resamples : int, optional
        Overrides ``recipe.bootstrap``.

    Returns
    -------
    Stability
        ``summary`` (per submission: rank, rank_median, rank_mean, rank_lo = 2.5 % and rank_hi =
        97.5 % with numpy's linear interpolation, frac_first), ``tau`` (Kendall's tau-b of each
        resample's ranking against the full ranking), ``ranks`` (the bootstrap ranks) and ``note``
        (why stability is undefined or degenerate: one submission, no resamples, a full ranking that
        is all ties; else None).

    References
    ----------
    challengeR's ``bootstrap`` and ``stability`` (Wiesenfarth et al., Scientific Reports 11:2369,
    2021); docs/metrics.md, section Ranking.

    Examples
    --------
    >>> import pandas as pd
    >>> dice = {"A": [0.9, 0.8, 0.7, 0.9, 0.85], "B": [0.6, 0.7, 0.5, 0.8, 0.75]}
    >>> table = pd.DataFrame([{"submission": s, "case": f"c{k}", "label": None, "metric": "dice", "value": v}
    ...                       for s, values in dice.items() for k, v in enumerate(values)])
    >>> stability = bootstrap_stability(table, RankingRecipe(metrics=[{"metric": "dice"}], bootstrap=200))
    >>> stability.summary[["submission", "rank", "frac_first"]].to_dict("records"), stability.note
    ([{'submission': 'A', 'rank': 1, 'frac_first': 1.0}, {'submission': 'B', 'rank': 2, 'frac_first': 0.0}], None)
    """
    data = case_values(table, recipe, cases, submissions)
    return stability_values(data, recipe, n_resamples)


def stability_values(data: CaseValues, recipe: RankingRecipe, n_resamples: int | None = None) -> Stability:
    """:func:`bootstrap_stability` on an already validated dense table."""
    b = recipe.bootstrap if n_resamples is None else n_resamples
    full = rank_values(data, recipe).set_index("submission").loc[data.submissions, "rank"].to_numpy(float)
    note = None
    if len(data.submissions) < 2:
        note = "stability is undefined with a single submission: its rank is 1 in every resample"
    elif b < 1:
        note = "stability was not computed: the recipe asks for no bootstrap resamples"
    elif len(np.unique(full)) == 1:
        note = "every submission ties in the full ranking: Kendall's tau is undefined"
    elif len(data.cases) < 2:
        note = "only one case: every resample is the same table"
    if note is not None and (len(data.submissions) < 2 or b < 1):
        boot = np.ones((b, len(data.submissions)))
        tau = np.full(b, np.nan)
        summary = _stability_summary(data.submissions, full, None)
    else:
        rng = np.random.default_rng(recipe.seed)
        idx = rng.integers(0, len(data.cases), size=(b, len(data.cases)))
        boot = ranks_of_resamples(data, recipe, recipe.method, idx)
        tau = kendall_tau_b(full, boot)
        summary = _stability_summary(data.submissions, full, boot)
    ranks = pd.DataFrame(boot.astype(int), columns=pd.Index(data.submissions, name="submission"))
    ranks.index.name = "resample"
    return Stability(summary, pd.Series(tau, name="kendall_tau", index=ranks.index), ranks, note)


def _stability_summary(submissions: list[Any], full: np.ndarray, boot: np.ndarray | None) -> pd.DataFrame:
    out = pd.DataFrame({"submission": submissions, "rank": full.astype(int)})
    if boot is None:
        for col in ("rank_median", "rank_mean", "rank_lo", "rank_hi", "frac_first"):
            out[col] = np.nan
    else:
        out["rank_median"] = np.median(boot, axis=0)
        out["rank_mean"] = boot.mean(axis=0)
        out["rank_lo"], out["rank_hi"] = np.quantile(boot, [0.025, 0.975], axis=0)
        out["frac_first"] = (boot == 1).mean(axis=0)
    return out.sort_values("rank", kind="stable").reset_index(drop=True)


def compare_methods(
    table: pd.DataFrame,
    recipe: RankingRecipe,
    cases: Sequence[Any] | None = None,
    submissions: Sequence[Any] | None = None,
) -> pd.DataFrame:
    """The rank of every submission under each of the three methods, side by side.

    One column per method (named as the method), rows ordered by the recipe's own ranking; the
    column ``spread`` is the largest minus the smallest of the three ranks, so a winner that
    depends on the method shows at a glance (challengeR's ranking-robustness line plots).
    """
    return compare_values(case_values(table, recipe, cases, submissions), recipe)


def compare_values(data: CaseValues, recipe: RankingRecipe) -> pd.DataFrame:
    """:func:`compare_methods` on an already validated dense table."""
    out = pd.DataFrame({"submission": data.submissions})
    for method in METHODS:
        ranking = rank_values(data, recipe, method).set_index("submission")["rank"]
        out[method] = ranking.loc[data.submissions].to_numpy()
    out["spread"] = out[list(METHODS)].max(axis=1) - out[list(METHODS)].min(axis=1)
    return out.sort_values(recipe.method, kind="stable").reset_index(drop=True)


def significance_matrix(
    table: pd.DataFrame,
    metric: str,
    label: str | None = None,
    *,
    alpha: float = 0.05,
    holm: bool = False,
    higher_is_better: bool | None = None,
    cases: Sequence[Any] | None = None,
    submissions: Sequence[Any] | None = None,
    pvalues: bool = False,
) -> pd.DataFrame:
    """Which submission significantly beats which on one metric (and label).

    Entry [row, column] is True when the one-sided paired Wilcoxon signed-rank test
    (:func:`wilcoxon_greater`, missing cases filled with the worst value) finds the row better than
    the column at level ``alpha`` (p ≤ alpha, as challengeR's ``decision.challenge``); with ``holm``,
    after Holm's correction over all ordered pairs.

    Parameters
    ----------
    table : pandas.DataFrame
        Long table of per-case values: ``submission``, ``case``, ``label`` (None or empty for a
        whole-case metric), ``metric``, ``value``.
    metric : str
        The metric to test on.
    label : str, optional
        May be left out when the metric has one label only.
    alpha : float
        The significance level.
    holm : bool
        Holm's correction over all ordered pairs.
    higher_is_better : bool, optional
        The direction (default: the registry's).
    cases, submissions : sequence, optional
        The cases and submissions to rank (default: those in the table); a missing value gets the
        worst value of its metric.
    pvalues : bool
        Give the (adjusted) p-values instead (NaN on the diagonal).

    Returns
    -------
    pandas.DataFrame
        Submission x submission, booleans (or p-values).

    References
    ----------
    challengeR (Wiesenfarth et al., Scientific Reports 11:2369, 2021); docs/metrics.md, section
    Ranking.

    Examples
    --------
    >>> import pandas as pd
    >>> dice = {"A": [0.9, 0.8, 0.7, 0.9, 0.85], "B": [0.6, 0.7, 0.5, 0.8, 0.75]}
    >>> table = pd.DataFrame([{"submission": s, "case": f"c{k}", "label": None, "metric": "dice", "value": v}
    ...                       for s, values in dice.items() for k, v in enumerate(values)])
    >>> significance_matrix(table, "dice").loc["A", "B"], significance_matrix(table, "dice").loc["B", "A"]
    (np.True_, np.False_)
    """
    spec = MetricWeight(metric=metric, label=label, higher_is_better=higher_is_better)
    recipe = RankingRecipe(metrics=[spec], alpha=alpha, holm=holm)
    data = case_values(table, recipe, cases, submissions)
    if len(data.criteria) > 1:
        labels = ", ".join(repr(c.label) for c in data.criteria)
        raise RankingError(f"metric {metric!r} has several labels ({labels}): name one")
    p_values, significant = significance_values(data, alpha, holm)[data.criteria[0].key]
    return p_values if pvalues else significant


def significance_values(
    data: CaseValues, alpha: float, use_holm: bool
) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """Per criterion key, (p-values, significant) of every ordered pair, as
    :func:`significance_matrix` (row better than column, p <= alpha)."""
    p = pairwise_pvalues(data.values * data.sign, use_holm)
    index = pd.Index(data.submissions, name="submission")
    out = {}
    for c, crit in enumerate(data.criteria):
        p_frame = pd.DataFrame(p[c], index=index, columns=index.copy())
        out[crit.key] = (p_frame, p_frame.fillna(np.inf) <= alpha)
    return out


def leaderboard(
    table: pd.DataFrame,
    recipe: RankingRecipe,
    cases: Sequence[Any] | None = None,
    submissions: Sequence[Any] | None = None,
) -> tuple[pd.DataFrame, str | None]:
    """The ranking joined with its bootstrap rank interval (rank_median, rank_lo, rank_hi) and
    the note on stability: what a phase's leaderboard shows, in one call.
    """
    data = case_values(table, recipe, cases, submissions)
    ranking = rank_values(data, recipe)
    stability = stability_values(data, recipe)
    columns = ["submission", "rank_median", "rank_lo", "rank_hi", "frac_first"]
    merged = ranking.merge(stability.summary[columns], on="submission", how="left")
    merged.attrs.update(ranking.attrs)
    return merged, stability.note
