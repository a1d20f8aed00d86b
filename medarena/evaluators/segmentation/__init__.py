"""Segmentation: overlap, surface-distance and lesion-wise metrics of label maps.

What a user imports: the metric functions of two binary masks (:func:`dice`, :func:`hausdorff_distance`,
:func:`nsd`, ...), :func:`evaluate` (every requested metric for every label of two label maps, in one
pass) and :func:`evaluate_chunked` (the same over zarr or dask arrays too large for memory), and the
task the platform uses (:data:`TASK`, :class:`SegmentationSettings`).

Metric names: ``dice``, ``iou``, ``sensitivity``, ``precision``, ``specificity``, ``accuracy``,
``volume_similarity``, ``volume_difference_ml``, ``tp``/``fp``/``fn``/``tn`` (voxel counts),
``hd``, ``hd<p>`` (``hd95``, ``hd99``, ``hd@95`` ...), ``assd``, ``masd``, ``nsd`` (tolerance from
the settings) or ``nsd@<τ mm>``, ``lesion_tp``, ``lesion_fp``, ``lesion_fn``, ``lesion_f1``,
``panoptic_quality``.

Conventions (docs/metrics.md, section Segmentation), with the versions checked:

- ``default``: Metrics Reloaded's choices (voxel borders, the larger of the directed percentiles,
  empty masks scored as best/worst values); equal to MONAI 1.6.1's ``compute_hausdorff_distance``,
  ``compute_average_surface_distance`` and ``compute_surface_dice`` in the tests.
- ``deepmind``: surfels weighted by area and ``inf``/NaN for empty masks, as
  google-deepmind/surface-distance (the PyPI package surface-distance 0.1, checked in the tests).
- ``pooled``: the percentile of the pooled directed distances, as MedPy 0.5.2 and panoptica 2.1.7
  (both checked in the tests) and seg-metrics (installed 1.2.8, not compared in the tests).
- ``brats2023``: BraTS 2023 lesion-wise ``dice`` and ``hd95``, as rachitsaluja/BraTS-2023-Metrics
  ``metrics.py`` at commit 43c905242b2eecf421d4ab2da7af8ece9777d322.
"""

from medarena.evaluators.segmentation._chunked import evaluate_chunked
from medarena.evaluators.segmentation._evaluate import evaluate
from medarena.evaluators.segmentation._instances import lesion_f1, panoptic_quality
from medarena.evaluators.segmentation._names import CONVENTIONS, MetricSpec, parse_metric
from medarena.evaluators.segmentation._overlap import (
    accuracy,
    dice,
    iou,
    precision,
    sensitivity,
    specificity,
    volume_difference_ml,
    volume_similarity,
)
from medarena.evaluators.segmentation._surface import assd, hausdorff_distance, masd, nsd
from medarena.evaluators.segmentation._task import TASK, SegmentationSettings, SegmentationTask

__all__ = [
    "CONVENTIONS", "TASK", "MetricSpec", "SegmentationSettings", "SegmentationTask", "accuracy", "assd",
    "dice", "evaluate", "evaluate_chunked", "hausdorff_distance", "iou", "lesion_f1", "masd", "nsd",
    "panoptic_quality", "parse_metric", "precision", "sensitivity", "specificity",
    "volume_difference_ml", "volume_similarity",
]
