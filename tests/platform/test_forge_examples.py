"""grand-challenge-forge's example algorithm and evaluation method, kept byte for byte as the
package generated them (tests/data/forge/README.md says how), run unchanged on medarena: only
the base image line of their Dockerfiles is replaced, by the offline stand-in that
infra/build-pytorch-standin.sh builds."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import yaml
from sqlalchemy import select
from typer.testing import CliRunner

from medarena.cli import app
from medarena.platform import organizer, scheduler
from medarena.platform.database import LeaderboardEntry, Submission, session_scope
from medarena.platform.runner import podman_available, podman_env

FORGE = Path(__file__).resolve().parents[1] / "data" / "forge"
REPO = Path(__file__).resolve().parents[2]
STANDIN = "localhost/medarena-pytorch:latest"
ALGORITHM = "localhost/medarena-test-forge-algorithm:latest"
EVALUATION = "localhost/medarena-test-forge-evaluation:latest"
CASES = ("case-a", "case-b", "case-c")
runner = CliRunner()


def test_the_generated_files_are_unchanged():
    listed = {}
    for line in (FORGE / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        listed[name] = digest
    present = {str(p.relative_to(FORGE)) for folder in ("example-algorithm", "example-evaluation-method")
               for p in (FORGE / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert present == set(listed)
    for name, digest in listed.items():
        assert hashlib.sha256((FORGE / name).read_bytes()).hexdigest() == digest, f"{name} was edited"


def build_with_standin_base(folder: str, tag: str, tmp_path: Path) -> None:
    """Build a copy of the generated folder whose Dockerfile differs only in its FROM line."""
    context = tmp_path / folder
    shutil.copytree(FORGE / folder, context)
    original = (FORGE / folder / "Dockerfile").read_text().splitlines(keepends=True)
    changed = [f"FROM --platform=linux/amd64 {STANDIN} AS {line.split(' AS ')[1]}" if line.startswith("FROM ")
               else line for line in original]
    assert sum(a != b for a, b in zip(original, changed, strict=True)) == 1
    (context / "Dockerfile").write_text("".join(changed))
    build = subprocess.run(["podman", "build", "-q", "-t", tag, str(context)], capture_output=True, text=True,
                           env=podman_env(), timeout=900)
    assert build.returncode == 0, build.stderr[-3000:]


@pytest.fixture
def forge_phase(example_images, home, tmp_path):
    if not podman_available():
        pytest.skip("podman is not installed")
    pip = str(Path(sys.executable).parent / "pip")  # the wheels come from the index this environment uses
    standin = subprocess.run(["bash", str(REPO / "infra" / "build-pytorch-standin.sh")], capture_output=True,
                             text=True, env={**podman_env(), "PIP": pip}, timeout=1800)
    assert standin.returncode == 0, standin.stderr
    build_with_standin_base("example-algorithm", ALGORITHM, tmp_path)
    build_with_standin_base("example-evaluation-method", EVALUATION, tmp_path)
    # the phase of tests/data/forge/context.json, scored by the generated evaluation method
    definition = {
        "slug": "forge-demo", "title": "forge demo",
        "phases": [{"slug": "test", "opens": "2020-01-01T00:00:00Z"}],
        "interface": {
            "inputs": [{"slug": "ct-image", "kind": "Image", "relative_path": "images/ct"}],
            "outputs": [{"slug": "lesion-probability", "kind": "Float", "relative_path": "lesion-probability.json"},
                        {"slug": "output-image", "kind": "Image", "relative_path": "images/output-image"}],
        },
        "evaluation": {"container": {
            "image": EVALUATION, "ground_truth": str(FORGE / "example-evaluation-method" / "ground_truth"),
            "score_jsonpath": "aggregates.my_metric", "score_title": "my_metric",
            "limits": {"wall_time_seconds": 120, "memory_mb": 1024}}},
        "limits": {"wall_time_seconds": 120, "memory_mb": 2048},
    }
    path = tmp_path / "forge-demo.yaml"
    path.write_text(yaml.safe_dump(definition, sort_keys=False))
    organizer.create_challenge(home, path)
    source = tmp_path / "source" / "ct-image"
    source.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for case in CASES:
        sitk.WriteImage(sitk.GetImageFromArray(rng.normal(0, 1, (4, 8, 8)).astype(np.float32)),
                        str(source / f"{case}.mha"))
    organizer.ingest_phase(home, "forge-demo", "test", source.parent)
    model = tmp_path / "model.tar.gz"
    with tarfile.open(model, "w:gz") as archive:  # the folder's content, as grand-challenge's Models page takes it
        for item in sorted((FORGE / "example-algorithm" / "model").rglob("*")):
            archive.add(item, arcname=str(item.relative_to(FORGE / "example-algorithm" / "model")), recursive=False)
    return home, model


@pytest.mark.podman
def test_the_forge_algorithm_runs_unchanged_through_try(forge_phase):
    settings, model = forge_phase
    # `try`, with the model tarball and with the model folder
    result = runner.invoke(app, ["try", ALGORITHM, "-c", "forge-demo", "-p", "test", "--model", str(model)])
    assert result.exit_code == 0, result.output
    rows = organizer.try_image(settings, ALGORITHM, "forge-demo", "test", ["case-a"],
                               model=FORGE / "example-algorithm" / "model")
    assert rows[0]["state"] == "succeeded", rows
    # without its model, the algorithm fails reading /opt/ml/model, as it would on grand-challenge
    rows = organizer.try_image(settings, ALGORITHM, "forge-demo", "test", ["case-a"])
    assert rows[0]["state"] == "failed" and "some_tarball_resource.txt" in rows[0]["stderr_tail"]



@pytest.mark.podman
def test_the_forge_algorithm_and_evaluation_method_run_unchanged_as_a_phase(forge_phase, ray_cluster):
    """`submit` and run: the evaluation method scores the submission; the leaderboard shows its column."""
    settings, model = forge_phase
    result = runner.invoke(app, ["submit", ALGORITHM, "-c", "forge-demo", "-p", "test", "-u", "ann",
                                 "--model", str(model)])
    assert result.exit_code == 0, result.output
    sid = int(result.output.split()[1])
    scheduler.run(settings, [sid])
    with session_scope(settings.database_url) as session:
        submission = session.get(Submission, sid)
        assert [j.state for j in submission.jobs] == ["succeeded"] * 3, [j.detail for j in submission.jobs]
        assert submission.evaluation_state == "succeeded", (submission.evaluation_detail, submission.evaluation_log)
        metrics = submission.metrics_json
        # its metrics.json: one bogus 0/1 metric per job, and their mean
        assert len(metrics["results"]) == 3 and {r["my_metric"] for r in metrics["results"]} <= {0, 1}
        mean = sum(r["my_metric"] for r in metrics["results"]) / 3
        assert metrics["aggregates"]["my_metric"] == pytest.approx(mean)
        # no case named in metrics.json: ranked on the aggregate, and said so
        assert "ranks on the leaderboard columns only" in submission.evaluation_detail
        entry = session.scalar(select(LeaderboardEntry).where(LeaderboardEntry.submission_id == sid))
        assert entry.rank == 1 and entry.columns["my_metric"] == pytest.approx(mean)
        assert "Processing:" in submission.evaluation_log  # the organizer sees the method's own output
