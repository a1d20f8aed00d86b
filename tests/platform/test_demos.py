"""`medarena demo --task TASK` runs each family's demo challenge end to end (create, ingest,
submit the example algorithms, run them in real containers, rank), with a few cases each; the
scores are checked against what the generated data implies, computed here by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from medarena.cli import app
from medarena.platform import organizer
from medarena.platform.database import Phase, session_scope
from medarena.platform.demo import DEMOS

pytestmark = pytest.mark.podman
runner = CliRunner()


def run_demo(home, task: str, cases: int) -> dict[str, dict]:
    """Run the demo; return each participant's per-case results and data-set metrics."""
    result = runner.invoke(app, ["demo", "--task", task, "--cases", str(cases), "--no-serve"],
                           env={"MEDARENA_HOME": str(home.home), "COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert f"leaderboard demo-{task}/test" in result.output
    with session_scope(home.database_url) as session:
        phase = session.query(Phase).filter(Phase.slug == "test").one()
        assert {c.name for c in phase.cases} and len(phase.submissions) == len(DEMOS[task].algorithms)
        by_participant = {s.participant: s.id for s in phase.submissions}
    return {who: organizer.submission_results(home, sid) for who, sid in by_participant.items()}


def succeeded(results: dict) -> dict[str, list[dict]]:
    cases = {c["case"]: c for c in results["cases"]}
    assert all(c["state"] == "succeeded" for c in cases.values()), cases
    return {name: case["metrics"] for name, case in cases.items()}


def points(path) -> np.ndarray:
    return np.array([p["point"] for p in json.loads(path.read_text())["points"]], float)


def test_segmentation_demo(home, example_images, ray_cluster):
    results = run_demo(home, "segmentation", 1)
    alice = succeeded(results["alice"])  # Otsu's threshold on two well-separated intensities
    assert alice["synthetic-00"][0]["dice"] > 0.9
    # an empty segmentation against a non-empty reference: Dice 0, and every distance the worst
    # one the image allows, its diagonal
    source = home.home / "demo-source" / "segmentation" / "scan"
    for name, rows in succeeded(results["bob"]).items():
        scan = sitk.ReadImage(str(source / f"{name}.nii.gz"))
        diagonal = math.dist([0, 0, 0], [n * s for n, s in zip(scan.GetSize(), scan.GetSpacing(), strict=True)])
        assert rows[0]["dice"] == 0.0
        assert rows[0]["hd95"] == pytest.approx(diagonal) and rows[0]["assd"] == pytest.approx(diagonal)
    reasons = {c["reason"] for c in results["mallory"]["cases"] if c["state"] == "failed"}
    assert reasons <= {"timeout", "invalid_output", "exit_code", "missing_output", "out_of_memory"}


@pytest.mark.parametrize("task", ["detection", "classification"])
def test_lesion_demos(home, example_images, ray_cluster, task):
    results = run_demo(home, task, 3)  # two scans with a lesion, one without
    cases = succeeded(results["alice"])
    assert len(cases) == 3
    source = home.home / "demo-source" / task
    if task == "detection":
        for name, rows in cases.items():
            boxes = json.loads((source / "lesion-boxes" / f"{name}.json").read_text())["boxes"]
            if boxes:  # the detector's box is the lesion's own extent: one true positive
                assert (rows[0]["tp"], rows[0]["fn"]) == (1, 0), name
            else:
                assert (rows[0]["tp"], rows[0]["fn"]) == (0, 0), name
        assert results["alice"]["dataset"]["ap@0.5"] == pytest.approx(1.0)
    else:
        truth = {name: json.loads((source / "has-lesion" / f"{name}.json").read_text()) for name in cases}
        assert sorted(truth.values()) == [0, 1, 1]
        # every scan with a lesion scores above the one without
        assert results["alice"]["dataset"]["auroc"] == pytest.approx(1.0)
        assert results["alice"]["dataset"]["sensitivity"] == pytest.approx(1.0)


def test_registration_demo(home, example_images, ray_cluster):
    results = run_demo(home, "registration", 2)
    source = home.home / "demo-source" / "registration"
    for name, rows in succeeded(results["alice"]).items():
        whole = next(r for r in rows if r["label"] is None)
        fixed_kp, moving_kp = (points(source / s / f"{name}.json") for s in ("fixed-keypoints", "moving-keypoints"))
        fixed, moving = (points(source / s / f"{name}.json") for s in ("fixed-landmarks", "moving-landmarks"))
        # the baseline's field is the keypoints' mean displacement, the same at every landmark
        u = moving_kp.mean(0) - fixed_kp.mean(0)
        tre = np.linalg.norm(fixed + u - moving, axis=1)
        assert whole["tre_mean"] == pytest.approx(tre.mean(), abs=1e-4)
        assert whole["tre_initial_mean"] == pytest.approx(np.linalg.norm(moving - fixed, axis=1).mean(), abs=1e-4)
        assert whole["folding"] == 0.0
        labels = {r["label"]: r["dice"] for r in rows if r["label"] is not None}
        assert set(labels) == {"organ-a", "organ-b"} and min(labels.values()) > 0.8


def test_fusion_demo(home, example_images, ray_cluster):
    results = run_demo(home, "fusion", 2)
    source = home.home / "demo-source" / "fusion"
    for name, rows in succeeded(results["alice"]).items():
        a, b = (sitk.GetArrayFromImage(sitk.ReadImage(str(source / s / f"{name}.png"))).astype(float)
                for s in ("visible", "infrared"))
        fused = np.clip(np.rint((a + b) / 2), 0, 255)
        mse_a, mse_b = np.mean((a - fused) ** 2), np.mean((b - fused) ** 2)
        assert rows[0]["rmse"] == pytest.approx((math.sqrt(mse_a) + math.sqrt(mse_b)) / 2, rel=1e-9)
        assert rows[0]["psnr"] == pytest.approx(10 * math.log10(255**2 / ((mse_a + mse_b) / 2)), rel=1e-9)


def test_an_unknown_task_is_one_line(home):
    result = runner.invoke(app, ["demo", "--task", "telepathy", "--no-serve"], env={"MEDARENA_HOME": str(home.home)})
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: no demo for the task 'telepathy'; demos: segmentation, detection, classification, registration, "
        "fusion"]
