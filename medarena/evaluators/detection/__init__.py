"""Detection: boxes or points in physical coordinates, matched to reference lesions.

What a user imports: :func:`box_iou`, the pooled curves (:func:`average_precision_coco`,
:func:`froc_curve`, :func:`cpm`), the parsers of detection files (:func:`parse_detections`,
:func:`points_from_rows`) and the task the platform uses (:data:`TASK`, :class:`DetectionSettings`).
Conventions: docs/metrics.md, section Detection.
"""

from medarena.evaluators.detection._boxes import box_iou
from medarena.evaluators.detection._curves import average_precision_coco, cpm, froc_curve
from medarena.evaluators.detection._formats import Boxes, Points, parse_detections, points_from_rows
from medarena.evaluators.detection._task import TASK, DetectionSettings, DetectionTask

__all__ = [
    "TASK", "Boxes", "DetectionSettings", "DetectionTask", "Points", "average_precision_coco",
    "box_iou", "cpm", "froc_curve", "parse_detections", "points_from_rows",
]
