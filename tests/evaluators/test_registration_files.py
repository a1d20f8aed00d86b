"""Registration cases from files: the folder layout, file formats and per-case errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import SimpleITK as sitk

from medarena.evaluators import registration as reg
from medarena.platform.loaders import registration as loader
from medarena.platform.offline import evaluate_files

SPACING_ITK = (0.8, 1.2, 2.5)
ORIGIN = (10.0, -20.0, 35.0)
DIRECTION = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)  # 90 degrees about z
SHAPE = (10, 12, 14)  # z, y, x


def itk_image(array: np.ndarray, vector: bool = False) -> sitk.Image:
    image = sitk.GetImageFromArray(array, isVector=vector)
    image.SetSpacing(SPACING_ITK)
    image.SetOrigin(ORIGIN)
    image.SetDirection(DIRECTION)
    return image


def write_case(root, name: str, shift=(2.0, 1.0, -1.0), fixed_rows=None):
    folder = root / "ref" / name
    folder.mkdir(parents=True)
    grid = itk_image(np.zeros(SHAPE, np.int16))
    points = [grid.TransformContinuousIndexToPhysicalPoint(i) for i in ((2, 3, 4), (5.5, 6, 7), (10, 2, 1))]
    rows = fixed_rows if fixed_rows is not None else points
    (folder / "fixed_landmarks.csv").write_text("id,x,y,z\n" + "".join(
        f"p{k},{x},{y},{z}\n" for k, (x, y, z) in enumerate(rows)))
    moving = {"type": "Multiple points", "points": [
        {"name": f"p{k}", "point": [p[0] + shift[0] + (3.0 if k == 1 else 0.0), p[1] + shift[1], p[2] + shift[2]]}
        for k, p in reversed(list(enumerate(points)))]}
    (folder / "moving_landmarks.json").write_text(json.dumps(moving))
    labels = np.zeros(SHAPE, np.uint8)
    labels[2:7, 3:9, 4:11] = 1
    sitk.WriteImage(itk_image(labels), str(folder / "fixed_labels.nii.gz"))
    sitk.WriteImage(itk_image(labels), str(folder / "moving_labels.nii.gz"))
    sitk.WriteImage(grid, str(folder / "fixed.mha"))
    field = np.broadcast_to(np.asarray(shift), SHAPE + (3,)).astype(np.float32)
    (root / "pred").mkdir(exist_ok=True)
    sitk.WriteImage(itk_image(field, vector=True), str(root / "pred" / f"{name}.mha"))
    return folder


def test_case_folder_is_read_and_scored(tmp_path):
    write_case(tmp_path, "case1")
    pairs = loader.pair_cases(tmp_path / "ref", tmp_path / "pred")
    assert [(c, p.name) for c, _, p in pairs] == [("case1", "case1.mha")]
    ref = loader.read_reference(pairs[0][1])
    assert ref["landmark_ids"] == ["p0", "p1", "p2"]
    pred = loader.read_prediction(pairs[0][2])
    assert pred["field"].shape == SHAPE and pred["field"].direction == DIRECTION
    rows = reg.TASK.score_case(ref, pred, reg.RegistrationSettings()).rows
    whole = rows[0]
    assert whole["tre_max"] == pytest.approx(3.0, abs=1e-4) and whole["tre_median"] == pytest.approx(0.0, abs=1e-4)
    assert whole["tre_initial_mean"] == pytest.approx((2 * math.sqrt(6) + math.sqrt(27)) / 3, abs=1e-4)
    assert whole["folding"] == 0.0
    # the labels are identical, the field moves them by (2, 1, -1) mm: not a perfect overlap
    assert 0.3 < rows[1]["dice"] < 1.0


def test_evaluate_files_reports_bad_cases_and_scores_the_others(tmp_path):
    write_case(tmp_path, "good")
    write_case(tmp_path, "outside", fixed_rows=[(1000.0, 0.0, 0.0), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)])
    bad_count = write_case(tmp_path, "counts")
    (bad_count / "fixed_landmarks.csv").write_text("1,2,3\n4,5,6\n")
    (bad_count / "moving_landmarks.json").write_text(json.dumps({"points": [{"point": [1, 2, 3]}]}))
    write_case(tmp_path, "nan")
    field = np.zeros(SHAPE + (3,), np.float32)
    field[1, 1, 1, 0] = np.nan
    sitk.WriteImage(itk_image(field, vector=True), str(tmp_path / "pred" / "nan.mha"))
    write_case(tmp_path, "components")
    sitk.WriteImage(itk_image(np.zeros(SHAPE + (2,), np.float32), vector=True),
                    str(tmp_path / "pred" / "components.mha"))
    write_case(tmp_path, "missing")
    (tmp_path / "pred" / "missing.mha").unlink()
    out = evaluate_files("registration", tmp_path / "ref", tmp_path / "pred", reg.RegistrationSettings())
    errors = {e["case"]: e["error"] for e in out["errors"]}
    assert "2 fixed and 1 moving landmarks, and no ids" in errors["counts"]
    assert "fixed_landmarks.csv" in errors["counts"]
    assert "outside the fixed image" in errors["outside"]
    assert "NaN" in errors["nan"]
    assert "3 components" in errors["components"]
    assert "no prediction" in errors["missing"]
    assert {r["case"] for r in out["cases"]} == {"good"}
    assert out["aggregates"]["all"]["tre_max"]["n"] == 1


def test_nibabel_style_4d_field_and_bare_array(tmp_path):
    folder = write_case(tmp_path, "c")
    u = np.zeros(SHAPE + (3,), np.float32)
    u[..., 0], u[..., 1], u[..., 2] = 2.0, 1.0, -1.0
    four_d = sitk.JoinSeries([sitk.GetImageFromArray(np.ascontiguousarray(u[..., c])) for c in range(3)])
    four_d.SetSpacing(SPACING_ITK + (1.0,))
    four_d.SetOrigin(ORIGIN + (0.0,))
    direction = np.eye(4)
    direction[:3, :3] = np.reshape(DIRECTION, (3, 3))
    four_d.SetDirection(tuple(direction.ravel()))
    sitk.WriteImage(four_d, str(tmp_path / "field4d.nii.gz"))
    field = loader.read_field(tmp_path / "field4d.nii.gz")
    np.testing.assert_allclose(field.array, u)
    np.testing.assert_allclose(field.direction, DIRECTION, atol=1e-6)
    np.save(tmp_path / "field.npy", u)
    ref = loader.read_reference(folder)
    rows = reg.TASK.score_case(ref, loader.read_prediction(tmp_path / "field.npy"), reg.RegistrationSettings()).rows
    assert rows[0]["tre_max"] == pytest.approx(3.0, abs=1e-4)


def test_single_case_and_container_output_layout(tmp_path):
    folder = write_case(tmp_path, "one")
    out_dir = tmp_path / "output" / "images" / "displacement-field"
    out_dir.mkdir(parents=True)
    (tmp_path / "pred" / "one.mha").rename(out_dir / "3f1c.mha")
    pairs = loader.pair_cases(folder, tmp_path / "output")
    assert pairs[0][0] == "one"
    assert loader.read_prediction(pairs[0][2])["field"].shape == SHAPE


def test_unreadable_landmarks_name_the_file(tmp_path):
    folder = write_case(tmp_path, "c")
    (folder / "moving_landmarks.json").write_text("{not json")
    with pytest.raises(ValueError, match="moving_landmarks.json: not valid JSON"):
        loader.read_reference(folder)
