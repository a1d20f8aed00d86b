"""Segmentation metrics of every label in one call, in memory.

:func:`evaluate` scores a reference label map against a prediction label map (2D or 3D, boolean
or integer, anisotropic spacing) for each requested label, sharing the expensive work: one joint
histogram gives the voxel counts of every label, and per label one surface extraction and one
nearest-neighbour search serve every surface metric (``hd``, ``hd95``/any percentile, ``assd``,
``masd``, ``nsd@τ``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from medarena.evaluators._checks import check_label_map, check_same_shape, check_spacing
from medarena.evaluators.segmentation import _overlap as overlap
from medarena.evaluators.segmentation import _surface as surface
from medarena.evaluators.segmentation._brats import lesion_wise_scores
from medarena.evaluators.segmentation._instances import instance_metrics
from medarena.evaluators.segmentation._labels import LabelSpec, region_mask, resolve_labels
from medarena.evaluators.segmentation._names import check_convention, parse_metric
from medarena.evaluators.segmentation._values import (
    count_value,
    empty_side,
    empty_surface_value,
    surface_metric_values,
    tolerance_for,
)


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
    """Every requested metric for every label of two label maps, in one pass.

    The voxel counts of every label come from one joint histogram; per label, one surface extraction
    and one nearest-neighbour search serve every surface metric.

    Parameters
    ----------
    reference, prediction : numpy.ndarray
        Label maps of one shape, 2D or 3D: boolean, non-negative integers, or floats holding whole
        non-negative numbers.
    spacing : sequence of float
        Voxel size in mm, one positive, finite value per axis (array order).
    metrics : sequence of str
        Metric names (:mod:`medarena.evaluators.segmentation`), e.g. ``["dice", "hd95", "nsd@2"]``.
    labels : mapping or sequence, optional
        Name -> value (or list of values scored as one region), a list of values, or None for every
        non-zero value present in either map.
    convention : str
        ``default``, ``deepmind``, ``pooled`` or ``brats2023``.
    nsd_tolerance : float or mapping
        τ in mm of the metric ``nsd`` (one number, or one per label name).
    connectivity : int, optional
        Of the instances, 1..ndim (None: full, 26 in 3D and 8 in 2D).
    match_iou : float
        Instances match when their IoU exceeds this.
    lesion_dilation, lesion_min_volume_mm3 : int, float
        The ``brats2023`` lesion rules.

    Returns
    -------
    dict
        ``{label name: {metric: value, ...}}``. A label missing from one map (or both) adds
        ``"empty": "reference" | "prediction" | "both"`` to its row, and its values follow the
        convention's empty-mask rules. Undefined values are NaN.

    References
    ----------
    docs/metrics.md, section Segmentation: each convention and the library it reproduces, compared
    in the tests (MONAI 1.6.1 for ``default``, surface-distance 0.1 for ``deepmind``, MedPy 0.5.2
    and panoptica 2.1.7 for ``pooled``; BraTS-2023-Metrics at 43c9052 for ``brats2023``, by hand).

    Examples
    --------
    >>> import numpy as np
    >>> reference = np.array([[1, 1, 0, 2]], np.uint8)
    >>> prediction = np.array([[1, 0, 0, 2]], np.uint8)
    >>> rows = evaluate(reference, prediction, spacing=(1, 1), metrics=["dice", "hd"])
    >>> {label: {m: round(v, 4) for m, v in row.items()} for label, row in rows.items()}
    {'1': {'dice': 0.6667, 'hd': 1.0}, '2': {'dice': 1.0, 'hd': 0.0}}
    """
    check_convention(convention)
    ref = check_label_map(reference, "reference")
    pred = check_label_map(prediction, "prediction")
    check_same_shape(ref.shape, pred.shape)
    spacing = check_spacing(spacing, ref.ndim)
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
        tolerance = tolerance_for(nsd_tolerance, name)
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
            self._whole = (region_mask(self.ref, self.values), region_mask(self.pred, self.values))
        return self._whole

    def cropped(self) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """Reference and prediction masks inside the box, and the box's first voxel."""
        box = self.box or tuple(slice(0, n) for n in self.ref.shape)
        origin = [s.start for s in box]
        if self._whole is not None:
            return self._whole[0][box], self._whole[1][box], origin
        if self.binary and self.values == (1,):  # a uint8 map of 0 and 1 is already the mask
            return self.ref[box].view(bool), self.pred[box].view(bool), origin
        return region_mask(self.ref[box], self.values), region_mask(self.pred[box], self.values), origin




def _score_region(region, counts, spacing, specs, convention, tolerance, connectivity, match_iou,
                  dilation, min_volume, shape) -> dict[str, Any]:
    row: dict[str, Any] = {}
    empty = empty_side(counts)
    lesion_wise = None
    if convention == "brats2023" and any(s.base in ("dice", "hd") or s.name.startswith("lesion_") for s in specs):
        lesion_wise = lesion_wise_scores(*region.whole(), spacing, dilation, min_volume)
    for spec in specs:
        if spec.family == "count":
            row[spec.name] = count_value(spec.base, counts, spacing, convention, empty, lesion_wise)
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


def _surface_values(region, spacing, specs, convention, tolerance, empty, shape, lesion_wise) -> dict[str, float]:
    """The surface metrics of one region under a convention, from one distance computation."""
    values: dict[str, float] = {}
    if empty is not None:
        for spec in specs:
            values[spec.name] = empty_surface_value(spec, convention, empty, shape, spacing)
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


