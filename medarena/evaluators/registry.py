"""Every metric medarena computes: its name, the families that report it, its direction and its
parameter.

This is the one place that says whether a higher or a lower value of a metric is better: the
ranking, the ranking report and the leaderboard read it from here (:func:`higher_is_better`).
A metric named with a parameter (``hd95``, ``hd@99.5``, ``nsd@2``, ``ap@0.5``) matches its entry's
``pattern``; the parameter's meaning is in ``parameter``. Definitions: docs/metrics.md, one section
per family.

>>> lookup("nsd@2").parameter
'tolerance τ in mm'
>>> higher_is_better("hd95"), higher_is_better("dice"), higher_is_better("an_organizers_own")
(False, True, None)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FAMILIES = ("segmentation", "detection", "classification", "registration", "fusion")


@dataclass(frozen=True)
class Metric:
    """One metric (or one family of parametrized names).

    ``name`` is how settings and result rows spell it (``hd<p>`` stands for ``hd95``, ``hd@99.5``
    ...); ``pattern`` (a regular expression over the lower-case name) matches every spelling with a
    parameter; ``parameter`` says what the number means. ``higher_is_better`` is None for a value
    that a task records beside its metrics but that is no score (a probability, a count of slices).
    """

    name: str
    families: tuple[str, ...]
    higher_is_better: bool | None
    summary: str
    parameter: str | None = None
    pattern: str | None = None

    def matches(self, metric: str) -> bool:
        key = metric.strip().lower()
        return key == self.name or (self.pattern is not None and re.fullmatch(self.pattern, key) is not None)


_SEG, _DET, _CLS, _REG, _FUS = FAMILIES
_NUMBER = r"\d+(?:\.\d+)?"


def _m(name, families, higher, summary, parameter=None, pattern=None) -> Metric:
    return Metric(name, tuple(families), higher, summary, parameter, pattern)


METRICS: tuple[Metric, ...] = (
    # overlap and voxel counts (segmentation); the same names at the case level for detection and
    # on the data set for classification
    _m("dice", [_SEG, _REG], True, "Dice similarity coefficient 2TP/(2TP+FP+FN)"),
    _m("iou", [_SEG], True, "intersection over union TP/(TP+FP+FN)"),
    _m("sensitivity", [_SEG, _DET, _CLS], True, "TP/(TP+FN), recall"),
    _m("precision", [_SEG, _DET, _CLS], True, "TP/(TP+FP)"),
    _m("specificity", [_SEG, _CLS], True, "TN/(TN+FP)"),
    _m("accuracy", [_SEG, _CLS], True, "(TP+TN)/all"),
    _m("volume_similarity", [_SEG], True, "1 − |FP−FN|/(2TP+FP+FN)"),
    _m("volume_difference_ml", [_SEG], False, "|FP−FN| × voxel volume, in mL"),
    _m("tp", [_SEG, _DET], True, "true positives (voxels, or detections)"),
    _m("fp", [_SEG, _DET], False, "false positives (voxels, or detections)"),
    _m("fn", [_SEG, _DET], False, "false negatives (voxels, or missed lesions)"),
    _m("tn", [_SEG], True, "true negative voxels"),
    # surface distances
    _m("hd", [_SEG, _REG], False, "Hausdorff distance in mm; with p, the larger directed p-th percentile",
       "percentile p of the directed distances (none: 100, the maximum)", rf"hd@?{_NUMBER}"),
    _m("assd", [_SEG], False, "average symmetric surface distance in mm"),
    _m("masd", [_SEG], False, "mean of the two directed average surface distances in mm"),
    _m("nsd", [_SEG], True, "normalized surface distance (surface Dice) at tolerance τ",
       "tolerance τ in mm", rf"nsd@{_NUMBER}"),
    # instances
    _m("lesion_tp", [_SEG], True, "matched lesions (connected components)"),
    _m("lesion_fp", [_SEG], False, "predicted lesions without a match"),
    _m("lesion_fn", [_SEG], False, "reference lesions without a match"),
    _m("lesion_f1", [_SEG], True, "lesion-wise F1 2TP/(2TP+FP+FN)"),
    _m("panoptic_quality", [_SEG], True, "panoptic quality SQ × RQ"),
    # detection
    _m("f1", [_DET, _CLS], True, "F1 2TP/(2TP+FP+FN)"),
    _m("ap", [_DET], True, "average precision (COCO 101-point); pooled over cases",
       "IoU threshold t of a match", rf"ap@{_NUMBER}"),
    _m("map", [_DET], True, "mean AP over IoU thresholds 0.50:0.05:0.95"),
    _m("cpm", [_DET], True, "competition performance metric: mean FROC sensitivity at 1/8..8 FP per case"),
    _m("picai_score", [_DET], True, "PI-CAI ranking score (AUROC + AP) / 2"),
    _m("case_score", [_DET], True, "PI-CAI case-level likelihood (the largest candidate score)"),
    # classification
    _m("auroc", [_CLS, _DET], True, "area under the ROC curve"),
    _m("balanced_accuracy", [_CLS], True, "(sensitivity + specificity) / 2"),
    _m("correct", [_CLS], True, "1 when the case's predicted class is the reference class"),
    _m("probability", [_CLS], None, "the predicted probability of the positive class (no score)"),
    # registration
    _m("tre", [_REG], False, "target registration error of one landmark, mm"),
    _m("tre_mean", [_REG], False, "mean TRE over a case's landmarks; with l2r, also the mean of the case values"),
    _m("tre_median", [_REG], False, "median TRE over a case's landmarks"),
    _m("tre_p95", [_REG], False, "95th percentile of TRE over a case's landmarks"),
    _m("tre_max", [_REG], False, "largest TRE of a case"),
    _m("tre_std", [_REG], False, "standard deviation of TRE over a case's landmarks; with l2r, of the case values"),
    _m("tre_initial", [_REG], False, "TRE of the identity transform (the starting distance)",
       pattern=r"tre_initial(?:_(?:mean|median|p95|max|std))?"),
    _m("sdlogj", [_REG], False, "standard deviation of the log Jacobian determinant"),
    _m("folding", [_REG], False, "fraction of voxels with a Jacobian determinant ≤ 0"),
    # fusion
    _m("en", [_FUS], True, "entropy of the fused image, bits"),
    _m("sd", [_FUS], True, "standard deviation of the fused image"),
    _m("sf", [_FUS], True, "spatial frequency"),
    _m("ag", [_FUS], True, "average gradient"),
    _m("mi", [_FUS], True, "MI(A, F) + MI(B, F), bits"),
    _m("qabf", [_FUS], True, "Xydeas–Petrović edge preservation Q^AB/F"),
    _m("ssim", [_FUS], True, "SSIM(A, F) + SSIM(B, F)"),
    _m("psnr", [_FUS], True, "peak signal-to-noise ratio, dB"),
    _m("rmse", [_FUS], False, "root mean squared error to the sources"),
    _m("mse", [_FUS], False, "mean squared error to the sources"),
    _m("cc", [_FUS], True, "mean correlation coefficient with the sources"),
    _m("scd", [_FUS], True, "sum of the correlations of differences"),
    _m("vif", [_FUS], True, "visual information fidelity, VIF(A, F) + VIF(B, F)"),
    _m("slices", [_FUS], None, "the number of 2D slices a 3D case was scored on (no score)"),
    # what the platform records about a run, ranked like a metric when a recipe asks for it
    _m("runtime_seconds", FAMILIES, False, "wall time of the algorithm's run on the case"),
)

# The l2r convention's data-set summary of registration (Learn2Reg's names): mean, std and the
# robustness percentile ("_30") of the per-case values; a spread is better when lower.
_L2R_SUMMARY = tuple(
    _m(f"{metric}_{stat}", [_REG], higher and stat != "std", f"l2r data-set summary: {what} of the per-case {metric}")
    for metric, higher in (("tre", False), ("dice", True), ("hd95", False), ("sdlogj", False))
    for stat, what in (("mean", "mean"), ("std", "standard deviation"), ("30", "Learn2Reg's robustness percentile"))
    if f"{metric}_{stat}" not in ("tre_mean", "tre_std")
)
METRICS = METRICS + _L2R_SUMMARY

_BY_NAME = {m.name: m for m in METRICS}


def lookup(metric: str) -> Metric | None:
    """The registry entry of a metric name (any spelling with a parameter), or None if unknown."""
    key = str(metric).strip().lower()
    if key in _BY_NAME:
        return _BY_NAME[key]
    for entry in METRICS:
        if entry.pattern is not None and re.fullmatch(entry.pattern, key):
            return entry
    return None


def higher_is_better(metric: str) -> bool | None:
    """True when a higher value of ``metric`` is better, False when a lower one is, None when the
    registry does not know the metric (an organizer's own, from an evaluation container) or
    declares it as no score."""
    entry = lookup(metric)
    return None if entry is None else entry.higher_is_better
