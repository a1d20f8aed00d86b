"""Segmentation evaluation: every metric of METRICS.md per label, in one call, and the task.

:func:`evaluate` scores a reference label map against a prediction label map (2D or 3D, boolean
or integer, anisotropic spacing) for each requested label, sharing the expensive work: one joint
histogram gives the voxel counts of every label, and per label one surface extraction and one
nearest-neighbour search serve every surface metric (``hd``, ``hd95``/any percentile, ``assd``,
``masd``, ``nsd@τ``).

Metric names: ``dice``, ``iou``, ``sensitivity``, ``precision``, ``specificity``, ``accuracy``,
``volume_similarity``, ``volume_difference_ml``, ``tp``/``fp``/``fn``/``tn`` (voxel counts),
``hd``, ``hd<p>`` (``hd95``, ``hd99``, ``hd@95`` ...), ``assd``, ``masd``, ``nsd`` (tolerance from
the settings) or ``nsd@<τ mm>``, ``lesion_tp``, ``lesion_fp``, ``lesion_fn``, ``lesion_f1``,
``panoptic_quality``.

Conventions (METRICS.md): ``default`` (MetricsReloaded's choices: voxel borders, max of directed
percentiles, empty masks scored as best/worst values), ``deepmind`` (surfels weighted by area and
``inf``/NaN for empty masks, as google-deepmind/surface-distance), ``pooled`` (the percentile of
the pooled directed distances, as MedPy, seg-metrics and panoptica), ``brats2023`` (BraTS 2023
lesion-wise ``dice`` and ``hd95``, see :mod:`medarena.evaluators.brats`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import field_validator

from medarena.evaluators import overlap, surface
from medarena.evaluators.brats import MISS_DISTANCE_MM, lesion_wise_scores
from medarena.evaluators.image import Image
from medarena.evaluators.instances import instance_metrics
from medarena.evaluators.tasks import CaseError, CaseResult, Task, TaskSettings

CONVENTIONS = ("default", "deepmind", "pooled", "brats2023")
COUNT_METRICS = (
    "dice", "iou", "sensitivity", "precision", "specificity", "accuracy", "volume_similarity",
    "volume_difference_ml", "tp", "fp", "fn", "tn",
)
INSTANCE_METRICS = ("lesion_tp", "lesion_fp", "lesion_fn", "lesion_f1", "panoptic_quality")
SURFACE_METRICS = ("hd", "hd<p>", "assd", "masd", "nsd", "nsd@<mm>")
_PERCENTILE = re.compile(r"^hd@?(\d+(?:\.\d+)?)$")
_NSD = re.compile(r"^nsd@(\d+(?:\.\d+)?)$")

LabelSpec = int | list[int]


@dataclass(frozen=True)
class MetricSpec:
    """A parsed metric name: its family, base name and parameter (percentile or tolerance)."""

    name: str
    family: str  # "count", "surface" or "instance"
    base: str
    parameter: float | None = None


def parse_metric(name: str) -> MetricSpec:
    """Parse a metric name (see the module docstring); unknown names raise ValueError."""
    key = str(name).strip().lower()
    if key in COUNT_METRICS:
        return MetricSpec(key, "count", key)
    if key in INSTANCE_METRICS:
        return MetricSpec(key, "instance", key)
    if key in ("hd", "assd", "masd", "nsd"):
        return MetricSpec(key, "surface", key, 100.0 if key == "hd" else None)
    if match := _PERCENTILE.match(key):
        value = float(match.group(1))
        if not 0 <= value <= 100:
            raise ValueError(f"metric {name!r}: the percentile must be between 0 and 100")
        return MetricSpec(key, "surface", "hd", value)
    if match := _NSD.match(key):
        return MetricSpec(key, "surface", "nsd", float(match.group(1)))
    known = ", ".join(COUNT_METRICS + SURFACE_METRICS + INSTANCE_METRICS)
    raise ValueError(f"unknown metric {name!r}; known: {known}")


def check_convention(convention: str) -> str:
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}; known: {', '.join(CONVENTIONS)}")
    return convention


def check_label_map(array: Any, role: str) -> np.ndarray:
    """The array as an integer label map, or ValueError naming the role and the problem.

    Boolean and unsigned arrays pass as they are; signed integers must not be negative; floating
    point arrays must hold whole, finite, non-negative numbers (a NaN is an error).
    """
    arr = np.asarray(array)
    if arr.ndim not in (2, 3):
        raise ValueError(f"{role}: a label map must be 2D or 3D, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.view(np.uint8)
    if np.issubdtype(arr.dtype, np.unsignedinteger):
        return arr
    if np.issubdtype(arr.dtype, np.signedinteger):
        if arr.size and arr.min() < 0:
            raise ValueError(f"{role}: negative label {int(arr.min())}")
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        if np.isnan(arr).any():
            raise ValueError(f"{role}: NaN in the mask")
        if not np.isfinite(arr).all():
            raise ValueError(f"{role}: infinite value in the mask")
        if arr.size and arr.min() < 0:
            raise ValueError(f"{role}: negative label {float(arr.min())}")
        if not np.array_equal(arr, np.floor(arr)):
            raise ValueError(f"{role}: non-integer label values (for example {_first_fraction(arr)})")
        top = float(arr.max()) if arr.size else 0.0
        return arr.astype(np.uint8 if top < 256 else np.uint16 if top < 65536 else np.uint32)
    raise ValueError(f"{role}: unsupported pixel type {arr.dtype} (labels must be integers)")


def _first_fraction(arr: np.ndarray) -> float:
    return float(arr[arr != np.floor(arr)].ravel()[0])


def present_labels(*arrays: np.ndarray) -> list[int]:
    """The non-zero values found in any of the label maps, ascending."""
    found: set[int] = set()
    for arr in arrays:
        if arr.dtype.itemsize <= 2:
            flat = arr.reshape(-1)
            counts = np.zeros(1, np.int64)
            for start in range(0, flat.size, 1 << 22):
                block = np.bincount(flat[start:start + (1 << 22)])
                if len(block) > len(counts):
                    block[: len(counts)] += counts
                    counts = block
                else:
                    counts[: len(block)] += block
            found.update(int(v) for v in np.flatnonzero(counts))
        else:
            found.update(int(v) for v in np.unique(arr))
    found.discard(0)
    return sorted(found)


def resolve_labels(labels: Mapping[str, LabelSpec] | Sequence[int] | None,
                   reference: np.ndarray, prediction: np.ndarray) -> dict[str, tuple[int, ...]]:
    """Label name -> label values. None: every non-zero value in either map, named by its value."""
    if labels is None:
        return {str(v): (v,) for v in present_labels(reference, prediction)}
    if not isinstance(labels, Mapping):
        labels = {str(int(v)): int(v) for v in labels}
    resolved = {}
    for name, spec in labels.items():
        values = tuple(int(v) for v in (spec if isinstance(spec, (list, tuple)) else [spec]))
        if not values or any(v <= 0 for v in values):
            raise ValueError(f"label {name!r}: label values must be positive integers, got {spec!r}")
        resolved[str(name)] = values
    return resolved


def _region(array: np.ndarray, values: tuple[int, ...]) -> np.ndarray:
    return array == values[0] if len(values) == 1 else np.isin(array, values)


def evaluate(
    reference: np.ndarray,
    prediction: np.ndarray,
    *,
    spacing: Sequence[float],
    metrics: Sequence[str],
    labels: Mapping[str, LabelSpec] | Sequence[int] | None = None,
    convention: str = "default",
    nsd_tolerance: float | Mapping[str, float] = 1.0,
    connectivity: int | None = None,
    match_iou: float = 0.5,
    lesion_dilation: int = 3,
    lesion_min_volume_mm3: float = 50.0,
) -> dict[str, dict[str, Any]]:
    """Every requested metric for every label: ``{label name: {metric: value, ...}}``.

    Args:
        reference, prediction: label maps of the same shape (boolean or non-negative integers).
        spacing: voxel size in mm, array order.
        metrics: metric names (module docstring).
        labels: name -> value (or list of values scored as one region), a list of values, or None
            for every non-zero value present in either map.
        convention: ``default``, ``deepmind``, ``pooled`` or ``brats2023`` (METRICS.md).
        nsd_tolerance: τ in mm of the metric ``nsd`` (a number or one per label name).
        connectivity: of the instances, 1..ndim (None = full: 26 in 3D, 8 in 2D).
        match_iou: instances match when their IoU exceeds this.
        lesion_dilation, lesion_min_volume_mm3: the ``brats2023`` lesion rules.

    A label missing from one map (or both) adds ``"empty": "reference" | "prediction" | "both"``
    to its row; the values then follow the convention's empty-mask rules. Undefined values are NaN.
    """
    check_convention(convention)
    ref = check_label_map(reference, "reference")
    pred = check_label_map(prediction, "prediction")
    if ref.shape != pred.shape:
        raise ValueError(f"shape mismatch: reference {ref.shape}, prediction {pred.shape}")
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != ref.ndim or any(not s > 0 for s in spacing):
        raise ValueError(f"spacing {spacing} does not fit a {ref.ndim}D image (one positive value per axis)")
    specs = [parse_metric(m) for m in metrics]
    joint = _joint_histogram(reference, prediction, ref, pred)
    if labels is None and joint is not None:
        present = np.flatnonzero(joint.sum(0) + joint.sum(1))
        regions = {str(v): (int(v),) for v in present if v}
    else:
        regions = resolve_labels(labels, ref, pred)

    single = sorted({v[0] for v in regions.values() if len(v) == 1})
    if joint is not None:
        counts_by_value = overlap.counts_from_joint(joint, single, ref.size)
    else:
        counts_by_value = overlap.label_counts(ref, pred, single) if single else {}
    binary = joint is not None and not joint[2:].any() and not joint[:, 2:].any()
    box = surface.bounding_box(ref, pred) if any(s.family == "surface" for s in specs) else None
    rows = {}
    for name, values in regions.items():
        region = _Region(ref, pred, values, box, binary)
        if len(values) == 1:
            counts = counts_by_value[values[0]]
        else:
            counts = overlap.confusion_counts(*region.whole())
        tolerance = _tolerance(nsd_tolerance, name)
        rows[name] = _score_region(region, counts, spacing, specs, convention, tolerance, connectivity,
                                   match_iou, lesion_dilation, lesion_min_volume_mm3, ref.shape)
    return rows


def _joint_histogram(reference: Any, prediction: Any, ref: np.ndarray, pred: np.ndarray) -> np.ndarray | None:
    """J[r, p] (voxels with reference label r and prediction label p) when it is cheap: two
    boolean masks give the 2 x 2 confusion matrix, uint8 maps below 16 a 16 x 16 histogram."""
    if np.asarray(reference).dtype == bool and np.asarray(prediction).dtype == bool:
        c = overlap.confusion_counts(ref.view(bool), pred.view(bool))
        return np.array([[c.tn, c.fp], [c.fn, c.tp]], np.int64)
    return overlap.small_label_joint(ref, pred) if ref.dtype == pred.dtype == np.uint8 else None


class _Region:
    """The masks of one region, built when a metric first needs them: whole (instances, BraTS)
    or cut to the box of every non-zero voxel of both maps (surface metrics: the surfaces of a
    region lie inside that box, and only points on them are ever used)."""

    def __init__(self, ref: np.ndarray, pred: np.ndarray, values: tuple[int, ...],
                 box: tuple[slice, ...] | None, binary: bool) -> None:
        self.ref, self.pred, self.values, self.box, self.binary = ref, pred, values, box, binary
        self._whole: tuple[np.ndarray, np.ndarray] | None = None

    def whole(self) -> tuple[np.ndarray, np.ndarray]:
        if self._whole is None:
            self._whole = (_region(self.ref, self.values), _region(self.pred, self.values))
        return self._whole

    def cropped(self) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """Reference and prediction masks inside the box, and the box's first voxel."""
        box = self.box or tuple(slice(0, n) for n in self.ref.shape)
        origin = [s.start for s in box]
        if self._whole is not None:
            return self._whole[0][box], self._whole[1][box], origin
        if self.binary and self.values == (1,):  # a uint8 map of 0 and 1 is already the mask
            return self.ref[box].view(bool), self.pred[box].view(bool), origin
        return _region(self.ref[box], self.values), _region(self.pred[box], self.values), origin


def _tolerance(nsd_tolerance: float | Mapping[str, float], name: str) -> float | None:
    if isinstance(nsd_tolerance, Mapping):
        return float(nsd_tolerance[name]) if name in nsd_tolerance else None
    return float(nsd_tolerance)


def _empty_side(counts: overlap.Counts) -> str | None:
    has_a, has_b = counts.reference_size > 0, counts.prediction_size > 0
    if has_a and has_b:
        return None
    return "both" if not (has_a or has_b) else ("reference" if not has_a else "prediction")


def _score_region(region, counts, spacing, specs, convention, tolerance, connectivity, match_iou,
                  dilation, min_volume, shape) -> dict[str, Any]:
    row: dict[str, Any] = {}
    empty = _empty_side(counts)
    lesion_wise = None
    if convention == "brats2023" and any(s.base in ("dice", "hd") or s.name.startswith("lesion_") for s in specs):
        lesion_wise = lesion_wise_scores(*region.whole(), spacing, dilation, min_volume)
    for spec in specs:
        if spec.family == "count":
            row[spec.name] = _count_value(spec.base, counts, spacing, convention, empty, lesion_wise)
    surface_specs = [s for s in specs if s.family == "surface"]
    if surface_specs:
        row.update(_surface_values(region, spacing, surface_specs, convention, tolerance, empty, shape,
                                   lesion_wise))
    instance_specs = [s for s in specs if s.family == "instance"]
    if instance_specs:
        result = instance_metrics(*region.whole(), connectivity, match_iou)
        if lesion_wise is not None:
            values = {"lesion_tp": lesion_wise.tp, "lesion_fp": lesion_wise.fp, "lesion_fn": lesion_wise.fn}
            denominator = 2 * lesion_wise.tp + lesion_wise.fp + lesion_wise.fn
            values["lesion_f1"] = 2 * lesion_wise.tp / denominator if denominator else math.nan
        else:
            values = {"lesion_tp": result.tp, "lesion_fp": result.fp, "lesion_fn": result.fn,
                      "lesion_f1": result.f1}
        values["panoptic_quality"] = result.panoptic_quality
        for spec in instance_specs:
            row[spec.name] = values[spec.base]
    ordered = {spec.name: row[spec.name] for spec in specs}
    if empty:
        ordered["empty"] = empty
    return ordered


def _count_value(base, counts, spacing, convention, empty, lesion_wise) -> float | int:
    if base in ("tp", "fp", "fn", "tn"):
        return getattr(counts, base)
    if base == "volume_difference_ml":
        return overlap.volume_difference_ml_from_counts(counts, spacing)
    if base == "dice":
        if lesion_wise is not None:
            return lesion_wise.dice
        if convention == "deepmind" and empty == "both":
            return math.nan  # surface-distance's compute_dice_coefficient
    if base == "sensitivity" and convention == "brats2023" and empty == "both":
        return 1.0  # BraTS: both empty counts as fully sensitive
    return overlap.COUNT_METRICS[base](counts)


def _surface_values(region, spacing, specs, convention, tolerance, empty, shape, lesion_wise) -> dict[str, float]:
    """The surface metrics of one region under a convention, from one distance computation."""
    values: dict[str, float] = {}
    if empty is not None:
        for spec in specs:
            values[spec.name] = _empty_surface_value(spec, convention, empty, shape, spacing)
    else:
        kind = "voxel" if convention in ("default", "pooled") else "surfel"
        a, b, origin = region.cropped()
        sd = surface.surface_distances_in_box(a, b, spacing, kind, origin)
        values.update(surface_metric_values(sd, specs, convention, tolerance))
    if lesion_wise is not None:
        for spec in specs:
            if spec.base == "hd" and spec.parameter == 95.0:
                values[spec.name] = lesion_wise.hd95
    return values


def surface_metric_values(sd, specs: Sequence[MetricSpec], convention: str,
                          tolerance: float | None) -> dict[str, float]:
    """hd/hdP, assd, masd and nsd@τ of one label from its two directed distance sets ``sd``."""
    values: dict[str, float] = {}
    for spec in specs:
        if spec.base == "hd":
            values[spec.name] = surface.hausdorff_from_distances(sd, spec.parameter, pooled=convention == "pooled")
        elif spec.base == "assd":
            values[spec.name] = surface.assd_from_distances(sd)
        elif spec.base == "masd":
            values[spec.name] = surface.masd_from_distances(sd)
        else:
            values[spec.name] = surface.nsd_from_distances(sd, _nsd_tau(spec, tolerance))
    return values


def _nsd_tau(spec: MetricSpec, tolerance: float | None) -> float:
    if spec.parameter is not None:
        return spec.parameter
    if tolerance is None:
        raise ValueError("metric 'nsd' needs a tolerance for this label (nsd_tolerance)")
    return tolerance


def _empty_surface_value(spec, convention, empty, shape, spacing) -> float:
    both = empty == "both"
    if spec.base == "nsd":
        if convention == "deepmind":
            return math.nan if both else 0.0
        return 1.0 if both else 0.0
    if convention == "deepmind":
        # surface-distance: an empty side has no surfels and the other side's distances are inf;
        # its averages are then 0/0 (NaN) when both are empty.
        return math.inf if spec.base == "hd" or not both else math.nan
    if both:
        return 0.0
    if convention == "brats2023":
        return MISS_DISTANCE_MM
    return surface.image_diagonal(shape, spacing)


# --- the task used by the platform and the command line ------------------------------------------


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
                from medarena.evaluators.segmentation_chunked import evaluate_chunked

                scores = evaluate_chunked(ref.array, pred.array, **options)
        except CaseError:
            raise
        except (ValueError, KeyError) as error:
            raise CaseError(str(error).strip("'\"")) from None
        return CaseResult(rows=[{"label": name, **row} for name, row in scores.items()])


TASK = SegmentationTask()
