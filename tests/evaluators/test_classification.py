"""Classification against scikit-learn, and hand-computed edge cases."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medarena.evaluators.classification import TASK, ClassificationSettings
from medarena.evaluators.tasks import CaseError

metrics = pytest.importorskip("sklearn.metrics")


def run(references, predictions, **settings):
    s = ClassificationSettings(**settings)
    results = [TASK.score_case({"label": r}, p, s) for r, p in zip(references, predictions, strict=True)]
    return results, TASK.score_dataset(results, s)


@pytest.fixture(scope="module")
def binary_data():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 80)
    p = np.clip(0.35 * y + rng.uniform(0, 0.65, 80), 0, 1).round(1)  # rounded: many ties
    return y, p


def test_binary_metrics_equal_sklearn(binary_data):
    y, p = binary_data
    _, d = run(y.tolist(), [{"probability": float(v)} for v in p], bootstrap=0, threshold=0.4)
    pred = p >= 0.4
    assert d["auroc"] == pytest.approx(metrics.roc_auc_score(y, p), abs=1e-12)
    assert d["accuracy"] == pytest.approx(metrics.accuracy_score(y, pred))
    assert d["sensitivity"] == pytest.approx(metrics.recall_score(y, pred))
    assert d["specificity"] == pytest.approx(metrics.recall_score(1 - y, ~pred))
    assert d["precision"] == pytest.approx(metrics.precision_score(y, pred))
    assert d["f1"] == pytest.approx(metrics.f1_score(y, pred))
    assert d["balanced_accuracy"] == pytest.approx(metrics.balanced_accuracy_score(y, pred))
    fpr, tpr, thresholds = metrics.roc_curve(y, p, drop_intermediate=False)
    assert np.allclose(d["roc"]["fpr"], fpr) and np.allclose(d["roc"]["tpr"], tpr)
    assert d["roc"]["thresholds"][0] is None  # +inf in JSON
    assert np.allclose(d["roc"]["thresholds"][1:], thresholds[1:])
    json.dumps(d, allow_nan=False)


def test_bootstrap_intervals_equal_a_plain_resampling_loop(binary_data):
    y, p = binary_data
    _, d = run(y.tolist(), [{"probability": float(v)} for v in p], bootstrap=200, seed=7)
    index = np.random.default_rng(7).integers(0, len(y), size=(200, len(y)))
    aurocs = [metrics.roc_auc_score(y[i], p[i]) for i in index]
    accuracies = [metrics.accuracy_score(y[i], p[i] >= 0.5) for i in index]
    assert d["ci"]["auroc"] == pytest.approx(np.percentile(aurocs, [2.5, 97.5]).tolist())
    assert d["ci"]["accuracy"] == pytest.approx(np.percentile(accuracies, [2.5, 97.5]).tolist())
    assert d["ci"]["auroc"][0] < d["auroc"] < d["ci"]["auroc"][1]


def test_perfect_classifier_has_degenerate_intervals():
    _, d = run([0, 1, 0, 1], [{"probability": v} for v in (0.1, 0.9, 0.2, 0.8)], bootstrap=100)
    assert d["auroc"] == 1.0 and d["accuracy"] == 1.0
    assert d["ci"]["accuracy"] == [1.0, 1.0] and d["ci"]["auroc"] == [1.0, 1.0]


def test_multiclass_one_vs_rest_equals_sklearn():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 120)
    probs = rng.dirichlet([1, 1, 1], 120)
    probs[np.arange(120), y] += 0.4
    probs /= probs.sum(axis=1, keepdims=True)
    classes = ["benign", "malignant", "normal"]
    predictions = [{"probability": dict(zip(classes, map(float, q), strict=True))} for q in probs]
    _, d = run([classes[k] for k in y], predictions, classes=classes, bootstrap=0)
    pred = probs.argmax(axis=1)
    assert d["auroc"] == pytest.approx(metrics.roc_auc_score(y, probs, multi_class="ovr"), abs=1e-12)
    assert d["accuracy"] == pytest.approx(metrics.accuracy_score(y, pred))
    assert d["balanced_accuracy"] == pytest.approx(metrics.balanced_accuracy_score(y, pred))
    assert d["f1"] == pytest.approx(metrics.f1_score(y, pred, average="macro"))
    assert d["precision"] == pytest.approx(metrics.precision_score(y, pred, average="macro"))
    assert d["sensitivity"] == pytest.approx(metrics.recall_score(y, pred, average="macro"))
    assert d["per_class"]["malignant"]["auroc"] == pytest.approx(metrics.roc_auc_score(y == 1, probs[:, 1]))
    assert set(d["roc_per_class"]) == set(classes)


def test_label_predictions_and_case_rows():
    results, d = run(["0", "1", "1", "0"], [{"label": 0}, {"label": 1}, {"label": 0}, {"label": 1}],
                     bootstrap=0)
    assert [r.rows[0]["correct"] for r in results] == [1, 1, 0, 0]
    assert d["accuracy"] == 0.5 and d["auroc"] == 0.5 and "note" in d


def test_hand_computed_edge_cases():
    # all cases negative: sensitivity and AUROC undefined (null), specificity defined
    _, d = run([0, 0, 0], [{"probability": v} for v in (0.2, 0.7, 0.1)], bootstrap=0)
    assert d["auroc"] is None and d["sensitivity"] is None
    assert d["specificity"] == pytest.approx(2 / 3) and d["accuracy"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("reference, prediction, message", [
    ({"label": 2}, {"probability": 0.5}, "not one of the classes"),
    ({"label": 1}, {"probability": float("nan")}, "finite"),
    ({"label": 1}, {"probability": [0.5]}, "1 probabilities for 2 classes"),
    ({"label": 1}, {}, "neither"),
    ({}, {"probability": 0.5}, "no 'label'"),
])
def test_bad_input(reference, prediction, message):
    with pytest.raises(CaseError, match=message):
        TASK.score_case(reference, prediction, ClassificationSettings())


def test_platform_prediction_role_takes_socket_values():
    s = ClassificationSettings(bootstrap=0)
    for value, expected in ((0.8, 0.8), ({"probability": 0.3}, 0.3), ([0.4, 0.6], 0.6), (True, 1.0)):
        row = TASK.score_case({"label": {"label": 1}}, {"prediction": value}, s).rows[0]
        assert row["probability"] == expected
