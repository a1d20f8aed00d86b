"""Segmentation metrics (placeholder core: dice and hd95; the full library replaces this)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import ndimage

from medarena.evaluators.tasks import CaseError, CaseResult, Task, TaskSettings


def dice(reference: np.ndarray, prediction: np.ndarray) -> float:
    """2|A∩B| / (|A|+|B|); 1.0 when both are empty."""
    a, b = np.asarray(reference, bool), np.asarray(prediction, bool)
    denom = a.sum() + b.sum()
    return 1.0 if denom == 0 else float(2 * np.logical_and(a, b).sum() / denom)


def _border(mask: np.ndarray) -> np.ndarray:
    eroded = ndimage.binary_erosion(mask, ndimage.generate_binary_structure(mask.ndim, 1),
                                    border_value=0)
    return mask & ~eroded


def hd95(reference: np.ndarray, prediction: np.ndarray, spacing) -> float:
    """max(P95(D_AB), P95(D_BA)) over border voxels, in mm (METRICS.md default)."""
    a, b = np.asarray(reference, bool), np.asarray(prediction, bool)
    if not a.any() and not b.any():
        return 0.0
    if not a.any() or not b.any():
        return float(np.linalg.norm(np.asarray(a.shape) * np.asarray(spacing)))
    ba, bb = _border(a), _border(b)
    d_ab = ndimage.distance_transform_edt(~bb, sampling=spacing)[ba]
    d_ba = ndimage.distance_transform_edt(~ba, sampling=spacing)[bb]
    return float(max(np.percentile(d_ab, 95), np.percentile(d_ba, 95)))


class SegmentationSettings(TaskSettings):
    labels: dict[str, int] | None = None
    metrics: list[str] = ["dice", "hd95"]


class SegmentationTask(Task):
    name = "segmentation"
    Settings = SegmentationSettings
    reference_roles = ("mask",)
    prediction_roles = ("mask",)

    def score_case(self, reference: Mapping[str, Any], prediction: Mapping[str, Any],
                   settings: SegmentationSettings) -> CaseResult:
        ref, pred = reference["mask"], prediction["mask"]
        if ref.shape != pred.shape:
            raise CaseError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
        labels = settings.labels or {str(v): int(v) for v in np.unique(ref.array) if v != 0}
        rows = []
        for name, value in labels.items():
            a, b = ref.array == value, pred.array == value
            row: dict[str, Any] = {"label": name}
            for metric in settings.metrics:
                row[metric] = dice(a, b) if metric == "dice" else hd95(a, b, ref.spacing)
            rows.append(row)
        return CaseResult(rows=rows)


TASK = SegmentationTask()
