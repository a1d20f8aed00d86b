"""Matching detections to reference lesions within one case.

Three criteria, each from the reference implementation of its field:

- :func:`match_greedy` — COCO (Lin et al. 2014; pycocotools ``COCOeval.evaluateImg``): detections
  in descending score order each take the still unmatched reference of highest IoU ≥ t.
- :func:`match_hits` — LUNA16 (Setio et al., Medical Image Analysis 42, 2017): a detection hits a
  lesion when it lies inside it; every hit lesion is one true positive carrying the highest score
  among its hits, further hits are neither true nor false positives, detections that hit nothing
  are false positives.
- :func:`match_hungarian` — PI-CAI (Saha et al., Lancet Oncology 2024; picai_eval
  ``evaluate_case``): the assignment that first maximises the number of pairs with overlap ≥ t and
  then their total overlap.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

#: outcome codes of a detection
FP, TP, IGNORED = 0, 1, -1


def score_order(scores: np.ndarray) -> np.ndarray:
    """Indices sorting scores in descending order; ties keep their input order (a stable sort,
    as pycocotools' ``argsort(-score, kind="mergesort")``)."""
    return np.argsort(-np.asarray(scores, dtype=float), kind="mergesort")


def match_greedy(iou: np.ndarray, scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """COCO's greedy matching, for several IoU thresholds at once.

    Args:
        iou: (D, G) IoU of each detection with each reference.
        scores: (D,) detection scores.
        thresholds: (T,) IoU thresholds.

    Returns:
        (T, D) index of the reference matched to each detection (in input order), or -1.

    Rule (pycocotools ``evaluateImg``): for each threshold t independently, detections are visited
    by descending score (ties in input order); each takes, among the references not yet matched
    at t, the one with the largest IoU provided IoU ≥ t. Among references of equal IoU the one
    listed last wins, as in pycocotools' loop. Unmatched detections are false positives,
    unmatched references false negatives.
    """
    iou = np.asarray(iou, dtype=float)
    thresholds = np.asarray(thresholds, dtype=float).tolist()
    n_det, n_ref = iou.shape
    matched = [[-1] * n_det for _ in thresholds]
    if n_det and n_ref:
        lowest = min(thresholds)
        taken: list[set[int]] = [set() for _ in thresholds]
        rows = iou.tolist()
        # small per-case matrices: plain loops beat array calls here
        for d in score_order(scores).tolist():
            row = rows[d]
            candidates = sorted((g for g in range(n_ref) if row[g] >= lowest), key=lambda g: (-row[g], -g))
            for k, threshold in enumerate(thresholds):
                for g in candidates:  # by IoU descending, the last listed first among equals
                    if row[g] < threshold:
                        break
                    if g not in taken[k]:
                        taken[k].add(g)
                        matched[k][d] = g
                        break
    return np.asarray(matched, dtype=np.int64).reshape(len(thresholds), n_det)


def match_hits(hits: np.ndarray, scores: np.ndarray, ignore: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """LUNA16's hit criterion: the true-positive score of each lesion and the false positives.

    Args:
        hits: (D, G) boolean, detection d lies inside lesion g.
        scores: (D,) detection scores.
        ignore: (G,) lesions that are irrelevant findings (LUNA16's excluded annotations): hits
            on them are neither true nor false positives and they are not counted as lesions.

    Returns:
        ``lesion_scores`` (G,): the highest score among the detections hitting each lesion, NaN
        for a missed lesion (and for an ignored one); ``outcome`` (D,): :data:`TP` for the
        detection carrying a lesion's score, :data:`FP` for a detection hitting no lesion,
        :data:`IGNORED` otherwise (a further hit on a lesion, or a hit on an ignored lesion).
        A detection inside two lesions may carry both (as in the LUNA16 script).
    """
    hits = np.asarray(hits, dtype=bool)
    scores = np.asarray(scores, dtype=float)
    n_det, n_ref = hits.shape
    ignore = np.zeros(n_ref, dtype=bool) if ignore is None else np.asarray(ignore, dtype=bool)
    outcome = np.full(n_det, FP, dtype=np.int64)
    lesion_scores = np.full(n_ref, np.nan)
    if n_det == 0 or n_ref == 0:
        return lesion_scores, outcome
    outcome[hits.any(axis=1)] = IGNORED
    order = score_order(scores)
    for g in np.flatnonzero(hits.any(axis=0) & ~ignore):
        best = order[np.argmax(hits[order, g])]  # first hit in score order
        lesion_scores[g] = scores[best]
        outcome[best] = TP
    return lesion_scores, outcome


def match_hungarian(overlap: np.ndarray, min_overlap: float) -> tuple[np.ndarray, np.ndarray]:
    """PI-CAI's matching of candidates to lesions.

    Args:
        overlap: (G, C) overlap (IoU) of each lesion with each candidate.
        min_overlap: pairs with overlap < ``min_overlap`` cannot match (PI-CAI: 0.1).

    Returns:
        ``lesion_index`` and ``candidate_index``, the matched pairs. The assignment maximises
        Σ (overlap + 1) over pairs with overlap ≥ ``min_overlap`` (Hungarian algorithm), so it
        first maximises the number of matches and then their total overlap (picai_eval).
    """
    overlap = np.asarray(overlap, dtype=float)
    if overlap.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    weight = np.where(overlap >= min_overlap, overlap + 1.0, 0.0)
    rows, cols = linear_sum_assignment(weight, maximize=True)
    keep = weight[rows, cols] > 0
    return rows[keep].astype(np.int64), cols[keep].astype(np.int64)
