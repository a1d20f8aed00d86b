"""Ranking of challenge submissions and the stability of the ranking.

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
``testThenRank`` exactly. Everything here is pure (pandas/numpy/scipy); the bootstrap is
vectorized over resamples, and its Wilcoxon tests are computed from how often each case occurs
in each resample (:func:`wilcoxon_greater_resampled`), with one sort per pair of submissions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy import special, stats

from medarena.evaluators.tasks import higher_is_better

Method = Literal["aggregate-then-rank", "rank-then-aggregate", "test-based"]
METHODS: tuple[str, ...] = ("aggregate-then-rank", "rank-then-aggregate", "test-based")
COLUMNS = ("submission", "case", "label", "metric", "value")
_MAX_CHUNK_ELEMENTS = 4_000_000  # bound on the working arrays of one bootstrap chunk
_RUNNING_ROW_ELEMENTS = 65_536  # running rows of the resampled Wilcoxon pass (kept in cache)


class RankingError(ValueError):
    """A table or recipe that cannot be ranked; the message names the metric, rows or setting."""


class MetricWeight(BaseModel):
    """One metric of a recipe: ``label`` None selects every label the metric has in the table."""

    model_config = ConfigDict(extra="forbid")

    metric: str
    label: str | None = None
    weight: float = Field(1.0, gt=0)
    higher_is_better: bool | None = None


class RankingRecipe(BaseModel):
    """How a phase ranks its submissions (see the module docstring for the rules)."""

    model_config = ConfigDict(extra="forbid")

    method: Method = "aggregate-then-rank"
    aggregate: Literal["mean", "median", "quantile"] = "mean"
    quantile: float = Field(0.5, ge=0, le=1)
    metrics: list[MetricWeight] = Field(min_length=1)
    alpha: float = Field(0.05, gt=0, lt=1)
    holm: bool = False
    bootstrap: int = Field(1000, ge=0)
    seed: int = 0

    @model_validator(mode="after")
    def _distinct_metrics(self) -> RankingRecipe:
        seen = [(m.metric, m.label) for m in self.metrics]
        dupes = sorted({f"{m}[{lab}]" if lab else m for m, lab in seen if seen.count((m, lab)) > 1})
        if dupes:
            raise ValueError(f"metrics listed more than once: {', '.join(dupes)}")
        return self


@dataclass(frozen=True)
class Criterion:
    """A (metric, label) pair that is ranked on, with its weight and direction."""

    metric: str
    label: str
    weight: float
    higher_is_better: bool

    @property
    def key(self) -> str:
        """``metric`` for a whole-case metric, else ``metric[label]``."""
        return f"{self.metric}[{self.label}]" if self.label else self.metric


@dataclass(frozen=True)
class CaseValues:
    """The table in dense form: ``values[c, s, k]`` of criterion c, submission s, case k.

    Missing values are already replaced by the worst value of the metric; ``missing`` marks them.
    """

    submissions: list[Any]
    cases: list[Any]
    criteria: list[Criterion]
    values: np.ndarray
    missing: np.ndarray

    @property
    def sign(self) -> np.ndarray:
        """+1 for higher-is-better criteria, -1 otherwise, shaped (C, 1, 1)."""
        return np.array([1.0 if c.higher_is_better else -1.0 for c in self.criteria])[:, None, None]

    @property
    def weights(self) -> np.ndarray:
        return np.array([c.weight for c in self.criteria])


class Stability(NamedTuple):
    """Bootstrap stability of a ranking.

    ``summary``: one row per submission (rank, rank_median, rank_mean, rank_lo = 2.5 %,
    rank_hi = 97.5 %, frac_first); ``tau``: Kendall's tau-b of each resample against the full
    ranking; ``ranks``: the bootstrap ranks, one row per resample and one column per submission;
    ``note``: why stability is undefined or degenerate, else None.
    """

    summary: pd.DataFrame
    tau: pd.Series
    ranks: pd.DataFrame
    note: str | None


# ----------------------------------------------------------------------------- the table


def case_values(
    table: pd.DataFrame,
    recipe: RankingRecipe,
    cases: Sequence[Any] | None = None,
    submissions: Sequence[Any] | None = None,
) -> CaseValues:
    """Validate the long table against the recipe and make it dense, missing values filled.

    The cases are ``cases`` when given (the phase's cases, so a submission without a value for a
    case gets the worst value there), else the union over submissions; likewise ``submissions``
    (so a submission that failed every case still ranks, last). The worst value of a metric is its
    lowest (higher-is-better) or highest value over the whole table (challengeR's ``na.treat`` with
    the worst value). Raises :class:`RankingError` on unknown metrics or labels, duplicate rows,
    non-numeric values, or rows outside the given cases/submissions.
    """
    frame = _normalized(table)
    criteria = _criteria(frame, recipe)
    subs = _universe(frame["submission"], submissions, "submission")
    case_list = _universe(frame["case"], cases, "case")
    if not subs:
        raise RankingError("nothing to rank: no submissions")
    if not case_list:
        raise RankingError("nothing to rank: no cases")
    sub_index = pd.Index(subs)
    case_index = pd.Index(case_list)
    values = np.empty((len(criteria), len(subs), len(case_list)))
    missing = np.ones(values.shape, dtype=bool)
    for c, crit in enumerate(criteria):
        of_metric = frame[frame["metric"] == crit.metric]
        finite_or_inf = of_metric["value"].dropna()
        if finite_or_inf.empty:
            raise RankingError(f"metric {crit.metric!r} has no values in the table")
        worst = finite_or_inf.max() if not crit.higher_is_better else finite_or_inf.min()
        values[c] = worst
        rows = of_metric[(of_metric["label"] == crit.label) & of_metric["value"].notna()]
        s_idx = sub_index.get_indexer(rows["submission"])
        k_idx = case_index.get_indexer(rows["case"])
        values[c, s_idx, k_idx] = rows["value"].to_numpy(dtype=float)
        missing[c, s_idx, k_idx] = False
    return CaseValues(subs, case_list, criteria, values, missing)


def _normalized(table: pd.DataFrame) -> pd.DataFrame:
    absent = [c for c in ("submission", "case", "metric", "value") if c not in table.columns]
    if absent:
        raise RankingError(f"the table lacks the column(s) {', '.join(absent)}; needs {', '.join(COLUMNS)}")
    frame = table.loc[:, [c for c in COLUMNS if c in table.columns]].copy()
    label = frame["label"] if "label" in frame.columns else pd.Series("", index=frame.index)
    frame["label"] = label.astype(object).where(label.notna(), "").astype(str)
    frame["metric"] = frame["metric"].astype(str)
    numeric = pd.to_numeric(frame["value"], errors="coerce")
    bad = numeric.isna() & frame["value"].notna()
    if bad.any():
        row = frame[bad].iloc[0]
        raise RankingError(
            f"non-numeric value {row['value']!r} for submission {row['submission']!r}, case "
            f"{row['case']!r}, metric {row['metric']!r} ({int(bad.sum())} such rows)"
        )
    frame["value"] = numeric.astype(float)
    dupes = frame[frame.duplicated(["submission", "case", "label", "metric"], keep=False)]
    if not dupes.empty:
        keys = dupes[["submission", "case", "label", "metric"]].drop_duplicates()
        shown = "; ".join(
            f"({r.submission}, {r.case}, {r.label or '-'}, {r.metric})" for r in keys.head(3).itertuples()
        )
        raise RankingError(
            f"duplicate rows for (submission, case, label, metric): {shown}"
            f"{' ...' if len(keys) > 3 else ''} ({len(keys)} keys repeated)"
        )
    return frame


def _criteria(frame: pd.DataFrame, recipe: RankingRecipe) -> list[Criterion]:
    known = sorted(frame["metric"].unique())
    criteria: list[Criterion] = []
    for spec in recipe.metrics:
        if spec.metric not in known:
            raise RankingError(
                f"the recipe names metric {spec.metric!r}, which the table does not have "
                f"(its metrics: {', '.join(known) or 'none'})"
            )
        labels = sorted(frame.loc[frame["metric"] == spec.metric, "label"].unique())
        if spec.label is not None and spec.label not in labels:
            raise RankingError(
                f"the recipe names label {spec.label!r} of metric {spec.metric!r}, which the table "
                f"does not have (its labels: {', '.join(repr(lab) for lab in labels)})"
            )
        direction = higher_is_better(spec.metric) if spec.higher_is_better is None else spec.higher_is_better
        for label in [spec.label] if spec.label is not None else labels:
            criteria.append(Criterion(spec.metric, label, spec.weight, direction))
    keys = [c.key for c in criteria]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise RankingError(f"the recipe selects {', '.join(repeated)} more than once")
    return criteria


def _universe(column: pd.Series, given: Sequence[Any] | None, what: str) -> list[Any]:
    present = list(pd.unique(column))
    if given is None:
        try:
            return sorted(present)
        except TypeError:
            return present
    given = list(dict.fromkeys(given))
    allowed = set(given)
    extra = [x for x in present if x not in allowed]
    if extra:
        shown = ", ".join(repr(x) for x in extra[:5])
        more = " ..." if len(extra) > 5 else ""
        raise RankingError(f"the table has {what}s that were not given: {shown}{more}")
    return given


# ----------------------------------------------------------------------------- rank statistics


def rank_min(x: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Ranks along the last axis, 1 for the best, ties sharing the best rank (R's ties "min")."""
    return stats.rankdata(-x if higher_is_better else x, method="min", axis=-1).astype(float)


def wilcoxon_greater(differences: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-sided p-values of the paired Wilcoxon signed-rank test along the last axis.

    Returns (p of H1 "differences > 0", p of H1 "differences < 0"). As R's ``wilcox.test(x, y,
    paired=TRUE, exact=FALSE)``, which challengeR's ``testThenRank`` calls: zero differences are
    dropped, |d| gets average ranks, the normal approximation has the tie correction
    sum(t^3 - t)/48 in its variance and a continuity correction of 0.5; no nonzero difference
    gives NaN. Same as ``scipy.stats.wilcoxon(..., zero_method="wilcox", correction=True,
    method="asymptotic")``. One sort per row, vectorized over the leading axes.
    """
    d = np.asarray(differences, dtype=float)
    order = np.argsort(np.abs(d), axis=-1, kind="stable")
    ds = np.take_along_axis(d, order, axis=-1)
    a = np.abs(ds)
    k = a.shape[-1]
    pos = np.arange(k)
    starts = np.ones(a.shape, dtype=bool)
    starts[..., 1:] = a[..., 1:] != a[..., :-1]
    ends = np.ones(a.shape, dtype=bool)
    ends[..., :-1] = starts[..., 1:]
    first = np.maximum.accumulate(np.where(starts, pos, 0), axis=-1)
    last = np.flip(np.minimum.accumulate(np.flip(np.where(ends, pos, k - 1), -1), axis=-1), -1)
    zeros = (a == 0).sum(axis=-1)
    n = (k - zeros).astype(float)
    avg_rank = (first + last) / 2.0 + 1.0 - zeros[..., None]
    w_plus = np.where(ds > 0, avg_rank, 0.0).sum(axis=-1)
    tie_sizes = (last - first + 1).astype(float)
    ties = np.where(ds != 0, tie_sizes**2 - 1.0, 0.0).sum(axis=-1)
    return _normal_pvalues(w_plus, n, ties)


def _normal_pvalues(w_plus: np.ndarray, n: np.ndarray, ties: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(p greater, p less) of the signed-rank sum W+ of n nonzero differences with the tie term
    sum(t^3 - t): z = (W+ - n(n+1)/4 -+ 0.5) / sqrt(n(n+1)(2n+1)/24 - ties/48); NaN when n = 0."""
    mean = n * (n + 1) / 4.0
    with np.errstate(invalid="ignore", divide="ignore"):
        sigma = np.sqrt(n * (n + 1) * (2 * n + 1) / 24.0 - ties / 48.0)
        sigma = np.where(sigma > 0, sigma, np.nan)
        p_greater = special.ndtr(-(w_plus - mean - 0.5) / sigma)
        p_less = special.ndtr((w_plus - mean + 0.5) / sigma)
    return p_greater, p_less


def holm(p: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values along the last axis (R's ``p.adjust(p, "holm")``); NaN stays NaN.

    adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)) over the m non-NaN p-values sorted ascending.
    """
    p = np.asarray(p, dtype=float)
    m = np.isfinite(p).sum(axis=-1, keepdims=True)
    filled = np.where(np.isnan(p), np.inf, p)
    order = np.argsort(filled, axis=-1, kind="stable")
    ps = np.take_along_axis(filled, order, axis=-1)
    factor = m - np.arange(p.shape[-1])
    scaled = np.where(np.isfinite(ps), np.where(np.isfinite(ps), ps, 0.0) * factor, np.nan)
    adj = np.minimum(1.0, np.maximum.accumulate(scaled, axis=-1))
    out = np.empty_like(adj)
    np.put_along_axis(out, order, adj, axis=-1)
    return np.where(np.isnan(p), np.nan, out)


def pairwise_pvalues(oriented: np.ndarray, use_holm: bool) -> np.ndarray:
    """p[..., i, j]: one-sided Wilcoxon p-value that submission i beats j (higher is better).

    ``oriented`` has shape (..., S, K) with higher values better. With ``use_holm``, Holm's
    correction runs over the S(S-1) ordered pairs (challengeR's ``p.adjust.method``).
    The diagonal is NaN.
    """
    s = oriented.shape[-2]
    p_ij, p_ji = wilcoxon_greater(_pair_differences(oriented))
    return _pair_matrix(p_ij, p_ji, s, use_holm)


def resampled_pvalues(oriented: np.ndarray, counts: np.ndarray, use_holm: bool) -> np.ndarray:
    """:func:`pairwise_pvalues` of resampled tables, shape (B, S, S).

    ``oriented`` (S, K) holds the original cases (higher is better); resample b holds case k
    ``counts[b, k]`` times. p[b] equals ``pairwise_pvalues(np.repeat(oriented, counts[b], axis=-1),
    use_holm)`` (see :func:`wilcoxon_greater_resampled`).
    """
    s = oriented.shape[-2]
    p_ij, p_ji = wilcoxon_greater_resampled(_pair_differences(oriented), counts)
    return _pair_matrix(p_ij, p_ji, s, use_holm)


def _pair_differences(oriented: np.ndarray) -> np.ndarray:
    """x_i - x_j for the pairs i < j in ``np.triu_indices`` order, exactly 0 where x_i == x_j."""
    i, j = np.triu_indices(oriented.shape[-2], 1)
    xi, xj = oriented[..., i, :], oriented[..., j, :]
    with np.errstate(invalid="ignore"):
        return np.where(xi == xj, 0.0, xi - xj)


def _pair_matrix(p_ij: np.ndarray, p_ji: np.ndarray, s: int, use_holm: bool) -> np.ndarray:
    """The (..., S, S) matrix of the p-values of the pairs i < j (i beats j, j beats i), NaN on
    the diagonal, Holm-adjusted over the off-diagonal entries when asked."""
    i, j = np.triu_indices(s, 1)
    p = np.full(p_ij.shape[:-1] + (s, s), np.nan)
    p[..., i, j] = p_ij
    p[..., j, i] = p_ji
    if use_holm and s > 1:
        off = ~np.eye(s, dtype=bool)
        p[..., off] = holm(p[..., off])
    return p


def kendall_tau_b(reference: np.ndarray, rankings: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of every row of ``rankings`` (B, S) against ``reference`` (S,).

    tau-b = (concordant - discordant) / sqrt(n_x n_y), n_x and n_y the pairs untied in each
    ranking (as R's ``cor(method = "kendall")`` and ``scipy.stats.kendalltau``); NaN when either
    ranking is all ties.
    """
    i, j = np.triu_indices(len(reference), 1)
    sr = np.sign(reference[i] - reference[j])
    sb = np.sign(rankings[:, i] - rankings[:, j])
    denominator = np.sqrt(np.count_nonzero(sr) * np.count_nonzero(sb, axis=1).astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (sb @ sr) / denominator, np.nan)


# ----------------------------------------------------------------------------- resampled Wilcoxon


def wilcoxon_greater_resampled(differences: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`wilcoxon_greater` of every row of ``differences`` (P, K) in every resample of its
    cases, without building the resamples: resample b holds case k ``counts[b, k]`` times.

    Returns (p greater, p less), each (B, P); row p of resample b equals
    ``wilcoxon_greater(np.repeat(differences[p], counts[b]))``, the test of R's ``wilcox.test(x,
    y, paired=TRUE, exact=FALSE)`` that challengeR's ``testThenRank`` runs (Wiesenfarth et al.,
    Sci Rep 2021). Copies of a case share its |d|, so one sort of the original |d| per row
    suffices. In that order, zero differences dropped, let c_k be the count of the k-th case and
    s_k = c_1 + ... + c_k. A tie group g (equal |d|, cases m..e) holds t_g = s_e - s_(m-1)
    differences, all with mid-rank (s_(m-1) + s_e + 1) / 2, so with q_g its positive ones::

        n = s_K,    ties = sum_g (t_g^3 - t_g),    2 W+ = sum_g q_g (s_(m-1) + s_e + 1),

    and for a group of one case k, q_k (s_(m-1) + s_e + 1) = 2 c_k s_k - (c_k^2 - c_k) when
    d_k > 0. The running sum of c_k s_k over the positive single cases is one pass over the
    sorted cases, vectorized over pairs and resamples; the terms in c_k alone are matrix
    products; tied groups are closed as the pass reaches their last case. Every term is an
    integer, exact in float64 (the largest, t^3, stays below 2^53 up to 200 000 cases), so W+, n
    and the tie term equal those of :func:`wilcoxon_greater` and so do the p-values.
    """
    d = np.asarray(differences, dtype=float)
    c = np.asarray(counts, dtype=float)
    plan = _sort_differences(d)
    linear = (c**2 - c) @ _unsorted(plan.order, plan.single & plan.positive).T
    ties = (c**3 - c) @ _unsorted(plan.order, plan.single).T
    running, tied_w, tied_t, n = _running_sums(plan, c)
    w_plus = (2.0 * running - linear + tied_w) / 2.0
    return _normal_pvalues(w_plus, n, ties + tied_t)


@dataclass(frozen=True)
class _SortedDifferences:
    """Rows of differences sorted by |d| (stable sort), all (P, K). ``order``: the case at each
    sorted position; ``single``: a nonzero difference whose |d| no other case shares;
    ``positive``: d > 0. The ``*_rows`` index a count table whose row K is zero: ``rows`` the
    nonzero differences, ``positive_rows`` the positive single ones, ``tied_positive_rows`` the
    positive ones in a tie group (nonzero |d| shared by two cases or more), whose first and last
    positions ``starts`` and ``ends`` mark."""

    order: np.ndarray
    single: np.ndarray
    positive: np.ndarray
    rows: np.ndarray
    positive_rows: np.ndarray
    tied_positive_rows: np.ndarray
    starts: np.ndarray
    ends: np.ndarray


def _sort_differences(d: np.ndarray) -> _SortedDifferences:
    """One stable sort of |d| per row and the tie groups of the nonzero differences."""
    k = d.shape[-1]
    order = np.argsort(np.abs(d), axis=-1, kind="stable")
    ds = np.take_along_axis(d, order, axis=-1)
    a = np.abs(ds)
    first = np.ones(a.shape, dtype=bool)
    first[:, 1:] = a[:, 1:] != a[:, :-1]
    last = np.ones(a.shape, dtype=bool)
    last[:, :-1] = first[:, 1:]
    nonzero, positive = ds != 0, ds > 0
    single = first & last & nonzero
    tied = nonzero & ~single
    return _SortedDifferences(
        order=order,
        single=single,
        positive=positive,
        rows=np.where(nonzero, order, k),
        positive_rows=np.where(single & positive, order, k),
        tied_positive_rows=np.where(tied & positive, order, k),
        starts=tied & first,
        ends=tied & last,
    )


def _unsorted(order: np.ndarray, sorted_mask: np.ndarray) -> np.ndarray:
    """A mask over the sorted cases of each row, back in case order, as floats."""
    out = np.zeros(sorted_mask.shape)
    np.put_along_axis(out, order, sorted_mask.astype(float), axis=-1)
    return out


def _running_sums(plan: _SortedDifferences, counts: np.ndarray) -> np.ndarray:
    """(sum over positive single cases of c_k s_k, the tied groups' part of 2 W+, their part of
    the tie term, n), shape (4, B, P), by chunks of resamples (count tables of at most
    _MAX_CHUNK_ELEMENTS) and of pairs (running rows of about _RUNNING_ROW_ELEMENTS, in cache)."""
    b, k = counts.shape
    pairs = plan.rows.shape[0]
    out = np.zeros((4, pairs, b))
    step_b = max(1, _MAX_CHUNK_ELEMENTS // (k + 1))
    for b0 in range(0, b, step_b):
        table = np.zeros((k + 1, min(step_b, b - b0)))
        table[:k] = counts[b0 : b0 + step_b].T
        step_p = max(1, _RUNNING_ROW_ELEMENTS // table.shape[1])
        for p0 in range(0, pairs, step_p):
            part = slice(p0, p0 + step_p)
            _running_chunk(plan, part, table, out[:, part, b0 : b0 + table.shape[1]])
    return np.swapaxes(out, 1, 2)


def _running_chunk(plan: _SortedDifferences, part: slice, table: np.ndarray, out: np.ndarray) -> None:
    """One pass over the sorted cases of the pairs ``part``; s_k accumulates in ``run``."""
    rows, positive_rows = plan.rows[part], plan.positive_rows[part]
    run, running = np.zeros(out.shape[1:]), np.zeros(out.shape[1:])
    row, product = np.empty_like(run), np.empty_like(run)
    groups = _TiedGroups(plan, part, table, out[1:3]) if plan.starts[part].any() else None
    for k in range(rows.shape[1]):
        np.take(table, rows[:, k], axis=0, out=row, mode="clip")
        if groups is not None:
            groups.open(k, run)
        run += row
        np.take(table, positive_rows[:, k], axis=0, out=product, mode="clip")
        product *= run
        running += product
        if groups is not None:
            groups.close(k, run)
    out[0], out[3] = running, run


class _TiedGroups:
    """The tie groups of a chunk of pairs during the pass: a pair has at most one open group,
    whose s_(m-1) (``lower``) and positive count (``positive``) are kept until its last case."""

    def __init__(self, plan: _SortedDifferences, part: slice, table: np.ndarray, out: np.ndarray) -> None:
        self.table = table
        self.tied_positive_rows = plan.tied_positive_rows[part]
        self.any_positive = (self.tied_positive_rows < table.shape[0] - 1).any(axis=0)
        self.start_at = _pairs_by_position(plan.starts[part])
        self.end_at = _pairs_by_position(plan.ends[part])
        self.w, self.t = out  # accumulate the groups' sum q_g (s_(m-1) + s_e + 1) and t_g^3 - t_g
        self.lower, self.positive = np.zeros(self.w.shape), np.zeros(self.w.shape)
        self.buffer = np.empty(self.w.shape)

    def open(self, k: int, run: np.ndarray) -> None:
        pairs = self.start_at[k]
        if pairs.size:
            self.lower[pairs] = run[pairs]
            self.positive[pairs] = 0.0

    def close(self, k: int, run: np.ndarray) -> None:
        if self.any_positive[k]:
            np.take(self.table, self.tied_positive_rows[:, k], axis=0, out=self.buffer, mode="clip")
            self.positive += self.buffer
        pairs = self.end_at[k]
        if pairs.size:
            lower, upper = self.lower[pairs], run[pairs]
            size = upper - lower
            self.w[pairs] += self.positive[pairs] * (lower + upper + 1.0)
            self.t[pairs] += size**3 - size


def _pairs_by_position(mask: np.ndarray) -> list[np.ndarray]:
    """For every sorted position k, the rows of ``mask`` (P, K) that are True there."""
    position, pair = np.nonzero(mask.T)
    bounds = np.searchsorted(position, np.arange(mask.shape[1] + 1))
    return [pair[bounds[k] : bounds[k + 1]] for k in range(mask.shape[1])]


# ----------------------------------------------------------------------------- methods


def significant_digits(x: np.ndarray, digits: int = 12) -> np.ndarray:
    """``x`` rounded to ``digits`` significant digits, so that aggregates equal up to float noise
    (0.9 + 0.8 + 0.7 against 0.6 + 0.9 + 0.9) tie; infinities and zeros are kept."""
    x = np.asarray(x, dtype=float)
    usable = np.isfinite(x) & (x != 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        magnitude = np.floor(np.log10(np.abs(np.where(usable, x, 1.0))))
    factor = 10.0 ** (digits - 1 - magnitude)
    return np.where(usable, np.round(x * factor) / factor, x)


def _aggregate(x: np.ndarray, how: str, q: float) -> np.ndarray:
    if how == "mean":
        return x.mean(axis=-1)
    if how == "median":
        return np.median(x, axis=-1)
    return np.quantile(x, q, axis=-1)


def _case_ranks(data: CaseValues) -> np.ndarray:
    """Ranks of the submissions within every case, per criterion: (C, S, K)."""
    return np.swapaxes(rank_min(np.swapaxes(data.values * data.sign, 1, 2), True), 1, 2)


def _method_scores(
    data: CaseValues, recipe: RankingRecipe, method: str, idx: np.ndarray, case_ranks: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(criterion scores, criterion ranks, combined score, rank) for resamples ``idx`` (B, K').

    Shapes (B, C, S), (B, C, S), (B, S), (B, S).
    """
    w = data.weights[None, :, None] / data.weights.sum()
    if method == "test-based":
        significant = _test_pvalues(data, recipe.holm, idx) <= recipe.alpha
        crit_score = significant.sum(axis=-1).astype(float)
        crit_rank = rank_min(crit_score, True)
        score = significant_digits((crit_score * w).sum(axis=1))
        return crit_score, crit_rank, score, rank_min(score, True)
    source = data.values if method == "aggregate-then-rank" else case_ranks
    assert source is not None
    if recipe.aggregate == "mean":
        counts = _counts(idx, source.shape[-1])
        crit_score = np.einsum("bk,csk->bcs", counts, source) / idx.shape[1]
    else:
        crit_score = _aggregate(np.moveaxis(source[:, :, idx], 2, 0), recipe.aggregate, recipe.quantile)
    crit_score = significant_digits(crit_score)
    if method == "aggregate-then-rank":
        crit_rank = rank_min(crit_score * data.sign[:, :, 0], True)
        score = significant_digits((crit_rank * w).sum(axis=1))
    else:
        crit_rank = rank_min(crit_score, False)
        score = significant_digits((crit_score * w).sum(axis=1))
    return crit_score, crit_rank, score, rank_min(score, False)


def _test_pvalues(data: CaseValues, use_holm: bool, idx: np.ndarray) -> np.ndarray:
    """Pairwise p-values (B, C, S, S) of the tables whose cases are ``idx`` (B, K'): directly for
    the full table, through case counts (:func:`resampled_pvalues`) for bootstrap resamples."""
    oriented = data.values * data.sign
    k = oriented.shape[-1]
    if idx.shape[0] == 1 and np.array_equal(idx[0], np.arange(k)):
        return pairwise_pvalues(oriented, use_holm)[None]
    counts = _counts(idx, k)
    return np.stack([resampled_pvalues(values, counts, use_holm) for values in oriented], axis=1)


def _counts(idx: np.ndarray, k: int) -> np.ndarray:
    """How often each case occurs in each resample: (B, K)."""
    b = idx.shape[0]
    flat = (idx + k * np.arange(b)[:, None]).ravel()
    return np.bincount(flat, minlength=b * k).reshape(b, k).astype(float)


def _chunk_size(data: CaseValues, method: str, n_cases: int) -> int:
    c, s = len(data.criteria), len(data.submissions)
    per_resample = c * s * s * 2 if method == "test-based" else c * s * n_cases * 4
    return max(1, _MAX_CHUNK_ELEMENTS // max(per_resample, 1))


def _ranks_of_resamples(data: CaseValues, recipe: RankingRecipe, method: str, idx: np.ndarray) -> np.ndarray:
    case_ranks = _case_ranks(data) if method == "rank-then-aggregate" else None
    step = _chunk_size(data, method, idx.shape[1])
    parts = [_method_scores(data, recipe, method, idx[b : b + step], case_ranks)[3]
             for b in range(0, idx.shape[0], step)]
    return np.concatenate(parts, axis=0)


# ----------------------------------------------------------------------------- public API


def rank(
    table: pd.DataFrame,
    recipe: RankingRecipe,
    cases: Sequence[Any] | None = None,
    submissions: Sequence[Any] | None = None,
    method: str | None = None,
) -> pd.DataFrame:
    """The ranking of a phase: one row per submission, best first.

    Columns: ``submission``, ``rank`` (1 = best, ties share the best rank), ``score`` (what the
    rank orders: the weighted mean of criterion ranks for aggregate-then-rank and of aggregated
    per-case ranks for rank-then-aggregate, lower is better; the weighted mean number of
    significant wins for test-based, higher is better), ``n_missing`` (case values filled with the
    worst value), and per criterion ``<key>_aggregate`` (the recipe's aggregate of the metric
    over cases), ``<key>_score`` (what the criterion is ranked on) and ``<key>_rank``.
    ``method`` overrides the recipe's. References: challengeR's aggregateThenRank,
    rankThenAggregate, testThenRank (Wiesenfarth et al. 2021).
    """
    data = case_values(table, recipe, cases, submissions)
    return rank_values(data, recipe, method)


def rank_values(data: CaseValues, recipe: RankingRecipe, method: str | None = None) -> pd.DataFrame:
    """:func:`rank` on an already validated dense table."""
    method = method or recipe.method
    if method not in METHODS:
        raise RankingError(f"unknown ranking method {method!r}; known: {', '.join(METHODS)}")
    full = np.arange(len(data.cases))[None, :]
    case_ranks = _case_ranks(data) if method == "rank-then-aggregate" else None
    crit_score, crit_rank, score, ranks = _method_scores(data, recipe, method, full, case_ranks)
    aggregates = _aggregate(data.values, recipe.aggregate, recipe.quantile)
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
    """Bootstrap over cases: resample the cases with replacement (``recipe.bootstrap`` times,
    seeded by ``recipe.seed``: ``numpy.random.default_rng(seed).integers(0, K, (B, K))`` case
    indices), rank each resample with the recipe's method, and report each
    submission's rank distribution (median, mean, 2.5 and 97.5 percentiles with numpy's linear
    interpolation, fraction of resamples ranked first) and Kendall's tau-b of every resample's
    ranking against the full ranking (challengeR's ``bootstrap`` and ``stability``).

    With one submission, no resamples, or a full ranking that is all ties, stability is
    undefined: intervals and tau are NaN and ``note`` says why.
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
        boot = _ranks_of_resamples(data, recipe, recipe.method, idx)
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

    Entry [row, column] is True when the one-sided paired Wilcoxon signed-rank test (as
    :func:`wilcoxon_greater`, missing cases filled with the worst value) finds the row better than
    the column at level ``alpha``, p <= alpha as challengeR's ``decision.challenge``; with
    ``holm``, after Holm's correction over all ordered pairs. ``pvalues=True`` gives the
    (adjusted) p-values instead (NaN on the diagonal). ``label`` may be omitted when the metric
    has one label only.
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
