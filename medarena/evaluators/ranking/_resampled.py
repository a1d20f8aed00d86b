"""Wilcoxon signed-rank statistics of many bootstrap resamples at once, from case counts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medarena.evaluators.ranking._recipe import MAX_CHUNK_ELEMENTS, RUNNING_ROW_ELEMENTS
from medarena.evaluators.ranking._statistics import normal_pvalues, pair_differences, pair_matrix


def resampled_pvalues(oriented: np.ndarray, counts: np.ndarray, use_holm: bool) -> np.ndarray:
    """:func:`pairwise_pvalues` of resampled tables, shape (B, S, S).

    ``oriented`` (S, K) holds the original cases (higher is better); resample b holds case k
    ``counts[b, k]`` times. p[b] equals ``pairwise_pvalues(np.repeat(oriented, counts[b], axis=-1),
    use_holm)`` (see :func:`wilcoxon_greater_resampled`).
    """
    s = oriented.shape[-2]
    p_ij, p_ji = wilcoxon_greater_resampled(pair_differences(oriented), counts)
    return pair_matrix(p_ij, p_ji, s, use_holm)


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
    return normal_pvalues(w_plus, n, ties + tied_t)


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
    MAX_CHUNK_ELEMENTS) and of pairs (running rows of about RUNNING_ROW_ELEMENTS, in cache)."""
    b, k = counts.shape
    pairs = plan.rows.shape[0]
    out = np.zeros((4, pairs, b))
    step_b = max(1, MAX_CHUNK_ELEMENTS // (k + 1))
    for b0 in range(0, b, step_b):
        table = np.zeros((k + 1, min(step_b, b - b0)))
        table[:k] = counts[b0 : b0 + step_b].T
        step_p = max(1, RUNNING_ROW_ELEMENTS // table.shape[1])
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


