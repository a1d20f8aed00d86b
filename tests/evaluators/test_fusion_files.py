"""Fusion cases from files: the folder layout, PNG sources, per-case errors."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from skimage.metrics import structural_similarity

from medarena.evaluators import fusion as fu
from medarena.platform.loaders import fusion as loader
from medarena.platform.offline import evaluate_files


def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(np.asarray(array, np.uint8)), str(path))


def images(seed, shape=(40, 48)):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, shape)
    b = rng.integers(0, 256, shape)
    return a, b, (a + b) // 2


def test_folder_layout_is_read_and_scored(tmp_path):
    a, b, f = images(0)
    write_png(tmp_path / "ref" / "c1" / "a.png", a)
    write_png(tmp_path / "ref" / "c1" / "b.png", b)
    write_png(tmp_path / "pred" / "c1.png", f)
    pairs = loader.pair_cases(tmp_path / "ref", tmp_path / "pred")
    assert [(c, p.name) for c, _, p in pairs] == [("c1", "c1.png")]
    ref, pred = loader.read_reference(pairs[0][1]), loader.read_prediction(pairs[0][2])
    (row,) = fu.TASK.score_case(ref, pred, fu.FusionSettings()).rows
    expected = sum(structural_similarity(x.astype(float), f.astype(float), gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False, data_range=255) for x in (a, b))
    assert row["ssim"] == pytest.approx(expected, abs=1e-12)


def test_bad_cases_are_reported_and_the_others_scored(tmp_path):
    for name, shape in (("good", (40, 48)), ("small", (40, 48))):
        a, b, f = images(1, shape)
        write_png(tmp_path / "ref" / name / "source_a.png", a)
        write_png(tmp_path / "ref" / name / "source_b.png", b)
        write_png(tmp_path / "pred" / name / "fused.png", f if name == "good" else f[:30])
    a, b, _ = images(2)
    write_png(tmp_path / "ref" / "absent" / "a.png", a)
    write_png(tmp_path / "ref" / "absent" / "b.png", b)
    out = evaluate_files("fusion", tmp_path / "ref", tmp_path / "pred", fu.FusionSettings(metrics=["psnr"]))
    errors = {e["case"]: e["error"] for e in out["errors"]}
    assert "differ in size" in errors["small"] and "fused (30, 48)" in errors["small"]
    assert "no prediction" in errors["absent"]
    assert [r["case"] for r in out["cases"]] == ["good"]


def test_single_case_folder(tmp_path):
    a, b, f = images(3)
    write_png(tmp_path / "case" / "a.png", a)
    write_png(tmp_path / "case" / "b.png", b)
    write_png(tmp_path / "fused.png", f)
    pairs = loader.pair_cases(tmp_path / "case", tmp_path / "fused.png")
    assert pairs[0][0] == "case" and pairs[0][2].name == "fused.png"
