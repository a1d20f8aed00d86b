"""Points and the LUNA16 hit criterion, FROC and CPM, hand-checked."""

from __future__ import annotations

import numpy as np
import pytest

from medarena.evaluators.detection import TASK, DetectionSettings, cpm, froc_curve, parse_detections
from medarena.evaluators.tasks import CaseError


def points(*items):
    return {"points": [dict(zip(("point", "score", "radius"), item, strict=False)) for item in items]}


def refs(*items):
    return {"points": [{"point": p, "radius": r} for p, r in items]}


def score(cases, **settings):
    s = DetectionSettings(**settings)
    results = [TASK.score_case({"lesions": r}, {"detections": p}, s) for r, p in cases]
    return results, TASK.score_dataset(results, s)


# Case A: lesions L1 at the origin (r 5) and L2 at x = 50 (r 5); detections: 0.9 in L1, 0.5 in L1
# again (neither TP nor FP), 0.8 far away (FP), 0.3 in L2 at distance 4.9. Case B: no lesion,
# two false positives 0.7 and 0.2.
CASE_A = (refs(([0, 0, 0], 5), ([50, 0, 0], 5)),
          points(([1, 0, 0], 0.9), ([2, 0, 0], 0.5), ([100, 100, 100], 0.8), ([50, 4.9, 0], 0.3)))
CASE_B = ({"points": []}, points(([10, 10, 10], 0.7), ([20, 20, 20], 0.2)))


def test_luna16_hits_per_case():
    results, _ = score([CASE_A, CASE_B])
    a, b = results[0].rows[0], results[1].rows[0]
    # at score >= 0.5: 0.9 is the TP of L1, 0.5 a further hit (ignored), 0.8 an FP, L2 missed
    assert (a["tp"], a["fp"], a["fn"]) == (1, 1, 1)
    assert (b["tp"], b["fp"], b["fn"]) == (0, 1, 0)


def test_froc_and_cpm_hand_checked():
    _, dataset = score([CASE_A, CASE_B])
    # ranked entries: TP .9, FP .8, FP .7, TP .3, FP .2 over 2 cases and 2 lesions
    assert dataset["froc"]["fp_per_case"] == pytest.approx([0, 0, 0.5, 1.0, 1.0, 1.5])
    assert dataset["froc"]["sensitivity"] == pytest.approx([0, 0.5, 0.5, 0.5, 1.0, 1.0])
    # sensitivity at 1/8, 1/4, 1/2: 0.5; at 1 (the curve rises to 1.0 there), 2, 4, 8: 1.0
    assert dataset["cpm_points"]["sensitivity"] == pytest.approx([0.5, 0.5, 0.5, 1, 1, 1, 1])
    assert dataset["cpm"] == pytest.approx(5.5 / 7)


def test_cpm_interpolates_linearly_between_points():
    # one case, 4 lesions; entries TP .9, FP .8, TP .7, FP .6 (one case: fp per case = FP count)
    fps, sens, _ = froc_curve(np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 0, 1, 0], bool), 4, 1)
    assert fps.tolist() == [0, 0, 1, 1, 2] and sens.tolist() == [0, 0.25, 0.25, 0.5, 0.5]
    # 1/8, 1/4, 1/2 -> 0.25; 1 -> 0.5; 2, 4, 8 -> 0.5
    assert cpm(fps, sens) == pytest.approx((3 * 0.25 + 4 * 0.5) / 7)


def test_tied_scores_give_a_diagonal_froc_segment():
    # two detections of equal score, one TP one FP, in 1 case with 1 lesion: (0,0) -> (1,1)
    fps, sens, _ = froc_curve(np.array([0.5, 0.5]), np.array([0, 1], bool), 1, 1)
    assert fps.tolist() == [0, 1] and sens.tolist() == [0, 1]
    assert cpm(fps, sens) == pytest.approx((0.125 + 0.25 + 0.5 + 4) / 7)


def test_point_on_the_sphere_is_a_miss():
    results, _ = score([(refs(([0, 0, 0], 5)), points(([5, 0, 0], 0.9)))])
    assert (results[0].rows[0]["tp"], results[0].rows[0]["fp"]) == (0, 1)


def test_point_inside_two_lesions_counts_for_both():
    results, _ = score([(refs(([0, 0, 0], 5), ([4, 0, 0], 5)), points(([2, 0, 0], 0.9)))])
    assert (results[0].rows[0]["tp"], results[0].rows[0]["fp"], results[0].rows[0]["fn"]) == (2, 0, 0)


def test_ignored_reference_point_absorbs_hits():
    ref = {"points": [{"point": [0, 0, 0], "radius": 5, "ignore": True}]}
    results, dataset = score([(ref, points(([1, 0, 0], 0.9)))])
    assert (results[0].rows[0]["tp"], results[0].rows[0]["fp"], results[0].rows[0]["fn"]) == (0, 0, 0)


def test_boxes_under_luna16_use_the_predicted_centre():
    ref = {"boxes": [{"corners": [0, 0, 0, 10, 10, 10]}]}
    pred = {"boxes": [{"corners": [4, 4, 4, 30, 30, 30], "score": 0.9},  # centre (17,...): outside
                      {"corners": [2, 2, 2, 6, 6, 6], "score": 0.8}]}  # centre 4: inside, IoU 0.064
    results, _ = score([(ref, pred)], convention="luna16")
    assert (results[0].rows[0]["tp"], results[0].rows[0]["fp"]) == (1, 1)


def test_reference_point_without_radius():
    case = ({"points": [{"point": [0, 0, 0]}]}, points(([1, 0, 0], 0.9)))
    with pytest.raises(CaseError, match="no radius"):
        score([case])
    results, _ = score([case], point_radius=2.0)
    assert results[0].rows[0]["tp"] == 1


def test_grand_challenge_multiple_points():
    doc = {"type": "Multiple points", "version": {"major": 1, "minor": 0},
           "points": [{"point": [1, 0, 0], "probability": 0.7, "name": "nodule"}, {"point": [90, 0, 0]}]}
    parsed = parse_detections(doc)
    assert parsed.scores.tolist() == [0.7, 1.0]
    results, _ = score([(refs(([0, 0, 0], 5)), doc)])
    assert (results[0].rows[0]["tp"], results[0].rows[0]["fp"]) == (1, 1)


def test_grand_challenge_2d_boxes_in_planes():
    def gc_box(x0, y0, x1, y1, z, p):
        return {"corners": [[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], "probability": p}

    ref = {"type": "Multiple 2D bounding boxes", "boxes": [gc_box(0, 0, 10, 10, 3, None)],
           "version": {"major": 1, "minor": 0}}
    pred = {"type": "Multiple 2D bounding boxes",
            "boxes": [gc_box(0, 0, 10, 10, 4, 0.9), gc_box(1, 1, 10, 10, 3, 0.8)]}
    results, _ = score([(ref, pred)])
    # the first box lies in another plane: FP; the second matches (IoU 0.81)
    assert (results[0].rows[0]["tp"], results[0].rows[0]["fp"]) == (1, 1)
    tilted = {"boxes": [{"corners": [[0, 0, 0], [1, 0, 0], [1, 1, 1], [0, 1, 1]]}]}
    with pytest.raises(CaseError, match="not in one z plane"):
        parse_detections(tilted)
