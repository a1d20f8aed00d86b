"""The metric registry: every metric a task writes is declared, with the direction of its definition."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medarena.evaluators import registry
from medarena.evaluators.classification import TASK as CLASSIFICATION
from medarena.evaluators.detection import TASK as DETECTION
from medarena.evaluators.fusion import METRICS as FUSION_METRICS
from medarena.evaluators.image import Image
from medarena.evaluators.ranking import RankingRecipe, rank
from medarena.evaluators.registration import TASK as REGISTRATION
from medarena.evaluators.segmentation import evaluate

# Directions from the definitions (distances, errors, misses and irregularity: lower is better).
LOWER = ["hd", "hd95", "hd@99.5", "assd", "masd", "volume_difference_ml", "fp", "fn", "lesion_fp",
         "lesion_fn", "tre", "tre_mean", "tre_p95", "tre_initial_mean", "sdlogj", "folding", "rmse",
         "tre_30", "hd95_30", "sdlogj_30", "sdlogj_mean", "dice_std"]
HIGHER = ["dice", "iou", "nsd", "nsd@2", "tp", "lesion_f1", "panoptic_quality", "ap", "ap@0.5", "map",
          "cpm", "auroc", "balanced_accuracy", "picai_score", "ssim", "vif", "qabf", "mi", "en",
          "dice_mean", "dice_30"]


@pytest.mark.parametrize("name", LOWER)
def test_lower_is_better(name):
    assert registry.higher_is_better(name) is False


@pytest.mark.parametrize("name", HIGHER)
def test_higher_is_better(name):
    assert registry.higher_is_better(name) is True


def test_unknown_names_and_parameters():
    assert registry.lookup("hausdorff") is None and registry.higher_is_better("hd95x") is None
    assert registry.lookup("HD@95").name == "hd" and registry.lookup("nsd@1.5").name == "nsd"
    assert registry.lookup("ap@0.75").parameter == "IoU threshold t of a match"
    assert {m.name for m in registry.METRICS} >= {"hd", "nsd", "ap", "tre_initial"}
    assert len({m.name for m in registry.METRICS}) == len(registry.METRICS)


def declared_for(family: str, names) -> list[str]:
    """The names that the registry does not declare for ``family``."""
    return [n for n in names if (e := registry.lookup(n)) is None or family not in e.families]


def numeric_keys(rows) -> set[str]:
    return {k for row in rows for k, v in row.items()
            if k not in ("case", "label") and isinstance(v, (int, float)) and not isinstance(v, bool)}


def test_every_segmentation_metric_is_declared():
    a = np.zeros((9, 9), np.uint8)
    a[2:6, 2:6] = 1
    names = ["dice", "iou", "sensitivity", "precision", "specificity", "accuracy", "volume_similarity",
             "volume_difference_ml", "tp", "fp", "fn", "tn", "hd", "hd95", "hd@99", "assd", "masd",
             "nsd", "nsd@2", "lesion_tp", "lesion_fp", "lesion_fn", "lesion_f1", "panoptic_quality"]
    rows = evaluate(a, np.roll(a, 1, 0), spacing=(1, 1), metrics=names)
    assert numeric_keys(rows.values()) == set(names)
    assert declared_for("segmentation", names) == []


def test_every_detection_metric_is_declared():
    settings = DETECTION.Settings()
    ref = {"boxes": [{"corners": [0, 0, 0, 4, 4, 4]}]}
    pred = {"boxes": [{"corners": [0, 0, 0, 4, 4, 4], "probability": 0.9},
                      {"corners": [8, 8, 8, 9, 9, 9], "probability": 0.8}]}
    result = DETECTION.score_case({"boxes": ref}, {"detections": pred}, settings)
    dataset = DETECTION.score_dataset([result], settings)
    written = numeric_keys(result.rows) | numeric_keys([dataset]) - {"n_cases", "n_references"}
    assert {"tp", "fp", "fn", "ap@0.5", "map", "cpm"} <= written
    assert declared_for("detection", written) == []


def test_every_classification_metric_is_declared():
    settings = CLASSIFICATION.Settings(classes=["no", "yes"])
    results = [CLASSIFICATION.score_case({"label": lab}, {"probability": p}, settings)
               for lab, p in (("yes", 0.8), ("no", 0.3), ("yes", 0.4))]
    dataset = CLASSIFICATION.score_dataset(results, settings)
    written = numeric_keys(r for result in results for r in result.rows) | numeric_keys([dataset])
    written -= {"n_cases", "ci_level", "bootstrap"}
    assert {"accuracy", "auroc", "balanced_accuracy", "correct"} <= written
    assert declared_for("classification", written) == []


def test_every_registration_and_fusion_metric_is_declared():
    shape = (8, 8, 8)
    fixed = np.zeros(shape, np.uint8)
    fixed[2:6, 2:6, 2:6] = 1
    reference = {"fixed_landmarks": np.array([[2.0, 3.0, 4.0], [4.0, 4.0, 4.0]]),
                 "moving_landmarks": np.array([[2.5, 3.0, 4.0], [4.0, 4.5, 4.0]]),
                 "fixed_labels": Image(fixed, (1.0, 1.0, 1.0)), "moving_labels": Image(fixed, (1.0, 1.0, 1.0))}
    field = Image(np.zeros(shape + (3,)), (1.0, 1.0, 1.0))
    for convention in ("default", "l2r"):
        settings = REGISTRATION.Settings(convention=convention, labels={"one": 1})
        result = REGISTRATION.score_case(reference, {"field": field}, settings)
        written = numeric_keys(result.rows) | numeric_keys([REGISTRATION.score_dataset([result, result], settings)])
        assert {"tre_mean", "tre_initial_mean", "sdlogj", "folding", "dice", "hd95"} <= written
        assert declared_for("registration", written) == []
    assert declared_for("fusion", FUSION_METRICS) == []


@pytest.mark.parametrize("metric", ["volume_difference_ml", "lesion_fp", "rmse", "folding"])
def test_ranking_reads_the_direction_from_the_registry(metric):
    """Lower-is-better metrics whose names give no hint rank their smallest value first."""
    table = pd.DataFrame([{"submission": s, "case": "c1", "label": None, "metric": metric, "value": v}
                          for s, v in (("small", 1.0), ("large", 5.0))])
    ranking = rank(table, RankingRecipe(metrics=[{"metric": metric}], bootstrap=0))
    assert ranking["submission"].tolist() == ["small", "large"]
    assert ranking.set_index("submission")["rank"].to_dict() == {"small": 1, "large": 2}


def test_an_undeclared_metric_ranks_higher_is_better_unless_the_recipe_says():
    table = pd.DataFrame([{"submission": s, "case": "c1", "label": None, "metric": "organizer_score", "value": v}
                          for s, v in (("small", 1.0), ("large", 5.0))])
    assert rank(table, RankingRecipe(metrics=[{"metric": "organizer_score"}]))["submission"][0] == "large"
    lower = RankingRecipe(metrics=[{"metric": "organizer_score", "higher_is_better": False}])
    assert rank(table, lower)["submission"][0] == "small"
