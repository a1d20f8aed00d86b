"""The fusion task: a phase's settings and the scoring of one case's sources and fused image."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from pydantic import field_validator

from medarena.evaluators.fusion._metrics import METRIC_FUNCTIONS, METRICS, fusion_metrics
from medarena.evaluators.image import Image
from medarena.evaluators.tasks import CaseError, CaseResult, Task, TaskSettings


def to_gray(array: np.ndarray, ndim: int) -> np.ndarray:
    """An RGB(A) image (trailing channel axis) as gray: 0.2989 R + 0.5870 G + 0.1140 B (alpha
    dropped); a gray image unchanged (as float64)."""
    x = np.asarray(array, dtype=np.float64)
    if x.ndim == ndim:
        return x
    if x.ndim == ndim + 1 and x.shape[-1] in (3, 4):
        return x[..., 0] * 0.2989 + x[..., 1] * 0.5870 + x[..., 2] * 0.1140
    if x.ndim == ndim + 1 and x.shape[-1] == 1:
        return x[..., 0]
    raise CaseError(f"an image with {x.shape[-1]} components per pixel; expected gray or RGB")


class FusionSettings(TaskSettings):
    """How a fusion case is scored.

    - ``metrics``: any of ``en sd sf ag mi qabf ssim psnr rmse cc scd vif`` (default: all twelve).
    - ``slice_axis``: for 3D images, the array axis (0 = z, 1 = y, 2 = x) across which the volume is
      cut into 2D slices; each metric is the mean over slices (slices where it is undefined, NaN,
      are left out).
    - ``intensity_range``: how values become gray levels 0..255. ``"uint8"`` (default, as VIFB):
      values are taken as they are and must lie in [0, 255]; ``[lo, hi]``: a linear map of
      [lo, hi] onto [0, 255] for all three images, values outside clipped; ``"joint_minmax"``: the
      same with lo, hi the minimum and maximum over A, B and F of the case.
    """

    metrics: list[str] = list(METRICS)
    slice_axis: int = 0
    intensity_range: Literal["uint8", "joint_minmax"] | tuple[float, float] = "uint8"

    @field_validator("metrics")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = [m for m in value if m not in METRIC_FUNCTIONS]
        if unknown:
            raise ValueError(f"unknown fusion metrics {unknown}; known: {', '.join(METRICS)}")
        return value

    @field_validator("slice_axis")
    @classmethod
    def _axis(cls, value: int) -> int:
        if value not in (0, 1, 2):
            raise ValueError("slice_axis must be 0, 1 or 2")
        return value

    @field_validator("intensity_range")
    @classmethod
    def _range(cls, value: Any) -> Any:
        if isinstance(value, tuple) and not value[1] > value[0]:
            raise ValueError(f"intensity_range [lo, hi] needs hi > lo, got {list(value)}")
        return value


class FusionTask(Task):
    """Scores a fused image against its two sources.

    Reference roles ``source_a`` and ``source_b``, prediction role ``fused``: :class:`Image` s (or
    arrays) of one size, 2D or 3D, gray or RGB. One whole-case row (label None) with the chosen
    metrics; a 3D case also gives ``slices`` (the number of slices scored).
    """

    name = "fusion"
    Settings = FusionSettings
    reference_roles = ("source_a", "source_b")
    prediction_roles = ("fused",)

    def score_case(self, reference: Mapping[str, Any], prediction: Mapping[str, Any],
                   settings: FusionSettings) -> CaseResult:
        images = {}
        for role, mapping in (("source_a", reference), ("source_b", reference), ("fused", prediction)):
            value = mapping.get(role)
            if value is None:
                raise CaseError(f"no {role} image")
            images[role] = _gray(value, role)
        shapes = {role: x.shape for role, x in images.items()}
        if len(set(shapes.values())) != 1:
            raise CaseError("the images differ in size: " + ", ".join(f"{r} {s}" for r, s in shapes.items()))
        for role, x in images.items():
            bad = np.count_nonzero(~np.isfinite(x))
            if bad:
                raise CaseError(f"{role} has {bad} NaN or infinite values")
        a, b, f = _to_gray_levels(images, settings.intensity_range)
        row: dict[str, Any] = {"label": None}
        if a.ndim == 2:
            row.update(fusion_metrics(a, b, f, settings.metrics))
            return CaseResult(rows=[row])
        axis = settings.slice_axis
        per_slice = [fusion_metrics(np.take(a, k, axis), np.take(b, k, axis), np.take(f, k, axis), settings.metrics)
                     for k in range(a.shape[axis])]
        for metric in settings.metrics:
            values = np.asarray([s[metric] for s in per_slice], dtype=float)
            finite = values[~np.isnan(values)]
            row[metric] = float(finite.mean()) if finite.size else float("nan")
        row["slices"] = len(per_slice)
        return CaseResult(rows=[row])


def _gray(value: Any, role: str) -> np.ndarray:
    if isinstance(value, Image):
        return to_gray(value.array, value.ndim)
    array = np.asarray(value)
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        return to_gray(array, 2)
    if array.ndim not in (2, 3):
        raise CaseError(f"{role} must be a 2D or 3D image, got array shape {array.shape}")
    return array.astype(np.float64)


def _to_gray_levels(images: dict[str, np.ndarray], intensity_range: Any) -> tuple[np.ndarray, ...]:
    arrays = tuple(images.values())
    if intensity_range == "uint8":
        for role, x in images.items():
            lo, hi = float(x.min()), float(x.max())
            if lo < 0 or hi > 255:
                raise CaseError(f"{role} has values from {lo:g} to {hi:g}, outside 0..255; set intensity_range "
                                "to a range (lo, hi) or to joint_minmax")
        return arrays
    if intensity_range == "joint_minmax":
        lo, hi = min(float(x.min()) for x in arrays), max(float(x.max()) for x in arrays)
        if hi == lo:
            hi = lo + 1.0
    else:
        lo, hi = (float(v) for v in intensity_range)
    scale = 255.0 / (hi - lo)
    return tuple(np.clip((x - lo) * scale, 0, 255) for x in arrays)


TASK = FusionTask()
