"""Detection and classification phases run through the platform: JSON outputs from a real
container, scored by the task's evaluator, pooled metrics stored for the leaderboard and plots."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import yaml

from medarena.platform import organizer, scheduler
from medarena.platform.database import Submission, session_scope
from tests.platform.challenge_data import cube_case, to_sitk

pytestmark = pytest.mark.podman
IMAGE = "localhost/medarena-example-blob-detector:latest"
SPACING_XYZ, ORIGIN = (0.5, 1.0, 2.0), (10.0, -5.0, 3.0)


def reference_box(mask: np.ndarray) -> list[float]:
    """The physical extent of the mask's voxels (each covering +-half a spacing), by hand."""
    idx = np.argwhere(mask)[:, ::-1]  # (x, y, z)
    lo = np.array(ORIGIN) + (idx.min(0) - 0.5) * SPACING_XYZ
    hi = np.array(ORIGIN) + (idx.max(0) + 0.5) * SPACING_XYZ
    return [*lo.tolist(), *hi.tolist()]


def write_source(folder, n_lesion=3):
    for socket in ("scan", "lesion-boxes", "has-lesion"):
        (folder / socket).mkdir(parents=True)
    cases = {f"case{i}": cube_case(i) for i in range(n_lesion)}
    rng = np.random.default_rng(9)
    cases["healthy"] = (rng.normal(50, 5, (12, 24, 24)).astype(np.int16), np.zeros((12, 24, 24), np.uint8))
    for name, (scan, mask) in cases.items():
        sitk.WriteImage(to_sitk(scan), str(folder / "scan" / f"{name}.mha"))
        boxes = [{"corners": reference_box(mask)}] if mask.any() else []
        (folder / "lesion-boxes" / f"{name}.json").write_text(json.dumps({"boxes": boxes}))
        (folder / "has-lesion" / f"{name}.json").write_text(json.dumps(int(mask.any())))
    return folder


def challenge(task: str, output: dict, reference: dict, settings: dict) -> dict:
    return {
        "slug": f"toy-{task}", "title": task, "phases": [{"slug": "test"}],
        "interface": {"inputs": [{"slug": "scan", "kind": "image", "relative_path": "images/scan"}],
                      "outputs": [output], "references": [reference]},
        "evaluation": {"task": task, "settings": settings},
        "limits": {"wall_time_seconds": 20, "memory_mb": 256},
    }


@pytest.mark.parametrize("task", ["detection", "classification"])
def test_json_output_phases(home, tmp_path, example_images, ray_cluster, task):
    if task == "detection":
        data = challenge("detection",
                         {"slug": "lesion-boxes", "kind": "boxes", "relative_path": "lesion-boxes.json"},
                         {"slug": "lesion-boxes", "kind": "boxes", "relative_path": "lesion-boxes.json"},
                         {"iou_threshold": 0.5})
        data["interface"]["references"].append(
            {"slug": "has-lesion", "kind": "json", "relative_path": "has-lesion.json"})
        data["evaluation"]["reference"] = {"lesions": "lesion-boxes"}
    else:
        data = challenge("classification",
                         {"slug": "lesion-likelihood", "kind": "probability",
                          "relative_path": "lesion-likelihood.json"},
                         {"slug": "has-lesion", "kind": "json", "relative_path": "has-lesion.json"}, {})
        data["interface"]["references"].append(
            {"slug": "lesion-boxes", "kind": "boxes", "relative_path": "lesion-boxes.json"})
        data["evaluation"]["reference"] = {"label": "has-lesion"}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    organizer.create_challenge(home, path)
    organizer.ingest_phase(home, data["slug"], "test", write_source(tmp_path / "src"))
    sid, _ = organizer.submit(home, data["slug"], "test", "ann", IMAGE)
    assert scheduler.run(home, [sid]) == [sid]
    results = organizer.submission_results(home, sid)
    states = {c["case"]: (c["state"], c["detail"]) for c in results["cases"]}
    assert all(state == "succeeded" for state, _ in states.values()), states
    rows = {c["case"]: c["metrics"][0] for c in results["cases"]}
    if task == "detection":
        # each lesion found exactly (the box equals the reference: IoU 1); the healthy case has one FP
        for name in ("case0", "case1", "case2"):
            assert (rows[name]["tp"], rows[name]["fp"], rows[name]["fn"]) == (1, 0, 0)
        assert (rows["healthy"]["tp"], rows["healthy"]["fn"]) == (0, 0)
        # the FP scores below every TP, so the precision-recall curve stays at 1: AP = 1
        assert results["dataset"]["ap@0.5"] == pytest.approx(1.0)
        assert "froc" in results["dataset"]
    else:
        assert results["dataset"]["auroc"] == pytest.approx(1.0)  # every lesion scores above healthy
        assert "roc" in results["dataset"]
    with session_scope(home.database_url) as session:
        assert session.get(Submission, sid).state == "succeeded"
