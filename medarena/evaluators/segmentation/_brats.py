"""Lesion-wise Dice and HD95 of the BraTS 2023 evaluation (the ``brats2023`` convention).

The rules of the BraTS 2023 lesion-wise metrics (Saluja et al., BraTS 2023 challenge reports), as
``metrics.py`` of rachitsaluja/BraTS-2023-Metrics at commit 43c905242b2eecf421d4ab2da7af8ece9777d322
(2023-10-12) computes them. Its defaults per task: dilation 3 and 50 mm³ for BraTS-GLI, -SSA and
-PED; dilation 1 and 50 mm³ for BraTS-MEN; dilation 1 and 2 mm³ for BraTS-MET (the settings
``lesion_dilation`` and ``lesion_min_volume_mm3``):

1. Reference lesions are the connected components (26-connectivity) of the reference mask, after
   merging those that touch once the whole reference is dilated ``dilation`` times with the
   18-connectivity structure: every reference voxel takes the id of its dilated component.
2. Each reference lesion is dilated the same way; every prediction component (26-connectivity)
   that meets the dilated lesion is counted with it (one prediction component may count for
   several lesions). The lesion's Dice and HD95 compare the lesion with the union of those
   components; HD95 is surface-distance's surfel-weighted robust Hausdorff distance, and a lesion
   without any prediction component (a miss) gets 374 mm.
3. Prediction components that meet no dilated lesion are false positives: Dice 0, HD95 374 mm.
4. Reference lesions of volume ≤ ``min_volume_mm3`` (50 mm³) are left out of both scores and of
   the lesion counts; false positives are never left out.
5. Lesion-wise Dice = ΣDice / (lesions + false positives), lesion-wise HD95 likewise; with neither
   lesions nor false positives, Dice = 1 and HD95 = 0.

In 2D (not a BraTS case) the dilation uses the 4-connectivity structure and components 8.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from medarena.evaluators._checks import check_same_shape, check_spacing
from medarena.evaluators.segmentation._instances import connected_components
from medarena.evaluators.segmentation._surface import directed_percentile, surface_distances

MISS_DISTANCE_MM = 374.0


@dataclass(frozen=True)
class LesionWiseResult:
    """BraTS 2023 lesion-wise scores of one binary comparison."""

    dice: float
    hd95: float
    tp: int
    fp: int
    fn: int


def _union_box(boxes: Sequence[tuple[slice, ...]], shape: Sequence[int], margin: int = 0) -> tuple[slice, ...]:
    return tuple(
        slice(max(0, min(b[axis].start for b in boxes) - margin),
              min(shape[axis], max(b[axis].stop for b in boxes) + margin))
        for axis in range(len(shape))
    )


def _robust_hd95(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float]) -> float:
    """surface-distance's ``compute_robust_hausdorff(·, 95)`` on surfels; inf when a side is empty."""
    sd = surface_distances(reference, prediction, spacing, surface="surfel")
    return max(directed_percentile(sd.ab, 95.0, sd.weights_ab), directed_percentile(sd.ba, 95.0, sd.weights_ba))


def lesion_wise_scores(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float],
                       dilation: int = 3, min_volume_mm3: float = 50.0) -> LesionWiseResult:
    """BraTS 2023 lesion-wise Dice and HD95 (mm) and lesion counts of two binary masks."""
    a, b = np.asarray(reference, bool), np.asarray(prediction, bool)
    check_same_shape(a.shape, b.shape)
    spacing = check_spacing(spacing, a.ndim)
    structure = ndimage.generate_binary_structure(a.ndim, a.ndim - 1)
    voxel_volume = float(np.prod(spacing))

    pred_labels, n_pred = connected_components(b)
    pred_boxes = ndimage.find_objects(pred_labels)
    if a.any():
        dilated = ndimage.binary_dilation(a, structure=structure, iterations=dilation) if dilation else a
        dilated_labels, _ = connected_components(dilated)
        lesions = np.where(a, dilated_labels, 0)
    else:
        lesions = np.zeros(a.shape, np.int32)
    lesion_boxes = ndimage.find_objects(lesions)

    matched_predictions: set[int] = set()
    dice_sum = hd_sum = 0.0
    kept = tp = fn = 0
    for lesion_id, box in enumerate(lesion_boxes, start=1):
        if box is None:
            continue
        near = _union_box([box], a.shape, margin=dilation)
        lesion = lesions[near] == lesion_id
        grown = ndimage.binary_dilation(lesion, structure=structure, iterations=dilation) if dilation else lesion
        hits = np.unique(pred_labels[near][grown])
        hits = [int(h) for h in hits if h != 0]
        matched_predictions.update(hits)
        volume = float(np.count_nonzero(lesion)) * voxel_volume
        if volume <= min_volume_mm3:
            continue
        kept += 1
        if not hits:
            fn += 1
            hd_sum += MISS_DISTANCE_MM
            continue
        tp += 1
        region = _union_box([box] + [pred_boxes[h - 1] for h in hits], a.shape)
        lesion_mask = lesions[region] == lesion_id
        pred_mask = np.isin(pred_labels[region], hits)
        overlap = np.count_nonzero(lesion_mask & pred_mask)
        dice_sum += 2.0 * overlap / (np.count_nonzero(lesion_mask) + np.count_nonzero(pred_mask))
        hd = _robust_hd95(lesion_mask, pred_mask, spacing)
        hd_sum += MISS_DISTANCE_MM if not np.isfinite(hd) else hd
    fp = n_pred - len(matched_predictions)
    count = kept + fp
    if count == 0:
        return LesionWiseResult(dice=1.0, hd95=0.0, tp=0, fp=0, fn=0)
    return LesionWiseResult(
        dice=dice_sum / count, hd95=(hd_sum + fp * MISS_DISTANCE_MM) / count, tp=tp, fp=fp, fn=fn
    )
