"""Receiver operating characteristic: curve points and the area under the curve."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def roc_curve(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve points: false positive rate, true positive rate and threshold per point.

    A case is called positive when its score ≥ threshold. There is one point per distinct score
    (descending), preceded by (0, 0) at threshold +inf; tied scores move the curve diagonally.

    Parameters
    ----------
    y_true : numpy.ndarray
        True for a positive case.
    scores : numpy.ndarray
        The score (probability) of each case.

    Returns
    -------
    tuple of numpy.ndarray
        (false positive rate, true positive rate, threshold) per point; a rate whose class is absent
        is NaN.

    References
    ----------
    scikit-learn 1.9.1 ``roc_curve(..., drop_intermediate=False)`` (checked equal in the tests);
    docs/metrics.md, section Classification.

    Examples
    --------
    >>> fpr, tpr, thresholds = roc_curve([True, False, True, False], [0.9, 0.8, 0.4, 0.1])
    >>> fpr.tolist(), tpr.tolist(), thresholds.tolist()
    ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0], [inf, 0.9, 0.8, 0.4, 0.1])
    """
    y_true = np.asarray(y_true, dtype=bool)
    scores = np.asarray(scores, dtype=float)
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores = scores[order]
    tps = np.cumsum(y_true[order])
    fps = np.cumsum(~y_true[order])
    last_of_group = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(scores) - 1] if len(scores) else []
    tps = np.r_[0, tps[last_of_group]]
    fps = np.r_[0, fps[last_of_group]]
    thresholds = np.r_[np.inf, sorted_scores[last_of_group]]
    n_pos, n_neg = int(y_true.sum()), int((~y_true).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = tps / n_pos if n_pos else np.full(len(tps), np.nan)
        fpr = fps / n_neg if n_neg else np.full(len(fps), np.nan)
    return fpr.astype(float), tpr.astype(float), thresholds


def auroc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve, tied scores counted as a trapezoid.

    AUROC = (Σ rank(positives) − P(P+1)/2) / (P·N), ranks averaged over ties: the Mann–Whitney U
    statistic, which equals the trapezoidal area under :func:`roc_curve`.

    Parameters
    ----------
    y_true : numpy.ndarray
        True for a positive case.
    scores : numpy.ndarray
        The score (probability) of each case.

    Returns
    -------
    float
        In [0, 1]; NaN when either class is absent.

    References
    ----------
    Hanley & McNeil, Radiology 143:29 (1982); scikit-learn 1.9.1 ``roc_auc_score`` (checked equal
    in the tests); docs/metrics.md, section Classification.

    Examples
    --------
    >>> auroc([True, False, True, False], [0.9, 0.8, 0.4, 0.1])  # 3 of 4 pairs ordered right
    0.75
    """
    y_true = np.asarray(y_true, dtype=bool)
    n_pos = int(y_true.sum())
    n_neg = y_true.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(np.asarray(scores, dtype=float))
    return float((ranks[y_true].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auroc_many(y_true: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """:func:`auroc` of each row of (B, n) arrays (for bootstrap resamples); NaN where a row
    lacks a class."""
    y_true = np.asarray(y_true, dtype=bool)
    ranks = rankdata(np.asarray(scores, dtype=float), axis=1)
    n_pos = y_true.sum(axis=1).astype(float)
    n_neg = y_true.shape[1] - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        area = ((ranks * y_true).sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), area, np.nan)
