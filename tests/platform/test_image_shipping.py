"""On a cluster, a node without the submitted image loads it from the shared store."""

from __future__ import annotations

import pytest

from medarena.platform import organizer, scheduler
from medarena.platform.casejob import CaseJob, run_algorithm
from medarena.platform.runner import RunnerError, ensure_image
from medarena.platform.settings import load_settings
from tests.platform.challenge_data import write_definition, write_source
from tests.platform.conftest import podman

pytestmark = pytest.mark.podman



def test_a_cluster_submission_ships_its_image_and_a_bare_node_loads_it(home, tmp_path, monkeypatch, private_image):
    tag, digest = private_image
    monkeypatch.setenv("MEDARENA_RAY_ADDRESS", "127.0.0.1:1")  # submit does not contact Ray
    settings = load_settings()
    organizer.create_challenge(settings, write_definition(tmp_path / "toy.yaml"))
    organizer.ingest_phase(settings, "toy", "test", write_source(tmp_path / "src", n=1))
    sid, pinned = organizer.submit(settings, "toy", "test", "ann", tag)
    assert pinned == digest
    archive = scheduler.image_archive_url(settings, digest)
    assert (tmp_path / "home" / "store" / "images" / f"{digest.removeprefix('sha256:')}.tar").is_file()

    # a node that never saw the image: remove it, then run the case as a worker would
    assert podman("rmi", "--force", digest).returncode == 0
    assert podman("image", "exists", digest).returncode != 0
    definition = {k: v for k, v in organizer.show_challenge(settings, "toy").items() if k != "cases"}
    job = CaseJob(case="case0", image=digest, definition=definition,
                  inputs_url=scheduler.inputs_url(settings, "toy", "test"),
                  references_url=scheduler.references_url(settings, "toy", "test"),
                  predictions_url=None, scratch=str(settings.scratch), image_archive=archive)
    outcome = run_algorithm(job)
    assert outcome.state == "evaluating", outcome.detail
    assert podman("image", "exists", digest).returncode == 0


def test_a_missing_archive_is_the_platforms_fault(tmp_path):
    with pytest.raises(RunnerError, match="not on this node"):
        ensure_image("sha256:" + "0" * 64, str(tmp_path / "nowhere.tar"))
