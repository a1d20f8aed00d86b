"""The three ranking methods on the dense table, for the full table and bootstrap resamples."""

from __future__ import annotations

import numpy as np

from medarena.evaluators.ranking._recipe import MAX_CHUNK_ELEMENTS, CaseValues, RankingRecipe
from medarena.evaluators.ranking._resampled import resampled_pvalues
from medarena.evaluators.ranking._statistics import pairwise_pvalues, rank_min


def significant_digits(x: np.ndarray, digits: int = 12) -> np.ndarray:
    """``x`` rounded to ``digits`` significant digits, so that aggregates equal up to float noise
    (0.9 + 0.8 + 0.7 against 0.6 + 0.9 + 0.9) tie; infinities and zeros are kept."""
    x = np.asarray(x, dtype=float)
    usable = np.isfinite(x) & (x != 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        magnitude = np.floor(np.log10(np.abs(np.where(usable, x, 1.0))))
    factor = 10.0 ** (digits - 1 - magnitude)
    return np.where(usable, np.round(x * factor) / factor, x)


def aggregate(x: np.ndarray, how: str, q: float) -> np.ndarray:
    if how == "mean":
        return x.mean(axis=-1)
    if how == "median":
        return np.median(x, axis=-1)
    return np.quantile(x, q, axis=-1)


def case_ranks(data: CaseValues) -> np.ndarray:
    """Ranks of the submissions within every case, per criterion: (C, S, K)."""
    return np.swapaxes(rank_min(np.swapaxes(data.values * data.sign, 1, 2), True), 1, 2)


def method_scores(
    data: CaseValues, recipe: RankingRecipe, method: str, idx: np.ndarray, ranks_by_case: np.ndarray | None
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
    source = data.values if method == "aggregate-then-rank" else ranks_by_case
    assert source is not None
    if recipe.aggregate == "mean":
        counts = _counts(idx, source.shape[-1])
        crit_score = np.einsum("bk,csk->bcs", counts, source) / idx.shape[1]
    else:
        crit_score = aggregate(np.moveaxis(source[:, :, idx], 2, 0), recipe.aggregate, recipe.quantile)
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
    return max(1, MAX_CHUNK_ELEMENTS // max(per_resample, 1))


def ranks_of_resamples(data: CaseValues, recipe: RankingRecipe, method: str, idx: np.ndarray) -> np.ndarray:
    ranks_by_case = case_ranks(data) if method == "rank-then-aggregate" else None
    step = _chunk_size(data, method, idx.shape[1])
    parts = [method_scores(data, recipe, method, idx[b : b + step], ranks_by_case)[3]
             for b in range(0, idx.shape[0], step)]
    return np.concatenate(parts, axis=0)


