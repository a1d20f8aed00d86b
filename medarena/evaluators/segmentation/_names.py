"""Segmentation metric names: parsing ``hd95``, ``hd@99.5``, ``nsd@2`` ... and the conventions."""

from __future__ import annotations

import re
from dataclasses import dataclass

CONVENTIONS = ("default", "deepmind", "pooled", "brats2023")
COUNT_METRICS = (
    "dice", "iou", "sensitivity", "precision", "specificity", "accuracy", "volume_similarity",
    "volume_difference_ml", "tp", "fp", "fn", "tn",
)
INSTANCE_METRICS = ("lesion_tp", "lesion_fp", "lesion_fn", "lesion_f1", "panoptic_quality")
SURFACE_METRICS = ("hd", "hd<p>", "assd", "masd", "nsd", "nsd@<mm>")
_PERCENTILE = re.compile(r"^hd@?(\d+(?:\.\d+)?)$")
_NSD = re.compile(r"^nsd@(\d+(?:\.\d+)?)$")


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


