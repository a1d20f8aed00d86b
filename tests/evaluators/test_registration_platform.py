"""Registration and fusion phases on the platform: several input images, JSON landmark sockets,
the field and fused-image outputs, scored by ``evaluate_case`` from the case stores."""

from __future__ import annotations

import numpy as np
import pytest

from medarena.evaluators.image import Image
from medarena.platform import casestore
from medarena.platform.casejob import CaseJob, evaluate_case
from medarena.platform.challenges import ChallengeDefinition

PHASES = [{"slug": "test", "title": "Test"}]


def registration_definition() -> dict:
    return {
        "slug": "reg", "title": "Registration", "phases": PHASES,
        "interface": {
            "inputs": [
                {"slug": "fixed", "kind": "image", "relative_path": "images/fixed"},
                {"slug": "moving", "kind": "image", "relative_path": "images/moving"},
                {"slug": "fixed-landmarks", "kind": "points", "relative_path": "fixed-landmarks.json"},
            ],
            "outputs": [{"slug": "field", "kind": "displacement-field",
                         "relative_path": "images/displacement-field"}],
            "references": [
                {"slug": "moving-landmarks", "kind": "points", "relative_path": "moving-landmarks.json"},
                {"slug": "fixed-labels", "kind": "segmentation", "relative_path": "images/fixed-labels"},
                {"slug": "moving-labels", "kind": "segmentation", "relative_path": "images/moving-labels",
                 "same_grid_as": "moving"},
            ],
        },
        "evaluation": {
            "task": "registration",
            "reference": {"fixed_image": "fixed", "moving_image": "moving", "fixed_landmarks": "fixed-landmarks",
                          "moving_landmarks": "moving-landmarks", "fixed_labels": "fixed-labels",
                          "moving_labels": "moving-labels"},
            "prediction": {"field": "field"},
            "settings": {"metrics": ["tre", "tre_initial", "dice", "folding"]},
        },
    }


def job(tmp_path, definition: dict) -> CaseJob:
    return CaseJob(case="c1", image="none", definition=definition, inputs_url=str(tmp_path / "inputs"),
                   references_url=str(tmp_path / "refs"), predictions_url=None, scratch=str(tmp_path))


def points(coords) -> dict:
    return {"type": "Multiple points", "version": {"major": 1, "minor": 0},
            "points": [{"name": f"p{k}", "point": list(map(float, p))} for k, p in enumerate(coords)]}


def test_registration_phase_scores_from_the_case_stores(tmp_path):
    definition = registration_definition()
    ChallengeDefinition.model_validate(definition)
    shape, spacing, origin = (10, 12, 14), (2.0, 1.0, 1.0), (5.0, -3.0, 2.0)
    labels = np.zeros(shape, np.uint8)
    labels[2:7, 3:9, 4:11] = 1
    fixed = Image(np.zeros(shape, np.int16), spacing, origin)
    moving = Image(np.zeros(shape, np.int16), spacing, origin)
    fixed_points = [[8.0, 2.0, 9.0], [12.0, 4.0, 13.0]]
    moving_points = [[p[0] + 2.0, p[1], p[2]] for p in fixed_points]  # shifted 2 mm along x
    casestore.write_case(str(tmp_path / "inputs"), "c1", {
        "fixed": fixed, "moving": moving, "fixed-landmarks": points(fixed_points)})
    casestore.write_case(str(tmp_path / "refs"), "c1", {
        "moving-landmarks": {"type": "Multiple points",  # listed in another order: paired by name
                             "points": points(moving_points)["points"][::-1]},
        "fixed-labels": Image(labels, spacing, origin), "moving-labels": Image(labels, spacing, origin)})
    field = np.zeros(shape + (3,), np.float32)
    field[..., 0] = 2.0  # exactly the shift: landmarks meet; labels move by 2 voxels along x
    outcome = evaluate_case(job(tmp_path, definition), predictions={"field": Image(field, spacing, origin)})
    assert outcome.state == "succeeded", outcome.detail
    whole = next(r for r in outcome.rows if r["label"] is None)
    assert whole["tre_mean"] == pytest.approx(0.0, abs=1e-6) and whole["tre_initial_mean"] == pytest.approx(2.0)
    label = next(r for r in outcome.rows if r["label"] == "1")
    assert label["dice"] == pytest.approx(2 * 5 * 6 * 5 / (2 * 5 * 6 * 7))


def test_fusion_phase_with_two_source_inputs(tmp_path):
    definition = {
        "slug": "fus", "title": "Fusion", "phases": PHASES,
        "interface": {
            "inputs": [{"slug": "infrared", "kind": "image", "relative_path": "images/infrared"},
                       {"slug": "visible", "kind": "image", "relative_path": "images/visible"}],
            "outputs": [{"slug": "fused", "kind": "image", "relative_path": "images/fused"}],
        },
        "evaluation": {"task": "fusion", "reference": {"source_a": "infrared", "source_b": "visible"},
                       "settings": {"metrics": ["psnr", "cc"]}},
    }
    ChallengeDefinition.model_validate(definition)
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 256, (32, 32)).astype(np.uint8), rng.integers(0, 256, (32, 32)).astype(np.uint8)
    casestore.write_case(str(tmp_path / "inputs"), "c1", {"infrared": Image(a, (1.0, 1.0)),
                                                            "visible": Image(b, (1.0, 1.0))})
    casestore.write_case(str(tmp_path / "refs"), "c1", {})
    outcome = evaluate_case(job(tmp_path, definition), predictions={"fused": Image(a.copy(), (1.0, 1.0))})
    assert outcome.state == "succeeded", outcome.detail
    row = outcome.rows[0]
    mse_b = np.mean((a.astype(float) - b) ** 2)
    assert row["psnr"] == pytest.approx(10 * np.log10(255**2 / (mse_b / 2)))
