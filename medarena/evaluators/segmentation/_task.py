"""The segmentation task: a phase's settings and the scoring of one case's label maps."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import field_validator

from medarena.evaluators.image import Image
from medarena.evaluators.segmentation._chunked import evaluate_chunked
from medarena.evaluators.segmentation._evaluate import evaluate
from medarena.evaluators.segmentation._labels import resolve_labels
from medarena.evaluators.segmentation._names import check_convention, parse_metric
from medarena.evaluators.tasks import CaseError, CaseResult, Task, TaskSettings


class SegmentationSettings(TaskSettings):
    """How a segmentation phase is scored (the challenge YAML's evaluation block)."""

    labels: dict[str, int | list[int]] | None = None
    metrics: list[str] = ["dice", "hd95"]
    convention: str = "default"
    nsd_tolerance: float | dict[str, float] = 1.0
    connectivity: int | None = None
    match_iou: float = 0.5
    lesion_dilation: int = 3
    lesion_min_volume_mm3: float = 50.0

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one metric is needed")
        return [parse_metric(m).name for m in value]

    @field_validator("convention")
    @classmethod
    def _known_convention(cls, value: str) -> str:
        return check_convention(value)

    @field_validator("labels")
    @classmethod
    def _positive_labels(cls, value: dict[str, int | list[int]] | None) -> dict[str, int | list[int]] | None:
        if value is not None:
            if not value:
                raise ValueError("labels must not be empty (leave it out to score every label)")
            resolve_labels(value, np.zeros((1, 1)), np.zeros((1, 1)))
        return value

    @field_validator("nsd_tolerance")
    @classmethod
    def _positive_tolerance(cls, value: float | dict[str, float]) -> float | dict[str, float]:
        for tau in (value.values() if isinstance(value, dict) else [value]):
            if not tau > 0:
                raise ValueError(f"nsd tolerances must be positive, got {tau}")
        return value

    @field_validator("match_iou")
    @classmethod
    def _iou_range(cls, value: float) -> float:
        if not 0 <= value < 1:
            raise ValueError(f"match_iou must be in [0, 1), got {value}")
        return value


def _geometry_problem(reference: Image, prediction: Image) -> str:
    if reference.shape != prediction.shape:
        return f"shape mismatch: reference {reference.shape}, prediction {prediction.shape}"
    for field in ("spacing", "origin", "direction"):
        ours, theirs = getattr(reference, field), getattr(prediction, field)
        if len(ours) != len(theirs) or not np.allclose(ours, theirs, atol=1e-4):
            return f"geometry mismatch: reference {field} {tuple(ours)}, prediction {field} {tuple(theirs)}"
    return "geometry mismatch"


class SegmentationTask(Task):
    """Per-label segmentation metrics of a predicted label map against the reference label map."""

    name = "segmentation"
    Settings = SegmentationSettings
    reference_roles = ("mask",)
    prediction_roles = ("mask",)

    def score_case(self, reference: Mapping[str, Any], prediction: Mapping[str, Any],
                   settings: SegmentationSettings) -> CaseResult:
        for role_map, side in ((reference, "reference"), (prediction, "prediction")):
            if not isinstance(role_map.get("mask"), Image):
                raise CaseError(f"the {side} has no mask image")
        ref, pred = reference["mask"], prediction["mask"]
        if len(ref.array.shape) != ref.ndim or len(pred.array.shape) != pred.ndim:
            raise CaseError("a segmentation mask must have one component per voxel "
                            f"(reference {ref.array.shape}, prediction {pred.array.shape})")
        if not ref.same_geometry(pred):
            raise CaseError(_geometry_problem(ref, pred))
        options = dict(
            spacing=ref.spacing, metrics=settings.metrics, labels=settings.labels,
            convention=settings.convention, nsd_tolerance=settings.nsd_tolerance,
            connectivity=settings.connectivity, match_iou=settings.match_iou,
            lesion_dilation=settings.lesion_dilation, lesion_min_volume_mm3=settings.lesion_min_volume_mm3,
        )
        try:
            if isinstance(ref.array, np.ndarray) and isinstance(pred.array, np.ndarray):
                scores = evaluate(ref.array, pred.array, **options)
            else:
                scores = evaluate_chunked(ref.array, pred.array, **options)
        except CaseError:
            raise
        except (ValueError, KeyError) as error:
            raise CaseError(str(error).strip("'\"")) from None
        return CaseResult(rows=[{"label": name, **row} for name, row in scores.items()])


TASK = SegmentationTask()
