"""Metric values from counts and surface distances, shared by the in-memory and chunked paths:
one place for the conventions' empty-mask rules."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from medarena.evaluators.segmentation import _overlap as overlap
from medarena.evaluators.segmentation import _surface as surface
from medarena.evaluators.segmentation._brats import MISS_DISTANCE_MM
from medarena.evaluators.segmentation._names import MetricSpec


def tolerance_for(nsd_tolerance: float | Mapping[str, float], name: str) -> float | None:
    if isinstance(nsd_tolerance, Mapping):
        return float(nsd_tolerance[name]) if name in nsd_tolerance else None
    return float(nsd_tolerance)


def empty_side(counts: overlap.Counts) -> str | None:
    has_a, has_b = counts.reference_size > 0, counts.prediction_size > 0
    if has_a and has_b:
        return None
    return "both" if not (has_a or has_b) else ("reference" if not has_a else "prediction")




def count_value(base, counts, spacing, convention, empty, lesion_wise) -> float | int:
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


def empty_surface_value(spec, convention, empty, shape, spacing) -> float:
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


