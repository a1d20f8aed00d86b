"""Detection: box geometry, COCO matching and AP against pycocotools, hand-computed edge cases."""

from __future__ import annotations

import contextlib
import io
import json
import math

import numpy as np
import pytest

from medarena.evaluators.detection import TASK, DetectionSettings, box_iou
from medarena.evaluators.tasks import CaseError

pycocotools = pytest.importorskip("pycocotools")
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402


def boxes_doc(corners, scores=None, labels=None):
    items = []
    for i, c in enumerate(corners):
        item = {"corners": [float(v) for v in c]}
        if scores is not None:
            item["score"] = float(scores[i])
        if labels is not None:
            item["label"] = labels[i]
        items.append(item)
    return {"boxes": items}


def score(cases, **settings):
    """cases: list of (reference document, prediction document)."""
    s = DetectionSettings(**settings)
    results = [TASK.score_case({"lesions": r}, {"detections": p}, s) for r, p in cases]
    return results, TASK.score_dataset(results, s)


def coco_stats(cases):
    """pycocotools' AP, AP50, AP75 (maxDets 100, all areas); boxes as [x0, y0, x1, y1]."""
    images, anns, dets, cats = [], [], [], set()
    for i, (g, p) in enumerate(cases):
        images.append({"id": i + 1})
        for b, lab in zip(g["corners"], g["labels"], strict=True):
            w, h = b[2] - b[0], b[3] - b[1]
            cats.add(lab)
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": lab, "iscrowd": 0,
                         "bbox": [b[0], b[1], w, h], "area": w * h})
        for b, s, lab in zip(p["corners"], p["scores"], p["labels"], strict=True):
            cats.add(lab)
            dets.append({"image_id": i + 1, "category_id": lab, "score": float(s),
                         "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]]})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": c} for c in sorted(cats)]}
        gt.createIndex()
        dt = gt.loadRes(dets) if dets else COCO()
        evaluation = COCOeval(gt, dt, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation.stats[:3]


def random_cases(seed, n_cases=40, labels=(1,), round_scores=None):
    rng = np.random.default_rng(seed)

    def boxes(n):
        xy = rng.uniform(0, 100, (n, 2))
        return np.c_[xy, xy + rng.uniform(4, 30, (n, 2))]

    cases = []
    for _ in range(n_cases):
        g = boxes(int(rng.integers(0, 6)))
        p = np.r_[g + rng.normal(0, 3, g.shape), boxes(int(rng.integers(0, 5)))]
        p[:, 2:] = np.maximum(p[:, 2:], p[:, :2])
        s = rng.uniform(0, 1, len(p))
        if round_scores is not None:
            s = s.round(round_scores)
        cases.append(({"corners": g.tolist(), "labels": list(rng.choice(labels, len(g)))},
                      {"corners": p.tolist(), "scores": s.tolist(), "labels": list(rng.choice(labels, len(p)))}))
    return cases


def as_documents(cases, with_labels):
    out = []
    for g, p in cases:
        out.append((boxes_doc(g["corners"], labels=[str(v) for v in g["labels"]] if with_labels else None),
                    boxes_doc(p["corners"], p["scores"], [str(v) for v in p["labels"]] if with_labels else None)))
    return out


# --- geometry -------------------------------------------------------------------------------

def test_iou_hand_computed_2d_3d_and_touching_boxes():
    assert box_iou([[0, 0, 2, 2]], [[1, 1, 3, 3]])[0, 0] == pytest.approx(1 / 7)
    assert box_iou([[0, 0, 0, 2, 2, 2]], [[1, 1, 1, 3, 3, 3]])[0, 0] == pytest.approx(1 / 15)
    assert box_iou([[0, 0, 1, 1]], [[1, 0, 2, 1]])[0, 0] == 0.0  # touching at an edge
    assert box_iou([[0, 0, 1, 1]], [[0, 0, 1, 1]])[0, 0] == 1.0
    assert box_iou(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)


# --- against pycocotools --------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ap_and_map_equal_pycocotools(seed):
    cases = random_cases(seed)
    expected_map, expected_50, expected_75 = coco_stats(cases)
    _, dataset = score(as_documents(cases, with_labels=False))
    assert dataset["map"] == pytest.approx(expected_map, abs=1e-12)
    assert dataset["ap@0.5"] == pytest.approx(expected_50, abs=1e-12)
    assert dataset["ap@0.75"] == pytest.approx(expected_75, abs=1e-12)


def test_ties_in_score_equal_pycocotools():
    cases = random_cases(7, round_scores=1)  # many tied scores, within and across cases
    expected_map, expected_50, _ = coco_stats(cases)
    _, dataset = score(as_documents(cases, with_labels=False))
    assert dataset["map"] == pytest.approx(expected_map, abs=1e-12)
    assert dataset["ap@0.5"] == pytest.approx(expected_50, abs=1e-12)


def test_labelled_boxes_match_per_category_like_pycocotools():
    cases = random_cases(3, labels=(1, 2))
    expected_map, expected_50, _ = coco_stats(cases)
    _, dataset = score(as_documents(cases, with_labels=True))
    assert dataset["map"] == pytest.approx(expected_map, abs=1e-12)
    assert dataset["ap@0.5"] == pytest.approx(expected_50, abs=1e-12)
    assert set(dataset["per_label"]) == {"1", "2"}


def test_other_iou_threshold_is_reported():
    cases = random_cases(4)
    _, dataset = score(as_documents(cases, with_labels=False), iou_threshold=0.75)
    expected_75 = coco_stats(cases)[2]
    assert dataset["ap@0.75"] == pytest.approx(expected_75, abs=1e-12)


# --- hand-computed edge cases ---------------------------------------------------------------

REF = boxes_doc([[0, 0, 10, 10], [20, 20, 30, 30]])


def test_no_predictions():
    results, dataset = score([(REF, {"boxes": []})])
    row = results[0].rows[0]
    assert (row["tp"], row["fp"], row["fn"]) == (0, 0, 2)
    assert math.isnan(row["precision"]) and row["sensitivity"] == 0.0 and row["f1"] == 0.0
    assert dataset["ap@0.5"] == 0.0 and dataset["map"] == 0.0 and dataset["cpm"] == 0.0


def test_no_references():
    results, dataset = score([({"boxes": []}, boxes_doc([[0, 0, 1, 1]], [0.9]))])
    row = results[0].rows[0]
    assert (row["tp"], row["fp"], row["fn"]) == (0, 1, 0)
    assert row["precision"] == 0.0 and math.isnan(row["sensitivity"])
    assert dataset["ap@0.5"] is None and dataset["cpm"] is None  # undefined: JSON null


def test_duplicate_detection_is_a_false_positive():
    pred = boxes_doc([[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.8, 0.7])
    results, dataset = score([(REF, pred)])
    row = results[0].rows[0]
    assert (row["tp"], row["fp"], row["fn"]) == (2, 1, 0)
    assert row["precision"] == pytest.approx(2 / 3) and row["f1"] == pytest.approx(0.8)
    # ranks: TP, FP, TP -> precision envelope 1 up to recall 0.5, 2/3 up to recall 1
    assert dataset["ap@0.5"] == pytest.approx((51 * 1 + 50 * 2 / 3) / 101)


def test_tie_in_score_keeps_input_order():
    # equal scores: the FP listed first is ranked first (stable order, as pycocotools)
    pred = boxes_doc([[50, 50, 60, 60], [0, 0, 10, 10]], [0.6, 0.6])
    results, dataset = score([(boxes_doc([[0, 0, 10, 10]]), pred)])
    assert dataset["ap@0.5"] == pytest.approx(0.5)


def test_boxes_touching_at_an_edge_do_not_match():
    results, _ = score([(boxes_doc([[0, 0, 10, 10]]), boxes_doc([[10, 0, 20, 10]], [0.9]))])
    row = results[0].rows[0]
    assert (row["tp"], row["fp"], row["fn"]) == (0, 1, 1)


def test_iou_exactly_at_threshold_matches():
    # [0,0,10,10] vs [0,0,10,5]: IoU 0.5 exactly
    results, _ = score([(boxes_doc([[0, 0, 10, 10]]), boxes_doc([[0, 0, 10, 5]], [0.9]))])
    assert results[0].rows[0]["tp"] == 1


def test_score_threshold_is_inclusive():
    pred = boxes_doc([[0, 0, 10, 10], [20, 20, 30, 30]], [0.5, 0.49])
    results, _ = score([(REF, pred)], score_threshold=0.5)
    assert (results[0].rows[0]["tp"], results[0].rows[0]["fn"]) == (1, 1)


def test_greedy_matching_follows_score_not_iou():
    # the higher-scoring detection takes the reference even though the other overlaps it more
    ref = boxes_doc([[0, 0, 10, 10]])
    pred = boxes_doc([[0, 0, 10, 6], [0, 0, 10, 9]], [0.9, 0.8])  # IoU 0.6 and 0.9
    results, dataset = score([(ref, pred)])
    assert (results[0].rows[0]["tp"], results[0].rows[0]["fp"]) == (1, 1)
    # at IoU 0.65..0.85 only the second one matches: AP there is 0.5
    assert dataset["ap@0.75"] == pytest.approx(0.5)


def test_3d_boxes():
    ref = boxes_doc([[0, 0, 0, 10, 10, 10]])
    pred = boxes_doc([[0, 0, 0, 10, 10, 6], [0, 0, 0, 10, 10, 4]], [0.9, 0.8])  # IoU 0.6, 0.4
    results, dataset = score([(ref, pred)])
    assert (results[0].rows[0]["tp"], results[0].rows[0]["fp"]) == (1, 1)
    assert dataset["ap@0.5"] == pytest.approx(1.0) and dataset["ap@0.75"] == 0.0


def test_missing_prediction_counts_as_no_detections_with_a_note():
    s = DetectionSettings()
    result = TASK.missing_prediction({"lesions": REF}, s)
    assert result.rows[0]["fn"] == 2 and result.rows[0]["fp"] == 0
    assert any("no prediction" in note for note in result.notes)


def test_pooled_payload_is_json():
    results, dataset = score(as_documents(random_cases(5, n_cases=5), with_labels=False))
    json.dumps([r.pooled for r in results], allow_nan=False)
    json.dumps(dataset, allow_nan=False)
    assert set(dataset["froc"]) >= {"fp_per_case", "sensitivity"}


# --- bad input ------------------------------------------------------------------------------

@pytest.mark.parametrize("document, message", [
    ({"boxes": [{"corners": [5, 0, 1, 10], "score": 0.5}]}, "x1 < x0"),
    ({"boxes": [{"corners": [0, 0, 1, float("nan")], "score": 0.5}]}, "not finite"),
    ({"boxes": [{"corners": [0, 0, 1, 1], "score": float("nan")}]}, "not finite"),
    ({"boxes": [{"corners": [0, 0, 1, 1, 2], "score": 0.5}]}, "4 or 6 numbers"),
    ({"boxes": [{"corners": [0, 0, 1, 1]}, {"corners": [0, 0, 0, 1, 1, 1]}]}, "3D but box 0 is 2D"),
    ({"boxes": [{"corners": "0 0 1 1"}]}, "list of 4 or 6"),
    ([1, 2, 3], "expected a JSON object"),
])
def test_malformed_predictions_raise_a_clear_error(document, message):
    with pytest.raises(CaseError, match=message):
        TASK.score_case({"lesions": REF}, {"detections": document}, DetectionSettings())


def test_wrong_dimension_against_the_reference():
    with pytest.raises(CaseError, match="prediction is 3D but the reference is 2D"):
        TASK.score_case({"lesions": REF}, {"detections": boxes_doc([[0, 0, 0, 1, 1, 1]], [1])},
                        DetectionSettings())


def test_settings_are_validated():
    with pytest.raises(ValueError):
        DetectionSettings(convention="coco2")
    with pytest.raises(ValueError):
        DetectionSettings(unknown=1)


def test_max_detections_truncates_like_pycocotools_maxdets():
    rng = np.random.default_rng(11)
    xy = rng.uniform(0, 100, (150, 2))
    pred = np.c_[xy, xy + 10]
    ref = pred[rng.choice(150, 30, replace=False)] + rng.normal(0, 1, (30, 4))
    ref[:, 2:] = np.maximum(ref[:, 2:], ref[:, :2])
    scores = rng.uniform(0, 1, 150)
    cases = [({"corners": ref.tolist(), "labels": [1] * 30},
              {"corners": pred.tolist(), "scores": scores.tolist(), "labels": [1] * 150})]
    expected_map, expected_50, _ = coco_stats(cases)  # pycocotools keeps the 100 best per image
    _, truncated = score(as_documents(cases, with_labels=False), max_detections=100)
    _, everything = score(as_documents(cases, with_labels=False))
    assert truncated["map"] == pytest.approx(expected_map, abs=1e-12)
    assert truncated["ap@0.5"] == pytest.approx(expected_50, abs=1e-12)
    assert everything["ap@0.5"] != pytest.approx(expected_50, abs=1e-6)
