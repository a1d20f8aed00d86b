"""Detection: boxes or points in physical coordinates (mm), scored per case and pooled over cases.

Per case, at the score threshold s (a detection counts when its score ≥ s): TP, FP, FN,
``precision`` = TP/(TP+FP), ``sensitivity`` = TP/(TP+FN), ``f1`` = 2TP/(2TP+FP+FN); each is NaN
when its denominator is 0 (no detections, no references). Pooled over cases: ``ap@t`` (COCO's
101-point AP at IoU t), ``map`` (mean AP over t = 0.50:0.05:0.95), the FROC curve and ``cpm``
(LUNA16). Conventions (``settings.convention``):

- ``default``: boxes match boxes by COCO's greedy rule at IoU ≥ ``iou_threshold`` (Lin et al.,
  ECCV 2014; AP equal to pycocotools 2.0.11's in the tests); when the reference or the prediction
  is a set of points, LUNA16's hit criterion.
- ``luna16``: LUNA16's hit criterion (Setio et al., Medical Image Analysis 42, 2017): a predicted
  point (or a predicted box's centre) hits a reference lesion when it lies strictly within the
  lesion's radius of its centre (or inside a reference box); a hit lesion is one TP with the
  highest score among its hits; further hits are neither TP nor FP. LUNA16's evaluation script
  (``noduleCADEvaluationLUNA16.py``) is distributed from the challenge's website, not from a
  versioned repository: this follows its published behaviour, checked by hand in the tests, not
  against a copy of the script.
- ``picai``: detection maps against lesion masks, as PI-CAI (Saha et al., Lancet Oncology 2024;
  see :mod:`medarena.evaluators.detection._picai`): ``ap`` (step sum), case-level ``auroc`` and
  ``picai_score`` = (AUROC + AP) / 2.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field

from medarena.evaluators.classification import auroc, roc_curve
from medarena.evaluators.detection import _curves as curves
from medarena.evaluators.detection._boxes import box_centres, box_iou, points_in_boxes, points_in_spheres
from medarena.evaluators.detection._formats import Boxes, Points, empty_boxes, parse_detections
from medarena.evaluators.detection._matching import match_greedy, match_hits, score_order
from medarena.evaluators.detection._picai import evaluate_picai_case
from medarena.evaluators.image import Image
from medarena.evaluators.tasks import CaseError, CaseResult, Task, TaskSettings, jsonable

NO_PREDICTION_NOTE = "no prediction for this case: scored as no detections"
REFERENCE_ROLES = ("lesions", "boxes", "points", "label")
PREDICTION_ROLES = ("detections", "boxes", "points", "detection_map")


class DetectionSettings(TaskSettings):
    """Settings of the detection task.

    ``iou_threshold``: minimum IoU of a match for boxes (COCO); ``ap@t`` is reported at it.
    ``score_threshold``: detections with score ≥ it count in the per-case TP/FP/FN.
    ``convention``: ``default``, ``luna16`` or ``picai`` (see the module text).
    ``max_detections``: keep only the highest-scoring detections of a case (COCO uses 100);
    None keeps all. ``point_radius``: radius (mm) of reference points that give none.
    ``picai_min_overlap``: the IoU a PI-CAI candidate needs to match a lesion (0.1).
    """

    iou_threshold: float = Field(0.5, gt=0.0, le=1.0)
    score_threshold: float = 0.5
    convention: Literal["default", "luna16", "picai"] = "default"
    max_detections: int | None = Field(None, ge=1)
    point_radius: float | None = Field(None, gt=0.0)
    picai_min_overlap: float = Field(0.1, gt=0.0, le=1.0)


def counts_row(scores: np.ndarray, is_tp: np.ndarray, n_ref: int, score_threshold: float) -> dict[str, Any]:
    """TP, FP, FN, precision, sensitivity and f1 of the detections scoring ≥ ``score_threshold``."""
    kept = np.asarray(scores, dtype=float) >= score_threshold
    is_tp = np.asarray(is_tp, dtype=bool)
    tp = int(np.sum(kept & is_tp))
    fp = int(np.sum(kept & ~is_tp))
    fn = int(n_ref - tp)
    return {"tp": tp, "fp": fp, "fn": fn, "precision": _ratio(tp, tp + fp),
            "sensitivity": _ratio(tp, tp + fn), "f1": _ratio(2 * tp, 2 * tp + fp + fn)}


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else float("nan")


def _role(mapping: Mapping[str, Any], roles: Sequence[str], side: str) -> Any:
    for role in roles:
        if role in mapping:
            return mapping[role]
    given = ", ".join(mapping) or "none"
    raise CaseError(f"the {side} has none of the roles {', '.join(roles)} (got {given})")


def _truncate(dets: Boxes | Points, limit: int | None) -> Boxes | Points:
    if limit is None or len(dets) <= limit:
        return dets
    keep = np.sort(score_order(dets.scores)[:limit])
    labels = tuple(dets.labels[i] for i in keep)
    if isinstance(dets, Boxes):
        return Boxes(dets.corners[keep], dets.scores[keep], labels, dets.planes[keep])
    return Points(dets.coords[keep], dets.scores[keep], dets.radii[keep], labels, dets.ignore[keep])


def _group_indices(labels: Sequence[str | None], label: str | None) -> np.ndarray:
    return np.asarray([i for i, lab in enumerate(labels) if lab == label], dtype=np.int64)


def _hit_matrix(ref: Boxes | Points, pred: Boxes | Points, ri: np.ndarray, pi: np.ndarray,
                settings: DetectionSettings) -> np.ndarray:
    """Hits of predicted points (or box centres) pi on reference lesions ri."""
    where = pred.coords[pi] if isinstance(pred, Points) else box_centres(pred.corners[pi])
    if isinstance(ref, Boxes):
        return points_in_boxes(where, ref.corners[ri])
    radii = ref.radii[ri]
    if np.isnan(radii).any():
        if settings.point_radius is None:
            first = int(ri[np.flatnonzero(np.isnan(radii))[0]])
            raise CaseError(f"reference point {first} has no radius (give 'radius' or 'diameter_mm', "
                            "or set point_radius)")
        radii = np.where(np.isnan(radii), settings.point_radius, radii)
    return points_in_spheres(where, ref.coords[ri], radii)


def _group_payload(ref: Boxes | Points, pred: Boxes | Points, label: str | None,
                   thresholds: np.ndarray, settings: DetectionSettings) -> dict[str, Any]:
    ri = _group_indices(ref.labels, label)
    pi = _group_indices(pred.labels, label)
    use_iou = settings.convention == "default" and isinstance(ref, Boxes) and isinstance(pred, Boxes)
    if use_iou:
        iou = np.zeros((len(pi), len(ri)))
        if iou.size:
            iou = box_iou(pred.corners[pi], ref.corners[ri])
            same_plane = (pred.planes[pi][:, None] == ref.planes[ri][None, :]) | (
                np.isnan(pred.planes[pi])[:, None] & np.isnan(ref.planes[ri])[None, :])
            iou = np.where(same_plane, iou, 0.0)
        scores = pred.scores[pi]
        matched = match_greedy(iou, scores, thresholds)
        order = score_order(scores)
        return {"n_ref": len(ri), "scores": scores[order].tolist(),
                "tp": (matched[:, order] >= 0).astype(int).tolist()}
    ignore = ref.ignore[ri] if isinstance(ref, Points) else np.zeros(len(ri), bool)
    hits = np.zeros((len(pi), len(ri)), bool)
    if hits.size:
        hits = _hit_matrix(ref, pred, ri, pi, settings)
    lesion_scores, outcome = match_hits(hits, pred.scores[pi], ignore)
    found = ~np.isnan(lesion_scores)
    false_pos = outcome == 0
    scores = np.r_[lesion_scores[found], pred.scores[pi][false_pos]]
    is_tp = np.r_[np.ones(int(found.sum()), bool), np.zeros(int(false_pos.sum()), bool)]
    order = score_order(scores)
    return {"n_ref": int((~ignore).sum()), "scores": scores[order].tolist(),
            "tp": is_tp[order][None, :].astype(int).tolist()}


class DetectionTask(Task):
    """Detection of lesions as boxes or points, or PI-CAI detection maps.

    Roles: the reference gives ``lesions`` and the prediction ``detections``; each is a
    :class:`~medarena.evaluators.detection._formats.Boxes` or ``Points`` set, or a parsed JSON
    document in a format of :mod:`medarena.evaluators.detection._formats` (medarena's own, or
    grand-challenge's "Multiple 2D bounding boxes" / "Multiple points"). Under the ``picai``
    convention ``lesions`` is the lesion label image and ``detections`` the detection map (an
    :class:`~medarena.evaluators.image.Image` or an array). The names ``boxes``, ``points``,
    ``label`` and ``detection_map`` are accepted as aliases.

    ``score_case`` returns one whole-case row (``label`` None) with tp, fp, fn, precision,
    sensitivity, f1, plus one row per label when boxes or points carry labels (matching is
    within a label, as COCO categories). ``pooled`` holds, per label, the number of references
    and the scored detections (descending scores, true-positive flags per IoU threshold).
    """

    name = "detection"
    Settings = DetectionSettings
    reference_roles = ("lesions",)
    prediction_roles = ("detections",)

    def score_case(self, reference: Mapping[str, Any], prediction: Mapping[str, Any],
                   settings: TaskSettings) -> CaseResult:
        settings = _settings(settings)
        ref_value = _role(reference, REFERENCE_ROLES, "reference")
        pred_value = _role(prediction, PREDICTION_ROLES, "prediction")
        if settings.convention == "picai":
            return _score_picai(ref_value, pred_value, settings)
        ref = parse_detections(ref_value, "reference")
        pred = _truncate(parse_detections(pred_value, "prediction"), settings.max_detections)
        if ref.ndim and pred.ndim and ref.ndim != pred.ndim:
            raise CaseError(f"the prediction is {pred.ndim}D but the reference is {ref.ndim}D")
        thresholds = np.r_[settings.iou_threshold, curves.COCO_IOUS]
        labels = sorted({*ref.labels, *pred.labels}, key=lambda lab: (lab is not None, lab or ""))
        groups = {label: _group_payload(ref, pred, label, thresholds, settings) for label in labels}
        mode = "iou" if (settings.convention == "default" and isinstance(ref, Boxes)
                         and isinstance(pred, Boxes)) else "hits"
        if not len(ref) and not len(pred):
            mode = "any"  # nothing to match: compatible with either criterion
        rows = [_whole_row(groups, settings)]
        if any(label is not None for label in labels):
            for label, group in groups.items():
                row = counts_row(group["scores"], group["tp"][0], group["n_ref"], settings.score_threshold)
                rows.append({"label": "unlabelled" if label is None else label, **row})
        pooled = {"mode": mode, "thresholds": thresholds.tolist() if mode == "iou" else [],
                  "groups": {("" if k is None else k): g for k, g in groups.items()}}
        return CaseResult(rows=rows, pooled=pooled)  # plain lists of finite numbers: JSON as is

    def missing_prediction(self, reference: Mapping[str, Any], settings: TaskSettings) -> CaseResult:
        settings = _settings(settings)
        empty: Any = empty_boxes()
        if settings.convention == "picai":
            label = _role(reference, REFERENCE_ROLES, "reference")
            empty = np.zeros(_array(label).shape, dtype=np.float32)
        result = self.score_case(reference, {"detections": empty}, settings)
        result.notes.append(NO_PREDICTION_NOTE)
        return result

    def score_dataset(self, results: Sequence[CaseResult], settings: TaskSettings) -> dict[str, Any]:
        settings = _settings(settings)
        payloads = [r.pooled for r in results if r.pooled is not None]
        if settings.convention == "picai":
            return jsonable(_picai_dataset(payloads))
        return jsonable(_box_dataset(payloads, settings))


def _settings(settings: TaskSettings | Mapping | None) -> DetectionSettings:
    if isinstance(settings, DetectionSettings):
        return settings
    if settings is None:
        return DetectionSettings()
    if isinstance(settings, Mapping):
        return DetectionSettings(**settings)
    return DetectionSettings(**settings.model_dump())


def _whole_row(groups: Mapping[Any, Mapping[str, Any]], settings: DetectionSettings) -> dict[str, Any]:
    scores = np.concatenate([np.asarray(g["scores"], float) for g in groups.values()] or [np.zeros(0)])
    is_tp = np.concatenate([np.asarray(g["tp"][0], bool) for g in groups.values()] or [np.zeros(0, bool)])
    n_ref = sum(g["n_ref"] for g in groups.values())
    return {"label": None, **counts_row(scores, is_tp, n_ref, settings.score_threshold)}


def _threshold_name(t: float) -> str:
    return f"{round(float(t), 6):g}"


def _box_dataset(payloads: list[dict[str, Any]], settings: DetectionSettings) -> dict[str, Any]:
    modes = {p["mode"] for p in payloads} - {"any"}
    if len(modes) > 1:
        raise CaseError("cases were scored with different criteria (boxes by IoU and points by hits)")
    mode = modes.pop() if modes else ("iou" if settings.convention == "default" else "hits")
    n_cases = len(payloads)
    labels: list[str] = sorted({k for p in payloads for k in p["groups"]})
    pooled: dict[str, dict[str, Any]] = {}
    for label in labels:
        parts = [p["groups"][label] for p in payloads if label in p["groups"]]
        n_thr = max((len(g["tp"]) for g in parts), default=1)
        pooled[label] = {
            "n_ref": sum(g["n_ref"] for g in parts),
            "scores": np.concatenate([np.asarray(g["scores"], float) for g in parts] or [np.zeros(0)]),
            "tp": np.concatenate([np.asarray(g["tp"], bool).reshape(n_thr, -1) for g in parts], axis=1)
            if parts else np.zeros((n_thr, 0), bool),
        }
    out: dict[str, Any] = {"n_cases": n_cases, "n_references": sum(g["n_ref"] for g in pooled.values())}
    per_label = {label: _label_metrics(g, mode, settings) for label, g in pooled.items()}
    metric_names = sorted({m for v in per_label.values() for m in v})
    for metric in metric_names:
        values = [v[metric] for v in per_label.values() if not np.isnan(v[metric])]
        out[metric] = float(np.mean(values)) if values else float("nan")
    if not labels:  # no references and no detections anywhere
        empty = {"scores": np.zeros(0), "tp": np.zeros((len(curves.COCO_IOUS) + 1, 0), bool), "n_ref": 0}
        out.update(_label_metrics(empty, mode, settings))
    if any(label != "" for label in labels):
        out["per_label"] = {(label or "unlabelled"): v for label, v in per_label.items()}
    scores = np.concatenate([g["scores"] for g in pooled.values()] or [np.zeros(0)])
    is_tp = np.concatenate([g["tp"][0] for g in pooled.values()] or [np.zeros(0, bool)])
    fps, sens, thresholds = curves.froc_curve(scores, is_tp, out["n_references"], n_cases)
    out["cpm"] = curves.cpm(fps, sens)
    out["froc"] = {"fp_per_case": _plain(fps), "sensitivity": _plain(sens), "thresholds": _plain(thresholds)}
    out["cpm_points"] = {"fp_per_case": list(curves.CPM_FP_RATES),
                         "sensitivity": curves.sensitivity_at_fp_rates(fps, sens)}
    return out


def _plain(values: np.ndarray) -> list[float | None]:
    """A float array as a JSON list, non-finite values as None (faster than jsonable for curves)."""
    return [v if math.isfinite(v) else None for v in np.asarray(values, dtype=float).tolist()]


def _label_metrics(group: Mapping[str, Any], mode: str, settings: DetectionSettings) -> dict[str, float]:
    scores, tp, n_ref = group["scores"], group["tp"], group["n_ref"]
    if mode == "hits":
        return {"ap": curves.average_precision_coco(scores, tp[0], n_ref)}
    name = f"ap@{_threshold_name(settings.iou_threshold)}"
    metrics = {name: curves.average_precision_coco(scores, tp[0], n_ref)}
    coco = [curves.average_precision_coco(scores, tp[k + 1], n_ref) for k in range(len(curves.COCO_IOUS))]
    metrics["ap@0.5"], metrics["ap@0.75"] = coco[0], coco[5]
    metrics["map"] = float(np.mean(coco)) if n_ref else float("nan")
    return metrics


# --- PI-CAI ---------------------------------------------------------------------------------

def _array(value: Any) -> np.ndarray:
    if isinstance(value, Image):
        return value.array
    if isinstance(value, np.ndarray):
        return value
    raise CaseError("the picai convention needs images (a label and a detection map), "
                    f"got {type(value).__name__}")


def _score_picai(label: Any, detection_map: Any, settings: DetectionSettings) -> CaseResult:
    both_images = isinstance(label, Image) and isinstance(detection_map, Image)
    if both_images and not label.same_geometry(detection_map):
        raise CaseError(f"the detection map's grid (shape {detection_map.shape}, spacing "
                        f"{detection_map.spacing}) differs from the label's (shape {label.shape}, "
                        f"spacing {label.spacing})")
    case = evaluate_picai_case(_array(detection_map), _array(label), settings.picai_min_overlap)
    row = {"label": None, **counts_row(case.scores, case.is_tp, case.n_lesions, settings.score_threshold),
           "case_score": case.case_score}
    order = score_order(case.scores)
    pooled = {"mode": "picai", "n_ref": case.n_lesions, "scores": case.scores[order],
              "tp": case.is_tp[order].astype(np.int8), "overlap": case.overlaps[order],
              "case_score": case.case_score, "case_target": case.case_target}
    return CaseResult(rows=[row], pooled=jsonable(pooled))


def _picai_dataset(payloads: list[dict[str, Any]]) -> dict[str, Any]:
    n_ref = sum(p["n_ref"] for p in payloads)
    scores = np.concatenate([np.asarray(p["scores"], float) for p in payloads] or [np.zeros(0)])
    is_tp = np.concatenate([np.asarray(p["tp"], bool) for p in payloads] or [np.zeros(0, bool)])
    targets = np.asarray([p["case_target"] for p in payloads], dtype=bool)
    case_scores = np.asarray([p["case_score"] for p in payloads], dtype=float)
    ap = curves.average_precision_step(scores, is_tp, n_ref)
    area = auroc(targets, case_scores)
    fps, sens, thresholds = curves.froc_curve(scores, is_tp, n_ref, len(payloads))
    fpr, tpr, roc_thresholds = roc_curve(targets, case_scores)
    return {"n_cases": len(payloads), "n_references": n_ref, "ap": ap, "auroc": area,
            "picai_score": (ap + area) / 2, "cpm": curves.cpm(fps, sens),
            "froc": {"fp_per_case": _plain(fps), "sensitivity": _plain(sens), "thresholds": _plain(thresholds)},
            "roc": {"fpr": _plain(fpr), "tpr": _plain(tpr), "thresholds": _plain(roc_thresholds)}}


TASK = DetectionTask()
