"""Submitting: pinned digests, phase windows, limits (atomic), and bad images."""

from __future__ import annotations

import subprocess
import threading

import pytest
from typer.testing import CliRunner

from medarena.cli import app
from medarena.platform import organizer
from medarena.platform.database import Submission, session_scope
from medarena.platform.runner import ImageError
from medarena.platform.submissions import SubmissionError
from tests.platform.challenge_data import write_definition, write_source

runner = CliRunner()
THRESHOLD = "localhost/medarena-example-threshold:latest"


@pytest.fixture
def toy(home, tmp_path, example_images):
    organizer.create_challenge(home, write_definition(tmp_path / "toy.yaml"))
    organizer.ingest_phase(home, "toy", "test", write_source(tmp_path / "src", n=2))
    return home


def _image_id(name: str) -> str:
    return subprocess.run(["podman", "image", "inspect", "--format", "{{.Id}}", name],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_submit_by_name_and_by_tarball_pin_the_same_digest(toy, tmp_path):
    tarball = tmp_path / "algo.tar"
    subprocess.run(["podman", "save", "-o", str(tarball), THRESHOLD], check=True, capture_output=True)
    result = runner.invoke(app, ["submit", THRESHOLD, "-c", "toy", "-p", "test", "-u", "ann"],
                           env={"MEDARENA_HOME": str(toy.home)})
    assert result.exit_code == 0, result.output
    assert "submission 1 queued" in result.output
    sid, digest = organizer.submit(toy, "toy", "test", "ann", str(tarball))
    assert digest == f"sha256:{_image_id(THRESHOLD)}"
    with session_scope(toy.database_url) as session:
        subs = session.query(Submission).order_by(Submission.id).all()
        assert [s.state for s in subs] == ["queued", "queued"]
        assert subs[0].image_digest == subs[1].image_digest == digest


def test_limit_per_participant_is_enforced_atomically(toy):
    errors, ids = [], []

    def attempt():
        try:
            ids.append(organizer.submit(toy, "toy", "test", "bo", THRESHOLD)[0])
        except SubmissionError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 3  # the limit of the toy phase
    assert len(errors) == 3
    assert "participant 'bo' has used 3 of 3 submissions to toy/test in the last 1 day(s)" in errors[0]
    organizer.submit(toy, "toy", "test", "other-person", THRESHOLD)  # limits are per participant


def test_closed_phase_is_refused(home, tmp_path, example_images):
    organizer.create_challenge(home, write_definition(
        tmp_path / "c.yaml", phases=[{"slug": "test", "opens": "2020-01-01", "closes": "2021-01-01"}]))
    organizer.ingest_phase(home, "toy", "test", write_source(tmp_path / "src", n=1))
    result = runner.invoke(app, ["submit", THRESHOLD, "-c", "toy", "-p", "test", "-u", "x"],
                           env={"MEDARENA_HOME": str(home.home)})
    assert result.exit_code == 1
    assert "phase toy/test is not open: it closed 2021-01-01 00:00 UTC" in result.output


def test_bad_images_are_refused_and_nothing_recorded(toy, tmp_path):
    corrupt = tmp_path / "corrupt.tar"
    corrupt.write_bytes(b"\x00" * 2048)
    with pytest.raises(ImageError, match="corrupt.tar"):
        organizer.submit(toy, "toy", "test", "cy", str(corrupt))
    with pytest.raises(ImageError, match="no-such-image"):
        organizer.submit(toy, "toy", "test", "cy", "localhost/no-such-image:1")
    with pytest.raises(SubmissionError, match="has no phase 'final'"):
        organizer.submit(toy, "toy", "final", "cy", THRESHOLD)
    with session_scope(toy.database_url) as session:
        assert session.query(Submission).count() == 0
