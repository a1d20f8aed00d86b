"""Data-set level detection metrics over pooled, scored detections.

Every function takes the detections of all cases as flat arrays: ``scores`` and ``is_tp``
(true or false positive; detections that are neither are left out beforehand), in case order and,
within a case, in descending score order, plus the number of reference lesions ``n_ref``.
"""

from __future__ import annotations

import numpy as np

#: the false-positive rates of the competition performance metric (LUNA16)
CPM_FP_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
#: COCO's recall levels and IoU thresholds (pycocotools ``Params``)
COCO_RECALLS = np.linspace(0.0, 1.0, 101)
COCO_IOUS = np.linspace(0.5, 0.95, 10)


def _cumulative(scores: np.ndarray, is_tp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores sorted descending (stable) with cumulative TP and FP counts."""
    scores = np.asarray(scores, dtype=float)
    order = np.argsort(-scores, kind="mergesort")
    tp = np.asarray(is_tp, dtype=bool)[order]
    return scores[order], np.cumsum(tp), np.cumsum(~tp)


def _group_ends(sorted_scores: np.ndarray) -> np.ndarray:
    """Index of the last entry of each run of equal scores."""
    if len(sorted_scores) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.r_[np.flatnonzero(np.diff(sorted_scores)), len(sorted_scores) - 1]


def average_precision_coco(scores: np.ndarray, is_tp: np.ndarray, n_ref: int) -> float:
    """COCO's 101-point interpolated average precision.

    Detections are ranked by descending score (ties keep case order, then within-case order, as
    pycocotools' stable sort); after k detections precision p_k = TP_k / k and recall
    r_k = TP_k / n_ref. The interpolated precision p̂(r) = max_{k: r_k ≥ r} p_k, and
    AP = (1/101) Σ_{r ∈ {0, 0.01, …, 1}} p̂(r), with p̂(r) = 0 for recalls never reached.

    Parameters
    ----------
    scores : numpy.ndarray
        The scores of the pooled detections (all cases), in case order and, within a case, in
        descending score order.
    is_tp : numpy.ndarray
        True for a true positive, False for a false positive (detections that are neither are left
        out beforehand).
    n_ref : int
        The number of reference lesions over all cases.

    Returns
    -------
    float
        In [0, 1]; NaN without references (pycocotools reports −1 and leaves the category out of
        its means), 0 with references but no detections.

    References
    ----------
    Lin et al., ECCV 2014; pycocotools 2.0.11 ``COCOeval.accumulate`` (checked equal in the tests);
    docs/metrics.md, section Detection.

    Examples
    --------
    >>> import numpy as np
    >>> scores, is_tp = np.array([0.9, 0.8, 0.7]), np.array([True, False, True])
    >>> round(average_precision_coco(scores, is_tp, n_ref=2), 4)  # (51 * 1 + 50 * 2/3) / 101
    0.835
    """
    if n_ref == 0:
        return float("nan")
    _, tp, fp = _cumulative(scores, is_tp)
    if len(tp) == 0:
        return 0.0
    recall = tp / n_ref
    precision = tp / (tp + fp)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    index = np.searchsorted(recall, COCO_RECALLS, side="left")
    reached = index < len(envelope)
    return float(np.where(reached, envelope[np.minimum(index, len(envelope) - 1)], 0.0).mean())


def average_precision_step(scores: np.ndarray, is_tp: np.ndarray, n_ref: int) -> float:
    """Average precision as a step sum over distinct score thresholds.

    AP = Σ_k (R_k − R_{k−1}) · P_k, with thresholds t_k the distinct scores in descending order,
    P_k and R_k the precision and recall of the detections scoring ≥ t_k, and R_0 = 0. This is
    scikit-learn's ``average_precision_score`` with missed lesions counted in the recall's
    denominator, the AP of PI-CAI (picai_eval ``Metrics.AP``; Saha et al., Lancet Oncology 2024).

    Edge cases: no references → NaN; references but no detections → 0.
    """
    if n_ref == 0:
        return float("nan")
    sorted_scores, tp, fp = _cumulative(scores, is_tp)
    ends = _group_ends(sorted_scores)
    if len(ends) == 0:
        return 0.0
    tp, fp = tp[ends], fp[ends]
    recall_gain = np.diff(np.r_[0, tp]) / n_ref
    return float(np.sum(recall_gain * tp / (tp + fp)))


def froc_curve(scores: np.ndarray, is_tp: np.ndarray, n_ref: int, n_cases: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Free-response ROC: average false positives per case, sensitivity and score threshold.

    One point per distinct score t (descending): FP(t) / n_cases and TP(t) / n_ref over the detections
    scoring ≥ t, preceded by (0, 0) at threshold +inf.

    Parameters
    ----------
    scores : numpy.ndarray
        The scores of the pooled detections (all cases), in case order and, within a case, in
        descending score order.
    is_tp : numpy.ndarray
        True for a true positive, False for a false positive (detections that are neither are left
        out beforehand).
    n_ref : int
        The number of reference lesions over all cases.
    n_cases : int
        The number of cases (the denominator of the false positives per case).

    Returns
    -------
    tuple of numpy.ndarray
        (false positives per case, sensitivity, threshold) per point; sensitivity is NaN without
        references, and an empty data set gives just the first point.

    References
    ----------
    Bandos et al., Biometrics 65:247 (2009); LUNA16's ``computeFROC`` (evaluation script of
    Setio et al., Medical Image Analysis 42:1, 2017); docs/metrics.md, section Detection.

    Examples
    --------
    >>> import numpy as np
    >>> scores, is_tp = np.array([0.9, 0.8, 0.7]), np.array([True, False, True])
    >>> fps, sensitivity, thresholds = froc_curve(scores, is_tp, n_ref=2, n_cases=2)
    >>> fps.tolist(), sensitivity.tolist(), thresholds.tolist()
    ([0.0, 0.0, 0.5, 0.5], [0.0, 0.5, 0.5, 1.0], [inf, 0.9, 0.8, 0.7])
    """
    sorted_scores, tp, fp = _cumulative(scores, is_tp)
    ends = _group_ends(sorted_scores)
    fps = np.r_[0.0, fp[ends] / max(n_cases, 1)]
    with np.errstate(invalid="ignore", divide="ignore"):
        sens = np.r_[0.0, tp[ends]] / n_ref if n_ref else np.full(len(ends) + 1, np.nan)
    return fps, sens.astype(float), np.r_[np.inf, sorted_scores[ends]]


def sensitivity_at_fp_rates(fps: np.ndarray, sens: np.ndarray, rates=CPM_FP_RATES) -> np.ndarray:
    """Sensitivity of an FROC curve at given false-positive rates, by linear interpolation
    between its points (``numpy.interp``, as LUNA16's script); beyond the last point the curve
    stays at its final sensitivity; where the curve rises vertically at exactly a rate, the
    higher sensitivity is taken."""
    return np.interp(np.asarray(rates, dtype=float), fps, sens)


def cpm(fps: np.ndarray, sens: np.ndarray) -> float:
    """Competition performance metric: mean FROC sensitivity at 1/8, 1/4, 1/2, 1, 2, 4 and 8
    false positives per case.

    The sensitivity at each rate is interpolated linearly between the FROC points
    (:func:`froc_curve`); beyond the last point the curve keeps its final sensitivity.

    Parameters
    ----------
    fps, sens : numpy.ndarray
        An FROC curve: false positives per case and sensitivity per point.

    Returns
    -------
    float
        In [0, 1]; NaN without references.

    References
    ----------
    Niemeijer et al., IEEE TMI 30:215 (2011); LUNA16 (Setio et al., Medical Image Analysis 42:1,
    2017), its evaluation script's ``numpy.interp``; docs/metrics.md, section Detection.

    Examples
    --------
    >>> import numpy as np
    >>> fps, sens = np.array([0.0, 0.0, 0.5, 0.5]), np.array([0.0, 0.5, 0.5, 1.0])
    >>> round(cpm(fps, sens), 4)  # (0.5 + 0.5 + 1 + 1 + 1 + 1 + 1) / 7
    0.8571
    """
    if np.isnan(sens).any():
        return float("nan")
    return float(sensitivity_at_fp_rates(fps, sens).mean())
