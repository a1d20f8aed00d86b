"""Reading detection and classification files: pairing by case, formats, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medarena.evaluators.detection import TASK as DETECTION
from medarena.evaluators.detection import Boxes, DetectionSettings, Points
from medarena.evaluators.tasks import CaseError
from medarena.platform.loaders import classification as cls_loader
from medarena.platform.loaders import detection as det_loader


def write(path, document):
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


@pytest.fixture()
def folders(tmp_path):
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    ref.mkdir()
    pred.mkdir()
    box = {"boxes": [{"corners": [0, 0, 10, 10]}]}
    for name in ("a", "b", "c", "d"):
        write(ref / f"{name}.json", box)
    write(pred / "a.json", {"boxes": [{"corners": [0, 0, 10, 10], "score": 0.9}]})
    write(pred / "b.json", '{"boxes": [{"corners": [0, 0, 10')  # malformed JSON
    write(pred / "c.json", {"boxes": [{"corners": [10, 0, 0, 10], "score": 0.9}]})  # x1 < x0
    write(pred / "extra.json", {"boxes": []})  # no reference; "d" has no prediction
    return ref, pred


def test_folders_pair_by_case_and_report_each_problem(folders):
    ref, pred = folders
    pairs = det_loader.pair_cases(ref, pred)
    assert [p[0] for p in pairs] == ["a", "b", "c", "d", "extra"]
    assert pairs[3][2] is None  # missing prediction
    settings = DetectionSettings()
    outcome = {}
    for case, ref_source, pred_source in pairs:
        try:
            reference = det_loader.read_reference(ref_source)
            if pred_source is None:
                outcome[case] = DETECTION.missing_prediction(reference, settings)
            else:
                outcome[case] = DETECTION.score_case(reference, det_loader.read_prediction(pred_source), settings)
        except ValueError as error:
            outcome[case] = str(error)
    assert outcome["a"].rows[0]["tp"] == 1
    assert "b.json" in outcome["b"] and "malformed JSON" in outcome["b"]
    assert "c.json" in outcome["c"] and "x1 < x0" in outcome["c"]
    assert outcome["d"].rows[0]["fn"] == 1 and outcome["d"].notes
    assert "extra" in outcome["extra"] and "no reference" in outcome["extra"]


def test_single_files_pair_whatever_their_names(tmp_path):
    r = write(tmp_path / "truth.json", {"points": [{"point": [0, 0, 0], "radius": 3}]})
    p = write(tmp_path / "output.json", {"type": "Multiple points", "version": {"major": 1, "minor": 0},
                                         "points": [{"point": [1, 0, 0], "probability": 0.4}]})
    (case, ref_source, pred_source), = det_loader.pair_cases(r, p)
    assert case == "truth"
    assert isinstance(det_loader.read_reference(ref_source)["lesions"], Points)
    assert det_loader.read_prediction(pred_source)["detections"].scores.tolist() == [0.4]


def test_luna16_csv(tmp_path):
    annotations = write(tmp_path / "annotations.csv",
                        "seriesuid,coordX,coordY,coordZ,diameter_mm\n"
                        "1.3.6.1.1,0,0,0,10\n1.3.6.1.1,50,0,0,6\n1.3.6.1.2,,,,\n1.3.6.1.3,5,5,5,4\n")
    candidates = write(tmp_path / "candidates.csv",
                       "seriesuid,coordX,coordY,coordZ,probability\n"
                       "1.3.6.1.1,1,1,1,0.9\n1.3.6.1.1,50,2.9,0,0.6\n1.3.6.1.2,9,9,9,0.7\n"
                       "1.3.6.1.3,5,5,nan,0.2\n1.3.6.1.9,0,0,0,0.5\n")
    pairs = det_loader.pair_cases(annotations, candidates)
    assert [p[0] for p in pairs] == ["1.3.6.1.1", "1.3.6.1.2", "1.3.6.1.3", "1.3.6.1.9"]
    first = det_loader.read_reference(pairs[0][1])["lesions"]
    assert first.radii.tolist() == [5.0, 3.0]
    assert len(det_loader.read_reference(pairs[1][1])["lesions"]) == 0  # a case without nodules
    result = DETECTION.score_case(det_loader.read_reference(pairs[0][1]), det_loader.read_prediction(pairs[0][2]),
                                  DetectionSettings())
    assert (result.rows[0]["tp"], result.rows[0]["fn"]) == (2, 0)
    with pytest.raises(CaseError, match=r"candidates.csv, case 1.3.6.1.3, row 1: coordZ is nan"):
        det_loader.read_prediction(pairs[2][2])
    with pytest.raises(CaseError, match="1.3.6.1.9"):
        det_loader.read_reference(pairs[3][1])


def test_csv_without_case_column_is_rejected(tmp_path):
    bad = write(tmp_path / "bad.csv", "x,y\n1,2\n")
    good = write(tmp_path / "good.json", {"boxes": []})
    with pytest.raises(ValueError, match="bad.csv: malformed CSV"):
        det_loader.pair_cases(bad, good)


def test_picai_image_folders(tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    folder = tmp_path / "maps"
    folder.mkdir()
    label = np.zeros((4, 8, 8), np.uint8)
    label[1:3, 2:5, 2:5] = 1
    det = np.zeros((4, 8, 8), np.float32)
    det[1:3, 2:5, 3:6] = 0.8
    sitk.WriteImage(sitk.GetImageFromArray(label), str(folder / "p1_label.nii.gz"))
    sitk.WriteImage(sitk.GetImageFromArray(det), str(folder / "p1_detection_map.nii.gz"))
    (case, ref_source, pred_source), = det_loader.pair_cases(folder, folder)
    assert case == "p1"
    settings = DetectionSettings(convention="picai")
    result = DETECTION.score_case(det_loader.read_reference(ref_source), det_loader.read_prediction(pred_source),
                                  settings)
    assert result.rows[0]["tp"] == 1  # IoU 12/24 = 0.5


def test_boxes_from_own_format_are_boxes(tmp_path):
    r = write(tmp_path / "c1.json", {"boxes": [{"corners": [0, 0, 0, 1, 1, 1], "label": "nodule"}]})
    assert isinstance(det_loader.read_reference(r)["lesions"], Boxes)


def test_classification_csv_and_json(tmp_path):
    ref = write(tmp_path / "labels.csv", "case,label\nc1,1\nc2,0\nc3,1\n")
    pred = write(tmp_path / "probs.csv", "case,probability\nc1,0.8\nc2,abc\nc4,0.3\n")
    pairs = cls_loader.pair_cases(ref, pred)
    assert [p[0] for p in pairs] == ["c1", "c2", "c3", "c4"]
    assert pairs[2][2] is None  # missing prediction
    assert cls_loader.read_reference(pairs[0][1]) == {"label": "1"}
    assert cls_loader.read_prediction(pairs[0][2]) == {"probability": 0.8}
    with pytest.raises(CaseError, match="probs.csv, case c2.*'abc' is not a number"):
        cls_loader.read_prediction(pairs[1][2])
    with pytest.raises(CaseError, match="c4.*no reference"):
        cls_loader.read_reference(pairs[3][1])
    multi = write(tmp_path / "multi.csv", "case,probability_a,probability_b\nc1,0.2,0.8\n")
    (_, _, source), *_ = cls_loader.pair_cases(ref, multi)
    assert cls_loader.read_prediction(source) == {"probability": {"a": 0.2, "b": 0.8}}
    folder = tmp_path / "json"
    folder.mkdir()
    write(folder / "c1.json", 0.75)  # grand-challenge's bare float
    write(folder / "c2.json", {"label": 0})
    pairs = dict((c, p) for c, _, p in cls_loader.pair_cases(ref, folder))
    assert cls_loader.read_prediction(pairs["c1"]) == {"probability": 0.75}
    assert cls_loader.read_prediction(pairs["c2"]) == {"label": 0}
