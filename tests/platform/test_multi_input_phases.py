"""Registration and fusion phases through the platform: several image inputs, JSON landmark
inputs, vector-field and image outputs, scored by the task evaluators."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import SimpleITK as sitk
import yaml

from medarena.platform import organizer, scheduler

pytestmark = pytest.mark.podman
SHIFT = np.array([3.0, -2.0, 4.0])  # mm, (x, y, z): moving = fixed + SHIFT


def image(array, origin, spacing_xyz=(1.0, 1.0, 2.0)) -> sitk.Image:
    img = sitk.GetImageFromArray(array)
    img.SetSpacing(spacing_xyz)
    img.SetOrigin(tuple(float(v) for v in origin))
    return img


def multiple_points(points) -> dict:
    return {"type": "Multiple points", "version": {"major": 1, "minor": 0},
            "points": [{"name": f"p{i}", "point": list(map(float, p))} for i, p in enumerate(points)]}


def registration_source(folder):
    rng = np.random.default_rng(4)
    for socket in ("fixed-image", "moving-image", "fixed-landmarks", "moving-landmarks",
                   "fixed-labels", "moving-labels"):
        (folder / socket).mkdir(parents=True)
    for case in ("pair0", "pair1"):
        scan = rng.integers(0, 200, (10, 20, 20)).astype(np.int16)
        labels = np.zeros((10, 20, 20), np.uint8)
        labels[3:7, 5:12, 4:15] = 1
        labels[3:7, 12:16, 4:15] = 2
        origin = np.array([-5.0, 2.0, 10.0])
        # the moving image shows the same content translated by SHIFT in physical space
        sitk.WriteImage(image(scan, origin), str(folder / "fixed-image" / f"{case}.mha"))
        sitk.WriteImage(image(scan, origin + SHIFT), str(folder / "moving-image" / f"{case}.mha"))
        sitk.WriteImage(image(labels, origin), str(folder / "fixed-labels" / f"{case}.mha"))
        sitk.WriteImage(image(labels, origin + SHIFT), str(folder / "moving-labels" / f"{case}.mha"))
        fixed = origin + rng.uniform(2, 8, (5, 3)) * [1, 1, 2]
        (folder / "fixed-landmarks" / f"{case}.json").write_text(json.dumps(multiple_points(fixed)))
        (folder / "moving-landmarks" / f"{case}.json").write_text(json.dumps(multiple_points(fixed + SHIFT)))
    return folder


def test_registration_phase_with_landmark_inputs(home, tmp_path, example_images, ray_cluster):
    img = lambda slug, grid=None: {"slug": slug, "kind": "image" if "labels" not in slug else "segmentation",  # noqa: E731
                                   "relative_path": f"images/{slug}", **({"same_grid_as": grid} if grid else {})}
    js = lambda slug: {"slug": slug, "kind": "json", "relative_path": f"{slug}.json"}  # noqa: E731
    data = {
        "slug": "toy-registration", "title": "registration", "phases": [{"slug": "test"}],
        "interface": {
            "inputs": [img("fixed-image"), img("moving-image"), js("fixed-landmarks"), js("moving-landmarks")],
            "outputs": [{"slug": "displacement-field", "kind": "displacement-field",
                         "relative_path": "images/displacement-field"}],
            "references": [img("fixed-labels", "fixed-image"), img("moving-labels", "moving-image")],
        },
        "evaluation": {"task": "registration",
                       "reference": {"fixed_landmarks": "fixed-landmarks", "moving_landmarks": "moving-landmarks",
                                     "fixed_labels": "fixed-labels", "moving_labels": "moving-labels",
                                     "fixed_image": "fixed-image"},
                       "prediction": {"field": "displacement-field"}},
        "limits": {"wall_time_seconds": 20, "memory_mb": 256},
    }
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(data))
    organizer.create_challenge(home, tmp_path / "r.yaml")
    organizer.ingest_phase(home, "toy-registration", "test", registration_source(tmp_path / "src"))
    sid, _ = organizer.submit(home, "toy-registration", "test", "ann",
                              "localhost/medarena-example-landmark-translation:latest")
    scheduler.run(home, [sid])
    results = organizer.submission_results(home, sid)
    for case in results["cases"]:
        assert case["state"] == "succeeded", case
        rows = {row["label"]: row for row in case["metrics"]}
        whole = rows[None]
        # the baseline's field is exactly SHIFT, so every landmark lands on its partner
        assert whole["tre_mean"] == pytest.approx(0.0, abs=1e-4)
        assert whole["tre_initial_mean"] == pytest.approx(math.sqrt(9 + 4 + 16), abs=1e-4)
        assert whole["folding"] == 0.0 and whole["sdlogj"] == pytest.approx(0.0, abs=1e-9)
        assert {k: rows[k]["dice"] for k in rows if k is not None} == {"1": 1.0, "2": 1.0}


def test_fusion_phase_with_two_sources(home, tmp_path, example_images, ray_cluster):
    rng = np.random.default_rng(1)
    for socket in ("visible", "infrared"):
        (tmp_path / "src" / socket).mkdir(parents=True)
    sources = {}
    for case in ("scene0", "scene1"):
        a, b = rng.integers(0, 256, (2, 32, 40)).astype(np.uint8)
        sources[case] = (a, b)
        sitk.WriteImage(sitk.GetImageFromArray(a), str(tmp_path / "src" / "visible" / f"{case}.png"))
        sitk.WriteImage(sitk.GetImageFromArray(b), str(tmp_path / "src" / "infrared" / f"{case}.png"))
    data = {
        "slug": "toy-fusion", "title": "fusion", "phases": [{"slug": "test"}],
        "interface": {"inputs": [{"slug": "visible", "kind": "image", "relative_path": "images/visible"},
                                 {"slug": "infrared", "kind": "image", "relative_path": "images/infrared"}],
                      "outputs": [{"slug": "fused-image", "kind": "image", "relative_path": "images/fused-image",
                                   "same_grid_as": "visible"}]},
        "evaluation": {"task": "fusion", "reference": {"source_a": "visible", "source_b": "infrared"},
                       "settings": {"metrics": ["rmse", "psnr"]}},
        "limits": {"wall_time_seconds": 20, "memory_mb": 256},
    }
    (tmp_path / "f.yaml").write_text(yaml.safe_dump(data))
    organizer.create_challenge(home, tmp_path / "f.yaml")
    organizer.ingest_phase(home, "toy-fusion", "test", tmp_path / "src")
    sid, _ = organizer.submit(home, "toy-fusion", "test", "ann", "localhost/medarena-example-average-fusion:latest")
    scheduler.run(home, [sid])
    for case in organizer.submission_results(home, sid)["cases"]:
        assert case["state"] == "succeeded", case
        a, b = (s.astype(float) for s in sources[case["case"]])
        fused = np.clip(np.rint((a + b) / 2), 0, 255)
        mse_a, mse_b = np.mean((a - fused) ** 2), np.mean((b - fused) ** 2)
        row = case["metrics"][0]
        assert row["rmse"] == pytest.approx((math.sqrt(mse_a) + math.sqrt(mse_b)) / 2, rel=1e-12)
        assert row["psnr"] == pytest.approx(10 * math.log10(255**2 / ((mse_a + mse_b) / 2)), rel=1e-12)
