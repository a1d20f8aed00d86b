"""A grand-challenge-style phase for the tests: the probe image of tests/data/gc-probe (an
algorithm reading inputs.json by its `socket` key, and an evaluation method), its cases, ground
truth and model tarballs."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import yaml

from medarena.platform.runner import podman_available, podman_env
from tests.platform.challenge_data import to_sitk

PROBE_CONTEXT = Path(__file__).resolve().parents[1] / "data" / "gc-probe"
PROBE = "localhost/medarena-test-gc-probe:latest"
MHA_READER = Path(__file__).resolve().parents[2] / "submissions" / "threshold" / "mha.py"
CASES = ("case0", "case1", "case2")
TRUTH = {"case0.mha": 1.0, "case1.mha": 0.0, "case2.mha": 1.0}


def build_probe(example_images: str) -> str:
    """Build the probe image (after the base image, which ``example_images`` guarantees), with
    the example algorithms' own MetaImage reader beside it."""
    if not podman_available():
        pytest.skip("podman is not installed")
    with tempfile.TemporaryDirectory(prefix="medarena-gc-probe-") as context:
        shutil.copytree(PROBE_CONTEXT, context, dirs_exist_ok=True)
        shutil.copy(MHA_READER, context)
        build = subprocess.run(["podman", "build", "-q", "-t", PROBE, context], capture_output=True,
                               text=True, env=podman_env(), timeout=600)
    assert build.returncode == 0, build.stderr
    return PROBE


def definition(folder: Path, *, mode: str = "ok", **container) -> Path:
    """A challenge scored by the probe as its evaluation container, ground truth in a folder."""
    truth = folder / "ground-truth"
    truth.mkdir(parents=True, exist_ok=True)
    (truth / "truth.json").write_text(json.dumps(TRUTH))
    (truth / "mode.txt").write_text(mode)
    data = {
        "slug": "gcprobe", "title": "grand-challenge probe",
        "phases": [{"slug": "test", "opens": "2020-01-01T00:00:00Z", "submission_limit": 5}],
        "interface": {
            "inputs": [{"slug": "scan", "kind": "Image", "relative_path": "images/scan", "title": "CT scan"}],
            "outputs": [{"slug": "probability", "kind": "Float", "relative_path": "probability.json"},
                        {"slug": "report", "kind": "Anything", "relative_path": "report.json"}],
        },
        "evaluation": {"container": {
            "image": PROBE, "ground_truth": "ground-truth",
            "score_jsonpath": "aggregates.abs_error.mean", "score_title": "Mean abs error",
            "score_default_sort": "asc",
            "extra_results_columns": [{"title": "Max abs error", "path": "aggregates.abs_error.max",
                                       "order": "asc"}],
            "limits": {"wall_time_seconds": 60, "memory_mb": 256},
            **container}},
        "limits": {"wall_time_seconds": 30, "memory_mb": 256},
    }
    path = folder / "challenge.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def write_cases(folder: Path) -> Path:
    (folder / "scan").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    for name in CASES:
        image = to_sitk(rng.normal(50, 5, (4, 6, 8)).astype(np.int16))
        sitk.WriteImage(image, str(folder / "scan" / f"{name}.mha"))
    return folder


def model_tarball(path: Path, probability: float, *, extra: list[tarfile.TarInfo] = ()) -> Path:
    """A .tar.gz with weights.json (and any extra entries, e.g. a link)."""
    with tarfile.open(path, "w:gz") as archive:
        for name, data in (("weights.json", json.dumps({"probability": probability}).encode()),
                           ("sub/readme.txt", b"weights for the probe\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for info in extra:
            archive.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return path
