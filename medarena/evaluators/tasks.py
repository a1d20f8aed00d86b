"""The interface between the platform and the evaluator families.

A *task* scores one case at a time and then, once, the whole data set:

- ``score_case(reference, prediction, settings)`` takes two mappings from a *role* name (for
  example ``"mask"``, ``"boxes"``, ``"field"``) to a value (an :class:`~medarena.evaluators.image.Image`,
  a list of boxes, a probability, ...) and returns a :class:`CaseResult`: wide metric rows (one per
  label, or one whole-case row with ``label=None``) and a JSON-able ``pooled`` payload that the
  data-set step needs (detections with scores, probabilities, ...). The *reference* mapping also
  holds the case's inputs that scoring needs (landmarks of the fixed image, source images).
- ``score_dataset(results, settings)`` pools every case (AP, FROC, AUROC, curves) and returns a
  JSON-able dict: numbers under their metric names, curves as lists.

Tasks raise :class:`CaseError` with a message that names the problem; the caller adds the case.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict


class CaseError(ValueError):
    """A case cannot be scored (mismatched geometry, malformed prediction, ...)."""


class TaskSettings(BaseModel):
    """Base class of every task's settings; unknown fields are errors."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class CaseResult:
    """What scoring one case gives: metric rows and the data-set step's payload."""

    rows: list[dict[str, Any]]
    pooled: Any = None
    notes: list[str] = field(default_factory=list)


class Task:
    """Base class of a task family; subclasses set the class attributes and both methods."""

    name: ClassVar[str]
    Settings: ClassVar[type[TaskSettings]] = TaskSettings
    #: roles the reference mapping must provide, and those the prediction must provide
    reference_roles: ClassVar[tuple[str, ...]] = ()
    prediction_roles: ClassVar[tuple[str, ...]] = ()

    def score_case(
        self, reference: Mapping[str, Any], prediction: Mapping[str, Any], settings: TaskSettings
    ) -> CaseResult:
        raise NotImplementedError

    def score_dataset(self, results: Sequence[CaseResult], settings: TaskSettings) -> dict[str, Any]:
        return {}

    def missing_prediction(self, reference: Mapping[str, Any], settings: TaskSettings) -> CaseResult | None:
        """The result for a case without any prediction, or None when it cannot be scored.

        Detection scores a missing prediction as no detections; most tasks return None and the
        ranking gives such a case the worst value.
        """
        return None


TASK_MODULES = {
    "segmentation": "medarena.evaluators.segmentation",
    "detection": "medarena.evaluators.detection",
    "classification": "medarena.evaluators.classification",
    "registration": "medarena.evaluators.registration",
    "fusion": "medarena.evaluators.fusion",
}


def get_task(name: str) -> Task:
    """The task object of a family, by name (``segmentation``, ``detection``, ...)."""
    if name not in TASK_MODULES:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(TASK_MODULES)}")
    module = importlib.import_module(TASK_MODULES[name])
    return module.TASK


def summarize(values: Iterable[float]) -> dict[str, float | int]:
    """mean, std (population), median, min, max over the finite values, and their count n.

    Infinite values are kept (a mean with an infinite value is infinite); NaN values are left out.
    """
    arr = np.asarray([v for v in values if v is not None and not _isnan(v)], dtype=float)
    if arr.size == 0:
        return {"mean": math.nan, "std": math.nan, "median": math.nan, "min": math.nan,
                "max": math.nan, "n": 0}
    with np.errstate(invalid="ignore"):
        return {"mean": float(arr.mean()), "std": float(arr.std()), "median": float(np.median(arr)),
                "min": float(arr.min()), "max": float(arr.max()), "n": int(arr.size)}


WHOLE_CASE = "all"  # the aggregate key of metrics that have no label


def aggregate(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, float | int]]]:
    """Per label and metric, :func:`summarize` of the numeric values of case rows."""
    collected: dict[str, dict[str, list[float]]] = {}
    for row in rows:
        label = row.get("label") or WHOLE_CASE
        for key, value in row.items():
            if key in ("case", "label") or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            collected.setdefault(str(label), {}).setdefault(key, []).append(float(value))
    return {label: {m: summarize(v) for m, v in metrics.items()} for label, metrics in collected.items()}


def _isnan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def jsonable(value: Any) -> Any:
    """The value with numpy scalars made plain and non-finite floats made None (JSON null)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    return value
