"""The PI-CAI convention against picai_eval and against picai_eval's own test expectations.

The ten cases rebuild the geometry that picai_eval's test maps document (tests/test-maps/
overview.md: overlaps 1/3, 9/41 and 3/47, 1/3 and 2/7, 5/11 and 1/11, 1/25); picai_eval's
expected output for them (tests/output-expected/metrics-expected.json) is AUROC 0.75 and
AP 0.2777…, with 5 TPs, 4 FPs and 5 FNs (picai_eval's tests/test_evaluation.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from medarena.evaluators.detection import TASK, DetectionSettings
from medarena.evaluators.image import Image
from medarena.evaluators.tasks import CaseError

SHAPE = (3, 10, 24)


def volume(*blocks, value=1.0):
    """Voxels of the given (z, y, x-start, x-stop) runs set to value."""
    array = np.zeros(SHAPE, dtype=np.float32)
    for z, y, x0, x1 in blocks:
        array[z, y, x0:x1] = value
    return array


def case(label_blocks, candidates):
    label = volume(*label_blocks).astype(np.int32) if label_blocks else np.zeros(SHAPE, np.int32)
    detection = np.zeros(SHAPE, np.float32)
    for confidence, blocks in candidates:
        detection += volume(*blocks, value=confidence)
    return detection, label


CASES = {
    # no lesion, no candidate
    "case-0": case([], []),
    # one lesion, no candidate: FN
    "case-1": case([(1, 5, 0, 4)], []),
    # no lesion, one candidate: FP
    "case-2": case([], [(1.0, [(1, 5, 0, 4)])]),
    # IoU 0: FN + FP
    "case-3": case([(1, 5, 0, 4)], [(1.0, [(1, 5, 10, 14)])]),
    # IoU 1/3: TP (lesion x0..1, candidate x1..2)
    "case-4": case([(1, 5, 0, 2)], [(1.0, [(1, 5, 1, 3)])]),
    # lesion 20 voxels; candidate 1: 30 voxels with 9 shared (IoU 9/41), confidence 1;
    # candidate 2: 30 voxels with 3 shared (IoU 3/47 < 0.1), confidence 2: TP + FP
    "case-5": case([(1, 5, 0, 20)],
                   [(1.0, [(1, 5, 0, 9), (1, 4, 0, 9), (1, 3, 0, 9), (1, 2, 0, 3)]),
                    (2.0, [(1, 5, 15, 18), (1, 6, 15, 18), (1, 7, 15, 18), (2, 5, 15, 18), (2, 6, 15, 18),
                           (2, 7, 15, 18), (0, 5, 15, 18), (0, 6, 15, 18), (0, 7, 15, 18), (0, 8, 15, 18)])]),
    # lesion 6 voxels; candidate 1: IoU 3/9 (confidence 1), candidate 2: IoU 2/7 (confidence 2):
    # one TP (the larger overlap), the other candidate overlaps enough and is left out
    "case-6": case([(1, 5, 0, 6)],
                   [(1.0, [(1, 5, 0, 3), (1, 4, 0, 3)]), (2.0, [(1, 5, 4, 6), (1, 6, 5, 6)])]),
    # two lesions (x0 and x2), one candidate x0..2: IoU 1/3 with either: TP + FN
    "case-7": case([(1, 5, 0, 1), (1, 5, 2, 3)], [(1.0, [(1, 5, 0, 3)])]),
    # candidate x0..9 (10 voxels); lesion 1: 5 shared + 1 (IoU 5/11); lesion 2: 1 shared + 1 (1/11)
    "case-8": case([(1, 5, 0, 5), (1, 4, 0, 1), (1, 5, 9, 10), (1, 6, 9, 10)], [(1.0, [(1, 5, 0, 10)])]),
    # lesion 13 voxels, candidate 13 voxels, 1 shared: IoU 1/25: FN + FP
    "case-9": case([(1, 5, 0, 13)], [(1.0, [(1, 5, 12, 24), (1, 6, 23, 24)])]),
}

PICAI_EXPECTED = {
    "case-0": [], "case-1": [(1, 0.0, 0.0)], "case-2": [(0, 1.0, 0.0)],
    "case-3": [(1, 0.0, 0.0), (0, 1.0, 0.0)], "case-4": [(1, 1.0, 1 / 3)],
    "case-5": [(1, 1.0, 9 / 41), (0, 2.0, 0.0)], "case-6": [(1, 1.0, 1 / 3)],
    "case-7": [(1, 1.0, 1 / 3), (1, 0.0, 0.0)], "case-8": [(1, 1.0, 5 / 11), (1, 0.0, 0.0)],
    "case-9": [(1, 0.0, 0.0), (0, 1.0, 0.0)],
}


def picai_lists(result):
    """(is_lesion, confidence, overlap) entries as picai_eval lists them, from our payload."""
    p = result.pooled
    entries = [(1, s, o) if t else (0, s, 0.0) for s, t, o in zip(p["scores"], p["tp"], p["overlap"], strict=True)]
    entries += [(1, 0.0, 0.0)] * (p["n_ref"] - sum(p["tp"]))
    return sorted(entries)


@pytest.fixture(scope="module")
def scored():
    settings = DetectionSettings(convention="picai")
    results = {name: TASK.score_case({"lesions": label}, {"detections": det}, settings)
               for name, (det, label) in CASES.items()}
    return results, TASK.score_dataset(list(results.values()), settings)


def test_case_entries_match_picai_expectations(scored):
    results, _ = scored
    for name, expected in PICAI_EXPECTED.items():
        assert np.allclose(picai_lists(results[name]), sorted(expected)), name


def test_dataset_matches_picai_expected_output(scored):
    results, dataset = scored
    assert dataset["auroc"] == pytest.approx(0.75)
    # by hand: at confidence 2 one FP (P 0, R 0); at 1, 5 TPs and 4 FPs (P 5/9, R 5/10)
    assert dataset["ap"] == pytest.approx(0.5 * 5 / 9)
    assert dataset["ap"] == pytest.approx(0.2777777777777778)
    assert dataset["picai_score"] == pytest.approx((0.75 + 0.2777777777777778) / 2)
    tp = sum(r.rows[0]["tp"] for r in results.values())
    fp = sum(r.rows[0]["fp"] for r in results.values())
    fn = sum(r.rows[0]["fn"] for r in results.values())
    assert (tp, fp, fn) == (5, 4, 5)  # at score threshold 0.5, every candidate counts


def test_against_picai_eval_itself(scored):
    picai_eval = pytest.importorskip("picai_eval")
    results, dataset = scored
    names = list(CASES)
    metrics = picai_eval.evaluate(y_det=[CASES[n][0] for n in names], y_true=[CASES[n][1] for n in names],
                                  subject_list=names, num_parallel_calls=1)
    for name in names:
        assert np.allclose(sorted(metrics.lesion_results[name]), picai_lists(results[name]), atol=1e-7), name
    assert dataset["auroc"] == pytest.approx(metrics.auroc)
    assert dataset["ap"] == pytest.approx(metrics.AP)


def test_random_maps_against_picai_eval():
    picai_eval = pytest.importorskip("picai_eval")
    rng = np.random.default_rng(0)
    settings = DetectionSettings(convention="picai")
    dets, labels, results = [], [], []
    for _ in range(12):
        label = np.zeros((8, 16, 16), np.int32)
        det = np.zeros((8, 16, 16), np.float32)
        for _ in range(rng.integers(0, 3)):
            z, y, x = rng.integers(0, 5, 3) * (1, 3, 3)
            label[z:z + 3, y:y + 3, x:x + 3] = 1
        for _ in range(rng.integers(0, 4)):
            z, y, x = rng.integers(0, 6), rng.integers(0, 14), rng.integers(0, 14)
            block = np.zeros_like(det, bool)
            block[z:z + 2, y:y + 2, x:x + 2] = True
            grown = np.zeros_like(block)
            grown[max(z - 1, 0):z + 3, max(y - 1, 0):y + 3, max(x - 1, 0):x + 3] = True
            if (det[grown] > 0).any():  # keep candidates apart
                continue
            det[block] = round(float(rng.uniform(0.05, 1)), 2)
        dets.append(det)
        labels.append(label)
        results.append(TASK.score_case({"lesions": label}, {"detections": det}, settings))
    dataset = TASK.score_dataset(results, settings)
    metrics = picai_eval.evaluate(y_det=dets, y_true=labels, num_parallel_calls=1)
    assert dataset["ap"] == pytest.approx(metrics.AP, abs=1e-12)
    assert dataset["auroc"] == pytest.approx(metrics.auroc, abs=1e-12)


def test_softmax_volume_and_negative_values_are_rejected():
    settings = DetectionSettings(convention="picai")
    label = np.zeros(SHAPE, np.int32)
    softmax = volume((1, 5, 0, 4))
    softmax[1, 5, 0] = 0.3
    with pytest.raises(CaseError, match="softmax"):
        TASK.score_case({"lesions": label}, {"detections": softmax}, settings)
    with pytest.raises(CaseError, match="negative"):
        TASK.score_case({"lesions": label}, {"detections": -volume((1, 5, 0, 4))}, settings)


def test_picai_missing_prediction_and_images():
    settings = DetectionSettings(convention="picai")
    det, label = CASES["case-4"]
    image = Image(label, spacing=(3.0, 0.5, 0.5))
    result = TASK.missing_prediction({"lesions": image}, settings)
    assert (result.rows[0]["tp"], result.rows[0]["fn"], result.rows[0]["case_score"]) == (0, 1, 0.0)
    assert result.notes
    other_grid = Image(det, spacing=(3.0, 0.6, 0.6))
    with pytest.raises(CaseError, match="differs from the label"):
        TASK.score_case({"lesions": image}, {"detections": other_grid}, settings)
