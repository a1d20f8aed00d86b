"""Instance (lesion-wise) metrics: connected components, one-to-one matching, TP/FP/FN, PQ.

A binary mask is split into connected components (instances); reference and prediction
instances are matched one-to-one when their IoU exceeds a threshold (0.5 by default; docs/metrics.md,
section Segmentation).
Matching is greedy by decreasing IoU, as panoptica's ``NaiveThresholdMatching``; above 0.5 no two
pairs can compete for one instance, so the matching is then the unique one.
Reference: Kirillov et al. 2019, "Panoptic Segmentation" (CVPR) for PQ = SQ × RQ;
Kofler et al. 2023, panoptica (arXiv:2312.02608).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage


def connected_components(mask: np.ndarray, connectivity: int | None = None) -> tuple[np.ndarray, int]:
    """Label the connected components of a binary mask.

    ``connectivity`` is the number of axes along which neighbours may differ (1 = face
    neighbours: 6 in 3D, 4 in 2D; ``ndim`` or None = full: 26 in 3D, 8 in 2D).
    Returns the label image (0 = background, 1..n) and n.
    """
    mask = np.asarray(mask, bool)
    rank = mask.ndim if connectivity is None else int(connectivity)
    if not 1 <= rank <= mask.ndim:
        raise ValueError(f"connectivity must be between 1 and {mask.ndim}, got {connectivity}")
    labels, count = ndimage.label(mask, structure=ndimage.generate_binary_structure(mask.ndim, rank))
    return labels, int(count)


def instance_overlaps(reference_labels: np.ndarray, n_reference: int,
                      prediction_labels: np.ndarray, n_prediction: int) -> tuple[np.ndarray, ...]:
    """The IoU of every overlapping (reference instance, prediction instance) pair.

    Returns three arrays: reference index and prediction index (0-based) and the pair's IoU.
    Pairs without overlap (IoU 0) are left out.
    """
    foreground = (reference_labels > 0) | (prediction_labels > 0)
    ref = reference_labels[foreground].astype(np.int64)
    pred = prediction_labels[foreground].astype(np.int64)
    reference_sizes = np.bincount(ref, minlength=n_reference + 1)
    prediction_sizes = np.bincount(pred, minlength=n_prediction + 1)
    both = (ref > 0) & (pred > 0)
    pairs, intersection = np.unique(ref[both] * (n_prediction + 1) + pred[both], return_counts=True)
    i, j = pairs // (n_prediction + 1), pairs % (n_prediction + 1)
    union = reference_sizes[i] + prediction_sizes[j] - intersection
    return i - 1, j - 1, intersection / union


def match_instances(overlaps: tuple[np.ndarray, ...], threshold: float = 0.5) -> list[tuple[int, int, float]]:
    """One-to-one matches (reference index, prediction index, IoU) among pairs with IoU > threshold.

    ``overlaps`` is the output of :func:`instance_overlaps`. Pairs are taken greedily by decreasing
    IoU (ties: lower reference, then prediction index).
    """
    ref, pred, iou = overlaps
    keep = iou > threshold
    ref, pred, iou = ref[keep], pred[keep], iou[keep]
    used_ref, used_pred, matches = set(), set(), []
    for k in np.lexsort((pred, ref, -iou)):
        i, j = int(ref[k]), int(pred[k])
        if i in used_ref or j in used_pred:
            continue
        used_ref.add(i)
        used_pred.add(j)
        matches.append((i, j, float(iou[k])))
    return matches


@dataclass(frozen=True)
class InstanceResult:
    """Lesion-wise outcome of one binary comparison."""

    tp: int
    fp: int
    fn: int
    iou_sum: float

    @property
    def f1(self) -> float:
        """Lesion F1 = 2TP / (2TP + FP + FN); NaN when neither side has an instance."""
        denominator = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denominator if denominator else math.nan

    @property
    def segmentation_quality(self) -> float:
        """SQ = mean IoU of the matched pairs; NaN without a match."""
        return self.iou_sum / self.tp if self.tp else math.nan

    @property
    def recognition_quality(self) -> float:
        """RQ = TP / (TP + FP/2 + FN/2) (equal to the lesion F1)."""
        return self.f1

    @property
    def panoptic_quality(self) -> float:
        """PQ = SQ × RQ = ΣIoU(matches) / (TP + FP/2 + FN/2); 0 when instances exist but none
        match, NaN when neither side has an instance."""
        denominator = self.tp + 0.5 * self.fp + 0.5 * self.fn
        return self.iou_sum / denominator if denominator else math.nan


def instance_metrics(reference: np.ndarray, prediction: np.ndarray, connectivity: int | None = None,
                     threshold: float = 0.5) -> InstanceResult:
    """Lesion TP/FP/FN and the IoU sum of matches between two binary masks (see module docstring)."""
    ref_labels, n_ref = connected_components(reference, connectivity)
    pred_labels, n_pred = connected_components(prediction, connectivity)
    matches = match_instances(instance_overlaps(ref_labels, n_ref, pred_labels, n_pred), threshold)
    tp = len(matches)
    return InstanceResult(tp=tp, fp=n_pred - tp, fn=n_ref - tp, iou_sum=float(sum(m[2] for m in matches)))


def lesion_f1(reference: np.ndarray, prediction: np.ndarray, connectivity: int | None = None,
              threshold: float = 0.5) -> float:
    """Lesion-wise F1 2TP / (2TP + FP + FN) over one-to-one matched connected components.

    Parameters
    ----------
    reference, prediction : numpy.ndarray
        Binary masks of one shape, 2D or 3D.
    connectivity : int, optional
        Of the connected components, 1..ndim (None: full, 26 in 3D and 8 in 2D).
    threshold : float
        A reference and a predicted instance match when their IoU exceeds this (0.5).

    Returns
    -------
    float
        In [0, 1]; NaN when neither mask has an instance.

    References
    ----------
    Kofler et al., panoptica, arXiv:2312.02608 (2023), checked against panoptica 2.1.7 in the tests;
    docs/metrics.md, section Segmentation.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((5, 9), bool); a[1:3, 1:3] = True; a[1:3, 6:8] = True  # two lesions
    >>> b = np.zeros((5, 9), bool); b[1:3, 1:3] = True                       # finds one of them
    >>> round(lesion_f1(a, b), 4)  # TP 1, FN 1, FP 0: 2 / 3
    0.6667
    """
    return instance_metrics(reference, prediction, connectivity, threshold).f1


def panoptic_quality(reference: np.ndarray, prediction: np.ndarray, connectivity: int | None = None,
                     threshold: float = 0.5) -> float:
    """Panoptic quality PQ = SQ × RQ = ΣIoU(matches) / (TP + FP/2 + FN/2).

    Parameters
    ----------
    reference, prediction : numpy.ndarray
        Binary masks of one shape, 2D or 3D.
    connectivity : int, optional
        Of the connected components, 1..ndim (None: full, 26 in 3D and 8 in 2D).
    threshold : float
        A reference and a predicted instance match when their IoU exceeds this (0.5).

    Returns
    -------
    float
        In [0, 1]; 0 when instances exist but none match, NaN when neither mask has one.

    References
    ----------
    Kirillov et al., Panoptic Segmentation, CVPR 2019; panoptica 2.1.7 (Kofler et al. 2023);
    docs/metrics.md, section Segmentation.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((5, 9), bool); a[1:3, 1:3] = True; a[1:3, 6:8] = True  # two lesions
    >>> b = np.zeros((5, 9), bool); b[1:3, 1:3] = True                       # finds one of them
    >>> round(panoptic_quality(a, b), 4)  # IoU 1 / (1 + 0 + 1/2)
    0.6667
    """
    return instance_metrics(reference, prediction, connectivity, threshold).panoptic_quality
