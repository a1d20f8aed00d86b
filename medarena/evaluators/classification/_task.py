"""Classification: one prediction per case (a probability, class probabilities, or a label).

Binary (``classes`` unset, labels 0/1; or two ``classes``, the second positive): a case is
predicted positive when its probability ≥ ``threshold``. With TP, FP, FN, TN over cases:
``accuracy`` = (TP+TN)/n, ``sensitivity`` = TP/(TP+FN), ``specificity`` = TN/(TN+FP),
``precision`` = TP/(TP+FP), ``f1`` = 2TP/(2TP+FP+FN), ``balanced_accuracy`` =
(sensitivity+specificity)/2, ``auroc`` (Mann–Whitney, ties as a trapezoid, as scikit-learn's
``roc_auc_score``) and the ROC curve. A value with a zero denominator is NaN.

Multi-class (three or more ``classes``): the predicted class is the one of highest probability
(the first on ties); ``accuracy`` is the fraction predicted right; sensitivity, specificity,
precision, f1 and auroc are computed one-vs-rest per class and averaged over classes (macro, as
scikit-learn's ``average="macro"`` and ``roc_auc_score(multi_class="ovr")``);
``balanced_accuracy`` is the mean per-class sensitivity (scikit-learn's
``balanced_accuracy_score``). A per-class value that is undefined (a class never predicted has
no precision) is left out of the macro mean, where scikit-learn counts it as 0.
The scikit-learn version compared with in the tests: 1.9.1. Conventions: docs/metrics.md, section
Classification.

Confidence intervals: percentile bootstrap over cases (Efron & Tibshirani 1993): ``bootstrap``
resamples of the cases with replacement (seeded), each metric recomputed, the interval the
(1−level)/2 and (1+level)/2 quantiles of the resampled values; resamples where a metric is
undefined (for example AUROC without a positive case) are left out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import Field

from medarena.evaluators.classification._roc import auroc, auroc_many, roc_curve
from medarena.evaluators.tasks import CaseError, CaseResult, Task, TaskSettings, jsonable

THRESHOLD_METRICS = ("accuracy", "sensitivity", "specificity", "precision", "f1", "balanced_accuracy")


class ClassificationSettings(TaskSettings):
    """Settings of the classification task.

    ``threshold``: binary decision threshold (positive when probability ≥ threshold).
    ``classes``: class names; unset means binary with labels 0 and 1; two classes are binary
    with the second positive; more are multi-class. ``bootstrap``: resamples for the confidence
    intervals (0: none); ``seed``; ``ci_level``: the intervals' coverage.
    """

    threshold: float = 0.5
    classes: list[str] | None = None
    bootstrap: int = Field(1000, ge=0)
    seed: int = 0
    ci_level: float = Field(0.95, gt=0.0, lt=1.0)


def confusion_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, np.ndarray]:
    """Binary metrics over the last axis of boolean arrays (leading axes: e.g. resamples).

    accuracy = (TP+TN)/n, sensitivity = TP/(TP+FN), specificity = TN/(TN+FP),
    precision = TP/(TP+FP), f1 = 2TP/(2TP+FP+FN), balanced_accuracy = (sens+spec)/2;
    NaN where a denominator is 0.
    """
    y_true = np.asarray(y_true, dtype=bool)
    y_pred = np.asarray(y_pred, dtype=bool)
    tp = (y_true & y_pred).sum(axis=-1).astype(float)
    fp = (~y_true & y_pred).sum(axis=-1).astype(float)
    fn = (y_true & ~y_pred).sum(axis=-1).astype(float)
    tn = (~y_true & ~y_pred).sum(axis=-1).astype(float)
    sens, spec = _div(tp, tp + fn), _div(tn, tn + fp)
    return {"accuracy": _div(tp + tn, tp + tn + fp + fn), "sensitivity": sens, "specificity": spec,
            "precision": _div(tp, tp + fp), "f1": _div(2 * tp, 2 * tp + fp + fn),
            "balanced_accuracy": (sens + spec) / 2}


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def binary_metrics(y_true: np.ndarray, probability: np.ndarray, threshold: float) -> dict[str, Any]:
    """Threshold metrics and AUROC of a binary problem.

    A case is predicted positive when its probability ≥ ``threshold``; with TP, FP, FN, TN over the
    cases: accuracy = (TP+TN)/n, sensitivity = TP/(TP+FN), specificity = TN/(TN+FP),
    precision = TP/(TP+FP), f1 = 2TP/(2TP+FP+FN), balanced_accuracy = (sensitivity+specificity)/2,
    and :func:`~medarena.evaluators.classification.auroc`. A zero denominator gives NaN.

    Parameters
    ----------
    y_true : numpy.ndarray
        True for a positive case (last axis: cases; leading axes, e.g. bootstrap resamples, allowed).
    probability : numpy.ndarray
        The probability of the positive class, of ``y_true``'s shape.
    threshold : float
        The decision threshold.

    Returns
    -------
    dict
        Metric name -> value (an array over the leading axes, if any).

    References
    ----------
    scikit-learn 1.9.1 ``metrics`` (checked equal in the tests); docs/metrics.md, section
    Classification.

    Examples
    --------
    >>> out = binary_metrics([True, False, True, False], [0.9, 0.8, 0.4, 0.1], threshold=0.5)
    >>> {name: float(out[name]) for name in ("accuracy", "sensitivity", "balanced_accuracy", "auroc")}
    {'accuracy': 0.5, 'sensitivity': 0.5, 'balanced_accuracy': 0.5, 'auroc': 0.75}
    """
    probability = np.asarray(probability, dtype=float)
    metrics = confusion_metrics(y_true, probability >= threshold)
    metrics["auroc"] = (auroc_many(y_true, probability) if probability.ndim == 2
                        else np.float64(auroc(y_true, probability)))
    return metrics


def multiclass_metrics(target: np.ndarray, scores: np.ndarray, n_classes: int) -> dict[str, Any]:
    """Accuracy and macro one-vs-rest metrics; ``target`` (..., n), ``scores`` (..., n, K)."""
    target = np.asarray(target)
    scores = np.asarray(scores, dtype=float)
    predicted = np.argmax(scores, axis=-1)
    per_class = []
    for k in range(n_classes):
        metrics = confusion_metrics(target == k, predicted == k)
        y, s = target == k, scores[..., k]
        metrics["auroc"] = auroc_many(y, s) if s.ndim == 2 else np.float64(auroc(y, s))
        per_class.append(metrics)
    out: dict[str, Any] = {"accuracy": (predicted == target).mean(axis=-1)}
    for name in ("sensitivity", "specificity", "precision", "f1", "auroc"):
        with np.errstate(invalid="ignore"):
            stacked = np.stack([m[name] for m in per_class])
            out[name] = np.nanmean(stacked, axis=0) if not np.isnan(stacked).all() else stacked[0]
    out["balanced_accuracy"] = out["sensitivity"]
    out["per_class"] = per_class
    return out


def _class_names(settings: ClassificationSettings) -> list[str]:
    return list(settings.classes) if settings.classes else ["0", "1"]


def class_index(label: Any, classes: Sequence[str], where: str) -> int:
    """Index of a label among the class names; a bool or an integer also names a class by its
    position when it is not itself a class name."""
    if isinstance(label, bool):
        label = int(label)
    if isinstance(label, float) and label.is_integer():
        label = int(label)
    text = str(label).strip()
    if text in classes:
        return list(classes).index(text)
    if isinstance(label, int) and 0 <= label < len(classes):
        return label
    raise CaseError(f"{where}: label {label!r} is not one of the classes {list(classes)}")


def _finite(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CaseError(f"{where}: probability must be a finite number, got {value!r}")
    return float(value)


def prediction_scores(prediction: Mapping[str, Any], classes: Sequence[str]) -> tuple[np.ndarray, bool]:
    """Per-class scores of a prediction and whether they come from a label (one-hot).

    ``{"probability": p}`` (binary: the positive class's), ``{"probability": [p_0, …]}``,
    ``{"probability": {class: p}}`` (missing classes 0) or ``{"label": l}``.
    """
    n = len(classes)
    if prediction.get("probability") is not None:
        value = prediction["probability"]
        if isinstance(value, Mapping):
            unknown = [k for k in value if str(k) not in classes]
            if unknown:
                raise CaseError(f"prediction: probabilities for unknown classes {unknown}; "
                                f"classes are {list(classes)}")
            scores = np.zeros(n)
            for key, p in value.items():
                scores[list(classes).index(str(key))] = _finite(p, f"prediction class {key}")
            return scores, False
        if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
            if len(value) != n:
                raise CaseError(f"prediction: {len(value)} probabilities for {n} classes {list(classes)}")
            return np.asarray([_finite(p, "prediction") for p in value]), False
        p = _finite(value, "prediction")
        if n != 2:
            raise CaseError(f"prediction: a single probability needs a binary task, "
                            f"but there are {n} classes")
        return np.asarray([1.0 - p, p]), False
    if prediction.get("label") is not None:
        scores = np.zeros(n)
        scores[class_index(prediction["label"], classes, "prediction")] = 1.0
        return scores, True
    raise CaseError("prediction: has neither 'probability' nor 'label'")


class ClassificationTask(Task):
    """Classification of each case.

    Roles: the reference gives ``label`` (a class name, or 0/1 for a binary task); the prediction
    gives ``probability`` (a number: the positive class's probability in a binary task; a list in
    class order; or a mapping class → probability) or ``label`` (scored as probability 1 for that
    class). On the platform the prediction's one role is ``prediction``, the value of an output
    socket: a bare number (a probability), a string or boolean (a label), a list or mapping of
    class probabilities, or an object with ``probability`` or ``label``. Each case row holds
    ``reference``, ``predicted``, ``correct`` and, in a binary task, ``probability``.
    ``score_dataset`` gives the metrics of the module text, their bootstrap intervals under ``ci``
    and the ROC curve (``roc``; ``roc_per_class`` for multi-class).
    A missing prediction cannot be scored (None).
    """

    name = "classification"
    Settings = ClassificationSettings
    reference_roles = ("label",)
    prediction_roles = ("prediction",)

    def score_case(self, reference: Mapping[str, Any], prediction: Mapping[str, Any],
                   settings: TaskSettings) -> CaseResult:
        settings = _settings(settings)
        classes = _class_names(settings)
        label = reference.get("label")
        if isinstance(label, Mapping):  # a reference socket holding {"label": ...}
            label = label.get("label")
        if label is None:
            raise CaseError("reference: has no 'label'")
        target = class_index(label, classes, "reference")
        scores, from_label = prediction_scores(_flat_prediction(prediction), classes)
        if len(classes) == 2:
            predicted = int(scores[1] >= settings.threshold)
        else:
            predicted = int(np.argmax(scores))
        row: dict[str, Any] = {"label": None, "reference": classes[target],
                               "predicted": classes[predicted], "correct": int(predicted == target)}
        if len(classes) == 2:
            row["probability"] = float(scores[1])
        pooled = {"target": target, "scores": scores.tolist(), "from_label": from_label}
        return CaseResult(rows=[row], pooled=pooled)

    def score_dataset(self, results: Sequence[CaseResult], settings: TaskSettings) -> dict[str, Any]:
        settings = _settings(settings)
        classes = _class_names(settings)
        payloads = [r.pooled for r in results if r.pooled is not None]
        target = np.asarray([p["target"] for p in payloads], dtype=np.int64)
        scores = np.asarray([p["scores"] for p in payloads], dtype=float)
        scores = scores.reshape(len(payloads), len(classes))
        out: dict[str, Any] = {"n_cases": len(payloads),
                               "n_per_class": {c: int((target == k).sum()) for k, c in enumerate(classes)}}
        if any(p.get("from_label") for p in payloads):
            out["note"] = "some predictions are labels, scored as probability 1 for their class"
        binary = len(classes) == 2
        if binary:
            metrics = binary_metrics(target == 1, scores[:, 1], settings.threshold)
            fpr, tpr, thresholds = roc_curve(target == 1, scores[:, 1])
            out["roc"] = {"fpr": fpr, "tpr": tpr, "thresholds": thresholds}
        else:
            metrics = multiclass_metrics(target, scores, len(classes))
            per_class = dict(zip(classes, metrics.pop("per_class"), strict=True))
            out["per_class"] = {c: {k: float(v) for k, v in m.items()} for c, m in per_class.items()}
            out["roc_per_class"] = {}
            for k, c in enumerate(classes):
                fpr, tpr, thresholds = roc_curve(target == k, scores[:, k])
                out["roc_per_class"][c] = {"fpr": fpr, "tpr": tpr, "thresholds": thresholds}
        out.update({name: float(value) for name, value in metrics.items()})
        if settings.bootstrap and len(payloads):
            out["ci"] = bootstrap_intervals(target, scores, settings)
            out["ci_level"] = settings.ci_level
            out["bootstrap"] = settings.bootstrap
        return jsonable(out)


def bootstrap_intervals(target: np.ndarray, scores: np.ndarray, settings: ClassificationSettings
                        ) -> dict[str, list[float]]:
    """Percentile bootstrap intervals of every data-set metric (see the module text)."""
    rng = np.random.default_rng(settings.seed)
    n = len(target)
    index = rng.integers(0, n, size=(settings.bootstrap, n))
    if scores.shape[1] == 2:
        resampled = binary_metrics(target[index] == 1, scores[index, 1], settings.threshold)
    else:
        resampled = multiclass_metrics(target[index], scores[index], scores.shape[1])
        resampled.pop("per_class")
    quantiles = [(1 - settings.ci_level) / 2 * 100, (1 + settings.ci_level) / 2 * 100]
    intervals = {}
    for name, values in resampled.items():
        values = np.asarray(values, dtype=float)
        values = values[~np.isnan(values)]
        intervals[name] = np.percentile(values, quantiles).tolist() if values.size else [math.nan, math.nan]
    return intervals


def _flat_prediction(prediction: Mapping[str, Any]) -> Mapping[str, Any]:
    """``{"probability": ...}`` or ``{"label": ...}`` from either form of the prediction roles."""
    if "prediction" not in prediction:
        return prediction
    value = prediction["prediction"]
    if isinstance(value, Mapping) and ("probability" in value or "label" in value):
        return value
    if isinstance(value, (str, bool)):
        return {"label": value}
    return {"probability": value}


def _settings(settings: TaskSettings | Mapping | None) -> ClassificationSettings:
    if isinstance(settings, ClassificationSettings):
        return settings
    if settings is None:
        return ClassificationSettings()
    if isinstance(settings, Mapping):
        return ClassificationSettings(**settings)
    return ClassificationSettings(**settings.model_dump())


TASK = ClassificationTask()
