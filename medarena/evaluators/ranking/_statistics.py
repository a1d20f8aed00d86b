"""Rank statistics: ranks with ties, one-sided Wilcoxon signed-rank tests, Holm, Kendall's tau-b."""

from __future__ import annotations

import numpy as np
from scipy import special, stats


def rank_min(x: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Ranks along the last axis, 1 for the best, ties sharing the best rank (R's ties "min")."""
    return stats.rankdata(-x if higher_is_better else x, method="min", axis=-1).astype(float)


def wilcoxon_greater(differences: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-sided p-values of the paired Wilcoxon signed-rank test along the last axis.

    Zero differences are dropped, |d| gets average ranks, and the normal approximation has the tie
    correction Σ(t³ − t)/48 in its variance and a continuity correction of 0.5. One sort per row,
    vectorized over the leading axes.

    Parameters
    ----------
    differences : numpy.ndarray
        Paired differences x − y, cases along the last axis.

    Returns
    -------
    tuple of numpy.ndarray
        (p of H1 "differences > 0", p of H1 "differences < 0"); NaN without a nonzero difference.

    References
    ----------
    R's ``wilcox.test(x, y, paired=TRUE, exact=FALSE)``, which challengeR's ``testThenRank`` calls;
    equal to scipy 1.17.1 ``stats.wilcoxon(zero_method="wilcox", correction=True,
    method="asymptotic")`` (checked in the tests); docs/metrics.md, section Ranking.

    Examples
    --------
    >>> import numpy as np
    >>> greater, less = wilcoxon_greater(np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    >>> round(float(greater), 4), round(float(less), 4)  # W+ = 15, z = (15 − 7.5 − 0.5) / sqrt(13.75)
    (0.0295, 0.9845)
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
    return normal_pvalues(w_plus, n, ties)


def normal_pvalues(w_plus: np.ndarray, n: np.ndarray, ties: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
    p_ij, p_ji = wilcoxon_greater(pair_differences(oriented))
    return pair_matrix(p_ij, p_ji, s, use_holm)


def pair_differences(oriented: np.ndarray) -> np.ndarray:
    """x_i - x_j for the pairs i < j in ``np.triu_indices`` order, exactly 0 where x_i == x_j."""
    i, j = np.triu_indices(oriented.shape[-2], 1)
    xi, xj = oriented[..., i, :], oriented[..., j, :]
    with np.errstate(invalid="ignore"):
        return np.where(xi == xj, 0.0, xi - xj)


def pair_matrix(p_ij: np.ndarray, p_ji: np.ndarray, s: int, use_holm: bool) -> np.ndarray:
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
    """Kendall's tau-b of every row of ``rankings`` against ``reference``.

    tau-b = (concordant − discordant) / sqrt((n0 − ties in x)(n0 − ties in y)) over the n0 pairs of
    submissions.

    Parameters
    ----------
    reference : numpy.ndarray
        (S,) ranks of the full ranking.
    rankings : numpy.ndarray
        (B, S) ranks, e.g. of bootstrap resamples.

    Returns
    -------
    numpy.ndarray
        (B,) values in [−1, 1]; NaN where a side is all ties.

    References
    ----------
    Kendall, Biometrika 33:239 (1945); scipy 1.17.1 ``stats.kendalltau`` (checked in the tests);
    docs/metrics.md, section Ranking.

    Examples
    --------
    >>> import numpy as np
    >>> kendall_tau_b(np.array([1.0, 2.0, 3.0]), np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])).tolist()
    [1.0, -1.0]
    """
    i, j = np.triu_indices(len(reference), 1)
    sr = np.sign(reference[i] - reference[j])
    sb = np.sign(rankings[:, i] - rankings[:, j])
    denominator = np.sqrt(np.count_nonzero(sr) * np.count_nonzero(sb, axis=1).astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (sb @ sr) / denominator, np.nan)


