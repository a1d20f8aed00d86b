"""Voxel counts and the overlap metrics computed from them.

Notation (docs/metrics.md, section Segmentation): A = reference mask, B = prediction mask, TP = |A ∩ B|, FP = |B \\ A|,
FN = |A \\ B|, TN = the voxels in neither. A zero denominator gives NaN unless the metric's
docstring says otherwise. References: Taha & Hanbury 2015 (BMC Med Imaging 15:29) for the
definitions, Maier-Hein et al. 2024 (Metrics Reloaded, Nat Methods 21:195) for the empty cases.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from medarena.evaluators._checks import check_same_shape, check_spacing

# Blocks of this many voxels keep the joint histogram's temporary arrays small.
_BLOCK = 1 << 22
# Blocks of the small-label path: the packed codes stay in cache between the passes (even size).
_PAIR_BLOCK = 1 << 20
_SMALL_LABELS = 16


@dataclass(frozen=True)
class Counts:
    """The confusion counts of one binary comparison."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def reference_size(self) -> int:
        return self.tp + self.fn

    @property
    def prediction_size(self) -> int:
        return self.tp + self.fp

    @property
    def total(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn)


def confusion_counts(reference: np.ndarray, prediction: np.ndarray) -> Counts:
    """TP, FP, FN, TN of two binary masks (non-zero = foreground) of the same shape."""
    a, b = np.asarray(reference, bool), np.asarray(prediction, bool)
    check_same_shape(a.shape, b.shape)
    tp = int(np.count_nonzero(a & b))
    size_a, size_b = int(np.count_nonzero(a)), int(np.count_nonzero(b))
    fp, fn = size_b - tp, size_a - tp
    return Counts(tp, fp, fn, a.size - tp - fp - fn)


def label_counts(reference: np.ndarray, prediction: np.ndarray, labels: Sequence[int]) -> dict[int, Counts]:
    """Counts for every label value of two integer label maps, from one joint histogram.

    With J[r, p] = #{voxels with reference label r and prediction label p}, label l has
    TP = J[l, l], FP = Σ_r J[r, l] − TP, FN = Σ_p J[l, p] − TP, TN = N − TP − FP − FN.
    uint8 maps with values below 16 use :func:`small_label_joint`; otherwise each voxel's pair
    is mapped to a bin of a (K+1) x (K+1) histogram, K = number of requested labels, with every
    other value in bin 0 (then the labels take rows and columns 1..K).
    """
    labels = [int(v) for v in labels]
    ref, pred = np.asarray(reference), np.asarray(prediction)
    if ref.shape != pred.shape:
        raise ValueError(f"shapes differ: reference {ref.shape}, prediction {pred.shape}")
    joint = small_label_joint(ref, pred) if ref.dtype == pred.dtype == np.uint8 else None
    if joint is not None:
        return counts_from_joint(joint, labels, ref.size)
    top = max([0, *labels, _max_value(ref), _max_value(pred)])
    if top >= 1 << 24 or len(labels) >= 255:
        return {v: confusion_counts(ref == v, pred == v) for v in labels}
    lookup = np.zeros(top + 1, np.uint8)
    lookup[labels] = np.arange(1, len(labels) + 1, dtype=np.uint8)
    size = len(labels) + 1
    joint = np.zeros(size * size, np.int64)
    flat_ref, flat_pred = ref.reshape(-1), pred.reshape(-1)
    small = size * size <= 256 and ref.dtype == np.uint8 and pred.dtype == np.uint8 and top < 256
    for start in range(0, flat_ref.size, _BLOCK):
        r, p = flat_ref[start:start + _BLOCK], flat_pred[start:start + _BLOCK]
        if small:
            index = lookup[r] * np.uint8(size) + lookup[p]
        else:
            index = lookup[r].astype(np.int32) * size + lookup[p]
        joint += np.bincount(index, minlength=size * size)
    matrix = joint.reshape(size, size)
    rows, cols, total = matrix.sum(1), matrix.sum(0), int(matrix.sum())
    counts = {}
    for i, v in enumerate(labels, start=1):
        tp = int(matrix[i, i])
        fp, fn = int(cols[i]) - tp, int(rows[i]) - tp
        counts[v] = Counts(tp, fp, fn, total - tp - fp - fn)
    return counts


def small_label_joint(reference: np.ndarray, prediction: np.ndarray) -> np.ndarray | None:
    """The 16 x 16 joint histogram J[r, p] of two uint8 label maps, or None if a value is ≥ 16.

    Each voxel's pair is packed into one byte, r · 16 + p, and two neighbouring bytes read as
    one uint16 index a 65536-bin histogram H[second, first]; the byte histogram is then
    Σ_second H + Σ_first H. This halves the elements that ``np.bincount`` converts to intp.
    """
    flat_ref, flat_pred = reference.reshape(-1), prediction.reshape(-1)
    code = np.empty(min(_PAIR_BLOCK, flat_ref.size + 1), np.uint8)
    pairs = np.zeros(1 << 16, np.int64)
    padding = 0
    for start in range(0, flat_ref.size, _PAIR_BLOCK):
        r, p = flat_ref[start:start + _PAIR_BLOCK], flat_pred[start:start + _PAIR_BLOCK]
        if r.max() >= _SMALL_LABELS or p.max() >= _SMALL_LABELS:
            return None
        packed = code[:len(r) + len(r) % 2]
        np.left_shift(r, 4, out=packed[:len(r)])
        np.bitwise_or(packed[:len(r)], p, out=packed[:len(r)])
        packed[len(r):] = 0  # an odd block is padded with one (0, 0) pair, taken out below
        padding += len(packed) - len(r)
        pairs += np.bincount(packed.view(np.uint16), minlength=1 << 16)
    square = pairs.reshape(256, 256)
    joint = square.sum(0) + square.sum(1)
    joint[0] -= padding
    return joint.reshape(_SMALL_LABELS, _SMALL_LABELS)


def counts_from_joint(joint: np.ndarray, labels: Sequence[int], total: int) -> dict[int, Counts]:
    """Per-label counts from a square joint histogram J[r, p] indexed by label value, over
    ``total`` voxels (formulas in :func:`label_counts`); labels beyond J have no voxels."""
    rows, cols = joint.sum(1), joint.sum(0)
    counts = {}
    for v in labels:
        if v >= len(joint):
            counts[v] = Counts(0, 0, 0, total)
            continue
        tp = int(joint[v, v])
        fp, fn = int(cols[v]) - tp, int(rows[v]) - tp
        counts[v] = Counts(tp, fp, fn, total - tp - fp - fn)
    return counts


def _max_value(array: np.ndarray) -> int:
    return int(array.max()) if array.size else 0


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator else math.nan


def dice_from_counts(c: Counts) -> float:
    """Dice = 2TP / (2TP + FP + FN); 1 when both masks are empty (MetricsReloaded)."""
    denominator = 2 * c.tp + c.fp + c.fn
    return 1.0 if denominator == 0 else 2 * c.tp / denominator


def iou_from_counts(c: Counts) -> float:
    """IoU (Jaccard) = TP / (TP + FP + FN); 1 when both masks are empty (MetricsReloaded)."""
    denominator = c.tp + c.fp + c.fn
    return 1.0 if denominator == 0 else c.tp / denominator


def sensitivity_from_counts(c: Counts) -> float:
    """Sensitivity (recall) = TP / (TP + FN); NaN for an empty reference."""
    return _ratio(c.tp, c.tp + c.fn)


def precision_from_counts(c: Counts) -> float:
    """Precision = TP / (TP + FP); NaN for an empty prediction."""
    return _ratio(c.tp, c.tp + c.fp)


def specificity_from_counts(c: Counts) -> float:
    """Specificity = TN / (TN + FP); NaN when the reference covers the whole image."""
    return _ratio(c.tn, c.tn + c.fp)


def accuracy_from_counts(c: Counts) -> float:
    """Accuracy = (TP + TN) / (TP + FP + FN + TN)."""
    return _ratio(c.tp + c.tn, c.total)


def volume_similarity_from_counts(c: Counts) -> float:
    """Volume similarity = 1 − |FP − FN| / (2TP + FP + FN) (Taha & Hanbury 2015); NaN when both
    masks are empty."""
    return 1.0 - _ratio(abs(c.fp - c.fn), 2 * c.tp + c.fp + c.fn)


def volume_difference_ml_from_counts(c: Counts, spacing: Sequence[float]) -> float:
    """|V(B) − V(A)| in millilitres: |FP − FN| × voxel volume (mm³) / 1000; 0 when both are empty."""
    return abs(c.fp - c.fn) * float(np.prod(spacing)) / 1000.0


COUNT_METRICS: Mapping[str, object] = {
    "dice": dice_from_counts,
    "iou": iou_from_counts,
    "sensitivity": sensitivity_from_counts,
    "precision": precision_from_counts,
    "specificity": specificity_from_counts,
    "accuracy": accuracy_from_counts,
    "volume_similarity": volume_similarity_from_counts,
}


def dice(reference: np.ndarray, prediction: np.ndarray) -> float:
    """Dice similarity coefficient 2TP / (2TP + FP + FN) = 2|A ∩ B| / (|A| + |B|).

    Parameters
    ----------
    reference, prediction : numpy.ndarray
        Binary masks of one shape (non-zero is foreground), any number of dimensions.

    Returns
    -------
    float
        In [0, 1]; 1 when both masks are empty, 0 when exactly one is.

    References
    ----------
    Taha & Hanbury, BMC Medical Imaging 15:29 (2015) for the definition; Maier-Hein et al.,
    Metrics Reloaded, Nature Methods 21:195 (2024) for the empty masks; docs/metrics.md, section
    Segmentation.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([[1, 1, 1, 0]], bool)  # reference: 3 voxels
    >>> b = np.array([[0, 1, 1, 1]], bool)  # prediction: 3 voxels, 2 of them shared
    >>> round(dice(a, b), 4)  # 2 * 2 / (3 + 3)
    0.6667
    """
    return dice_from_counts(confusion_counts(reference, prediction))


def iou(reference: np.ndarray, prediction: np.ndarray) -> float:
    """Intersection over union (Jaccard index) TP / (TP + FP + FN) = |A ∩ B| / |A ∪ B|.

    Parameters
    ----------
    reference, prediction : numpy.ndarray
        Binary masks of one shape (non-zero is foreground), any number of dimensions.

    Returns
    -------
    float
        In [0, 1]; 1 when both masks are empty, 0 when exactly one is.

    References
    ----------
    Taha & Hanbury, BMC Medical Imaging 15:29 (2015) for the definition; Maier-Hein et al.,
    Metrics Reloaded, Nature Methods 21:195 (2024) for the empty masks; docs/metrics.md, section
    Segmentation.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([[1, 1, 1, 0]], bool)  # reference: 3 voxels
    >>> b = np.array([[0, 1, 1, 1]], bool)  # prediction: 3 voxels, 2 of them shared
    >>> iou(a, b)  # 2 / 4
    0.5
    """
    return iou_from_counts(confusion_counts(reference, prediction))


def sensitivity(reference: np.ndarray, prediction: np.ndarray) -> float:
    """Sensitivity (recall, true positive rate) TP / (TP + FN) = |A ∩ B| / |A|.

    Parameters
    ----------
    reference, prediction : numpy.ndarray
        Binary masks of one shape (non-zero is foreground), any number of dimensions.

    Returns
    -------
    float
        In [0, 1]; NaN for an empty reference.

    References
    ----------
    Taha & Hanbury, BMC Medical Imaging 15:29 (2015) for the definition; Maier-Hein et al.,
    Metrics Reloaded, Nature Methods 21:195 (2024) for the empty masks; docs/metrics.md, section
    Segmentation.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([[1, 1, 1, 0]], bool)  # reference: 3 voxels
    >>> b = np.array([[0, 1, 1, 1]], bool)  # prediction: 3 voxels, 2 of them shared
    >>> round(sensitivity(a, b), 4)  # 2 / 3
    0.6667
    """
    return sensitivity_from_counts(confusion_counts(reference, prediction))


def precision(reference: np.ndarray, prediction: np.ndarray) -> float:
    """Precision (positive predictive value) TP / (TP + FP) = |A ∩ B| / |B|.

    Parameters
    ----------
    reference, prediction : numpy.ndarray
        Binary masks of one shape (non-zero is foreground), any number of dimensions.

    Returns
    -------
    float
        In [0, 1]; NaN for an empty prediction.

    References
    ----------
    Taha & Hanbury, BMC Medical Imaging 15:29 (2015) for the definition; Maier-Hein et al.,
    Metrics Reloaded, Nature Methods 21:195 (2024) for the empty masks; docs/metrics.md, section
    Segmentation.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([[1, 1, 1, 0]], bool)  # reference: 3 voxels
    >>> b = np.array([[0, 1, 1, 1]], bool)  # prediction: 3 voxels, 2 of them shared
    >>> round(precision(a, b), 4)  # 2 / 3
    0.6667
    """
    return precision_from_counts(confusion_counts(reference, prediction))


def specificity(reference: np.ndarray, prediction: np.ndarray) -> float:
    """Specificity (true negative rate) TN / (TN + FP).

    Parameters
    ----------
    reference, prediction : numpy.ndarray
        Binary masks of one shape (non-zero is foreground), any number of dimensions.

    Returns
    -------
    float
        In [0, 1]; NaN when the reference fills the image (no negatives).

    References
    ----------
    Taha & Hanbury, BMC Medical Imaging 15:29 (2015) for the definition; Maier-Hein et al.,
    Metrics Reloaded, Nature Methods 21:195 (2024) for the empty masks; docs/metrics.md, section
    Segmentation.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([[1, 1, 1, 0]], bool)  # reference: 3 voxels
    >>> b = np.array([[0, 1, 1, 1]], bool)  # prediction: 3 voxels, 2 of them shared
    >>> specificity(a, np.array([[1, 1, 0, 0]], bool))  # 1 / (1 + 0)
    1.0
    """
    return specificity_from_counts(confusion_counts(reference, prediction))


def accuracy(reference: np.ndarray, prediction: np.ndarray) -> float:
    """Accuracy (TP + TN) / number of voxels.

    Parameters
    ----------
    reference, prediction : numpy.ndarray
        Binary masks of one shape (non-zero is foreground), any number of dimensions.

    Returns
    -------
    float
        In [0, 1].

    References
    ----------
    Taha & Hanbury, BMC Medical Imaging 15:29 (2015) for the definition; Maier-Hein et al.,
    Metrics Reloaded, Nature Methods 21:195 (2024) for the empty masks; docs/metrics.md, section
    Segmentation.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([[1, 1, 1, 0]], bool)  # reference: 3 voxels
    >>> b = np.array([[0, 1, 1, 1]], bool)  # prediction: 3 voxels, 2 of them shared
    >>> accuracy(a, b)  # (2 + 0) / 4
    0.5
    """
    return accuracy_from_counts(confusion_counts(reference, prediction))


def volume_similarity(reference: np.ndarray, prediction: np.ndarray) -> float:
    """Volume similarity 1 − |FP − FN| / (2TP + FP + FN) = 1 − ||A| − |B|| / (|A| + |B|).

    Parameters
    ----------
    reference, prediction : numpy.ndarray
        Binary masks of one shape (non-zero is foreground), any number of dimensions.

    Returns
    -------
    float
        In [0, 1]; NaN when both masks are empty.

    References
    ----------
    Taha & Hanbury, BMC Medical Imaging 15:29 (2015) for the definition; Maier-Hein et al.,
    Metrics Reloaded, Nature Methods 21:195 (2024) for the empty masks; docs/metrics.md, section
    Segmentation.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([[1, 1, 1, 0]], bool)  # reference: 3 voxels
    >>> b = np.array([[0, 1, 1, 1]], bool)  # prediction: 3 voxels, 2 of them shared
    >>> volume_similarity(a, np.array([[0, 1, 0, 0]], bool))  # 1 - 2 / 4
    0.5
    """
    return volume_similarity_from_counts(confusion_counts(reference, prediction))


def volume_difference_ml(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float]) -> float:
    """Absolute volume difference ||B| − |A|| = |FP − FN| voxels × voxel volume, in millilitres.

    Parameters
    ----------
    reference, prediction : numpy.ndarray
        Binary masks of one shape (non-zero is foreground).
    spacing : sequence of float
        Voxel size in mm, one positive value per axis (array order).

    Returns
    -------
    float
        In mL (1 mL = 1000 mm³); 0 when both masks are empty.

    References
    ----------
    Taha & Hanbury, BMC Medical Imaging 15:29 (2015); docs/metrics.md, section Segmentation.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([[[1, 1, 1, 0]]], bool)
    >>> b = np.array([[[0, 1, 0, 0]]], bool)
    >>> volume_difference_ml(a, b, spacing=(10, 10, 10))  # 2 voxels of 1000 mm³
    2.0
    """
    counts = confusion_counts(reference, prediction)
    return volume_difference_ml_from_counts(counts, check_spacing(spacing, np.ndim(reference)))
